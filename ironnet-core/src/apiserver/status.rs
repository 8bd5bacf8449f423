//! Kubernetes-style `Status` bodies for failed requests, and the HTTP
//! status each store error maps to.

use serde::{Deserialize, Serialize};

use crate::registry::ObjectError;
use crate::store::StoreError;

/// The cause message of a once-set field that was changed.
pub const IMMUTABLE: &str = "may not change once set";

/// A `Status` object (`kind: Status`, `apiVersion: v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `Status`.
    pub kind: String,
    /// Always `v1`.
    pub api_version: String,
    /// `Success` or `Failure`.
    pub status: String,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
    /// Why, for programs (`NotFound`, `AlreadyExists`, `Conflict`,
    /// `Invalid`, `BadRequest`, `Expired`, `Unauthorized`,
    /// `InternalError`).
    #[serde(default)]
    pub reason: String,
    /// The HTTP status.
    pub code: u16,
    /// Field-level causes (`Invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
}

/// What a `Status` is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// One entry per invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusCause {
    /// The field path (`spec.ports[0].port`).
    pub field: String,
    /// Why.
    pub message: String,
}

impl Status {
    /// A failure.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code,
            details: None,
        }
    }

    /// A success (a completed delete).
    pub fn success(message: impl Into<String>) -> Self {
        Status {
            status: "Success".into(),
            ..Status::failure(200, "", message)
        }
    }

    /// A bad request that is not about one object's fields.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(400, "BadRequest", message)
    }

    /// The status of an object that could not be read or checked.
    pub fn from_object_error(e: &ObjectError) -> Self {
        let mut s = Status::failure(400, "Invalid", e.to_string());
        match e {
            ObjectError::Field {
                kind,
                path,
                message,
            } => {
                s.details = Some(StatusDetails {
                    kind: kind.clone(),
                    causes: vec![StatusCause {
                        field: path.clone(),
                        message: message.clone(),
                    }],
                    ..StatusDetails::default()
                });
            }
            ObjectError::Invalid { kind, name, errors } => {
                s.details = Some(StatusDetails {
                    name: name.clone(),
                    kind: kind.clone(),
                    causes: errors
                        .0
                        .iter()
                        .map(|f| StatusCause {
                            field: f.path.to_string(),
                            message: f.reason.clone(),
                        })
                        .collect(),
                });
            }
            ObjectError::Syntax(_) | ObjectError::MissingKind | ObjectError::UnknownKind { .. } => {
                s.reason = "BadRequest".into();
            }
        }
        s
    }

    /// The status of a failed store operation.
    pub fn from_store_error(e: &StoreError) -> Self {
        let msg = e.to_string();
        match e {
            StoreError::NotFound(_) => Status::failure(404, "NotFound", msg),
            StoreError::AlreadyExists(_) => Status::failure(409, "AlreadyExists", msg),
            StoreError::Conflict { .. } => Status::failure(409, "Conflict", msg),
            StoreError::Invalid(o) => Status::from_object_error(o),
            StoreError::Immutable { field, .. } => {
                let mut s = Status::failure(400, "Invalid", msg);
                s.details = Some(StatusDetails {
                    causes: vec![StatusCause {
                        field: crate::registry::pointer_to_path(field),
                        message: IMMUTABLE.into(),
                    }],
                    ..StatusDetails::default()
                });
                s
            }
            StoreError::Expired { .. } => Status::failure(410, "Expired", msg),
            StoreError::Backend(_) | StoreError::Remote { .. } => {
                Status::failure(500, "InternalError", msg)
            }
        }
    }
}

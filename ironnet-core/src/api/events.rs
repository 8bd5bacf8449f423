//! `events.k8s.io/v1` Events: why an object is not Available yet, or what
//! happened to it, told by the controller.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::object::{KindInfo, Resource, resource_meta};
use crate::validation::{FieldErrors, FieldPath};

/// The object an event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// Repeats of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSeries {
    /// How often it was observed.
    pub count: i64,
    /// When last.
    pub last_observed_time: String,
}

/// An event (fields at the top level, as in Kubernetes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object it is about.
    #[serde(default)]
    pub regarding: ObjectReference,
    /// `Normal` or `Warning`.
    #[serde(default, rename = "type")]
    pub ty: String,
    /// A CamelCase reason (`NoNode`, `PoolExhausted` …).
    #[serde(default)]
    pub reason: String,
    /// What happened, for people.
    #[serde(default)]
    pub note: String,
    /// Who reports it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reporting_controller: String,
    /// First observed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event_time: String,
    /// Repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<EventSeries>,
}

impl Resource for Event {
    const INFO: KindInfo = KindInfo {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        has_status: false,
    };
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        errs.check(
            matches!(self.ty.as_str(), "Normal" | "Warning"),
            &FieldPath::root("type"),
            "must be Normal or Warning",
        );
        errs.check(
            !self.reason.is_empty(),
            &FieldPath::root("reason"),
            "required",
        );
    }
}

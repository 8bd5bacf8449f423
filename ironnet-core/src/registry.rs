//! Every kind of both groups, and the dynamic form objects take in the
//! store and on the wire: [`DynObject`], JSON checked against its kind.

use serde_json::Value;

use crate::api::{apinet, compute, events, networking};
use crate::meta::ObjectMeta;
use crate::object::{KindInfo, Resource};
use crate::validation::FieldErrors;

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectError {
    /// Text that is not YAML/JSON.
    #[error("not valid YAML or JSON: {0}")]
    Syntax(String),
    /// No apiVersion or kind.
    #[error("apiVersion and kind are required")]
    MissingKind,
    /// A kind this server does not know.
    #[error("unknown kind {kind} in {api_version}")]
    UnknownKind {
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// An unknown field or a wrong type.
    #[error("{kind}: {path}: {message}")]
    Field {
        /// Kind.
        kind: String,
        /// Field path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Fields that fail validation.
    #[error("{kind} {name:?} is invalid: {errors}")]
    Invalid {
        /// Kind.
        kind: String,
        /// Name.
        name: String,
        /// The errors.
        errors: FieldErrors,
    },
}

/// A kind's entry: its identity and the function checking an object of it.
#[derive(Clone, Copy)]
pub struct KindEntry {
    /// Identity.
    pub info: KindInfo,
    check: fn(Value) -> Result<Value, ObjectError>,
}

impl std::fmt::Debug for KindEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindEntry")
            .field("info", &self.info)
            .finish()
    }
}

impl KindEntry {
    /// Parses `value` as this kind (unknown fields and wrong types are
    /// errors with their path), fills defaults, validates, and returns
    /// the normalized JSON.
    pub fn check(&self, value: Value) -> Result<Value, ObjectError> {
        (self.check)(value)
    }
}

fn check_as<T: Resource>(value: Value) -> Result<Value, ObjectError> {
    let mut obj: T = serde_path_to_error::deserialize(value).map_err(|e| ObjectError::Field {
        kind: T::INFO.kind.to_owned(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    obj.apply_defaults();
    obj.validate().map_err(|errors| ObjectError::Invalid {
        kind: T::INFO.kind.to_owned(),
        name: obj.meta().name.clone(),
        errors,
    })?;
    serde_json::to_value(&obj).map_err(|e| ObjectError::Syntax(e.to_string()))
}

const fn entry<T: Resource>() -> KindEntry {
    KindEntry {
        info: T::INFO,
        check: check_as::<T>,
    }
}

/// Every kind.
pub static KINDS: &[KindEntry] = &[
    entry::<networking::Network>(),
    entry::<networking::NetworkInterface>(),
    entry::<networking::VirtualIP>(),
    entry::<networking::NATGateway>(),
    entry::<networking::LoadBalancer>(),
    entry::<networking::LoadBalancerRouting>(),
    entry::<networking::NetworkPolicy>(),
    entry::<apinet::IP>(),
    entry::<apinet::IPAddress>(),
    entry::<apinet::Network>(),
    entry::<apinet::NetworkID>(),
    entry::<apinet::NetworkInterface>(),
    entry::<apinet::Instance>(),
    entry::<apinet::DaemonSet>(),
    entry::<apinet::LoadBalancer>(),
    entry::<apinet::LoadBalancerRouting>(),
    entry::<apinet::NATGateway>(),
    entry::<apinet::NATTable>(),
    entry::<apinet::Node>(),
    entry::<apinet::NetworkPolicy>(),
    entry::<apinet::NetworkPolicyRule>(),
    entry::<compute::Machine>(),
    entry::<events::Event>(),
];

/// Fields that may be set once (at create, or later by a controller that
/// allocates them) and never changed or cleared afterwards, as JSON
/// pointers, per `group/kind`.
const IMMUTABLE: &[(&str, &str, &[&str])] = &[
    ("networking.ironcore.dev", "Network", &["/spec/providerID"]),
    (
        "networking.ironcore.dev",
        "NetworkInterface",
        &["/spec/networkRef", "/spec/providerID"],
    ),
    (
        "networking.ironcore.dev",
        "VirtualIP",
        &["/spec/type", "/spec/ipFamily"],
    ),
    (
        "networking.ironcore.dev",
        "NATGateway",
        &["/spec/type", "/spec/ipFamily", "/spec/networkRef"],
    ),
    (
        "networking.ironcore.dev",
        "LoadBalancer",
        &["/spec/type", "/spec/networkRef"],
    ),
    ("core.apinet.ironcore.dev", "Network", &["/spec/id"]),
    (
        "core.apinet.ironcore.dev",
        "IP",
        &["/spec/type", "/spec/ipFamily", "/spec/ip"],
    ),
    ("core.apinet.ironcore.dev", "IPAddress", &["/spec/ip"]),
    (
        "core.apinet.ironcore.dev",
        "NetworkInterface",
        &[
            "/spec/nodeRef",
            "/spec/networkRef",
            "/spec/ips",
            "/spec/hostname",
        ],
    ),
    ("core.apinet.ironcore.dev", "Instance", &["/spec/nodeRef"]),
    (
        "core.apinet.ironcore.dev",
        "LoadBalancer",
        &["/spec/type", "/spec/networkRef", "/spec/selector"],
    ),
    (
        "core.apinet.ironcore.dev",
        "NATGateway",
        &["/spec/ipFamily", "/spec/networkRef"],
    ),
];

/// A JSON pointer (`/spec/networkRef`) as a field path (`spec.networkRef`).
pub fn pointer_to_path(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    }
}

impl KindEntry {
    /// The once-set fields of this kind (JSON pointers).
    pub fn immutable_fields(&self) -> &'static [&'static str] {
        IMMUTABLE
            .iter()
            .find(|(g, k, _)| *g == self.info.group && *k == self.info.kind)
            .map_or(&[], |(_, _, f)| f)
    }

    /// The first once-set field that `new` changes or clears relative to
    /// `stored` (setting an unset field is allowed).
    pub fn immutable_violation(&self, stored: &Value, new: &Value) -> Option<&'static str> {
        self.immutable_fields().iter().copied().find(|f| {
            let old = stored.pointer(f);
            !is_unset(old) && old != new.pointer(f)
        })
    }
}

/// The kind `kind` of `api_version`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static KindEntry> {
    KINDS
        .iter()
        .find(|e| e.info.kind == kind && e.info.api_version() == api_version)
}

/// The kind with REST path `group/version/plural`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static KindEntry> {
    KINDS
        .iter()
        .find(|e| e.info.group == group && e.info.version == version && e.info.plural == plural)
}

/// Kinds whose name, plural or `kind.group` is `name` (case-insensitive),
/// for the CLI (`ironnetctl get networks`).
pub fn lookup(name: &str) -> Vec<&'static KindEntry> {
    let n = name.to_ascii_lowercase();
    let (base, group) = match n.split_once('.') {
        Some((b, g)) => (b.to_owned(), Some(g.to_owned())),
        None => (n.clone(), None),
    };
    KINDS
        .iter()
        .filter(|e| {
            let k = e.info.kind.to_ascii_lowercase();
            (k == base || e.info.plural == base || format!("{k}s") == base)
                && group.as_deref().is_none_or(|g| e.info.group.starts_with(g))
        })
        .collect()
}

/// An object of some kind as JSON, checked against its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct DynObject {
    /// Its kind.
    pub kind: &'static KindEntry,
    /// The object (apiVersion, kind, metadata, …).
    pub value: Value,
}

impl PartialEq for KindEntry {
    fn eq(&self, other: &Self) -> bool {
        self.info == other.info
    }
}

impl DynObject {
    /// Checks `value` against the kind its apiVersion and kind name, with
    /// defaults filled in; a namespaced object without a namespace gets
    /// `default_namespace`.
    pub fn from_value(mut value: Value, default_namespace: &str) -> Result<DynObject, ObjectError> {
        let (Some(api_version), Some(kind)) = (
            value.get("apiVersion").and_then(Value::as_str),
            value.get("kind").and_then(Value::as_str),
        ) else {
            return Err(ObjectError::MissingKind);
        };
        let entry = by_kind(api_version, kind).ok_or_else(|| ObjectError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })?;
        if entry.info.namespaced
            && let Some(obj) = value.as_object_mut()
        {
            let meta = obj
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(m) = meta.as_object_mut()
                && m.get("namespace")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
            {
                m.insert(
                    "namespace".into(),
                    Value::String(default_namespace.to_owned()),
                );
            }
        }
        let value = entry.check(value)?;
        Ok(DynObject { kind: entry, value })
    }

    /// The metadata.
    pub fn meta(&self) -> ObjectMeta {
        self.value
            .get("metadata")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default()
    }

    /// Replaces the metadata.
    pub fn set_meta(&mut self, meta: &ObjectMeta) {
        if let (Some(obj), Ok(m)) = (self.value.as_object_mut(), serde_json::to_value(meta)) {
            obj.insert("metadata".into(), m);
        }
    }

    /// The typed object.
    pub fn to_typed<T: Resource>(&self) -> Result<T, ObjectError> {
        serde_path_to_error::deserialize(self.value.clone()).map_err(|e| ObjectError::Field {
            kind: T::INFO.kind.to_owned(),
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }

    /// The dynamic form of a typed object (checked).
    pub fn from_typed<T: Resource>(obj: &T) -> Result<DynObject, ObjectError> {
        let mut value =
            serde_json::to_value(obj).map_err(|e| ObjectError::Syntax(e.to_string()))?;
        if let Some(o) = value.as_object_mut() {
            o.insert("apiVersion".into(), Value::String(T::INFO.api_version()));
            o.insert("kind".into(), Value::String(T::INFO.kind.to_owned()));
        }
        DynObject::from_value(value, "default")
    }
}

//! What every kind shares: its identity ([`KindInfo`]) and the
//! [`Resource`] trait that typed objects implement.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::meta::ObjectMeta;
use crate::validation::{FieldErrors, FieldPath};

/// The identity of a kind: group, version, kind, plural and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KindInfo {
    /// API group (`networking.ironcore.dev`).
    pub group: &'static str,
    /// Version (`v1alpha1`).
    pub version: &'static str,
    /// Kind (`Network`).
    pub kind: &'static str,
    /// Lower-case plural used in REST paths (`networks`).
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the kind has a `status` written through `/status`.
    pub has_status: bool,
}

impl KindInfo {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// A typed object of one kind.
pub trait Resource:
    Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The kind's identity.
    const INFO: KindInfo;

    /// Metadata.
    fn meta(&self) -> &ObjectMeta;

    /// Metadata, writable.
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// Fills defaults (protocol TCP, portsPerNetworkInterface 2048 …).
    fn apply_defaults(&mut self) {}

    /// Checks everything but metadata, adding to `errs`.
    fn validate_fields(&self, _errs: &mut FieldErrors) {}

    /// Checks metadata and fields.
    fn validate(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        self.meta().validate(
            &mut errs,
            &FieldPath::root("metadata"),
            Self::INFO.namespaced,
        );
        self.validate_fields(&mut errs);
        errs.into_result()
    }
}

/// Defines an object kind with `spec` and `status`.
macro_rules! spec_status_kind {
    ($(#[$doc:meta])* $name:ident, $info:expr, $spec:ty, $status:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// `group/version`.
            #[serde(default)]
            pub api_version: String,
            /// The kind.
            #[serde(default)]
            pub kind: String,
            /// Metadata.
            #[serde(default)]
            pub metadata: $crate::meta::ObjectMeta,
            /// Desired state.
            #[serde(default)]
            pub spec: $spec,
            /// Observed state.
            #[serde(default, skip_serializing_if = "crate::object::is_default")]
            pub status: $status,
        }

        impl $name {
            /// An object named `name` in `namespace` with `spec`.
            pub fn new(namespace: &str, name: &str, spec: $spec) -> Self {
                let info: $crate::object::KindInfo = $info;
                $name {
                    api_version: info.api_version(),
                    kind: info.kind.to_owned(),
                    metadata: $crate::meta::ObjectMeta {
                        name: name.to_owned(),
                        namespace: namespace.to_owned(),
                        ..Default::default()
                    },
                    spec,
                    status: Default::default(),
                }
            }
        }
    };
}
pub(crate) use spec_status_kind;

/// `skip_serializing_if` helper.
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Implements [`Resource`]'s metadata accessors.
macro_rules! resource_meta {
    () => {
        fn meta(&self) -> &$crate::meta::ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut $crate::meta::ObjectMeta {
            &mut self.metadata
        }
    };
}
pub(crate) use resource_meta;

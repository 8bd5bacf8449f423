//! `compute.ironcore.dev/v1alpha1`: the part of a `Machine` the network
//! controller reads (its pool and its network interfaces). Every other
//! field of a Machine is kept as it is, unchecked.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::LocalObjectReference;
use super::networking::{NetworkInterfaceSpec, TemplateMeta};
use crate::object::{KindInfo, Resource, resource_meta, spec_status_kind};
use crate::validation::{FieldErrors, FieldPath, is_dns_label};

/// The group.
pub const GROUP: &str = "compute.ironcore.dev";

/// A network interface of a machine: a reference to a NetworkInterface,
/// or a template for one the machine owns (ephemeral).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MachineNetworkInterface {
    /// Name, unique in the machine.
    #[serde(default)]
    pub name: String,
    /// An existing NetworkInterface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_ref: Option<LocalObjectReference>,
    /// A NetworkInterface created and deleted with the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EphemeralNetworkInterface>,
}

/// `ephemeral` of a machine's network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EphemeralNetworkInterface {
    /// What to create.
    #[serde(default)]
    pub network_interface_template: NetworkInterfaceTemplate,
}

/// Metadata and spec of an ephemeral NetworkInterface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterfaceTemplate {
    /// Labels and annotations.
    #[serde(default)]
    pub metadata: TemplateMeta,
    /// The spec.
    #[serde(default)]
    pub spec: NetworkInterfaceSpec,
}

/// `Machine.spec`: the network part, the rest kept as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    /// The pool (hypervisor) the machine runs on; its interfaces go to the
    /// Node of that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_pool_ref: Option<LocalObjectReference>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<MachineNetworkInterface>,
    /// Every other field (image, volumes, class …), unchecked.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `Machine.status`, kept as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineStatus {
    /// Every field, unchecked.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

spec_status_kind!(
    /// A machine; the network controller reads its network interfaces.
    Machine,
    Machine::INFO,
    MachineSpec,
    MachineStatus
);

impl Resource for Machine {
    const INFO: KindInfo = KindInfo {
        group: GROUP,
        version: "v1alpha1",
        kind: "Machine",
        plural: "machines",
        namespaced: true,
        has_status: true,
    };
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let path = FieldPath::root("spec").child("networkInterfaces");
        for (i, nic) in self.spec.network_interfaces.iter().enumerate() {
            let p = path.index(i);
            errs.check(
                is_dns_label(&nic.name),
                &p.child("name"),
                "must be a DNS-1123 label",
            );
            if self.spec.network_interfaces[..i]
                .iter()
                .any(|o| o.name == nic.name)
            {
                errs.add(&p.child("name"), format!("duplicate {:?}", nic.name));
            }
            match (&nic.network_interface_ref, &nic.ephemeral) {
                (Some(r), None) => r.validate(errs, &p.child("networkInterfaceRef")),
                (None, Some(_)) => {}
                _ => errs.add(&p, "exactly one of networkInterfaceRef and ephemeral"),
            }
        }
    }
}

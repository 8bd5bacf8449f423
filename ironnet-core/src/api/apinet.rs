//! `core.apinet.ironcore.dev/v1alpha1`: the internal objects of the
//! controller and the agents. NetworkID, IPAddress and Node are
//! cluster-scoped; the rest namespaced.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::common::{
    IpBlock, IpFamily, LoadBalancerPort, LocalObjectReference, LocalUidReference, validate_lb_ports,
};
use super::networking::{LoadBalancerType, NetworkPolicySpec, PublicType};
use crate::meta::{LabelSelector, Labels};
use crate::object::{KindInfo, Resource, resource_meta, spec_status_kind};
use crate::validation::{FieldErrors, FieldPath};

/// The group.
pub const GROUP: &str = "core.apinet.ironcore.dev";

/// Lowest VNI the controller allocates by default.
pub const MIN_VNI: i64 = 200;
/// Highest VNI (24 bits).
pub const MAX_VNI: i64 = 16_777_215;

const fn info(
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    has_status: bool,
) -> KindInfo {
    KindInfo {
        group: GROUP,
        version: "v1alpha1",
        kind,
        plural,
        namespaced,
        has_status,
    }
}

/// What a claim reference points at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRef {
    /// API group of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Plural of the claimer's kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Namespace of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Uid of the claimer.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// Nothing (kinds without a spec or status of their own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// An address with a name and an optional family (defaulted from `ip`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedFamilyIp {
    /// Name, unique in the list.
    #[serde(default)]
    pub name: String,
    /// Family; the family of `ip` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,
    /// The address; allocated when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

fn default_named_ips(ips: &mut [NamedFamilyIp]) {
    for ip in ips {
        if ip.ip_family.is_none() {
            ip.ip_family = ip.ip.map(IpFamily::of);
        }
    }
}

fn validate_named_ips(ips: &[NamedFamilyIp], errs: &mut FieldErrors, path: &FieldPath) {
    for (i, ip) in ips.iter().enumerate() {
        let p = path.index(i);
        errs.check(!ip.name.is_empty(), &p.child("name"), "required");
        if ips[..i].iter().any(|o| o.name == ip.name) {
            errs.add(&p.child("name"), format!("duplicate {:?}", ip.name));
        }
        match (ip.ip_family, ip.ip) {
            (None, _) => errs.add(&p.child("ipFamily"), "required when ip is not given"),
            (Some(f), Some(a)) if IpFamily::of(a) != f => {
                errs.add(&p.child("ip"), format!("{a} is not of family {f:?}"))
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- IP

/// `IP.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpSpec {
    /// Always `Public`.
    #[serde(rename = "type")]
    pub ty: Option<PublicType>,
    /// Family; the family of `ip` when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,
    /// The address; allocated from the public pool when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ref: Option<ClaimRef>,
}

spec_status_kind!(
    /// A public address.
    IP,
    IP::INFO,
    IpSpec,
    Empty
);

impl Resource for IP {
    const INFO: KindInfo = info("IP", "ips", true, false);
    resource_meta!();

    fn apply_defaults(&mut self) {
        if self.spec.ip_family.is_none() {
            self.spec.ip_family = self.spec.ip.map(IpFamily::of);
        }
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        errs.check(
            self.spec.ty.is_some(),
            &spec.child("type"),
            "required (Public)",
        );
        match (self.spec.ip_family, self.spec.ip) {
            (None, _) => errs.add(&spec.child("ipFamily"), "must specify IP family"),
            (Some(f), Some(a)) if IpFamily::of(a) != f => {
                errs.add(&spec.child("ip"), format!("{a} is not of family {f:?}"))
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- IPAddress

/// `IPAddress.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpAddressSpec {
    /// The address (also the object's name).
    pub ip: Option<IpAddr>,
    /// The IP that holds it.
    #[serde(default)]
    pub claim_ref: ClaimRef,
}

spec_status_kind!(
    /// The reservation of one address (exists = taken).
    IPAddress,
    IPAddress::INFO,
    IpAddressSpec,
    Empty
);

impl Resource for IPAddress {
    const INFO: KindInfo = info("IPAddress", "ipaddresses", false, false);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        match self.spec.ip {
            None => errs.add(&FieldPath::root("spec").child("ip"), "required"),
            Some(ip) => errs.check(
                ip.to_string() == self.metadata.name.replace('-', ":")
                    || ip.to_string() == self.metadata.name,
                &FieldPath::root("metadata").child("name"),
                format!("must be the address in canonical form ({ip})"),
            ),
        }
    }
}

// ---------------------------------------------------------------- Network

/// A peering of an internal network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalPeering {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// The peer's VNI.
    #[serde(default)]
    pub id: String,
    /// Imported prefixes; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<InternalPeeringPrefix>,
}

/// A named prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalPeeringPrefix {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Prefix.
    pub prefix: IpNet,
}

/// `Network.spec` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalNetworkSpec {
    /// The VNI as a decimal string; allocated when empty, then fixed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Peerings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<InternalPeering>,
}

/// Peering state reported by a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeeringState {
    /// The peer's VNI.
    pub id: i64,
    /// `Pending`, `Ready` or `Error`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
}

/// `Network.status` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalNetworkStatus {
    /// Per partition.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub peerings: std::collections::BTreeMap<String, Vec<PeeringState>>,
}

spec_status_kind!(
    /// An internal network with its VNI.
    Network,
    Network::INFO,
    InternalNetworkSpec,
    InternalNetworkStatus
);

/// Checks a VNI string.
pub fn check_vni(errs: &mut FieldErrors, path: &FieldPath, id: &str) {
    match id.parse::<i64>() {
        Ok(v) if (MIN_VNI..=MAX_VNI).contains(&v) && v.to_string() == id => {}
        _ => errs.add(
            path,
            format!("{id:?} is not a decimal VNI between {MIN_VNI} and {MAX_VNI}"),
        ),
    }
}

impl Resource for Network {
    const INFO: KindInfo = info("Network", "networks", true, true);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        if !self.spec.id.is_empty() {
            check_vni(errs, &spec.child("id"), &self.spec.id);
        }
        for (i, p) in self.spec.peerings.iter().enumerate() {
            let pp = spec.child("peerings").index(i);
            errs.check(!p.name.is_empty(), &pp.child("name"), "required");
            check_vni(errs, &pp.child("id"), &p.id);
        }
    }
}

// ---------------------------------------------------------------- NetworkID

/// `NetworkID.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkIdSpec {
    /// The Network holding the VNI.
    #[serde(default)]
    pub claim_ref: ClaimRef,
}

spec_status_kind!(
    /// The reservation of one VNI (the name), exists = taken.
    NetworkID,
    NetworkID::INFO,
    NetworkIdSpec,
    Empty
);

impl Resource for NetworkID {
    const INFO: KindInfo = info("NetworkID", "networkids", false, false);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        check_vni(
            errs,
            &FieldPath::root("metadata").child("name"),
            &self.metadata.name,
        );
    }
}

// ---------------------------------------------------------------- NetworkInterface

/// A NAT gateway serving a family of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NicNatGateway {
    /// Family.
    pub ip_family: IpFamily,
    /// The NATGateway.
    pub claim_ref: LocalUidReference,
}

/// `NetworkInterface.spec` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalNicSpec {
    /// The node (hypervisor) it lives on.
    #[serde(default)]
    pub node_ref: LocalObjectReference,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Internal addresses, at most one per family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// Routed prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IpNet>,
    /// NAT gateways (set by the NAT controller).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nat_gateways: Vec<NicNatGateway>,
    /// Hostname for DHCP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    /// Public addresses.
    #[serde(default, rename = "publicIPs", skip_serializing_if = "Vec::is_empty")]
    pub public_ips: Vec<NamedFamilyIp>,
}

/// `Pending`, `Ready` or `Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum NicState {
    /// Not yet on its node.
    #[default]
    Pending,
    /// Programmed.
    Ready,
    /// Failed.
    Error,
}

/// A PCI address, all parts as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PciAddress {
    /// Domain (`0000`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Bus (`06`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bus: String,
    /// Slot (`00`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slot: String,
    /// Function (`3`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function: String,
}

/// A TAP device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TapDevice {
    /// Its name.
    pub name: String,
}

/// `NetworkInterface.status` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalNicStatus {
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NicState>,
    /// Where the guest finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PciAddress>,
    /// Or as a TAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap_device: Option<TapDevice>,
    /// Prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IpNet>,
    /// Public addresses.
    #[serde(default, rename = "publicIPs", skip_serializing_if = "Vec::is_empty")]
    pub public_ips: Vec<IpAddr>,
    /// NAT addresses.
    #[serde(default, rename = "natIPs", skip_serializing_if = "Vec::is_empty")]
    pub nat_ips: Vec<IpAddr>,
}

spec_status_kind!(
    /// An interface scheduled to a node.
    NetworkInterface,
    NetworkInterface::INFO,
    InternalNicSpec,
    InternalNicStatus
);

impl Resource for NetworkInterface {
    const INFO: KindInfo = info("NetworkInterface", "networkinterfaces", true, true);
    resource_meta!();

    fn apply_defaults(&mut self) {
        default_named_ips(&mut self.spec.public_ips);
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        let s = &self.spec;
        s.node_ref.validate(errs, &spec.child("nodeRef"));
        s.network_ref.validate(errs, &spec.child("networkRef"));
        for (i, ip) in s.ips.iter().enumerate() {
            if s.ips[..i]
                .iter()
                .any(|o| IpFamily::of(*o) == IpFamily::of(*ip))
            {
                errs.add(
                    &spec.child("ips").index(i),
                    "at most one address per family",
                );
            }
        }
        validate_named_ips(&s.public_ips, errs, &spec.child("publicIPs"));
        for (i, n) in s.nat_gateways.iter().enumerate() {
            let p = spec.child("natGateways").index(i);
            if s.public_ips
                .iter()
                .any(|ip| ip.ip_family == Some(n.ip_family))
            {
                errs.add(
                    &p,
                    format!("the interface has a public {:?} address", n.ip_family),
                );
            }
            n.claim_ref.validate(errs, &p.child("claimRef"));
        }
    }
}

// ---------------------------------------------------------------- Instance

/// `LoadBalancer` (the only instance type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InstanceType {
    /// A load-balancer instance.
    #[default]
    LoadBalancer,
}

/// A node selector requirement (`In`, `NotIn`, `Exists`, `DoesNotExist`,
/// `Gt`, `Lt`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorRequirement {
    /// Label key (or field name).
    pub key: String,
    /// Operator.
    pub operator: String,
    /// Values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// One ORed term.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelectorTerm {
    /// On labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
    /// On fields (`metadata.name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_fields: Vec<NodeSelectorRequirement>,
}

/// Terms, any of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    /// The terms.
    #[serde(default)]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// Node affinity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    /// Hard requirement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

/// One anti-affinity term.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceAffinityTerm {
    /// Instances to stay away from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Node label defining the domain.
    #[serde(default)]
    pub topology_key: String,
}

/// Instance anti-affinity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceAntiAffinity {
    /// Hard requirement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_during_scheduling_ignored_during_execution: Vec<InstanceAffinityTerm>,
}

/// Scheduling constraints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Affinity {
    /// Node affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<NodeAffinity>,
    /// Instance anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_anti_affinity: Option<InstanceAntiAffinity>,
}

/// `Instance.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceSpec {
    /// `LoadBalancer`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<InstanceType>,
    /// Public or Internal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_type: Option<LoadBalancerType>,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Addresses served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// Ports served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_ports: Vec<LoadBalancerPort>,
    /// Scheduling constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Spread constraints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<serde_json::Value>,
    /// The node; set by the scheduler, then fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ref: Option<LocalObjectReference>,
}

impl InstanceSpec {
    fn validate(&self, errs: &mut FieldErrors, spec: &FieldPath, template: bool) {
        errs.check(
            self.ty.is_some(),
            &spec.child("type"),
            "required (LoadBalancer)",
        );
        errs.check(
            self.load_balancer_type.is_some(),
            &spec.child("loadBalancerType"),
            "required for type LoadBalancer",
        );
        if !template || !self.network_ref.name.is_empty() {
            self.network_ref.validate(errs, &spec.child("networkRef"));
        }
        validate_lb_ports(
            &self.load_balancer_ports,
            errs,
            &spec.child("loadBalancerPorts"),
        );
        if let Some(terms) = self
            .affinity
            .as_ref()
            .and_then(|a| a.instance_anti_affinity.as_ref())
        {
            for (i, t) in terms
                .required_during_scheduling_ignored_during_execution
                .iter()
                .enumerate()
            {
                errs.check(
                    !t.topology_key.is_empty(),
                    &spec
                        .child("affinity")
                        .child("instanceAntiAffinity")
                        .child("requiredDuringSchedulingIgnoredDuringExecution")
                        .index(i)
                        .child("topologyKey"),
                    "required",
                );
            }
        }
    }
}

/// `Instance.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceStatus {
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// Name collisions seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

spec_status_kind!(
    /// A load-balancer instance on a node.
    Instance,
    Instance::INFO,
    InstanceSpec,
    InstanceStatus
);

impl Resource for Instance {
    const INFO: KindInfo = info("Instance", "instances", true, true);
    resource_meta!();

    fn apply_defaults(&mut self) {
        self.spec
            .load_balancer_ports
            .iter_mut()
            .for_each(LoadBalancerPort::apply_defaults);
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        self.spec.validate(errs, &FieldPath::root("spec"), false);
    }
}

// ---------------------------------------------------------------- DaemonSet

/// Metadata and spec of instances to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceTemplate {
    /// Labels and annotations.
    #[serde(default)]
    pub metadata: super::networking::TemplateMeta,
    /// The spec.
    #[serde(default)]
    pub spec: InstanceSpec,
}

/// `DaemonSet.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetSpec {
    /// Selects its instances (JSON name kept from upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// The instances.
    #[serde(default)]
    pub template: InstanceTemplate,
}

/// `DaemonSet.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetStatus {
    /// Name collisions seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

spec_status_kind!(
    /// One instance per eligible node.
    DaemonSet,
    DaemonSet::INFO,
    DaemonSetSpec,
    DaemonSetStatus
);

impl Resource for DaemonSet {
    const INFO: KindInfo = info("DaemonSet", "daemonsets", true, true);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        if let Some(s) = &self.spec.node_selector {
            s.validate(errs, &FieldPath::root("spec").child("nodeSelector"));
        }
        self.spec.template.spec.validate(
            errs,
            &FieldPath::root("spec").child("template").child("spec"),
            true,
        );
    }
}

// ---------------------------------------------------------------- LoadBalancer

/// `LoadBalancer.spec` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalLbSpec {
    /// Public or Internal.
    #[serde(rename = "type")]
    pub ty: Option<LoadBalancerType>,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NamedFamilyIp>,
    /// Ports; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<LoadBalancerPort>,
    /// Its instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Instance template.
    #[serde(default)]
    pub template: InstanceTemplate,
}

spec_status_kind!(
    /// An internal load balancer (its instances come from a DaemonSet).
    LoadBalancer,
    LoadBalancer::INFO,
    InternalLbSpec,
    DaemonSetStatus
);

impl Resource for LoadBalancer {
    const INFO: KindInfo = info("LoadBalancer", "loadbalancers", true, true);
    resource_meta!();

    fn apply_defaults(&mut self) {
        default_named_ips(&mut self.spec.ips);
        self.spec
            .ports
            .iter_mut()
            .for_each(LoadBalancerPort::apply_defaults);
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        errs.check(
            self.spec.ty.is_some(),
            &spec.child("type"),
            "required (Public or Internal)",
        );
        self.spec
            .network_ref
            .validate(errs, &spec.child("networkRef"));
        validate_named_ips(&self.spec.ips, errs, &spec.child("ips"));
        validate_lb_ports(&self.spec.ports, errs, &spec.child("ports"));
        if let Some(sel) = &self.spec.selector {
            sel.validate(errs, &spec.child("selector"));
            errs.check(
                sel.matches(&self.spec.template.metadata.labels),
                &spec.child("template").child("metadata").child("labels"),
                "must match spec.selector",
            );
        }
    }
}

// ---------------------------------------------------------------- LoadBalancerRouting

/// `{uid, name, nodeRef}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTargetRef {
    /// Uid.
    #[serde(default)]
    pub uid: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Node.
    #[serde(default)]
    pub node_ref: LocalObjectReference,
}

/// A routing destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingDestination {
    /// The target's address.
    pub ip: IpAddr,
    /// The target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<NodeTargetRef>,
}

/// Where an internal load balancer's traffic goes (fields at the top
/// level).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerRouting {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: crate::meta::ObjectMeta,
    /// Destinations.
    #[serde(default)]
    pub destinations: Vec<RoutingDestination>,
}

impl Resource for LoadBalancerRouting {
    const INFO: KindInfo = info("LoadBalancerRouting", "loadbalancerroutings", true, false);
    resource_meta!();
}

// ---------------------------------------------------------------- NATGateway

/// A named address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatGatewayIp {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Address; allocated when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

/// `NATGateway.spec` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalNatGatewaySpec {
    /// Family.
    #[serde(default)]
    pub ip_family: Option<IpFamily>,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// NAT addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NatGatewayIp>,
    /// Ports per interface (> 0, at most 64512).
    #[serde(default)]
    pub ports_per_network_interface: i32,
}

/// `NATGateway.status` (internal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalNatGatewayStatus {
    /// Port sections in use.
    #[serde(
        default,
        rename = "usedNATIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub used_nat_ips: Option<i64>,
    /// Interfaces asking for one.
    #[serde(
        default,
        rename = "requestedNATIPs",
        skip_serializing_if = "Option::is_none"
    )]
    pub requested_nat_ips: Option<i64>,
}

spec_status_kind!(
    /// An internal NAT gateway.
    NATGateway,
    NATGateway::INFO,
    InternalNatGatewaySpec,
    InternalNatGatewayStatus
);

impl Resource for NATGateway {
    const INFO: KindInfo = info("NATGateway", "natgateways", true, true);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        let s = &self.spec;
        errs.check(s.ip_family.is_some(), &spec.child("ipFamily"), "required");
        s.network_ref.validate(errs, &spec.child("networkRef"));
        errs.check(
            (1..=64512).contains(&s.ports_per_network_interface),
            &spec.child("portsPerNetworkInterface"),
            "must be between 1 and 64512",
        );
        for (i, ip) in s.ips.iter().enumerate() {
            let p = spec.child("ips").index(i);
            errs.check(!ip.name.is_empty(), &p.child("name"), "required");
            if let (Some(a), Some(f)) = (ip.ip, s.ip_family) {
                errs.check(
                    IpFamily::of(a) == f,
                    &p.child("ip"),
                    format!("{a} is not {f:?}"),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- NATTable

/// One interface's port section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatSection {
    /// The interface's internal address.
    pub ip: IpAddr,
    /// First port.
    pub port: i32,
    /// Last port (inclusive).
    pub end_port: i32,
    /// The interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<NodeTargetRef>,
}

/// The sections of one NAT address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatTableIp {
    /// The NAT address.
    pub ip: IpAddr,
    /// Sections, by port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<NatSection>,
}

/// A NAT gateway's port table (fields at the top level).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NATTable {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: crate::meta::ObjectMeta,
    /// Addresses, by address.
    #[serde(default)]
    pub ips: Vec<NatTableIp>,
}

impl Resource for NATTable {
    const INFO: KindInfo = info("NATTable", "nattables", true, false);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        for (i, ip) in self.ips.iter().enumerate() {
            for (j, s) in ip.sections.iter().enumerate() {
                errs.check(
                    (1..=65535).contains(&s.port) && (s.port..=65535).contains(&s.end_port),
                    &FieldPath::root("ips").index(i).child("sections").index(j),
                    "ports must satisfy 1 <= port <= endPort <= 65535",
                );
            }
        }
    }
}

// ---------------------------------------------------------------- Node

spec_status_kind!(
    /// A hypervisor (`<partition>.<node>`).
    Node,
    Node::INFO,
    Empty,
    Empty
);

impl Resource for Node {
    const INFO: KindInfo = info("Node", "nodes", false, true);
    resource_meta!();
}

// ---------------------------------------------------------------- NetworkPolicy

/// An internal network policy (spec only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: crate::meta::ObjectMeta,
    /// Spec.
    #[serde(default)]
    pub spec: NetworkPolicySpec,
}

impl Resource for NetworkPolicy {
    const INFO: KindInfo = info("NetworkPolicy", "networkpolicies", true, false);
    resource_meta!();

    fn apply_defaults(&mut self) {
        self.spec.apply_defaults();
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        self.spec.validate(errs, true);
    }
}

// ---------------------------------------------------------------- NetworkPolicyRule

/// A compiled rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompiledRule {
    /// Address blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_block: Vec<IpBlock>,
    /// Addresses of selected objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<ObjectIp>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_policy_ports: Vec<super::common::NetworkPolicyPort>,
}

/// An address of a selected object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectIp {
    /// Family (from the prefix when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IpFamily>,
    /// The prefix.
    pub prefix: IpNet,
}

/// A target interface of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTarget {
    /// Its address.
    pub ip: IpAddr,
    /// The interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalUidReference>,
}

/// A policy compiled for its targets (fields at the top level).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyRule {
    /// `group/version`.
    #[serde(default)]
    pub api_version: String,
    /// The kind.
    #[serde(default)]
    pub kind: String,
    /// Metadata.
    #[serde(default)]
    pub metadata: crate::meta::ObjectMeta,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalUidReference,
    /// Interfaces it applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<RuleTarget>,
    /// Order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_rule: Vec<CompiledRule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress_rule: Vec<CompiledRule>,
}

impl Resource for NetworkPolicyRule {
    const INFO: KindInfo = info("NetworkPolicyRule", "networkpolicyrules", true, false);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        self.network_ref
            .validate(errs, &FieldPath::root("networkRef"));
    }
}

/// Labels a controller puts on IP objects.
pub fn ip_labels(ip: IpAddr) -> Labels {
    let mut l = Labels::new();
    l.insert(
        "apinet.ironcore.dev/ip-family".into(),
        format!("{:?}", IpFamily::of(ip)),
    );
    l.insert(
        "apinet.ironcore.dev/ip".into(),
        ip.to_string().replace(':', "-"),
    );
    l
}

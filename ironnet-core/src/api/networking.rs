//! `networking.ironcore.dev/v1alpha1`: the user-facing objects (all
//! namespaced).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::common::{
    IpFamily, LoadBalancerPort, LocalObjectReference, LocalUidReference, NetworkPolicyPeer,
    NetworkPolicyPort, PolicyType, validate_families, validate_lb_ports,
};
use crate::meta::{LabelSelector, Labels};
use crate::object::{KindInfo, Resource, resource_meta, spec_status_kind};
use crate::validation::{FieldErrors, FieldPath, check_name, is_dns_label};

/// The group.
pub const GROUP: &str = "networking.ironcore.dev";

const fn info(kind: &'static str, plural: &'static str, has_status: bool) -> KindInfo {
    KindInfo {
        group: GROUP,
        version: "v1alpha1",
        kind,
        plural,
        namespaced: true,
        has_status,
    }
}

/// Default of `NATGateway.spec.portsPerNetworkInterface`.
pub const DEFAULT_PORTS_PER_NETWORK_INTERFACE: i32 = 2048;

/// Object states reported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum State {
    /// Not (yet) realised.
    #[default]
    Pending,
    /// Realised.
    Available,
    /// Failed.
    Error,
}

/// The only supported public type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PublicType {
    /// A public address.
    #[default]
    Public,
}

// ---------------------------------------------------------------- Network

/// A peering of a network with another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPeering {
    /// Name, unique within the list.
    #[serde(default)]
    pub name: String,
    /// The other network (`namespace` empty: this one's).
    #[serde(default)]
    pub network_ref: PeeringNetworkRef,
    /// Prefixes of the other network to import; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PeeringPrefix>,
}

/// The network a peering points at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeeringNetworkRef {
    /// Namespace; empty means the peering network's own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
}

/// A prefix filter of a peering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeeringPrefix {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// A literal prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<IpNet>,
    /// An ipam Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_ref: Option<LocalObjectReference>,
}

/// A network that claims a peering with this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeeringClaimRef {
    /// Namespace (empty: this one's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// `Network.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// `ironcore-net://<namespace>/<name>/<id>/<uid>`, set by the provider.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider_id: String,
    /// Peerings this network asks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<NetworkPeering>,
    /// Networks that claim a peering with this one (written by the
    /// controller).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incoming_peerings: Vec<PeeringClaimRef>,
}

/// Phase of a peering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PeeringPhase {
    /// The other side does not (yet) name this network.
    #[default]
    Pending,
    /// Both sides name each other.
    Bound,
}

/// Status of one peering.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPeeringStatus {
    /// The peering's name.
    pub name: String,
    /// Its phase.
    #[serde(default)]
    pub phase: PeeringPhase,
}

/// `Network.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkStatus {
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// One entry per `spec.peerings` item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peerings: Vec<NetworkPeeringStatus>,
}

spec_status_kind!(
    /// An isolated L3 network.
    Network,
    Network::INFO,
    NetworkSpec,
    NetworkStatus
);

impl Resource for Network {
    const INFO: KindInfo = info("Network", "networks", true);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let path = FieldPath::root("spec").child("peerings");
        for (i, p) in self.spec.peerings.iter().enumerate() {
            let pp = path.index(i);
            errs.check(
                is_dns_label(&p.name),
                &pp.child("name"),
                "must be a DNS-1123 label",
            );
            if self.spec.peerings[..i].iter().any(|q| q.name == p.name) {
                errs.add(&pp.child("name"), format!("duplicate peering {:?}", p.name));
            }
            check_name(
                errs,
                &pp.child("networkRef").child("name"),
                &p.network_ref.name,
            );
            let same_ns = p.network_ref.namespace.is_empty()
                || p.network_ref.namespace == self.metadata.namespace;
            if same_ns && p.network_ref.name == self.metadata.name {
                errs.add(&pp.child("networkRef"), "cannot peer a network with itself");
            }
            if self.spec.peerings[..i]
                .iter()
                .any(|q| q.network_ref == p.network_ref)
            {
                errs.add(
                    &pp.child("networkRef"),
                    "another peering names the same network",
                );
            }
            for (j, x) in p.prefixes.iter().enumerate() {
                let xp = pp.child("prefixes").index(j);
                errs.check(!x.name.is_empty(), &xp.child("name"), "required");
                errs.check(
                    x.prefix.is_some() != x.prefix_ref.is_some(),
                    &xp,
                    "exactly one of prefix and prefixRef",
                );
            }
        }
    }
}

// ---------------------------------------------------------------- NetworkInterface

/// An IP given literally or allocated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpSource {
    /// A literal address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<IpAddr>,
    /// An address allocated from an ipam prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<serde_json::Value>,
}

/// A prefix given literally or allocated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixSource {
    /// A literal prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<IpNet>,
    /// A prefix allocated from an ipam prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<serde_json::Value>,
}

/// Where a NIC's virtual IP comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIpSource {
    /// An existing VirtualIP.
    #[serde(
        default,
        rename = "virtualIPRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub virtual_ip_ref: Option<LocalObjectReference>,
    /// A VirtualIP created for and with the NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<EphemeralVirtualIp>,
}

/// A VirtualIP template.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EphemeralVirtualIp {
    /// The template.
    #[serde(default, rename = "virtualIPTemplate")]
    pub virtual_ip_template: VirtualIpTemplate,
}

/// Metadata and spec of an ephemeral VirtualIP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIpTemplate {
    /// Labels and annotations.
    #[serde(default)]
    pub metadata: TemplateMeta,
    /// The spec.
    #[serde(default)]
    pub spec: VirtualIpSpec,
}

/// Template metadata: labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMeta {
    /// Labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub annotations: Labels,
}

/// `NetworkInterface.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterfaceSpec {
    /// Set by the machine provider.
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub provider_id: String,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The machine using it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_ref: Option<LocalUidReference>,
    /// One family per entry of `ips`.
    #[serde(default)]
    pub ip_families: Vec<IpFamily>,
    /// Internal addresses.
    #[serde(default)]
    pub ips: Vec<IpSource>,
    /// Prefixes routed to the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<PrefixSource>,
    /// Public IPv4 address.
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<VirtualIpSource>,
    /// Free-form attributes.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub attributes: Labels,
}

/// `NetworkInterface.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterfaceStatus {
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// When `state` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state_transition_time: Option<String>,
    /// Internal addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// Prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IpNet>,
    /// The public IPv4 address.
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<IpAddr>,
}

spec_status_kind!(
    /// A machine's connection point to a network.
    NetworkInterface,
    NetworkInterface::INFO,
    NetworkInterfaceSpec,
    NetworkInterfaceStatus
);

impl Resource for NetworkInterface {
    const INFO: KindInfo = info("NetworkInterface", "networkinterfaces", true);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        let s = &self.spec;
        s.network_ref.validate(errs, &spec.child("networkRef"));
        validate_families(&s.ip_families, true, errs, &spec.child("ipFamilies"));
        errs.check(
            s.ip_families.len() == s.ips.len(),
            &spec.child("ips"),
            "one entry per ipFamilies entry required",
        );
        for (i, ip) in s.ips.iter().enumerate() {
            let p = spec.child("ips").index(i);
            match (&ip.value, &ip.ephemeral) {
                (Some(v), None) => {
                    if let Some(f) = s.ip_families.get(i) {
                        errs.check(
                            IpFamily::of(*v) == *f,
                            &p.child("value"),
                            format!("{v} is not of family {f:?} (ipFamilies[{i}])"),
                        );
                    }
                }
                (None, Some(_)) => {}
                (Some(_), Some(_)) => errs.add(&p, "value and ephemeral are exclusive"),
                (None, None) => errs.add(&p, "must specify value or ephemeral"),
            }
        }
        for (i, x) in s.prefixes.iter().enumerate() {
            errs.check(
                x.value.is_some() != x.ephemeral.is_some(),
                &spec.child("prefixes").index(i),
                "exactly one of value and ephemeral",
            );
        }
        if let Some(v) = &s.virtual_ip {
            let p = spec.child("virtualIP");
            match (&v.virtual_ip_ref, &v.ephemeral) {
                (Some(r), None) => r.validate(errs, &p.child("virtualIPRef")),
                (None, Some(e)) => {
                    validate_vip_spec(&e.virtual_ip_template.spec, errs, &p.child("ephemeral"))
                }
                (Some(_), Some(_)) => errs.add(&p, "cannot specify multiple sources"),
                (None, None) => errs.add(&p, "must specify a virtual ip source"),
            }
        }
    }
}

// ---------------------------------------------------------------- VirtualIP

/// `VirtualIP.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIpSpec {
    /// Always `Public`.
    #[serde(rename = "type")]
    pub ty: Option<PublicType>,
    /// IPv4 or IPv6.
    #[serde(default)]
    pub ip_family: Option<IpFamily>,
    /// What uses it (a NetworkInterface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LocalUidReference>,
}

fn validate_vip_spec(s: &VirtualIpSpec, errs: &mut FieldErrors, path: &FieldPath) {
    errs.check(s.ty.is_some(), &path.child("type"), "required (Public)");
    errs.check(s.ip_family.is_some(), &path.child("ipFamily"), "required");
}

/// `VirtualIP.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualIpStatus {
    /// The allocated address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

spec_status_kind!(
    /// A public address for a network interface.
    VirtualIP,
    VirtualIP::INFO,
    VirtualIpSpec,
    VirtualIpStatus
);

impl Resource for VirtualIP {
    const INFO: KindInfo = info("VirtualIP", "virtualips", true);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        validate_vip_spec(&self.spec, errs, &FieldPath::root("spec"));
    }
}

// ---------------------------------------------------------------- NATGateway

/// `NATGateway.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatGatewaySpec {
    /// Always `Public`.
    #[serde(rename = "type")]
    pub ty: Option<PublicType>,
    /// IPv4 or IPv6.
    #[serde(default)]
    pub ip_family: Option<IpFamily>,
    /// The network whose interfaces it serves.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// Ports per interface: a power of two up to 32768; 2048 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports_per_network_interface: Option<i32>,
}

/// An address of a NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamedIp {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Address.
    pub ip: IpAddr,
}

/// `NATGateway.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NatGatewayStatus {
    /// The gateway's public addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<NamedIp>,
}

spec_status_kind!(
    /// Source NAT for the interfaces of a network without a public IP.
    NATGateway,
    NATGateway::INFO,
    NatGatewaySpec,
    NatGatewayStatus
);

impl Resource for NATGateway {
    const INFO: KindInfo = info("NATGateway", "natgateways", true);
    resource_meta!();

    fn apply_defaults(&mut self) {
        self.spec
            .ports_per_network_interface
            .get_or_insert(DEFAULT_PORTS_PER_NETWORK_INTERFACE);
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        errs.check(
            self.spec.ty.is_some(),
            &spec.child("type"),
            "required (Public)",
        );
        errs.check(
            self.spec.ip_family.is_some(),
            &spec.child("ipFamily"),
            "required",
        );
        self.spec
            .network_ref
            .validate(errs, &spec.child("networkRef"));
        if let Some(p) = self.spec.ports_per_network_interface {
            errs.check(
                (1..=32768).contains(&p) && (p & (p - 1)) == 0,
                &spec.child("portsPerNetworkInterface"),
                format!("{p} is not a power of 2 between 1 and 32768"),
            );
        }
    }
}

// ---------------------------------------------------------------- LoadBalancer

/// `Public` or `Internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LoadBalancerType {
    /// Addresses from the public pool.
    #[default]
    Public,
    /// Addresses of the network.
    Internal,
}

/// `LoadBalancer.spec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// Public or Internal.
    #[serde(rename = "type")]
    pub ty: Option<LoadBalancerType>,
    /// Families to allocate.
    #[serde(default)]
    pub ip_families: Vec<IpFamily>,
    /// Addresses (Internal only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpSource>,
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The interfaces it balances over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_selector: Option<LabelSelector>,
    /// Ports; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<LoadBalancerPort>,
}

/// `LoadBalancer.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerStatus {
    /// Allocated addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
}

spec_status_kind!(
    /// A load balancer over the interfaces its selector picks.
    LoadBalancer,
    LoadBalancer::INFO,
    LoadBalancerSpec,
    LoadBalancerStatus
);

impl Resource for LoadBalancer {
    const INFO: KindInfo = info("LoadBalancer", "loadbalancers", true);
    resource_meta!();

    fn apply_defaults(&mut self) {
        for p in &mut self.spec.ports {
            p.apply_defaults();
        }
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        let spec = FieldPath::root("spec");
        let s = &self.spec;
        errs.check(
            s.ty.is_some(),
            &spec.child("type"),
            "required (Public or Internal)",
        );
        validate_families(&s.ip_families, true, errs, &spec.child("ipFamilies"));
        s.network_ref.validate(errs, &spec.child("networkRef"));
        if s.ty == Some(LoadBalancerType::Public) && !s.ips.is_empty() {
            errs.add(&spec.child("ips"), "only allowed for type Internal");
        }
        if let Some(sel) = &s.network_interface_selector {
            sel.validate(errs, &spec.child("networkInterfaceSelector"));
        }
        validate_lb_ports(&s.ports, errs, &spec.child("ports"));
    }
}

// ---------------------------------------------------------------- LoadBalancerRouting

/// A destination of a load balancer: the seeds' `{name, uid}` of a
/// NetworkInterface, or upstream's `{ip, targetRef}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerDestination {
    /// Interface name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Interface uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The target's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<LoadBalancerTargetRef>,
}

/// `{uid, name, providerID}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerTargetRef {
    /// Uid.
    #[serde(default)]
    pub uid: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Provider id.
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub provider_id: String,
}

/// Where a load balancer's traffic goes (named after its LoadBalancer;
/// fields at the top level).
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
    /// The network.
    #[serde(default)]
    pub network_ref: LocalUidReference,
    /// Destinations.
    #[serde(default)]
    pub destinations: Vec<LoadBalancerDestination>,
}

impl Resource for LoadBalancerRouting {
    const INFO: KindInfo = info("LoadBalancerRouting", "loadbalancerroutings", false);
    resource_meta!();

    fn validate_fields(&self, errs: &mut FieldErrors) {
        self.network_ref
            .validate(errs, &FieldPath::root("networkRef"));
        for (i, d) in self.destinations.iter().enumerate() {
            errs.check(
                !d.name.is_empty() || d.ip.is_some(),
                &FieldPath::root("destinations").index(i),
                "must name an interface (name, uid) or an address (ip)",
            );
        }
    }
}

// ---------------------------------------------------------------- NetworkPolicy

/// One ingress rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    /// Allowed sources; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<NetworkPolicyPeer>,
    /// Allowed ports; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
}

/// One egress rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    /// Allowed destinations; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NetworkPolicyPeer>,
    /// Allowed ports; none means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<NetworkPolicyPort>,
}

/// `NetworkPolicy.spec` (both groups; `priority` only in the internal one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// The network.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// The interfaces the policy applies to.
    #[serde(default)]
    pub network_interface_selector: LabelSelector,
    /// Order among policies (internal group): lower first, none last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Ingress and/or Egress.
    #[serde(default)]
    pub policy_types: Vec<PolicyType>,
    /// Ingress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
}

impl NetworkPolicySpec {
    /// Protocol defaults of every port.
    pub fn apply_defaults(&mut self) {
        for r in &mut self.ingress {
            r.ports
                .iter_mut()
                .for_each(NetworkPolicyPort::apply_defaults);
        }
        for r in &mut self.egress {
            r.ports
                .iter_mut()
                .for_each(NetworkPolicyPort::apply_defaults);
        }
    }

    /// Checks the spec under `spec`.
    pub fn validate(&self, errs: &mut FieldErrors, allow_priority: bool) {
        let spec = FieldPath::root("spec");
        self.network_ref.validate(errs, &spec.child("networkRef"));
        self.network_interface_selector
            .validate(errs, &spec.child("networkInterfaceSelector"));
        if !allow_priority && self.priority.is_some() {
            errs.add(&spec.child("priority"), "not a field of this group");
        }
        errs.check(
            !self.policy_types.is_empty(),
            &spec.child("policyTypes"),
            "must specify policyTypes",
        );
        for (i, t) in self.policy_types.iter().enumerate() {
            if self.policy_types[..i].contains(t) {
                errs.add(
                    &spec.child("policyTypes").index(i),
                    format!("duplicate {t:?}"),
                );
            }
        }
        for (i, r) in self.ingress.iter().enumerate() {
            let p = spec.child("ingress").index(i);
            for (j, peer) in r.from.iter().enumerate() {
                peer.validate(errs, &p.child("from").index(j));
            }
            for (j, port) in r.ports.iter().enumerate() {
                port.validate(errs, &p.child("ports").index(j));
            }
        }
        for (i, r) in self.egress.iter().enumerate() {
            let p = spec.child("egress").index(i);
            for (j, peer) in r.to.iter().enumerate() {
                peer.validate(errs, &p.child("to").index(j));
            }
            for (j, port) in r.ports.iter().enumerate() {
                port.validate(errs, &p.child("ports").index(j));
            }
        }
    }
}

/// A condition of a NetworkPolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// Type.
    #[serde(rename = "type")]
    pub ty: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Generation observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// `NetworkPolicy.status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyStatus {
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

spec_status_kind!(
    /// Ingress and egress rules for the interfaces of a network.
    NetworkPolicy,
    NetworkPolicy::INFO,
    NetworkPolicySpec,
    NetworkPolicyStatus
);

impl Resource for NetworkPolicy {
    const INFO: KindInfo = info("NetworkPolicy", "networkpolicies", true);
    resource_meta!();

    fn apply_defaults(&mut self) {
        self.spec.apply_defaults();
    }

    fn validate_fields(&self, errs: &mut FieldErrors) {
        self.spec.validate(errs, false);
    }
}

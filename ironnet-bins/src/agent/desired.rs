//! What one node's dp should hold, computed from the internal objects the
//! controller scheduled to it (metalnetlet's mapping and metalnet's
//! validation in one step): interfaces with their virtual IP, NAT port
//! section, alias prefixes, load-balancer addresses and firewall rules;
//! load balancers; the VNIs in use with their peers. Pure: a [`World`]
//! in, plain values out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_core::api::apinet;
use ironnet_core::api::common::{IpFamily, Protocol};
use ironnet_core::api::networking::LoadBalancerType;
use ironnet_core::control::World;

use super::firewall::{self, FirewallRule};

/// A NAT port section: source ports `first..=last` on `ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NatRange {
    /// The NAT address.
    pub ip: Ipv4Addr,
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// One interface as the dp should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantInterface {
    /// The internal object's namespace and name (for status).
    pub namespace: String,
    /// See `namespace`.
    pub name: String,
    /// The VNI of its network.
    pub vni: u32,
    /// Its IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Hostname handed out by DHCP.
    pub hostname: String,
    /// Its public address (1:1 NAT).
    pub vip: Option<Ipv4Addr>,
    /// Its NAT gateway section.
    pub nat: Option<NatRange>,
    /// Alias prefixes routed to it.
    pub prefixes: BTreeSet<IpNet>,
    /// Load-balancer addresses whose traffic it accepts.
    pub lb_targets: BTreeSet<IpNet>,
    /// Firewall rules by id.
    pub firewall: BTreeMap<String, FirewallRule>,
    /// The slot (TAP device) it had before, to keep across dp restarts.
    pub slot: Option<String>,
}

/// A load-balancer protocol the dp knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LbProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One load balancer (an instance's address) as the dp should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantLb {
    /// The VNI of its network.
    pub vni: u32,
    /// Its address.
    pub ip: IpAddr,
    /// Its ports.
    pub ports: BTreeSet<(LbProtocol, u16)>,
    /// Public (announced in the public VNI) or internal.
    pub public: bool,
}

/// A VNI with something local in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantVni {
    /// Peered VNIs and the prefixes of this network they may reach (empty:
    /// all).
    pub peers: BTreeMap<u32, Vec<IpNet>>,
}

/// Why an interface scheduled here is not made real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// Its network (or the network's VNI) is not there yet: Pending.
    NoNetwork(String),
    /// Its spec cannot be realised: Error.
    Invalid(String),
}

/// An interface that is not made real, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedInterface {
    /// Namespace of the internal object.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Why.
    pub reason: Blocked,
}

/// Everything the node's dp should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Interfaces by UID.
    pub interfaces: BTreeMap<String, WantInterface>,
    /// Interfaces scheduled here that cannot be made real, by UID.
    pub blocked: BTreeMap<String, BlockedInterface>,
    /// Load balancers by dp id.
    pub lbs: BTreeMap<String, WantLb>,
    /// VNIs in use here.
    pub vnis: BTreeMap<u32, WantVni>,
}

/// What the desired state depends on besides the objects.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub node: String,
    /// Whether IPv6 overlay addresses are allowed.
    pub enable_ipv6: bool,
}

/// The VNI of an internal network.
fn vni_of(world: &World, namespace: &str, network: &str) -> Option<u32> {
    let net = world.a_networks.get(namespace, network)?;
    if net.metadata.deletion_timestamp.is_some() {
        return None;
    }
    net.spec
        .id
        .parse::<u32>()
        .ok()
        .filter(|v| *v > 0 && *v <= ironnet_overlay::route::Vni::MAX)
}

/// A 32-bit FNV-1a hash, as metalnetlet names load balancers.
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The dp id of an instance's load balancer for `ip`.
pub fn lb_id(instance_uid: &str, ip: IpAddr) -> String {
    format!("{instance_uid}-{:08x}", fnv32(ip.to_string().as_bytes()))
}

/// Computes what the node's dp should hold.
pub fn desired(world: &World, settings: &Settings) -> Desired {
    let mut out = Desired::default();
    let nat = nat_sections(world);
    let lb_addresses = lb_addresses(world);
    for nic in world.a_nics.iter() {
        if nic.spec.node_ref.name != settings.node || nic.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let uid = nic.metadata.uid.clone();
        let (namespace, name) = (nic.metadata.namespace.clone(), nic.metadata.name.clone());
        let block = |reason| BlockedInterface {
            namespace: namespace.clone(),
            name: name.clone(),
            reason,
        };
        let Some(vni) = vni_of(world, &namespace, &nic.spec.network_ref.name) else {
            let why = format!("network {} is not there yet", nic.spec.network_ref.name);
            out.blocked.insert(uid, block(Blocked::NoNetwork(why)));
            continue;
        };
        match interface(world, settings, nic, vni, &nat, &lb_addresses) {
            Ok(want) => {
                out.vnis.entry(vni).or_default();
                out.interfaces.insert(uid, want);
            }
            Err(why) => {
                out.blocked.insert(uid, block(Blocked::Invalid(why)));
            }
        }
    }
    for inst in world.instances.iter() {
        if inst.spec.node_ref.as_ref().map(|n| n.name.as_str()) != Some(settings.node.as_str())
            || inst.metadata.deletion_timestamp.is_some()
            || inst.spec.ty != Some(apinet::InstanceType::LoadBalancer)
        {
            continue;
        }
        let Some(vni) = vni_of(world, &inst.metadata.namespace, &inst.spec.network_ref.name) else {
            continue;
        };
        let ports: BTreeSet<(LbProtocol, u16)> = inst
            .spec
            .load_balancer_ports
            .iter()
            .filter_map(|p| {
                let proto = match p.protocol.unwrap_or(Protocol::TCP) {
                    Protocol::TCP => LbProtocol::Tcp,
                    Protocol::UDP => LbProtocol::Udp,
                    Protocol::SCTP => return None,
                };
                Some((proto, u16::try_from(p.port).ok()?))
            })
            .collect();
        let public = inst.spec.load_balancer_type == Some(LoadBalancerType::Public);
        for ip in &inst.spec.ips {
            if ip.is_ipv6() && !settings.enable_ipv6 {
                continue;
            }
            out.vnis.entry(vni).or_default();
            out.lbs.insert(
                lb_id(&inst.metadata.uid, *ip),
                WantLb {
                    vni,
                    ip: *ip,
                    ports: ports.clone(),
                    public,
                },
            );
        }
    }
    // Peers of the VNIs in use.
    for net in world.a_networks.iter() {
        let Some(vni) = vni_of(world, &net.metadata.namespace, &net.metadata.name) else {
            continue;
        };
        let Some(v) = out.vnis.get_mut(&vni) else {
            continue;
        };
        for p in &net.spec.peerings {
            if let Ok(peer) = p.id.parse::<u32>()
                && peer != vni
            {
                v.peers
                    .insert(peer, p.prefixes.iter().map(|x| x.prefix).collect());
            }
        }
    }
    out
}

fn interface(
    world: &World,
    settings: &Settings,
    nic: &apinet::NetworkInterface,
    vni: u32,
    nat: &BTreeMap<String, NatRange>,
    lb_addresses: &BTreeMap<(String, String, IpAddr), BTreeSet<IpAddr>>,
) -> Result<WantInterface, String> {
    let mut ipv4 = None;
    let mut ipv6 = None;
    for ip in &nic.spec.ips {
        match ip {
            IpAddr::V4(a) if ipv4.replace(*a).is_some() => {
                return Err("more than one IPv4 address".into());
            }
            IpAddr::V6(a) if ipv6.replace(*a).is_some() => {
                return Err("more than one IPv6 address".into());
            }
            _ => {}
        }
    }
    if ipv6.is_some() && !settings.enable_ipv6 {
        return Err("IPv6 addresses are not enabled on this node".into());
    }
    if ipv4.is_none() && ipv6.is_none() {
        return Err("no address".into());
    }
    let vip = nic.spec.public_ips.iter().find_map(|p| match p.ip {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    });
    let ns = &nic.metadata.namespace;
    let network = &nic.spec.network_ref.name;
    let lb_targets: BTreeSet<IpNet> = nic
        .spec
        .ips
        .iter()
        .filter_map(|ip| lb_addresses.get(&(ns.clone(), network.clone(), *ip)))
        .flatten()
        .filter(|a| a.is_ipv4() || settings.enable_ipv6)
        .map(|a| IpNet::from(*a))
        .collect();
    let rules = world.rules.iter().filter(|r| {
        r.metadata.namespace == *ns
            && r.network_ref.name == *network
            && r.targets.iter().any(|t| {
                t.target_ref
                    .as_ref()
                    .is_some_and(|x| x.uid == nic.metadata.uid)
                    || nic.spec.ips.contains(&t.ip)
            })
    });
    let mut fw = BTreeMap::new();
    for rule in rules {
        for r in firewall::compile(rule) {
            if r.family() == IpFamily::IPv6 && !settings.enable_ipv6 {
                continue;
            }
            fw.insert(r.id(), r);
        }
    }
    Ok(WantInterface {
        namespace: nic.metadata.namespace.clone(),
        name: nic.metadata.name.clone(),
        vni,
        ipv4,
        ipv6,
        hostname: nic.spec.hostname.clone(),
        vip,
        nat: nat
            .get(&nic.metadata.uid)
            .copied()
            .filter(|_| vip.is_none()),
        prefixes: nic
            .spec
            .prefixes
            .iter()
            .filter(|p| p.addr().is_ipv4() || settings.enable_ipv6)
            .map(|p| p.trunc())
            .collect(),
        lb_targets,
        firewall: fw,
        slot: nic.status.tap_device.as_ref().map(|t| t.name.clone()),
    })
}

/// The first IPv4 NAT section of every interface, by UID.
fn nat_sections(world: &World) -> BTreeMap<String, NatRange> {
    let mut out = BTreeMap::new();
    for table in world.nat_tables.iter() {
        for tip in &table.ips {
            let IpAddr::V4(ip) = tip.ip else { continue };
            for s in &tip.sections {
                let (Some(t), Ok(first), Ok(last)) = (
                    &s.target_ref,
                    u16::try_from(s.port),
                    u16::try_from(s.end_port),
                ) else {
                    continue;
                };
                out.entry(t.uid.clone())
                    .or_insert(NatRange { ip, first, last });
            }
        }
    }
    out
}

/// For every routing destination `(namespace, network, address)`, the
/// addresses of the load balancers that route to it.
fn lb_addresses(world: &World) -> BTreeMap<(String, String, IpAddr), BTreeSet<IpAddr>> {
    let mut out: BTreeMap<_, BTreeSet<IpAddr>> = BTreeMap::new();
    for routing in world.a_lb_routings.iter() {
        let ns = &routing.metadata.namespace;
        let Some(lb) = world.a_lbs.get(ns, &routing.metadata.name) else {
            continue;
        };
        let ips: Vec<IpAddr> = lb.spec.ips.iter().filter_map(|i| i.ip).collect();
        for d in &routing.destinations {
            out.entry((ns.clone(), lb.spec.network_ref.name.clone(), d.ip))
                .or_default()
                .extend(ips.iter().copied());
        }
    }
    out
}

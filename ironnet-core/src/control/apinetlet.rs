//! The user API (`networking.ironcore.dev`) onto the internal one
//! (`core.apinet.ironcore.dev`), IronCore's apinetlet: each user object
//! gets its internal counterpart in the controller's namespace, named by
//! the user object's UID and owned by it (so it goes with it); statuses
//! flow back. Machines get their ephemeral network interfaces here too.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::ipam::held_address;
use super::plan::{EventType, Plan, controlled_by, owner_ref};
use crate::api::apinet::{
    self, Affinity, InstanceAffinityTerm, InstanceAntiAffinity, InstanceSpec, InstanceTemplate,
    InstanceType, InternalLbSpec, InternalNatGatewaySpec, InternalNetworkSpec, InternalNicSpec,
    InternalPeering, InternalPeeringPrefix, IpSpec, NamedFamilyIp, NicState, NodeTargetRef,
    RoutingDestination,
};
use crate::api::common::{IpFamily, LocalObjectReference, LocalUidReference};
use crate::api::compute::Machine;
use crate::api::networking::{
    self, Condition, LoadBalancerDestination, LoadBalancerTargetRef, LoadBalancerType, NamedIp,
    NetworkPeeringStatus, PeeringClaimRef, PeeringPhase, PublicType, State, TemplateMeta,
    VirtualIpSpec,
};
use crate::meta::{LabelSelector, Labels, ObjectMeta};
use crate::object::Resource;
use crate::time::now_rfc3339;

/// Label with the UID of the user object an internal one comes from.
pub fn origin_uid_label(kind: &str) -> String {
    format!("apinetlet.ironcore.dev/{kind}-uid")
}

/// Labels and annotations tying an internal object to its origin.
fn origin(kind: &str, meta: &ObjectMeta) -> (Labels, Labels) {
    let mut labels = meta.labels.clone();
    labels.insert(origin_uid_label(kind), meta.uid.clone());
    labels.insert(
        format!("apinetlet.ironcore.dev/{kind}-namespace"),
        meta.namespace.clone(),
    );
    let mut ann = Labels::new();
    ann.insert(
        format!("apinetlet.ironcore.dev/{kind}-name"),
        meta.name.clone(),
    );
    (labels, ann)
}

/// Metadata of the internal counterpart of the user object `meta`.
fn internal_meta<T: Resource>(plan: &Plan<'_>, kind: &str, meta: &ObjectMeta) -> ObjectMeta {
    let (labels, annotations) = origin(kind, meta);
    ObjectMeta {
        name: meta.uid.clone(),
        namespace: plan.cfg.namespace.clone(),
        labels,
        annotations,
        owner_references: vec![owner_ref::<T>(meta, true)],
        ..ObjectMeta::default()
    }
}

/// The provider ID of an internal object: `ironcore-net://ns/name/<x>/uid`.
pub fn provider_id(meta: &ObjectMeta, middle: &str) -> String {
    format!(
        "ironcore-net://{}/{}/{}/{}",
        meta.namespace, meta.name, middle, meta.uid
    )
}

/// The parts of a provider ID: namespace, name, middle (VNI or node), uid.
pub fn parse_provider_id(id: &str) -> Option<[&str; 4]> {
    let rest = id.strip_prefix("ironcore-net://")?;
    let mut it = rest.splitn(4, '/');
    let parts = [it.next()?, it.next()?, it.next()?, it.next()?];
    parts.iter().all(|p| !p.is_empty()).then_some(parts)
}

fn user_state(internal: Option<NicState>) -> State {
    match internal {
        Some(NicState::Ready) => State::Available,
        Some(NicState::Error) => State::Error,
        _ => State::Pending,
    }
}

/// Runs every translation of the round.
pub fn reconcile(plan: &mut Plan<'_>) {
    machines(plan);
    networks(plan);
    virtual_ips(plan);
    interfaces(plan);
    nat_gateways(plan);
    load_balancers(plan);
    policies(plan);
}

// ------------------------------------------------------------ machines

/// Ephemeral interfaces of machines: created with the machine as their
/// controller, deleted when it no longer lists them; an existing
/// interface of that name that the machine does not control is never
/// adopted.
fn machines(plan: &mut Plan<'_>) {
    let world = plan.world;
    for m in world.machines.iter() {
        let ns = &m.metadata.namespace;
        let mut wanted = BTreeSet::new();
        for mnic in &m.spec.network_interfaces {
            if let Some(r) = &mnic.network_interface_ref {
                if let Some(nic) = world.nics.get(ns, &r.name) {
                    match &nic.spec.machine_ref {
                        None => {
                            plan.edit(nic).spec.machine_ref = Some(LocalUidReference {
                                name: m.metadata.name.clone(),
                                uid: m.metadata.uid.clone(),
                            })
                        }
                        Some(r) if r.uid == m.metadata.uid => {}
                        Some(r) => plan.warn(
                            &**m,
                            "NetworkInterfaceInUse",
                            format!(
                                "network interface {} is used by machine {}",
                                nic.metadata.name, r.name
                            ),
                        ),
                    }
                }
                continue;
            }
            let Some(eph) = &mnic.ephemeral else { continue };
            let name = format!("{}-{}", m.metadata.name, mnic.name);
            wanted.insert(name.clone());
            let template = &eph.network_interface_template;
            match world.nics.get(ns, &name) {
                Some(nic) if !controlled_by(&nic.metadata, &m.metadata.uid) => plan.warn(
                    &**m,
                    "NetworkInterfaceNotManaged",
                    format!("network interface {name} exists and is not controlled by this machine; it is not adopted"),
                ),
                Some(nic) => {
                    let e = plan.edit(nic);
                    // networkRef is fixed once set; the rest follows the template.
                    let network_ref = e.spec.network_ref.clone();
                    let provider_id = e.spec.provider_id.clone();
                    e.spec = template.spec.clone();
                    e.spec.network_ref = network_ref;
                    e.spec.provider_id = provider_id;
                    e.spec.machine_ref = Some(LocalUidReference {
                        name: m.metadata.name.clone(),
                        uid: m.metadata.uid.clone(),
                    });
                    e.metadata.labels.extend(template.metadata.labels.clone());
                }
                None => {
                    let mut nic = networking::NetworkInterface::new(ns, &name, template.spec.clone());
                    nic.metadata.labels = template.metadata.labels.clone();
                    nic.metadata.annotations = template.metadata.annotations.clone();
                    nic.metadata.owner_references = vec![owner_ref::<Machine>(&m.metadata, true)];
                    nic.spec.machine_ref = Some(LocalUidReference {
                        name: m.metadata.name.clone(),
                        uid: m.metadata.uid.clone(),
                    });
                    plan.create(&nic, Vec::new());
                }
            }
        }
        for nic in world.nics.in_namespace(ns) {
            if controlled_by(&nic.metadata, &m.metadata.uid) && !wanted.contains(&nic.metadata.name)
            {
                plan.delete::<networking::NetworkInterface>(&nic.metadata);
            }
        }
    }
}

// ------------------------------------------------------------ networks

/// The internal network of a user network, if it has a VNI.
fn internal_network<'a>(
    plan: &Plan<'a>,
    user: &networking::Network,
) -> Option<(&'a Arc<apinet::Network>, u32)> {
    let world = plan.world;
    let net = world
        .a_networks
        .get(&plan.cfg.namespace, &user.metadata.uid)?;
    Some((net, super::ipam::held_vni(world, net)?))
}

fn user_network<'a>(plan: &Plan<'a>, ns: &str, name: &str) -> Option<&'a Arc<networking::Network>> {
    plan.world.networks.get(ns, name)
}

fn networks(plan: &mut Plan<'_>) {
    let world = plan.world;
    for n in world.networks.iter() {
        let ns = &n.metadata.namespace;
        // Peerings: bound when both name each other and both have VNIs.
        let mut incoming = Vec::new();
        let mut internal_peerings = Vec::new();
        let mut statuses = Vec::new();
        let mine = internal_network(plan, n);
        for p in &n.spec.peerings {
            let peer_ns = if p.network_ref.namespace.is_empty() {
                ns.as_str()
            } else {
                p.network_ref.namespace.as_str()
            };
            let peer = user_network(plan, peer_ns, &p.network_ref.name);
            let back = peer.is_some_and(|q| {
                q.spec.peerings.iter().any(|qp| {
                    let qns = if qp.network_ref.namespace.is_empty() {
                        q.metadata.namespace.as_str()
                    } else {
                        qp.network_ref.namespace.as_str()
                    };
                    qns == ns && qp.network_ref.name == n.metadata.name
                })
            });
            let peer_vni = peer.and_then(|q| internal_network(plan, q)).map(|(_, v)| v);
            let bound = back && mine.is_some() && peer_vni.is_some();
            if let (true, Some(q), Some(vni)) = (bound, peer, peer_vni) {
                incoming.push(PeeringClaimRef {
                    namespace: q.metadata.namespace.clone(),
                    name: q.metadata.name.clone(),
                    uid: q.metadata.uid.clone(),
                });
                internal_peerings.push(InternalPeering {
                    name: p.name.clone(),
                    id: vni.to_string(),
                    prefixes: p
                        .prefixes
                        .iter()
                        .filter_map(|x| {
                            Some(InternalPeeringPrefix {
                                name: x.name.clone(),
                                prefix: x.prefix?,
                            })
                        })
                        .collect(),
                });
            } else {
                let why = if peer.is_none() {
                    format!(
                        "peering {}: network {}/{} does not exist",
                        p.name, peer_ns, p.network_ref.name
                    )
                } else if !back {
                    format!(
                        "peering {}: network {}/{} does not name this network in its peerings",
                        p.name, peer_ns, p.network_ref.name
                    )
                } else {
                    format!(
                        "peering {}: waiting for both networks to have a network ID",
                        p.name
                    )
                };
                plan.event(&**n, EventType::Normal, "PeeringPending", why);
            }
            if p.prefixes.iter().any(|x| x.prefix_ref.is_some()) {
                plan.warn(
                    &**n,
                    "PrefixRefUnsupported",
                    format!(
                        "peering {}: prefixRef needs IPAM, which ironnet does not have; use prefix",
                        p.name
                    ),
                );
            }
            statuses.push(NetworkPeeringStatus {
                name: p.name.clone(),
                phase: if bound {
                    PeeringPhase::Bound
                } else {
                    PeeringPhase::Pending
                },
            });
        }
        if n.spec.incoming_peerings != incoming {
            plan.edit(n).spec.incoming_peerings = incoming;
        }
        match world.a_networks.get(&plan.cfg.namespace, &n.metadata.uid) {
            None => {
                let internal = apinet::Network {
                    metadata: internal_meta::<networking::Network>(plan, "network", &n.metadata),
                    spec: InternalNetworkSpec {
                        id: String::new(),
                        peerings: internal_peerings,
                    },
                    ..apinet::Network::new("", "", InternalNetworkSpec::default())
                };
                plan.create(&internal, Vec::new());
            }
            Some(internal) => {
                if internal.spec.peerings != internal_peerings {
                    plan.edit(internal).spec.peerings = internal_peerings;
                }
            }
        }
        let state = match mine {
            Some((internal, vni)) => {
                if n.spec.provider_id.is_empty() {
                    plan.edit(n).spec.provider_id =
                        provider_id(&internal.metadata, &vni.to_string());
                }
                State::Available
            }
            None => State::Pending,
        };
        plan.status(&**n, |s| {
            s.status.state = Some(state);
            s.status.peerings = statuses;
        });
    }
}

// ------------------------------------------------------------ virtual IPs

fn vip_ip_name(v: &networking::VirtualIP) -> String {
    v.metadata.uid.clone()
}

/// The address a user VirtualIP holds.
fn vip_address(plan: &Plan<'_>, v: &networking::VirtualIP) -> Option<IpAddr> {
    let ip = plan.world.ips.get(&plan.cfg.namespace, &vip_ip_name(v))?;
    held_address(plan.world, ip)
}

fn virtual_ips(plan: &mut Plan<'_>) {
    let world = plan.world;
    for v in world.vips.iter() {
        let Some(family) = v.spec.ip_family else {
            continue;
        };
        if world
            .ips
            .get(&plan.cfg.namespace, &vip_ip_name(v))
            .is_none()
        {
            let ip = apinet::IP {
                metadata: internal_meta::<networking::VirtualIP>(plan, "virtualip", &v.metadata),
                spec: IpSpec {
                    ty: Some(PublicType::Public),
                    ip_family: Some(family),
                    ip: None,
                    claim_ref: None,
                },
                ..apinet::IP::new("", "", IpSpec::default())
            };
            plan.create(&ip, Vec::new());
        }
        let addr = vip_address(plan, v);
        if addr.is_none() {
            let v4 = family == IpFamily::IPv4;
            match plan.pools.for_addr(v4).map(|p| p.available()) {
                None => plan.warn(
                    &**v,
                    "NoAddressPool",
                    format!("no public {family:?} pool is configured"),
                ),
                Some(0) => plan.warn(
                    &**v,
                    "AddressPoolExhausted",
                    format!("every public {family:?} address is allocated"),
                ),
                Some(_) => {}
            }
        }
        plan.status(&**v, |s| s.status.ip = addr);
    }
}

// ------------------------------------------------------------ interfaces

/// Node names by how many internal interfaces they carry.
fn node_load(plan: &Plan<'_>) -> BTreeMap<String, usize> {
    let mut load: BTreeMap<String, usize> = plan
        .world
        .nodes
        .iter()
        .map(|n| (n.metadata.name.clone(), 0))
        .collect();
    for nic in plan.world.a_nics.iter() {
        if let Some(c) = load.get_mut(&nic.spec.node_ref.name) {
            *c += 1;
        }
    }
    load
}

fn interfaces(plan: &mut Plan<'_>) {
    let world = plan.world;
    let apinet_ns = plan.cfg.namespace.clone();
    let mut load = node_load(plan);
    let nic_uids: std::collections::HashSet<&str> =
        world.nics.iter().map(|n| n.metadata.uid.as_str()).collect();
    for u in world.nics.iter() {
        let ns = &u.metadata.namespace;
        let internal = world.a_nics.get(&apinet_ns, &u.metadata.uid);
        // The VirtualIP: a reference, or an ephemeral one the interface owns.
        let mut vip_name = None;
        if let Some(src) = &u.spec.virtual_ip {
            if let Some(r) = &src.virtual_ip_ref {
                vip_name = Some(r.name.clone());
            } else if let Some(eph) = &src.ephemeral {
                let name = u.metadata.name.clone();
                match world.vips.get(ns, &name) {
                    Some(v) if !controlled_by(&v.metadata, &u.metadata.uid) => plan.warn(
                        &**u,
                        "VirtualIPNotManaged",
                        format!("virtual IP {name} exists and is not controlled by this interface"),
                    ),
                    Some(_) => vip_name = Some(name),
                    None if !u.metadata.uid.is_empty() => {
                        let mut v = networking::VirtualIP::new(
                            ns,
                            &name,
                            VirtualIpSpec {
                                target_ref: None,
                                ..eph.virtual_ip_template.spec.clone()
                            },
                        );
                        v.metadata.labels = eph.virtual_ip_template.metadata.labels.clone();
                        v.metadata.owner_references =
                            vec![owner_ref::<networking::NetworkInterface>(&u.metadata, true)];
                        plan.create(&v, Vec::new());
                    }
                    None => {}
                }
            }
        }
        let mut public_ips = Vec::new();
        if let Some(name) = &vip_name {
            match world.vips.get(ns, name) {
                Some(v) => {
                    let target = LocalUidReference {
                        name: u.metadata.name.clone(),
                        uid: u.metadata.uid.clone(),
                    };
                    match &v.spec.target_ref {
                        Some(t) if t.uid != u.metadata.uid && nic_uids.contains(t.uid.as_str()) => {
                            plan.warn(
                                &**u,
                                "VirtualIPInUse",
                                format!("virtual IP {name} targets interface {}", t.name),
                            );
                        }
                        Some(t) if *t == target => {}
                        _ => plan.edit(v).spec.target_ref = Some(target),
                    }
                    match vip_address(plan, v) {
                        Some(addr) => public_ips.push(NamedFamilyIp {
                            name: "virtual-ip".into(),
                            ip_family: Some(IpFamily::of(addr)),
                            ip: Some(addr),
                        }),
                        None => plan.event(
                            &**u,
                            EventType::Normal,
                            "VirtualIPPending",
                            format!("virtual IP {name} has no address yet"),
                        ),
                    }
                }
                None => plan.warn(
                    &**u,
                    "VirtualIPNotFound",
                    format!("virtual IP {name} does not exist"),
                ),
            }
        }
        let prefixes: Vec<_> = u.spec.prefixes.iter().filter_map(|p| p.value).collect();
        let (labels, annotations) = origin("networkinterface", &u.metadata);
        let net = user_network(plan, ns, &u.spec.network_ref.name).map(Arc::clone);
        if net.is_none() {
            plan.warn(
                &**u,
                "NetworkNotFound",
                format!("network {} does not exist", u.spec.network_ref.name),
            );
        }
        // Placed already: keep the internal interface in step.
        if let Some(i) = internal {
            let p = plan.planned(&**i).clone();
            let ips: Vec<IpAddr> = u.spec.ips.iter().filter_map(|s| s.value).collect();
            if p.spec.ips != ips {
                plan.warn(&**u, "IPsFixed", "the internal IPs of an interface cannot change once it is placed; delete and re-create it");
            }
            let mut want_public = p.spec.public_ips.clone();
            want_public.retain(|e| e.name != "virtual-ip");
            want_public.extend(public_ips);
            if p.spec.prefixes != prefixes
                || p.spec.public_ips != want_public
                || p.metadata.labels != labels
            {
                let e = plan.edit(i);
                e.spec.prefixes = prefixes;
                e.spec.public_ips = want_public;
                e.metadata.labels = labels;
            }
            if u.spec.provider_id.is_empty() && !i.metadata.uid.is_empty() {
                plan.edit(u).spec.provider_id = provider_id(&i.metadata, &i.spec.node_ref.name);
            }
            if user_state(i.status.state) == State::Pending {
                plan.event(
                    &**u,
                    EventType::Normal,
                    "Scheduled",
                    format!(
                        "on node {}; waiting for its agent to report the interface ready",
                        i.spec.node_ref.name
                    ),
                );
            }
            let placed = plan.planned(&**i).clone();
            interface_status(plan, u, Some(&placed));
            continue;
        }
        // Not placed yet: the network needs its ID, the addresses values.
        let Some(net) = net else {
            interface_status(plan, u, None);
            continue;
        };
        if internal_network(plan, &net).is_none() {
            plan.event(
                &**u,
                EventType::Normal,
                "NetworkPending",
                format!("network {} has no network ID yet", net.metadata.name),
            );
            interface_status(plan, u, None);
            continue;
        }
        let mut ips = Vec::new();
        for src in &u.spec.ips {
            match src.value {
                Some(a) => ips.push(a),
                None => plan.warn(&**u, "EphemeralIPUnsupported", "ephemeral internal IPs need IPAM, which ironnet does not have; give ips[].value"),
            }
        }
        if ips.len() != u.spec.ips.len() {
            interface_status(plan, u, None);
            continue;
        }
        let Some(node) = choose_node(plan, u, &mut load) else {
            interface_status(plan, u, None);
            continue;
        };
        let mut meta =
            internal_meta::<networking::NetworkInterface>(plan, "networkinterface", &u.metadata);
        meta.labels = labels;
        meta.annotations = annotations;
        let nic = apinet::NetworkInterface {
            metadata: meta,
            spec: InternalNicSpec {
                node_ref: LocalObjectReference::new(&node),
                network_ref: LocalObjectReference::new(&net.metadata.uid),
                ips,
                prefixes,
                nat_gateways: Vec::new(),
                hostname: String::new(),
                public_ips,
            },
            ..apinet::NetworkInterface::new("", "", InternalNicSpec::default())
        };
        plan.create(&nic, Vec::new());
        interface_status(plan, u, None);
    }
}

/// The node of a new internal interface: from the provider ID, from the
/// machine's pool, or the registered node with the fewest interfaces.
fn choose_node(
    plan: &mut Plan<'_>,
    u: &networking::NetworkInterface,
    load: &mut BTreeMap<String, usize>,
) -> Option<String> {
    let world = plan.world;
    let pinned = if let Some([_, _, node, _]) = parse_provider_id(&u.spec.provider_id) {
        Some(node.to_owned())
    } else if let Some(m) = &u.spec.machine_ref {
        match world.machines.get(&u.metadata.namespace, &m.name) {
            Some(machine) => match &machine.spec.machine_pool_ref {
                Some(pool) => Some(pool.name.clone()),
                None => {
                    plan.event(
                        u,
                        EventType::Normal,
                        "MachineUnscheduled",
                        format!("machine {} has no machinePoolRef yet", m.name),
                    );
                    return None;
                }
            },
            None => {
                plan.warn(
                    u,
                    "MachineNotFound",
                    format!("machine {} does not exist", m.name),
                );
                return None;
            }
        }
    } else {
        None
    };
    if let Some(node) = pinned {
        if world.nodes.get("", &node).is_none() {
            plan.warn(
                u,
                "NodeNotFound",
                format!("node {node} is not registered (no agent has joined under that name)"),
            );
            return None;
        }
        if let Some(c) = load.get_mut(&node) {
            *c += 1;
        }
        return Some(node);
    }
    let Some((node, _)) = load.iter().min_by_key(|(name, c)| (**c, (*name).clone())) else {
        plan.warn(u, "NoNode", "no node is registered; start an agent");
        return None;
    };
    let node = node.clone();
    if let Some(c) = load.get_mut(&node) {
        *c += 1;
    }
    Some(node)
}

fn interface_status(
    plan: &mut Plan<'_>,
    u: &networking::NetworkInterface,
    internal: Option<&apinet::NetworkInterface>,
) {
    let state = user_state(internal.and_then(|i| i.status.state));
    let ips = internal.map(|i| i.spec.ips.clone()).unwrap_or_default();
    let prefixes = internal
        .map(|i| i.spec.prefixes.clone())
        .unwrap_or_default();
    let vip = internal.and_then(|i| {
        i.spec
            .public_ips
            .iter()
            .find(|p| p.name == "virtual-ip")
            .and_then(|p| p.ip)
    });
    plan.status(u, |s| {
        if s.status.state != Some(state) {
            s.status.last_state_transition_time = Some(now_rfc3339());
        }
        s.status.state = Some(state);
        s.status.ips = ips;
        s.status.prefixes = prefixes;
        s.status.virtual_ip = vip;
    });
}

// ------------------------------------------------------------ NAT gateways

fn nat_gateways(plan: &mut Plan<'_>) {
    let world = plan.world;
    for g in world.natgws.iter() {
        let Some(net) =
            user_network(plan, &g.metadata.namespace, &g.spec.network_ref.name).map(Arc::clone)
        else {
            plan.warn(
                &**g,
                "NetworkNotFound",
                format!("network {} does not exist", g.spec.network_ref.name),
            );
            continue;
        };
        let internal = world.a_natgws.get(&plan.cfg.namespace, &g.metadata.uid);
        let ppn = g
            .spec
            .ports_per_network_interface
            .unwrap_or(networking::DEFAULT_PORTS_PER_NETWORK_INTERFACE);
        match internal {
            None => {
                let gw = apinet::NATGateway {
                    metadata: internal_meta::<networking::NATGateway>(
                        plan,
                        "natgateway",
                        &g.metadata,
                    ),
                    spec: InternalNatGatewaySpec {
                        ip_family: g.spec.ip_family,
                        network_ref: LocalObjectReference::new(&net.metadata.uid),
                        ips: Vec::new(),
                        ports_per_network_interface: ppn,
                    },
                    ..apinet::NATGateway::new("", "", InternalNatGatewaySpec::default())
                };
                plan.create(&gw, Vec::new());
            }
            Some(i) => {
                if i.spec.ports_per_network_interface != ppn {
                    plan.edit(i).spec.ports_per_network_interface = ppn;
                }
            }
        }
        let ips: Vec<NamedIp> = internal
            .map(|i| {
                i.spec
                    .ips
                    .iter()
                    .filter_map(|e| {
                        Some(NamedIp {
                            name: e.name.clone(),
                            ip: e.ip?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        plan.status(&**g, |s| s.status.ips = ips);
    }
}

// ------------------------------------------------------------ load balancers

/// The topology key LB instances are spread over (one per domain).
pub const ZONE_KEY: &str = "topology.core.apinet.ironcore.dev/zone";

fn family_name(f: IpFamily) -> &'static str {
    match f {
        IpFamily::IPv4 => "ipv4",
        IpFamily::IPv6 => "ipv6",
    }
}

fn load_balancers(plan: &mut Plan<'_>) {
    let world = plan.world;
    let apinet_ns = plan.cfg.namespace.clone();
    for l in world.lbs.iter() {
        let ns = &l.metadata.namespace;
        let Some(net) = user_network(plan, ns, &l.spec.network_ref.name).map(Arc::clone) else {
            plan.warn(
                &**l,
                "NetworkNotFound",
                format!("network {} does not exist", l.spec.network_ref.name),
            );
            continue;
        };
        let ty = l.spec.ty.unwrap_or(LoadBalancerType::Public);
        let ips: Vec<NamedFamilyIp> = match ty {
            LoadBalancerType::Public => l
                .spec
                .ip_families
                .iter()
                .map(|f| NamedFamilyIp {
                    name: family_name(*f).into(),
                    ip_family: Some(*f),
                    ip: None,
                })
                .collect(),
            LoadBalancerType::Internal => l
                .spec
                .ips
                .iter()
                .filter_map(|s| s.value)
                .map(|a| NamedFamilyIp {
                    name: family_name(IpFamily::of(a)).into(),
                    ip_family: Some(IpFamily::of(a)),
                    ip: Some(a),
                })
                .collect(),
        };
        if ty == LoadBalancerType::Internal && ips.is_empty() {
            plan.warn(&**l, "NoInternalIPs", "an Internal load balancer needs ips[].value (ironnet has no IPAM for ephemeral ones)");
        }
        let mut selector_labels = Labels::new();
        selector_labels.insert(origin_uid_label("loadbalancer"), l.metadata.uid.clone());
        let selector = LabelSelector {
            match_labels: selector_labels.clone(),
            ..LabelSelector::default()
        };
        let template = InstanceTemplate {
            metadata: TemplateMeta {
                labels: selector_labels,
                annotations: Labels::new(),
            },
            spec: InstanceSpec {
                ty: Some(InstanceType::LoadBalancer),
                load_balancer_type: Some(ty),
                network_ref: LocalObjectReference::new(&net.metadata.uid),
                ips: Vec::new(),
                load_balancer_ports: Vec::new(),
                affinity: Some(Affinity {
                    node_affinity: None,
                    instance_anti_affinity: Some(InstanceAntiAffinity {
                        required_during_scheduling_ignored_during_execution: vec![
                            InstanceAffinityTerm {
                                label_selector: Some(selector.clone()),
                                topology_key: ZONE_KEY.into(),
                            },
                        ],
                    }),
                }),
                topology_spread_constraints: Vec::new(),
                node_ref: None,
            },
        };
        let internal = world.a_lbs.get(&apinet_ns, &l.metadata.uid);
        match internal {
            None => {
                let lb = apinet::LoadBalancer {
                    metadata: internal_meta::<networking::LoadBalancer>(
                        plan,
                        "loadbalancer",
                        &l.metadata,
                    ),
                    spec: InternalLbSpec {
                        ty: Some(ty),
                        network_ref: LocalObjectReference::new(&net.metadata.uid),
                        ips,
                        ports: l.spec.ports.clone(),
                        selector: Some(selector),
                        template,
                    },
                    ..apinet::LoadBalancer::new("", "", InternalLbSpec::default())
                };
                plan.create(&lb, Vec::new());
            }
            Some(i) => {
                let p = plan.planned(&**i).clone();
                // Keep addresses already allocated for the same entries.
                let merged: Vec<NamedFamilyIp> = ips
                    .into_iter()
                    .map(|mut e| {
                        if e.ip.is_none() {
                            e.ip = p
                                .spec
                                .ips
                                .iter()
                                .find(|o| o.name == e.name)
                                .and_then(|o| o.ip);
                        }
                        e
                    })
                    .collect();
                let (labels, _) = origin("loadbalancer", &l.metadata);
                if p.spec.ips != merged
                    || p.spec.ports != l.spec.ports
                    || p.metadata.labels != labels
                {
                    let e = plan.edit(i);
                    e.spec.ips = merged;
                    e.spec.ports = l.spec.ports.clone();
                    e.metadata.labels = labels;
                }
            }
        }
        // Routing: the selected interfaces of the network.
        let mut internal_dest = Vec::new();
        let mut user_dest = Vec::new();
        if let Some(sel) = &l.spec.network_interface_selector {
            for u in world.nics.in_namespace(ns) {
                if u.spec.network_ref.name != l.spec.network_ref.name
                    || !sel.matches(&u.metadata.labels)
                {
                    continue;
                }
                let Some(i) = world.a_nics.get(&apinet_ns, &u.metadata.uid) else {
                    continue;
                };
                for ip in &i.spec.ips {
                    internal_dest.push(RoutingDestination {
                        ip: *ip,
                        target_ref: Some(NodeTargetRef {
                            uid: i.metadata.uid.clone(),
                            name: i.metadata.name.clone(),
                            node_ref: i.spec.node_ref.clone(),
                        }),
                    });
                    user_dest.push(LoadBalancerDestination {
                        name: u.metadata.name.clone(),
                        uid: u.metadata.uid.clone(),
                        ip: Some(*ip),
                        target_ref: Some(LoadBalancerTargetRef {
                            uid: u.metadata.uid.clone(),
                            name: u.metadata.name.clone(),
                            provider_id: u.spec.provider_id.clone(),
                        }),
                    });
                }
            }
        }
        match world.a_lb_routings.get(&apinet_ns, &l.metadata.uid) {
            Some(r) if r.destinations == internal_dest => {}
            Some(r) => plan.edit(r).destinations = internal_dest,
            None => {
                let r = apinet::LoadBalancerRouting {
                    api_version: apinet::LoadBalancerRouting::INFO.api_version(),
                    kind: "LoadBalancerRouting".into(),
                    metadata: internal_meta::<networking::LoadBalancer>(
                        plan,
                        "loadbalancer",
                        &l.metadata,
                    ),
                    destinations: internal_dest,
                };
                plan.create(&r, Vec::new());
            }
        }
        let net_ref = LocalUidReference {
            name: net.metadata.name.clone(),
            uid: net.metadata.uid.clone(),
        };
        match world.lb_routings.get(ns, &l.metadata.name) {
            Some(r)
                if r.destinations == user_dest
                    && r.network_ref == net_ref
                    && controlled_by(&r.metadata, &l.metadata.uid) => {}
            Some(r) => {
                let e = plan.edit(r);
                e.destinations = user_dest;
                e.network_ref = net_ref;
                e.metadata.owner_references =
                    vec![owner_ref::<networking::LoadBalancer>(&l.metadata, true)];
            }
            None => {
                let mut r = networking::LoadBalancerRouting {
                    api_version: networking::LoadBalancerRouting::INFO.api_version(),
                    kind: "LoadBalancerRouting".into(),
                    network_ref: net_ref,
                    destinations: user_dest,
                    ..networking::LoadBalancerRouting::default()
                };
                r.metadata.namespace = ns.clone();
                r.metadata.name = l.metadata.name.clone();
                r.metadata.owner_references =
                    vec![owner_ref::<networking::LoadBalancer>(&l.metadata, true)];
                plan.create(&r, Vec::new());
            }
        }
        let addrs: Vec<IpAddr> = internal
            .map(|i| i.spec.ips.iter().filter_map(|e| e.ip).collect())
            .unwrap_or_default();
        plan.status(&**l, |s| s.status.ips = addrs);
    }
}

// ------------------------------------------------------------ policies

fn policies(plan: &mut Plan<'_>) {
    let world = plan.world;
    let apinet_ns = plan.cfg.namespace.clone();
    for p in world.policies.iter() {
        let Some(net) =
            user_network(plan, &p.metadata.namespace, &p.spec.network_ref.name).map(Arc::clone)
        else {
            plan.warn(
                &**p,
                "NetworkNotFound",
                format!("network {} does not exist", p.spec.network_ref.name),
            );
            continue;
        };
        let mut spec = p.spec.clone();
        spec.network_ref = LocalObjectReference::new(&net.metadata.uid);
        match world.a_policies.get(&apinet_ns, &p.metadata.uid) {
            Some(i) if i.spec == spec => {}
            Some(i) => plan.edit(i).spec = spec,
            None => {
                let i = apinet::NetworkPolicy {
                    api_version: apinet::NetworkPolicy::INFO.api_version(),
                    kind: "NetworkPolicy".into(),
                    metadata: internal_meta::<networking::NetworkPolicy>(
                        plan,
                        "networkpolicy",
                        &p.metadata,
                    ),
                    spec,
                };
                plan.create(&i, Vec::new());
            }
        }
        let targets = world
            .rules
            .get(&apinet_ns, &p.metadata.uid)
            .map(|r| r.targets.len());
        let condition = match targets {
            Some(n) => Condition {
                ty: "Applied".into(),
                status: "True".into(),
                reason: "Compiled".into(),
                message: format!("compiled for {n} interface address(es)"),
                observed_generation: Some(p.metadata.generation),
                last_transition_time: None,
            },
            None => Condition {
                ty: "Applied".into(),
                status: "False".into(),
                reason: "Pending".into(),
                message: "not compiled yet".into(),
                observed_generation: Some(p.metadata.generation),
                last_transition_time: None,
            },
        };
        plan.status(&**p, |s| {
            let old = s.status.conditions.iter().find(|c| c.ty == "Applied");
            let mut c = condition;
            c.last_transition_time = match old {
                Some(o) if o.status == c.status => o.last_transition_time.clone(),
                _ => Some(now_rfc3339()),
            };
            s.status.conditions = vec![c];
        });
    }
}

//! What the dp holds, as the agent read it back (and kept current with
//! the answers to its own calls), and the calls that turn it into the
//! desired state. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::desired::{Desired, LbProtocol, NatRange, WantInterface, WantLb};
use super::firewall::FirewallRule;

/// An interface in the dp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaveInterface {
    /// Its VNI.
    pub vni: u32,
    /// IPv4 address (None: 0.0.0.0).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address (None: ::).
    pub ipv6: Option<Ipv6Addr>,
    /// Its underlay address.
    pub underlay: Ipv6Addr,
    /// The dp device it is on (`net_tap2`, a PCI name…).
    pub device: String,
    /// Its virtual IP and that IP's underlay address.
    pub vip: Option<(Ipv4Addr, Ipv6Addr)>,
    /// Its NAT section and the section's underlay address.
    pub nat: Option<(NatRange, Ipv6Addr)>,
    /// Alias prefixes and their underlay addresses.
    pub prefixes: BTreeMap<IpNet, Ipv6Addr>,
    /// Load-balancer addresses it accepts and their underlay addresses.
    pub lb_targets: BTreeMap<IpNet, Ipv6Addr>,
    /// Firewall rule ids.
    pub firewall: BTreeSet<String>,
}

/// A load balancer in the dp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaveLb {
    /// Its VNI.
    pub vni: u32,
    /// Its address.
    pub ip: IpAddr,
    /// Its ports.
    pub ports: BTreeSet<(LbProtocol, u16)>,
    /// Its underlay address.
    pub underlay: Ipv6Addr,
    /// Target underlay addresses.
    pub targets: BTreeSet<Ipv6Addr>,
}

/// A route's next hop in the dp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hop {
    /// The VNI at the target.
    pub vni: u32,
    /// The target's underlay address.
    pub underlay: Ipv6Addr,
}

/// A neighbour's NAT section: replies to `ip` ports `first..=last` in
/// `vni` go to `underlay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeighborNat {
    /// The VNI of the interfaces behind it.
    pub vni: u32,
    /// The section.
    pub range: NatRange,
    /// The host holding it.
    pub underlay: Ipv6Addr,
}

/// The dp's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DpView {
    /// Interfaces by id (the internal object's UID).
    pub interfaces: BTreeMap<String, HaveInterface>,
    /// Load balancers by id.
    pub lbs: BTreeMap<String, HaveLb>,
    /// Routes per VNI.
    pub routes: BTreeMap<u32, BTreeMap<IpNet, Hop>>,
    /// Neighbour NAT sections.
    pub neighbor_nats: BTreeSet<NeighborNat>,
}

impl DpView {
    /// Every underlay address this dp owns.
    pub fn underlays(&self) -> BTreeSet<Ipv6Addr> {
        let mut out = BTreeSet::new();
        for i in self.interfaces.values() {
            out.insert(i.underlay);
            out.extend(i.vip.map(|v| v.1));
            out.extend(i.nat.map(|n| n.1));
            out.extend(i.prefixes.values().copied());
            out.extend(i.lb_targets.values().copied());
        }
        out.extend(self.lbs.values().map(|l| l.underlay));
        out
    }
}

/// One dp call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpOp {
    /// Create an interface on `device`.
    CreateInterface {
        /// Id.
        id: String,
        /// VNI.
        vni: u32,
        /// IPv4 address.
        ipv4: Option<Ipv4Addr>,
        /// IPv6 address.
        ipv6: Option<Ipv6Addr>,
        /// Device.
        device: String,
        /// DHCP hostname.
        hostname: String,
    },
    /// Delete an interface (and everything on it).
    DeleteInterface(String),
    /// Give an interface its virtual IP.
    CreateVip(String, Ipv4Addr),
    /// Take it away.
    DeleteVip(String),
    /// Give an interface a NAT section.
    CreateNat(String, NatRange),
    /// Take it away.
    DeleteNat(String),
    /// Route an alias prefix to an interface.
    CreatePrefix(String, IpNet),
    /// Stop.
    DeletePrefix(String, IpNet),
    /// Let an interface accept a load balancer's address.
    CreateLbPrefix(String, IpNet),
    /// Stop.
    DeleteLbPrefix(String, IpNet),
    /// Add a firewall rule to an interface.
    CreateFirewallRule(String, FirewallRule),
    /// Remove one.
    DeleteFirewallRule(String, String),
    /// Create a load balancer.
    CreateLb(String, WantLb),
    /// Delete one.
    DeleteLb(String),
    /// Add a target to a load balancer.
    CreateLbTarget(String, Ipv6Addr),
    /// Remove one.
    DeleteLbTarget(String, Ipv6Addr),
    /// Add a route.
    CreateRoute(u32, IpNet, Hop),
    /// Remove a route.
    DeleteRoute(u32, IpNet, Hop),
    /// Add a neighbour NAT section.
    CreateNeighborNat(NeighborNat),
    /// Remove one.
    DeleteNeighborNat(NeighborNat),
}

/// A slot a guest plugs into: the TAP device (or VF) name a guest sees
/// and reported in status, and the dp's device name for it (`dtapvf_0` is
/// `net_tap2` to dpservice and ironnet-dp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The name in status.
    pub slot: String,
    /// The name in `CreateInterface`.
    pub dp_name: String,
}

impl Device {
    /// Whether the dp's name for an interface's device means this slot
    /// (dps report either the device name or the port name).
    pub fn is(&self, name: &str) -> bool {
        name == self.dp_name || name == self.slot
    }

    /// dpservice's TAP layout: `<prefix>dtapvf_k` is `net_tap(k+2)`.
    pub fn taps(prefix: &str, count: usize) -> Vec<Device> {
        (0..count)
            .map(|k| Device {
                slot: format!("{prefix}dtapvf_{k}"),
                dp_name: format!("net_tap{}", k + 2),
            })
            .collect()
    }
}

/// Picks devices (dp names) for interfaces the dp does not have: the slot
/// they had before when it is free, else the first free one. Interfaces
/// without a free device are returned as the second value.
pub fn place(
    desired: &Desired,
    view: &DpView,
    devices: &[Device],
) -> (BTreeMap<String, String>, Vec<String>) {
    // Devices in use stay in use until their interface is deleted; the
    // next pass can hand them out.
    let mut taken: BTreeSet<&str> = view
        .interfaces
        .values()
        .map(|h| {
            devices
                .iter()
                .find(|d| d.is(&h.device))
                .map_or(h.device.as_str(), |d| d.dp_name.as_str())
        })
        .collect();
    let needing: Vec<(&String, &WantInterface)> = desired
        .interfaces
        .iter()
        .filter(|(id, want)| {
            !view
                .interfaces
                .get(*id)
                .is_some_and(|have| same_interface(want, have))
        })
        .collect();
    let mut placed = BTreeMap::new();
    // First the ones whose old slot is free, then the rest.
    for (id, want) in &needing {
        let old = want
            .slot
            .as_ref()
            .and_then(|s| devices.iter().find(|d| d.slot == *s));
        if let Some(d) = old
            && !taken.contains(d.dp_name.as_str())
        {
            taken.insert(d.dp_name.as_str());
            placed.insert((*id).clone(), d.dp_name.clone());
        }
    }
    let mut without = Vec::new();
    for (id, _) in &needing {
        if placed.contains_key(*id) {
            continue;
        }
        match devices.iter().find(|d| !taken.contains(d.dp_name.as_str())) {
            Some(d) => {
                taken.insert(d.dp_name.as_str());
                placed.insert((*id).clone(), d.dp_name.clone());
            }
            None => without.push((*id).clone()),
        }
    }
    (placed, without)
}

/// Whether the dp's interface is the wanted one (the dp cannot change an
/// interface's VNI or addresses; a difference means re-creating it).
pub fn same_interface(want: &WantInterface, have: &HaveInterface) -> bool {
    want.vni == have.vni && want.ipv4 == have.ipv4 && want.ipv6 == have.ipv6
}

/// The calls that make the dp's interfaces and load balancers what
/// `desired` says, in an order the dp accepts: removals first (parts
/// before their interface), then creations (interfaces before their
/// parts). `devices` maps interfaces to create onto devices.
pub fn object_ops(
    desired: &Desired,
    view: &DpView,
    devices: &BTreeMap<String, String>,
) -> Vec<DpOp> {
    let mut removals = Vec::new();
    let mut creations = Vec::new();
    for (id, have) in &view.interfaces {
        match desired.interfaces.get(id) {
            Some(want) if same_interface(want, have) => {
                parts(id, want, have, &mut removals, &mut creations);
            }
            _ => {
                // Parts first, so their routes are withdrawn before the
                // interface goes, then the interface.
                remove_parts(id, have, &mut removals);
                removals.push(DpOp::DeleteInterface(id.clone()));
            }
        }
    }
    for (id, want) in &desired.interfaces {
        if view
            .interfaces
            .get(id)
            .is_some_and(|have| same_interface(want, have))
        {
            continue;
        }
        let Some(device) = devices.get(id) else {
            continue;
        };
        creations.push(DpOp::CreateInterface {
            id: id.clone(),
            vni: want.vni,
            ipv4: want.ipv4,
            ipv6: want.ipv6,
            device: device.clone(),
            hostname: want.hostname.clone(),
        });
        let empty = HaveInterface {
            vni: want.vni,
            ipv4: want.ipv4,
            ipv6: want.ipv6,
            underlay: Ipv6Addr::UNSPECIFIED,
            device: device.clone(),
            vip: None,
            nat: None,
            prefixes: BTreeMap::new(),
            lb_targets: BTreeMap::new(),
            firewall: BTreeSet::new(),
        };
        parts(id, want, &empty, &mut removals, &mut creations);
    }
    for (id, have) in &view.lbs {
        let keep = desired.lbs.get(id).is_some_and(|w| same_lb(w, have));
        if !keep {
            removals.push(DpOp::DeleteLb(id.clone()));
        }
    }
    for (id, want) in &desired.lbs {
        if !view.lbs.get(id).is_some_and(|h| same_lb(want, h)) {
            creations.push(DpOp::CreateLb(id.clone(), want.clone()));
        }
    }
    removals.extend(creations);
    removals
}

fn same_lb(want: &WantLb, have: &HaveLb) -> bool {
    want.vni == have.vni && want.ip == have.ip && want.ports == have.ports
}

fn remove_parts(id: &str, have: &HaveInterface, out: &mut Vec<DpOp>) {
    for p in have.prefixes.keys() {
        out.push(DpOp::DeletePrefix(id.to_owned(), *p));
    }
    for p in have.lb_targets.keys() {
        out.push(DpOp::DeleteLbPrefix(id.to_owned(), *p));
    }
    for r in &have.firewall {
        out.push(DpOp::DeleteFirewallRule(id.to_owned(), r.clone()));
    }
    if have.nat.is_some() {
        out.push(DpOp::DeleteNat(id.to_owned()));
    }
    if have.vip.is_some() {
        out.push(DpOp::DeleteVip(id.to_owned()));
    }
}

fn parts(
    id: &str,
    want: &WantInterface,
    have: &HaveInterface,
    removals: &mut Vec<DpOp>,
    creations: &mut Vec<DpOp>,
) {
    let id = id.to_owned();
    for p in have.prefixes.keys().filter(|p| !want.prefixes.contains(p)) {
        removals.push(DpOp::DeletePrefix(id.clone(), *p));
    }
    for p in want
        .prefixes
        .iter()
        .filter(|p| !have.prefixes.contains_key(p))
    {
        creations.push(DpOp::CreatePrefix(id.clone(), *p));
    }
    for p in have
        .lb_targets
        .keys()
        .filter(|p| !want.lb_targets.contains(p))
    {
        removals.push(DpOp::DeleteLbPrefix(id.clone(), *p));
    }
    for p in want
        .lb_targets
        .iter()
        .filter(|p| !have.lb_targets.contains_key(p))
    {
        creations.push(DpOp::CreateLbPrefix(id.clone(), *p));
    }
    for r in have
        .firewall
        .iter()
        .filter(|r| !want.firewall.contains_key(*r))
    {
        removals.push(DpOp::DeleteFirewallRule(id.clone(), r.clone()));
    }
    for (rid, r) in &want.firewall {
        if !have.firewall.contains(rid) {
            creations.push(DpOp::CreateFirewallRule(id.clone(), *r));
        }
    }
    // The dp cannot change a NAT section or virtual IP: replace it.
    if have.nat.map(|n| n.0) != want.nat {
        if have.nat.is_some() {
            removals.push(DpOp::DeleteNat(id.clone()));
        }
        creations.extend(want.nat.map(|n| DpOp::CreateNat(id.clone(), n)));
    }
    if have.vip.map(|v| v.0) != want.vip {
        if have.vip.is_some() {
            removals.push(DpOp::DeleteVip(id.clone()));
        }
        creations.extend(want.vip.map(|v| DpOp::CreateVip(id.clone(), v)));
    }
}

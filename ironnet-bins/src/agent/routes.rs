//! Routes both ways, pure: what this node announces to the bond (the
//! announcement matrix of metalnet), and what the dp should hold given
//! the routes learned from the bond (routes, neighbour NAT sections,
//! load-balancer targets, peered networks, the default route to the
//! router), with the calls that get it there.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};

use super::desired::{Desired, NatRange};
use super::view::{DpOp, DpView, Hop, NeighborNat};

fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

fn route(vni: u32, prefix: IpNet, underlay: Ipv6Addr, kind: NextHopKind) -> Option<Route> {
    Some(Route {
        vni: Vni::new(vni)?,
        destination: Destination::new(prefix),
        next_hop: NextHop {
            underlay,
            // The target VNI is always 0 on the wire (metalnet).
            vni: Vni::new(0)?,
            kind,
        },
    })
}

/// What this node announces: for every object the dp holds and the
/// desired state still wants, the routes metalnet would send.
pub fn announcements(desired: &Desired, view: &DpView, public_vni: u32) -> BTreeSet<Route> {
    let mut out = BTreeSet::new();
    let std = NextHopKind::Standard;
    for (id, have) in &view.interfaces {
        if !desired.interfaces.contains_key(id) {
            continue;
        }
        let ul = have.underlay;
        if let Some(a) = have.ipv4 {
            out.extend(route(have.vni, host(a.into()), ul, std));
        }
        if let Some(a) = have.ipv6 {
            out.extend(route(have.vni, host(a.into()), ul, std));
            // IPv6 overlay addresses are globally routable.
            out.extend(route(public_vni, host(a.into()), ul, std));
        }
        if let Some((vip, vul)) = have.vip {
            out.extend(route(public_vni, host(vip.into()), vul, std));
        }
        if let Some((NatRange { ip, first, last }, nul)) = have.nat {
            out.extend(route(public_vni, host(ip.into()), nul, std));
            let kind = NextHopKind::Nat {
                port_from: first,
                port_to: last,
            };
            out.extend(route(have.vni, host(ip.into()), nul, kind));
        }
        for (p, pul) in &have.prefixes {
            out.extend(route(have.vni, *p, *pul, std));
        }
        for (p, tul) in &have.lb_targets {
            out.extend(route(have.vni, *p, *tul, NextHopKind::LoadBalancerTarget));
        }
    }
    for (id, lb) in &view.lbs {
        let Some(want) = desired.lbs.get(id) else {
            continue;
        };
        let vni = if want.public { public_vni } else { lb.vni };
        out.extend(route(vni, host(lb.ip), lb.underlay, std));
    }
    out
}

/// The VNIs to subscribe to: the public one, every VNI in use here and
/// its peers.
pub fn subscriptions(desired: &Desired, public_vni: u32) -> BTreeSet<u32> {
    let mut out: BTreeSet<u32> = desired.vnis.keys().copied().collect();
    for v in desired.vnis.values() {
        out.extend(v.peers.keys().copied());
    }
    out.insert(public_vni);
    out
}

/// What the dp should hold of learned routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    /// Routes per VNI.
    pub routes: BTreeMap<u32, BTreeMap<IpNet, Hop>>,
    /// Neighbour NAT sections.
    pub neighbor_nats: BTreeSet<NeighborNat>,
    /// Target underlay addresses per local load balancer.
    pub lb_targets: BTreeMap<String, BTreeSet<Ipv6Addr>>,
    /// The router's underlay address in use.
    pub router: Option<Ipv6Addr>,
}

/// Computes what the dp should hold from the learned routes `learned`
/// (from every server, each once), this node's own `announced` routes,
/// and the fallback router address.
pub fn installed(
    desired: &Desired,
    view: &DpView,
    learned: &BTreeSet<Route>,
    announced: &BTreeSet<Route>,
    public_vni: u32,
    router_fallback: Option<Ipv6Addr>,
    enable_ipv6: bool,
) -> Installed {
    let mut out = Installed::default();
    let own = view.underlays();
    // The default router: announced as 0.0.0.0/0 in the public VNI (the
    // lowest address when several routers announce it).
    out.router = learned
        .iter()
        .filter(|r| {
            r.vni.get() == public_vni
                && r.destination.prefix().prefix_len() == 0
                && r.destination.prefix().addr().is_ipv4()
                && r.next_hop.kind == NextHopKind::Standard
        })
        .map(|r| r.next_hop.underlay)
        .min()
        .or(router_fallback);
    // Local addresses win over learned routes to the same prefix.
    let mut local: BTreeSet<(u32, IpNet)> = BTreeSet::new();
    for (id, i) in &view.interfaces {
        if !desired.interfaces.contains_key(id) {
            continue;
        }
        local.extend(i.ipv4.map(|a| (i.vni, host(a.into()))));
        local.extend(i.ipv6.map(|a| (i.vni, host(a.into()))));
        local.extend(i.prefixes.keys().map(|p| (i.vni, *p)));
    }
    let mut add = |vni: u32, prefix: IpNet, hop: Hop| {
        if local.contains(&(vni, prefix)) {
            return;
        }
        let slot = out
            .routes
            .entry(vni)
            .or_default()
            .entry(prefix)
            .or_insert(hop);
        // One next hop per prefix in the dp: take the lowest, so every
        // host picks the same whatever the arrival order.
        if hop < *slot {
            *slot = hop;
        }
    };
    if let Some(router) = out.router {
        for &vni in desired.vnis.keys() {
            let hop = Hop {
                vni,
                underlay: router,
            };
            add(vni, IpNet::V4(Ipv4Net::default()), hop);
            if enable_ipv6 {
                add(vni, IpNet::V6(Ipv6Net::default()), hop);
            }
        }
    }
    // Which local VNIs import the routes of a VNI, with their filters.
    let mut importers: BTreeMap<u32, Vec<(u32, &Vec<IpNet>)>> = BTreeMap::new();
    for (&local_vni, want) in &desired.vnis {
        for (&peer, filter) in &want.peers {
            importers.entry(peer).or_default().push((local_vni, filter));
        }
    }
    let lbs_by_addr: BTreeMap<(u32, IpAddr), &String> = view
        .lbs
        .iter()
        .filter(|(id, _)| desired.lbs.contains_key(*id))
        .map(|(id, lb)| ((lb.vni, lb.ip), id))
        .collect();
    let learned_here = learned
        .iter()
        .filter(|r| !own.contains(&r.next_hop.underlay));
    let own_routes = announced.iter();
    for (r, mine) in learned_here
        .map(|r| (r, false))
        .chain(own_routes.map(|r| (r, true)))
    {
        let vni = r.vni.get();
        if vni == public_vni {
            continue;
        }
        let prefix = r.destination.prefix();
        let ul = r.next_hop.underlay;
        let in_use = desired.vnis.contains_key(&vni);
        match r.next_hop.kind {
            NextHopKind::Standard => {
                if in_use && !mine {
                    add(vni, prefix, Hop { vni, underlay: ul });
                }
                for (into, filter) in importers.get(&vni).into_iter().flatten() {
                    let allowed = filter.is_empty() || filter.iter().any(|f| f.contains(&prefix));
                    if allowed {
                        add(*into, prefix, Hop { vni, underlay: ul });
                    }
                }
            }
            NextHopKind::Nat { port_from, port_to } if in_use && !mine => {
                if let IpAddr::V4(ip) = prefix.addr() {
                    out.neighbor_nats.insert(NeighborNat {
                        vni,
                        range: NatRange {
                            ip,
                            first: port_from,
                            last: port_to,
                        },
                        underlay: ul,
                    });
                }
            }
            NextHopKind::LoadBalancerTarget => {
                if let Some(id) = lbs_by_addr.get(&(vni, prefix.addr())) {
                    out.lb_targets.entry((*id).clone()).or_default().insert(ul);
                }
            }
            NextHopKind::Nat { .. } => {}
        }
    }
    out
}

/// The calls that make the dp's learned state `want`. Additions always;
/// removals only when `prune` (after a restart, until the bond has had
/// time to send its tables again, nothing is removed: an empty table is
/// not yet a withdrawal).
pub fn route_ops(want: &Installed, view: &DpView, prune: bool) -> Vec<DpOp> {
    let mut out = Vec::new();
    let empty = BTreeMap::new();
    let vnis: BTreeSet<u32> = want
        .routes
        .keys()
        .chain(view.routes.keys())
        .copied()
        .collect();
    for vni in vnis {
        let w = want.routes.get(&vni).unwrap_or(&empty);
        let h = view.routes.get(&vni).unwrap_or(&empty);
        for (p, hop) in h {
            if w.get(p) != Some(hop) && (prune || w.contains_key(p)) {
                out.push(DpOp::DeleteRoute(vni, *p, *hop));
            }
        }
        for (p, hop) in w {
            if h.get(p) != Some(hop) {
                out.push(DpOp::CreateRoute(vni, *p, *hop));
            }
        }
    }
    if prune {
        for n in view.neighbor_nats.difference(&want.neighbor_nats) {
            out.push(DpOp::DeleteNeighborNat(*n));
        }
    }
    for n in want.neighbor_nats.difference(&view.neighbor_nats) {
        out.push(DpOp::CreateNeighborNat(*n));
    }
    for (id, lb) in &view.lbs {
        let empty = BTreeSet::new();
        let w = want.lb_targets.get(id).unwrap_or(&empty);
        if prune {
            for t in lb.targets.difference(w) {
                out.push(DpOp::DeleteLbTarget(id.clone(), *t));
            }
        }
        for t in w.difference(&lb.targets) {
            out.push(DpOp::CreateLbTarget(id.clone(), *t));
        }
    }
    out
}

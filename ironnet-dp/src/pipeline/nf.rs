//! The network functions in the pipeline: virtual IPs, the NAT gateway,
//! neighbour NAT relaying and load balancing, all decided on a flow's
//! first packet and recorded in the flow.
//!
//! - **Guest → default route**: a new IPv4 flow from the interface's own
//!   address through a route of length 0 leaves from the virtual IP (any
//!   protocol, ports kept) or, without one, from the NAT IP with a port of
//!   the interface's range (TCP, UDP and ICMP echo; other protocols are
//!   dropped). The virtual IP wins when an interface has both (dpservice
//!   lets the NAT win, which its code marks as unfinished).
//! - **Uplink**: the outer destination says what arrived. An interface or
//!   prefix address delivers; a virtual IP's address translates the
//!   destination to the interface; a NAT address takes answers of
//!   translated flows (found by their reply key), answers ICMP echo, and
//!   relays the ports of other hosts (neighbour NAT) to them; a load
//!   balancer's address picks a target with Maglev and delivers locally
//!   (a load-balancer prefix here) or re-encapsulates to it.
//! - Answers of balanced and relayed flows go straight back from the
//!   target or the owning host, never through here; if one arrives it is
//!   dropped.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::time::Instant;

use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::transform::{EtherRewrite, HeaderTransform};
use ironnet_overlay::wire::{
    EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol, MacAddr, WireError,
};

use super::conntrack::{Direction, FlowAction, FlowEntry, FlowKey, Refused, TcpBits, ZONE_TRANSIT};
use super::nat_ports::Inside;
use super::{DropReason, L3, Packet, Pipeline, Verdict, flow_key, icmp};
use crate::config::PortKind;
use crate::maglev::flow_hash;
use crate::snapshot::{IfaceView, Purge, Snapshot};
use crate::state::{PortId, Vnf, VnfKind};

/// A guest's first packet of a flow, as far as the translation decision
/// needs it.
pub(super) struct GuestFlow<'a> {
    pub(super) key: FlowKey,
    pub(super) tcp: Option<TcpBits>,
    pub(super) iface: &'a IfaceView,
    pub(super) port: PortId,
    /// The local guest port it goes to, if any.
    pub(super) to: Option<PortId>,
    /// Whether the route taken is a default route.
    pub(super) default_route: bool,
    /// TCP or UDP with ports, or an ICMP echo request.
    pub(super) has_ports: bool,
}

/// Adds the translation a flow's packets get in `dir` to `t`.
pub(super) fn nat_rewrite(t: &mut HeaderTransform, entry: &FlowEntry, dir: Direction) {
    match (entry.action, dir) {
        (FlowAction::SrcNat { addr, port }, Direction::Original) => {
            t.src_ip = Some(addr);
            t.src_port = port;
        }
        (FlowAction::SrcNat { port, .. }, Direction::Reply) => {
            t.dst_ip = Some(entry.key.src);
            t.dst_port = port.map(|_| entry.key.src_port);
        }
        (FlowAction::DstNat { addr }, Direction::Original) => t.dst_ip = Some(addr),
        (FlowAction::DstNat { .. }, Direction::Reply) => t.src_ip = Some(entry.key.dst),
        _ => {}
    }
}

/// Whether the packet is TCP or UDP with its ports, or an ICMP echo
/// request: what a NAT gateway can give a port.
pub(super) fn has_ports(frame: &[u8], l3: &L3) -> bool {
    let Some(body) = l3.body(frame) else {
        return false;
    };
    match l3.protocol {
        IpProtocol::TCP | IpProtocol::UDP => body.len() >= 4,
        IpProtocol::ICMP => Icmpv4Packet::new_checked(body).is_ok_and(|i| i.msg_type() == 8),
        _ => false,
    }
}

fn is_echo_request(frame: &[u8], l3: &L3) -> bool {
    let Some(body) = l3.body(frame) else {
        return false;
    };
    match l3.protocol {
        IpProtocol::ICMP => Icmpv4Packet::new_checked(body).is_ok_and(|i| i.msg_type() == 8),
        IpProtocol::ICMPV6 => Icmpv6Packet::new_checked(body).is_ok_and(|i| i.msg_type() == 128),
        _ => false,
    }
}

fn port_hint(inside: &Inside) -> u32 {
    let mut h = rustc_hash::FxHasher::default();
    inside.hash(&mut h);
    (h.finish() >> 32) as u32
}

fn refused(r: Refused) -> DropReason {
    match r {
        Refused::Full => DropReason::FlowTableFull,
        Refused::KeyTaken => DropReason::FlowConflict,
    }
}

impl Pipeline {
    /// Removes the flows whose virtual IP, NAT, neighbour range, load
    /// balancer target or interface went away since the last snapshot.
    pub(super) fn apply_purges(&mut self, snap: &Snapshot) {
        if self.purged_to < snap.purges_trimmed {
            // Too far behind to know what went: drop every flow that
            // depends on a function (plain flows are simply re-created).
            self.flows
                .purge(|e| !matches!(e.action, FlowAction::Forward));
        }
        for (generation, purge) in snap.purges.iter() {
            if *generation <= self.purged_to || *generation > snap.generation {
                continue;
            }
            self.flows.purge(|e| purge_matches(purge, e));
            if let Purge::Port(port) = purge {
                for conns in &mut self.virtsvc {
                    conns.forget_port(*port);
                }
            }
        }
        self.purged_to = snap.generation;
    }

    /// Creates the flow of a guest's first packet, deciding its source
    /// translation.
    pub(super) fn new_guest_flow(
        &mut self,
        f: GuestFlow<'_>,
        now: Instant,
    ) -> Result<(), DropReason> {
        let key = f.key;
        let mut entry = FlowEntry::forward(key, Some(f.port), f.to);
        let own_v4 = matches!((key.src, f.iface.ipv4), (IpAddr::V4(s), Some(a)) if s == a);
        let mut binding = None;
        if f.default_route && own_v4 {
            if let Some(vip) = f.iface.vip {
                entry.action = FlowAction::SrcNat {
                    addr: IpAddr::V4(vip),
                    port: None,
                };
                entry.reply = FlowKey {
                    dst: IpAddr::V4(vip),
                    ..key.reversed()
                };
            } else if let Some(nat) = f.iface.nat {
                if !f.has_ports {
                    return Err(DropReason::NatProtocol);
                }
                let inside = Inside {
                    vni: key.vni,
                    protocol: key.protocol,
                    addr: key.src,
                    port: key.src_port,
                };
                let addr = IpAddr::V4(nat.ip);
                let port = self
                    .flows
                    .nat_mut()
                    .acquire(inside, addr, nat.min_port, nat.max_port, port_hint(&inside))
                    .map_err(|_| DropReason::NatPortsExhausted)?;
                binding = Some(super::nat_ports::Outside {
                    vni: key.vni,
                    protocol: key.protocol,
                    addr,
                    port,
                });
                entry.action = FlowAction::SrcNat {
                    addr,
                    port: Some(port),
                };
                let mut reply = key.reversed();
                reply.dst = addr;
                reply.dst_port = port;
                if key.protocol == IpProtocol::ICMP.0 {
                    // Echo keys carry the identifier on both sides.
                    reply.src_port = port;
                }
                entry.reply = reply;
            }
        }
        match self.flows.insert(entry, f.tcp, now) {
            Ok(()) => Ok(()),
            Err(r) => {
                if let Some(out) = binding {
                    self.flows.nat_mut().release(&out);
                }
                Err(refused(r))
            }
        }
    }

    /// A frame from an uplink: decapsulated and handed to what its outer
    /// destination stands for.
    pub(super) fn uplink_ingress(
        &mut self,
        snap: &Snapshot,
        now: Instant,
        pkt: &mut Packet,
    ) -> Verdict {
        let pf = pkt.port;
        let router_mac = {
            let Ok(eth) = EthernetFrame::new_checked(pkt.frame()) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if eth.is_vlan_tagged() {
                return Verdict::Drop(DropReason::VlanTagged);
            }
            if eth.ethertype() != EtherType::IPV6 {
                return Verdict::Drop(DropReason::UntunnelledOnPf);
            }
            eth.src()
        };
        if !snap.virtual_services.is_empty()
            && let Some(v) = self.virtsvc_to_guest(snap, now, pkt)
        {
            return v;
        }
        let outer = match encap::decapsulate(&mut pkt.buf) {
            Ok(d) => d,
            Err(WireError::Unsupported { .. }) => {
                return Verdict::Drop(DropReason::UntunnelledOnPf);
            }
            Err(_) => return Verdict::Drop(DropReason::Malformed),
        };
        let Some(vnf) = snap.vnf.get(&outer.outer_dst).copied() else {
            return Verdict::Drop(DropReason::UnknownUnderlay);
        };
        // Whoever delivered a valid tunnel packet is our router.
        if self.neighbor(pf).is_none() {
            self.learn(pf, router_mac);
        }
        let Some(l3) = L3::parse(pkt.frame()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if vnf.kind == VnfKind::Lb {
            return self.balance(snap, now, pkt, &l3, outer);
        }
        let (key, tcp) = flow_key(pkt.frame(), &l3, vnf.vni.get(), 0);
        let dir = match self.flows.find(&key, tcp, now) {
            Some((dir, _)) => dir,
            None => match self.new_uplink_flow(snap, pkt, &l3, key, tcp, now, vnf, outer) {
                Ok(()) => Direction::Original,
                Err(v) => return v,
            },
        };
        let Some(entry) = self.flows.last() else {
            return Verdict::Drop(DropReason::FlowTableFull);
        };
        let out = match (entry.action, dir) {
            (FlowAction::Relay { underlay }, Direction::Original) => {
                return self.encap_out(snap, pkt, pf, snap.host_ipv6, underlay);
            }
            (FlowAction::Relay { .. } | FlowAction::Balance { .. }, _) => {
                return Verdict::Drop(DropReason::TransitReply);
            }
            (_, Direction::Original) => entry.to,
            (_, Direction::Reply) => entry.from,
        };
        let Some(out) = out else {
            return Verdict::Drop(DropReason::NoPort);
        };
        self.deliver(snap, pkt, &l3, dir, out, outer)
    }

    /// Delivers a decapsulated packet of a flow to guest port `out`.
    fn deliver(
        &mut self,
        snap: &Snapshot,
        pkt: &mut Packet,
        l3: &L3,
        dir: Direction,
        out: PortId,
        outer: encap::Decapsulated,
    ) -> Verdict {
        let Some(out_view) = snap.ports.get(usize::from(out)) else {
            return Verdict::Drop(DropReason::NoPort);
        };
        if out_view.kind == PortKind::Pf {
            return Verdict::Drop(DropReason::PfToPf);
        }
        if !self.firewall_allows(snap, pkt.frame(), l3, dir, None, out_view.iface.as_ref()) {
            return Verdict::Drop(DropReason::Firewall);
        }
        let mut transform = HeaderTransform {
            decrement_ttl: true,
            ether: Some(EtherRewrite {
                src: out_view.mac,
                dst: self.guest_mac(out),
            }),
            ..HeaderTransform::default()
        };
        if let Some(entry) = self.flows.last() {
            nat_rewrite(&mut transform, entry, dir);
        }
        match transform.apply(&mut pkt.buf) {
            Ok(_) => Verdict::Tx(out),
            Err(WireError::HopLimitExceeded { .. }) => {
                self.icmp_through_tunnel(snap, pkt, outer, DropReason::TtlExceeded)
            }
            Err(_) => Verdict::Drop(DropReason::Malformed),
        }
    }

    /// The first packet of a flow from an uplink: what its underlay
    /// address stands for decides. `Err` carries the verdict when no flow
    /// is made (dropped, or answered here).
    #[allow(clippy::too_many_arguments)]
    fn new_uplink_flow(
        &mut self,
        snap: &Snapshot,
        pkt: &mut Packet,
        l3: &L3,
        key: FlowKey,
        tcp: Option<TcpBits>,
        now: Instant,
        vnf: Vnf,
        outer: encap::Decapsulated,
    ) -> Result<(), Verdict> {
        let no_flow = Verdict::Drop(DropReason::NoFlow);
        let iface = snap
            .ports
            .get(usize::from(vnf.port))
            .and_then(|p| p.iface.as_ref());
        let mut entry = FlowEntry::forward(key, None, Some(vnf.port));
        match vnf.kind {
            VnfKind::Interface | VnfKind::AliasPrefix(_) | VnfKind::LbPrefix(_) => {}
            VnfKind::Vip => {
                let Some((vip, addr)) = iface.and_then(|i| Some((i.vip?, i.ipv4?))) else {
                    return Err(no_flow);
                };
                if key.dst != IpAddr::V4(vip) {
                    return Err(no_flow);
                }
                entry.action = FlowAction::DstNat {
                    addr: IpAddr::V4(addr),
                };
                entry.reply = FlowKey {
                    src: IpAddr::V4(addr),
                    ..key.reversed()
                };
            }
            VnfKind::Nat => {
                let Some(nat) = iface.and_then(|i| i.nat) else {
                    return Err(no_flow);
                };
                if key.dst != IpAddr::V4(nat.ip) {
                    return Err(no_flow);
                }
                if is_echo_request(pkt.frame(), l3) {
                    return Err(self.answer_through_tunnel(snap, pkt, outer));
                }
                let owner = snap
                    .neighbor_nats
                    .iter()
                    .find(|n| n.owns(nat.ip, vnf.vni, key.dst_port));
                let Some(owner) = owner else {
                    return Err(no_flow);
                };
                entry.action = FlowAction::Relay {
                    underlay: owner.underlay,
                };
                entry.to = None;
            }
            VnfKind::Lb => return Err(no_flow),
        }
        self.flows
            .insert(entry, tcp, now)
            .map_err(|r| Verdict::Drop(refused(r)))
    }

    /// Traffic to a load balancer's underlay address.
    fn balance(
        &mut self,
        snap: &Snapshot,
        now: Instant,
        pkt: &mut Packet,
        l3: &L3,
        outer: encap::Decapsulated,
    ) -> Verdict {
        let pf = pkt.port;
        let Some(lb) = snap.lbs.get(&outer.outer_dst) else {
            return Verdict::Drop(DropReason::UnknownUnderlay);
        };
        let (key, tcp) = flow_key(pkt.frame(), l3, lb.vni.get(), ZONE_TRANSIT);
        let target = match self.flows.find(&key, tcp, now) {
            Some((Direction::Original, _)) => match self.flows.last().map(|e| e.action) {
                Some(FlowAction::Balance { target }) => target,
                _ => return Verdict::Drop(DropReason::NoFlow),
            },
            Some((Direction::Reply, _)) => return Verdict::Drop(DropReason::TransitReply),
            None => {
                if key.dst != lb.ip {
                    return Verdict::Drop(DropReason::NoFlow);
                }
                if is_echo_request(pkt.frame(), l3) {
                    return self.answer_through_tunnel(snap, pkt, outer);
                }
                if !lb.ports.contains(&(key.protocol, key.dst_port)) {
                    return Verdict::Drop(DropReason::NotBalanced);
                }
                let hash = flow_hash(
                    key.vni,
                    key.protocol,
                    key.src,
                    key.dst,
                    key.src_port,
                    key.dst_port,
                );
                let Some(target) = lb.maglev.target(hash) else {
                    return Verdict::Drop(DropReason::NotBalanced);
                };
                let entry = FlowEntry {
                    action: FlowAction::Balance { target },
                    ..FlowEntry::forward(key, None, None)
                };
                if let Err(r) = self.flows.insert(entry, tcp, now) {
                    return Verdict::Drop(refused(r));
                }
                target
            }
        };
        let local = snap
            .vnf
            .get(&target)
            .filter(|v| matches!(v.kind, VnfKind::LbPrefix(_)))
            .map(|v| v.port);
        match local {
            Some(port) => self.deliver(snap, pkt, l3, Direction::Original, port, outer),
            None => self.encap_out(snap, pkt, pf, snap.host_ipv6, target),
        }
    }

    /// Encapsulates a decapsulated packet again, from `src` to `dst`, out
    /// of uplink `pf`.
    pub(super) fn encap_out(
        &mut self,
        snap: &Snapshot,
        pkt: &mut Packet,
        pf: PortId,
        src: std::net::Ipv6Addr,
        dst: std::net::Ipv6Addr,
    ) -> Verdict {
        let Some(pf_mac) = snap.ports.get(usize::from(pf)).map(|p| p.mac) else {
            return Verdict::Drop(DropReason::NoPort);
        };
        let params = EncapParams {
            eth_src: pf_mac,
            eth_dst: self.neighbor(pf).unwrap_or(MacAddr::BROADCAST),
            src,
            dst,
        };
        match encap::encapsulate(&mut pkt.buf, &params) {
            Ok(()) => Verdict::Tx(pf),
            Err(_) => Verdict::Drop(DropReason::Malformed),
        }
    }

    /// Answers an ICMP echo request to a NAT IP or load balancer through
    /// the tunnel it came by.
    fn answer_through_tunnel(
        &mut self,
        snap: &Snapshot,
        pkt: &mut Packet,
        outer: encap::Decapsulated,
    ) -> Verdict {
        let Some(answer) = icmp::echo_reply(pkt.frame()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !pkt.replace(&answer.frame) {
            return Verdict::Drop(DropReason::Malformed);
        }
        let pf = pkt.port;
        self.encap_out(snap, pkt, pf, outer.outer_dst, outer.outer_src)
    }
}

fn purge_matches(purge: &Purge, e: &FlowEntry) -> bool {
    match *purge {
        Purge::Port(p) => e.from == Some(p) || e.to == Some(p),
        Purge::Vip(p) => match e.action {
            FlowAction::SrcNat { port: None, .. } => e.from == Some(p),
            FlowAction::DstNat { .. } => e.to == Some(p),
            _ => false,
        },
        Purge::Nat(p) => {
            matches!(e.action, FlowAction::SrcNat { port: Some(_), .. }) && e.from == Some(p)
        }
        Purge::NeighborNat {
            vni,
            ip,
            min_port,
            max_port,
        } => {
            matches!(e.action, FlowAction::Relay { .. })
                && e.key.vni == vni.get()
                && e.key.dst == IpAddr::V4(ip)
                && (min_port..max_port).contains(&e.key.dst_port)
        }
        Purge::Balanced { vni, ip, target } => match e.action {
            FlowAction::Balance { target: t } => {
                e.key.vni == vni.get() && e.key.dst == ip && target.is_none_or(|x| x == t)
            }
            _ => false,
        },
    }
}

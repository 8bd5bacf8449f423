//! The packet pipeline, without I/O: frames and the current time go in,
//! verdicts (transmit on a port, or drop with a reason) come out.
//!
//! A worker loads the published [`Snapshot`] once per batch and passes it
//! here; nothing in the per-packet path takes a lock. Paths, as dpservice
//! has them plus what a router should do:
//! - **VF → VF**: route lookup in the interface's VNI; TTL decremented;
//!   Ethernet rewritten to the target guest.
//! - **VF → PF**: the route's next hop is another host: TTL decremented,
//!   IPv4/IPv6-in-IPv6 encapsulation from the interface's underlay address
//!   to the next hop's, sent on PF 0.
//! - **PF → VF**: the outer destination selects interface and VNI (the
//!   underlay table); outer headers popped (extension headers walked),
//!   TTL decremented, Ethernet rebuilt.
//! - Answered locally: ARP for 169.254.0.1, NS/RS for fe80::1, DHCPv4,
//!   DHCPv6, and ICMP echo to the gateway addresses.
//! - ICMP errors to the guest: time exceeded (TTL 1), destination
//!   unreachable (no route), fragmentation needed / packet too big (does
//!   not fit the underlay MTU after encapsulation).

pub mod conntrack;
mod fragment;
mod guest;
mod icmp;
pub mod nat_ports;
mod nf;
pub mod virtsvc;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::transform::{EtherRewrite, HeaderTransform};
use ironnet_overlay::wire::{
    EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet,
    MacAddr, TcpFlags, TcpPacket, UdpPacket, WireError, dhcpv4, dhcpv6,
};

pub use guest::{GATEWAY_V4, GATEWAY_V6};

use conntrack::{Decision, Direction, FlowEntry, FlowKey, FlowTable, TcpBits, Timeouts};
use nf::nat_rewrite;

/// Flows a pipeline tracks by default.
pub const DEFAULT_FLOWS: usize = 1 << 20;

use crate::config::PortKind;
use crate::firewall::{PacketInfo, RuleAction, RuleDirection, RuleSet};
use crate::snapshot::{IfaceView, Snapshot};
use crate::state::{PortId, RouteTarget};

/// Headroom kept in front of every frame (room for the outer headers).
pub const HEADROOM: usize = 64;

/// A frame and the port it arrived on (or leaves by).
#[derive(Debug, Clone)]
pub struct Packet {
    /// The port.
    pub port: PortId,
    /// The frame, with headroom.
    pub buf: PacketBuf<Vec<u8>>,
}

impl Packet {
    /// A packet holding a copy of `frame`.
    pub fn new(port: PortId, frame: &[u8]) -> Result<Self, WireError> {
        let mut v = vec![0u8; HEADROOM + frame.len()];
        v[HEADROOM..].copy_from_slice(frame);
        Ok(Packet {
            port,
            buf: PacketBuf::new(v, HEADROOM, frame.len())?,
        })
    }

    /// The frame.
    pub fn frame(&self) -> &[u8] {
        self.buf.data()
    }

    /// Puts a copy of `frame` into this packet, reusing its buffer (no
    /// allocation once the buffer is large enough).
    pub fn refill(&mut self, frame: &[u8]) -> Result<(), WireError> {
        let empty = PacketBuf::new(Vec::new(), 0, 0)?;
        let (mut v, _, _) = std::mem::replace(&mut self.buf, empty).into_parts();
        if v.len() < HEADROOM + frame.len() {
            v.resize(HEADROOM + frame.len(), 0);
        }
        v[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        self.buf = PacketBuf::new(v, HEADROOM, frame.len())?;
        Ok(())
    }

    /// Receives a frame of at most `max` bytes straight into this packet's
    /// buffer behind the headroom: `read` fills the slice it is given and
    /// returns the frame's length. No allocation once the buffer is large
    /// enough; on an error the packet is left empty (its buffer kept).
    pub fn receive(
        &mut self,
        port: PortId,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<()> {
        let empty = PacketBuf::new(Vec::new(), 0, 0).map_err(std::io::Error::other)?;
        let (mut v, _, _) = std::mem::replace(&mut self.buf, empty).into_parts();
        if v.len() < HEADROOM + max {
            v.resize(HEADROOM + max, 0);
        }
        let read = read(&mut v[HEADROOM..HEADROOM + max]);
        let len = *read.as_ref().unwrap_or(&0);
        self.port = port;
        self.buf = PacketBuf::new(v, HEADROOM, len.min(max)).map_err(std::io::Error::other)?;
        read.map(|_| ())
    }

    /// Replaces the frame; false (and unchanged) if that fails.
    fn replace(&mut self, frame: &[u8]) -> bool {
        match Packet::new(self.port, frame) {
            Ok(p) => {
                *self = p;
                true
            }
            Err(_) => false,
        }
    }
}

/// Why a packet was dropped (or consumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Headers that do not parse.
    Malformed,
    /// VLAN-tagged frames.
    VlanTagged,
    /// Neither IPv4, IPv6 nor ARP.
    UnsupportedEtherType,
    /// Plain (not encapsulated) traffic on an uplink.
    UntunnelledOnPf,
    /// No interface on the guest port.
    NoInterface,
    /// An encapsulated packet for an underlay address we do not own.
    UnknownUnderlay,
    /// ARP that is neither for the gateway nor from the guest.
    ArpIgnored,
    /// ND/RA disabled (`--enable-ipv6-overlay` off).
    NdDisabled,
    /// An ND message we do not answer.
    NdIgnored,
    /// A DHCP message we do not answer.
    DhcpIgnored,
    /// DHCP for a family the interface has no address of.
    DhcpNoAddress,
    /// Multicast, broadcast or link-local destinations are not routed.
    NotRoutable,
    /// No route; an ICMP unreachable went back (or could not).
    NoRoute,
    /// TTL / hop limit ran out.
    TtlExceeded,
    /// Too big for the underlay and not allowed to be fragmented.
    TooBig,
    /// An IPv4 packet too big for the underlay that may be fragmented but
    /// cannot be (header options, or an MTU below 28 bytes).
    FragmentationNeeded,
    /// A packet between two uplinks.
    PfToPf,
    /// Learned from and consumed (an ARP reply from the guest).
    Consumed,
    /// The target port does not exist.
    NoPort,
    /// The flow table is full.
    FlowTableFull,
    /// A firewall rule (or the default of an interface with rules) drops
    /// the flow.
    Firewall,
    /// A guest frame whose virtio-net header or segmentation request
    /// cannot be carried out (see `ironnet_overlay::offload`).
    BadOffload,
    /// Every port of the interface's NAT range is bound.
    NatPortsExhausted,
    /// A protocol the NAT gateway cannot translate (only TCP, UDP and ICMP
    /// echo have ports or identifiers).
    NatProtocol,
    /// A new flow to a virtual IP, NAT IP or load balancer that nothing
    /// accepts (no owner of the port, wrong address).
    NoFlow,
    /// Traffic to a load balancer for a (protocol, port) it does not
    /// balance, or one without targets.
    NotBalanced,
    /// The answer of a balanced or relayed flow (it goes back directly).
    TransitReply,
    /// A new flow whose answer key belongs to another flow.
    FlowConflict,
    /// Every connection slot of a virtual service is live.
    VirtsvcExhausted,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the (rewritten) frame on this port.
    Tx(PortId),
    /// Drop it.
    Drop(DropReason),
}

/// Per-port and per-reason counters.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Frames received per port.
    pub rx: Vec<u64>,
    /// Frames sent per port.
    pub tx: Vec<u64>,
    /// Drops per reason.
    pub drops: std::collections::BTreeMap<DropReason, u64>,
}

/// The pipeline's own state: learned MAC addresses, the flow table and
/// counters.
#[derive(Debug)]
pub struct Pipeline {
    /// The guest's MAC per port (VF), or the router's MAC (PF).
    neighbor: Vec<Option<MacAddr>>,
    counters: Counters,
    flows: FlowTable,
    /// Packets produced besides the one processed (fragments).
    extra: Vec<(PortId, Packet)>,
    /// The newest snapshot generation whose purges are applied.
    purged_to: u64,
    /// Virtual-service connections, by service index.
    virtsvc: Vec<virtsvc::ServiceConnections>,
    /// IPv4 identification of packets from virtual services.
    virtsvc_ident: u16,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::with_flows(
            DEFAULT_FLOWS,
            Timeouts {
                tcp_established: Duration::from_secs(86_400),
                other: Duration::from_secs(30),
            },
        )
    }
}

enum Ip<'a> {
    V4(Ipv4Packet<&'a [u8]>),
    V6(Ipv6Packet<&'a [u8]>),
}

impl Pipeline {
    /// A pipeline with nothing learned and dpservice's flow timeouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// A pipeline tracking up to `capacity` flows with `timeouts`.
    pub fn with_flows(capacity: usize, timeouts: Timeouts) -> Self {
        Pipeline {
            neighbor: Vec::new(),
            counters: Counters::default(),
            flows: FlowTable::new(capacity, timeouts),
            extra: Vec::new(),
            purged_to: 0,
            virtsvc: Vec::new(),
            virtsvc_ident: 0,
        }
    }

    /// The flow table.
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Packets to send besides the processed ones (the further fragments
    /// of fragmented packets), with their output port. The caller sends
    /// them after the batch.
    pub fn drain_extra(&mut self) -> std::vec::Drain<'_, (PortId, Packet)> {
        self.extra.drain(..)
    }

    /// Counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The MAC learned behind `port`.
    pub fn neighbor(&self, port: PortId) -> Option<MacAddr> {
        self.neighbor.get(usize::from(port)).copied().flatten()
    }

    /// Presets the MAC behind `port` (for example the router of a PF).
    pub fn set_neighbor(&mut self, port: PortId, mac: MacAddr) {
        self.learn(port, mac);
    }

    fn learn(&mut self, port: PortId, mac: MacAddr) {
        let i = usize::from(port);
        if self.neighbor.len() <= i {
            self.neighbor.resize(i + 1, None);
        }
        self.neighbor[i] = Some(mac);
    }

    /// Counts a frame from `port` that was dropped before the pipeline
    /// saw it (by the I/O layer's offload handling).
    pub fn count_drop(&mut self, port: PortId, reason: DropReason) {
        self.count(Verdict::Drop(reason), port);
    }

    fn count(&mut self, verdict: Verdict, in_port: PortId) {
        let bump = |v: &mut Vec<u64>, i: usize| {
            if v.len() <= i {
                v.resize(i + 1, 0);
            }
            v[i] += 1;
        };
        bump(&mut self.counters.rx, usize::from(in_port));
        match verdict {
            Verdict::Tx(p) => bump(&mut self.counters.tx, usize::from(p)),
            Verdict::Drop(r) => *self.counters.drops.entry(r).or_default() += 1,
        }
    }

    /// Processes a batch; `verdicts[i]` is the fate of `packets[i]`, whose
    /// frame is rewritten in place (or replaced by a reply).
    pub fn process_batch(
        &mut self,
        snap: &Snapshot,
        now: Instant,
        packets: &mut [Packet],
        verdicts: &mut Vec<Verdict>,
    ) {
        verdicts.clear();
        self.flows.age(now);
        for p in packets {
            verdicts.push(self.process(snap, now, p));
        }
    }

    /// Processes one packet.
    pub fn process(&mut self, snap: &Snapshot, now: Instant, pkt: &mut Packet) -> Verdict {
        if snap.generation != self.purged_to {
            self.apply_purges(snap);
        }
        let in_port = pkt.port;
        let verdict = match snap.ports.get(usize::from(in_port)).map(|p| p.kind) {
            Some(PortKind::Vf) => self.guest_ingress(snap, now, pkt),
            Some(PortKind::Pf) => self.uplink_ingress(snap, now, pkt),
            None => Verdict::Drop(DropReason::NoPort),
        };
        self.count(verdict, in_port);
        verdict
    }

    fn guest_mac(&self, port: PortId) -> MacAddr {
        // Until the guest spoke, broadcast reaches it whatever its MAC.
        self.neighbor(port).unwrap_or(MacAddr::BROADCAST)
    }

    fn guest_ingress(&mut self, snap: &Snapshot, now: Instant, pkt: &mut Packet) -> Verdict {
        let port = pkt.port;
        let Some(view) = snap.ports.get(usize::from(port)) else {
            return Verdict::Drop(DropReason::NoPort);
        };
        let port_mac = view.mac;
        let frame = pkt.frame();
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if eth.is_vlan_tagged() {
            return Verdict::Drop(DropReason::VlanTagged);
        }
        let iface = view.iface.as_ref();
        let answer = match eth.ethertype() {
            EtherType::ARP => guest::arp(eth.payload(), port_mac, iface),
            EtherType::IPV4 | EtherType::IPV6 => {
                let Some(iface) = iface else {
                    return Verdict::Drop(DropReason::NoInterface);
                };
                let Some(l3) = L3::parse(frame) else {
                    return Verdict::Drop(DropReason::Malformed);
                };
                match local_service(frame, &l3) {
                    Some(Local::Nd) => guest::neighbor_discovery(frame, port_mac, snap),
                    Some(Local::Dhcpv4(off)) => guest::dhcpv4(&frame[off..], port_mac, iface, snap),
                    Some(Local::Dhcpv6(off)) => {
                        guest::dhcpv6(frame, &frame[off..], port_mac, iface, snap)
                    }
                    Some(Local::Echo) => icmp::echo_reply(frame).ok_or(DropReason::Malformed),
                    None => {
                        if !snap.virtual_services.is_empty()
                            && let Some(v) = self.virtsvc_from_guest(snap, now, pkt, &l3)
                        {
                            return v;
                        }
                        return self.route_from_guest(snap, now, pkt, &l3, iface);
                    }
                }
            }
            _ => Err(DropReason::UnsupportedEtherType),
        };
        match answer {
            Ok(a) => {
                if let Some(mac) = a.learned {
                    self.learn(port, mac);
                }
                if pkt.replace(&a.frame) {
                    Verdict::Tx(port)
                } else {
                    Verdict::Drop(DropReason::Malformed)
                }
            }
            Err(reason) => {
                // An ARP reply from the guest still teaches its MAC.
                if reason == DropReason::Consumed
                    && let Ok(arp) = ironnet_overlay::wire::ArpPacket::new_checked(eth.payload())
                {
                    self.learn(port, arp.sender_mac());
                }
                Verdict::Drop(reason)
            }
        }
    }

    fn route_from_guest(
        &mut self,
        snap: &Snapshot,
        now: Instant,
        pkt: &mut Packet,
        l3: &L3,
        iface: &IfaceView,
    ) -> Verdict {
        let port = pkt.port;
        let (vni, own_underlay) = (iface.vni, iface.underlay);
        let port_mac = snap
            .ports
            .get(usize::from(port))
            .map_or(MacAddr::ZERO, |p| p.mac);
        let guest_mac = self.guest_mac(port);
        let (dst, inner_len, dont_fragment) = (l3.dst, l3.total_len, l3.dont_fragment);
        if !routable(dst) {
            return Verdict::Drop(DropReason::NotRoutable);
        }
        let Some((route, target)) = snap.routes.lookup(vni, dst) else {
            return self.icmp_to_guest(
                pkt,
                icmp::Error::NoRoute,
                port_mac,
                guest_mac,
                DropReason::NoRoute,
            );
        };
        let mut fragment_to = None;
        let mut transform = match *target {
            RouteTarget::Vf(out) => {
                let Some(out_view) = snap.ports.get(usize::from(out)) else {
                    return Verdict::Drop(DropReason::NoPort);
                };
                HeaderTransform {
                    decrement_ttl: true,
                    ether: Some(EtherRewrite {
                        src: out_view.mac,
                        dst: self.guest_mac(out),
                    }),
                    ..HeaderTransform::default()
                }
            }
            RouteTarget::Remote { underlay, .. } => {
                let room = usize::from(snap.underlay_mtu).saturating_sub(encap::OUTER_LEN - 14);
                if inner_len > room {
                    if dont_fragment {
                        let mtu = u16::try_from(room).unwrap_or(u16::MAX);
                        return self.icmp_to_guest(
                            pkt,
                            icmp::Error::TooBig(mtu),
                            port_mac,
                            guest_mac,
                            DropReason::TooBig,
                        );
                    }
                    fragment_to = Some(room);
                }
                let Some((pf, pf_mac)) = first_pf(snap) else {
                    return Verdict::Drop(DropReason::NoPort);
                };
                HeaderTransform {
                    decrement_ttl: true,
                    encap: Some(EncapParams {
                        eth_src: pf_mac,
                        eth_dst: self.neighbor(pf).unwrap_or(MacAddr::BROADCAST),
                        src: own_underlay,
                        dst: underlay,
                    }),
                    ..HeaderTransform::default()
                }
            }
        };
        let (out, to) = match *target {
            RouteTarget::Vf(out) => (
                out,
                snap.ports
                    .get(usize::from(out))
                    .and_then(|p| p.iface.as_ref()),
            ),
            RouteTarget::Remote { .. } => (first_pf(snap).map_or(0, |(p, _)| p), None),
        };
        let (key, tcp) = flow_key(pkt.frame(), l3, vni.get(), 0);
        let dir = match self.flows.find(&key, tcp, now) {
            Some((dir, _)) => dir,
            None => {
                let flow = nf::GuestFlow {
                    key,
                    tcp,
                    iface,
                    port,
                    to: matches!(target, RouteTarget::Vf(_)).then_some(out),
                    default_route: route.prefix_len() == 0,
                    has_ports: nf::has_ports(pkt.frame(), l3),
                };
                if let Err(reason) = self.new_guest_flow(flow, now) {
                    return Verdict::Drop(reason);
                }
                Direction::Original
            }
        };
        match self.flows.last() {
            Some(entry) => nat_rewrite(&mut transform, entry, dir),
            None => return Verdict::Drop(DropReason::FlowTableFull),
        }
        if !self.firewall_allows(snap, pkt.frame(), l3, dir, Some(iface), to) {
            return Verdict::Drop(DropReason::Firewall);
        }
        if let Some(mtu) = fragment_to {
            return self.fragment_and_send(pkt, mtu, &transform, out, port_mac, guest_mac);
        }
        match transform.apply(&mut pkt.buf) {
            Ok(_) => Verdict::Tx(out),
            Err(WireError::HopLimitExceeded { .. }) => self.icmp_to_guest(
                pkt,
                icmp::Error::TimeExceeded,
                port_mac,
                guest_mac,
                DropReason::TtlExceeded,
            ),
            Err(_) => Verdict::Drop(DropReason::Malformed),
        }
    }

    /// Fragments the IPv4 packet to `mtu`, applies `transform` to each
    /// fragment; the first replaces the packet, the rest go to `extra`.
    fn fragment_and_send(
        &mut self,
        pkt: &mut Packet,
        mtu: usize,
        transform: &HeaderTransform,
        out: PortId,
        port_mac: MacAddr,
        guest_mac: MacAddr,
    ) -> Verdict {
        let Some(frames) = fragment::fragment_ipv4(pkt.frame(), mtu) else {
            return Verdict::Drop(DropReason::FragmentationNeeded);
        };
        let mut done = Vec::with_capacity(frames.len());
        for f in frames {
            let Ok(mut p) = Packet::new(pkt.port, &f) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            match transform.apply(&mut p.buf) {
                Ok(_) => done.push(p),
                Err(WireError::HopLimitExceeded { .. }) => {
                    return self.icmp_to_guest(
                        pkt,
                        icmp::Error::TimeExceeded,
                        port_mac,
                        guest_mac,
                        DropReason::TtlExceeded,
                    );
                }
                Err(_) => return Verdict::Drop(DropReason::Malformed),
            }
        }
        let mut done = done.into_iter();
        let Some(first) = done.next() else {
            return Verdict::Drop(DropReason::Malformed);
        };
        *pkt = first;
        for p in done {
            self.extra.push((out, p));
        }
        Verdict::Tx(out)
    }

    /// Replaces the packet with an ICMP error back to its sender on the
    /// same port; if that cannot be built, drops it for `reason`.
    fn icmp_to_guest(
        &mut self,
        pkt: &mut Packet,
        error: icmp::Error,
        port_mac: MacAddr,
        guest_mac: MacAddr,
        reason: DropReason,
    ) -> Verdict {
        match icmp::error_reply(pkt.frame(), error, port_mac, guest_mac) {
            Some(frame) if pkt.replace(&frame) => {
                *self.counters.drops.entry(reason).or_default() += 1;
                Verdict::Tx(pkt.port)
            }
            Some(_) => Verdict::Drop(reason),
            None => Verdict::Drop(reason),
        }
    }

    /// Answers a decapsulated packet with ICMP time exceeded, sent back
    /// through the tunnel it came from (outer addresses swapped).
    fn icmp_through_tunnel(
        &mut self,
        snap: &Snapshot,
        pkt: &mut Packet,
        outer: encap::Decapsulated,
        reason: DropReason,
    ) -> Verdict {
        let pf = pkt.port;
        let Some(pf_mac) = snap.ports.get(usize::from(pf)).map(|p| p.mac) else {
            return Verdict::Drop(reason);
        };
        let Some(reply) = icmp::error_reply(
            pkt.frame(),
            icmp::Error::TimeExceeded,
            pf_mac,
            MacAddr::ZERO,
        ) else {
            return Verdict::Drop(reason);
        };
        if !pkt.replace(&reply) {
            return Verdict::Drop(reason);
        }
        match self.encap_out(snap, pkt, pf, outer.outer_dst, outer.outer_src) {
            Verdict::Tx(port) => {
                *self.counters.drops.entry(reason).or_default() += 1;
                Verdict::Tx(port)
            }
            Verdict::Drop(_) => Verdict::Drop(reason),
        }
    }
}

impl Pipeline {
    /// Whether the firewall lets a packet from interface `from` to
    /// interface `to` (`None`: another host) through. The decision is made
    /// for the flow's original direction (egress rules of its sender,
    /// ingress rules of its receiver) on its first packet, and again after
    /// any rules changed; in between it is read from the flow the last
    /// lookup found. Rules see the flow as the guests see it: before
    /// source NAT, after destination NAT.
    fn firewall_allows(
        &mut self,
        snap: &Snapshot,
        frame: &[u8],
        l3: &L3,
        dir: Direction,
        from: Option<&IfaceView>,
        to: Option<&IfaceView>,
    ) -> bool {
        let (from, to) = (from.map(|i| &*i.firewall), to.map(|i| &*i.firewall));
        if from.is_none_or(RuleSet::is_empty) && to.is_none_or(RuleSet::is_empty) {
            return true;
        }
        let epoch = snap.firewall_epoch;
        if let Some(Some(d)) = self.flows.last_decision_mut()
            && d.epoch == epoch
        {
            return d.allowed;
        }
        let info = packet_info(frame, l3);
        let (sender, receiver, mut info) = match dir {
            Direction::Original => (from, to, info),
            Direction::Reply => (to, from, info.reversed()),
        };
        let Some(view) = self.flows.last().map(FlowEntry::guest_view) else {
            return false;
        };
        info.src = view.src;
        info.dst = view.dst;
        if matches!(l3.protocol, IpProtocol::TCP | IpProtocol::UDP) {
            info.src_port = view.src_port;
            info.dst_port = view.dst_port;
        }
        let accepts = |rules: Option<&RuleSet>, d: RuleDirection| {
            rules.is_none_or(|r| r.decide(d, &info) == RuleAction::Accept)
        };
        let allowed =
            accepts(sender, RuleDirection::Egress) && accepts(receiver, RuleDirection::Ingress);
        if let Some(slot) = self.flows.last_decision_mut() {
            *slot = Some(Decision { allowed, epoch });
        }
        allowed
    }
}

/// The IP header fields the pipeline needs, read once per packet.
struct L3 {
    src: IpAddr,
    dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    protocol: IpProtocol,
    /// Length of the IP packet.
    total_len: usize,
    /// IPv4 DF; always set for IPv6.
    dont_fragment: bool,
    /// Where the upper-layer header lies in the frame, if this packet
    /// carries it (not a later fragment, extension headers walkable).
    l4: Option<std::ops::Range<usize>>,
}

impl L3 {
    /// Reads the IP header of an Ethernet frame.
    fn parse(frame: &[u8]) -> Option<L3> {
        let l3 = EthernetFrame::new_checked(frame).ok()?.header_len();
        Some(match parse_ip(frame).ok()? {
            Ip::V4(ip) => {
                let end = (l3 + ip.total_len()).min(frame.len());
                L3 {
                    src: IpAddr::V4(ip.src()),
                    dst: IpAddr::V4(ip.dst()),
                    protocol: ip.protocol(),
                    total_len: ip.total_len(),
                    dont_fragment: ip.dont_frag(),
                    l4: (ip.frag_offset() == 0).then(|| (l3 + ip.header_len()).min(end)..end),
                }
            }
            Ip::V6(ip) => {
                let end = (l3 + ip.total_len()).min(frame.len());
                let upper = ip.upper_layer().ok();
                L3 {
                    src: IpAddr::V6(ip.src()),
                    dst: IpAddr::V6(ip.dst()),
                    protocol: upper.map_or(ip.next_header(), |u| u.protocol),
                    total_len: ip.total_len(),
                    dont_fragment: true,
                    l4: upper
                        .filter(|u| !matches!(u.fragment, Some((off, _)) if off != 0))
                        .map(|u| (l3 + u.offset).min(end)..end),
                }
            }
        })
    }

    /// The upper-layer bytes of `frame`, if present.
    fn body<'f>(&self, frame: &'f [u8]) -> Option<&'f [u8]> {
        frame.get(self.l4.clone()?)
    }
}

/// The flow key (and TCP flags) of a packet. Protocols other than TCP, UDP
/// and ICMP echo, and non-first fragments, are tracked by addresses and
/// protocol only.
fn flow_key(frame: &[u8], l3: &L3, vni: u32, zone: u8) -> (FlowKey, Option<TcpBits>) {
    let (src, dst, protocol, body) = (l3.src, l3.dst, l3.protocol, l3.body(frame));
    let mut key = FlowKey {
        vni,
        zone,
        protocol: protocol.0,
        src,
        dst,
        src_port: 0,
        dst_port: 0,
    };
    let mut tcp = None;
    match (protocol, body) {
        (IpProtocol::TCP, Some(b)) => {
            if let Ok(t) = TcpPacket::new_checked(b) {
                key.src_port = t.src_port();
                key.dst_port = t.dst_port();
                let f = t.flags().0;
                tcp = Some(TcpBits {
                    syn: f & TcpFlags::SYN != 0,
                    ack: f & TcpFlags::ACK != 0,
                    fin: f & TcpFlags::FIN != 0,
                    rst: f & TcpFlags::RST != 0,
                });
            }
        }
        (IpProtocol::UDP, Some(b)) => {
            if let Ok(u) = UdpPacket::new_checked(b) {
                key.src_port = u.src_port();
                key.dst_port = u.dst_port();
            }
        }
        (IpProtocol::ICMP, Some(b)) => {
            if let Ok(i) = Icmpv4Packet::new_checked(b)
                && matches!(i.msg_type(), 0 | 8)
            {
                key.src_port = i.echo_ident();
                key.dst_port = i.echo_ident();
            }
        }
        (IpProtocol::ICMPV6, Some(b)) => {
            if let Ok(i) = Icmpv6Packet::new_checked(b)
                && i.is_echo()
            {
                key.src_port = i.echo_ident();
                key.dst_port = i.echo_ident();
            }
        }
        _ => {}
    }
    (key, tcp)
}

/// What the firewall looks at in a packet.
fn packet_info(frame: &[u8], l3: &L3) -> PacketInfo {
    let mut info = PacketInfo {
        src: l3.src,
        dst: l3.dst,
        protocol: l3.protocol.0,
        src_port: 0,
        dst_port: 0,
        icmp: None,
    };
    match (l3.protocol, l3.body(frame)) {
        (IpProtocol::TCP | IpProtocol::UDP, Some(b)) if b.len() >= 4 => {
            info.src_port = u16::from_be_bytes([b[0], b[1]]);
            info.dst_port = u16::from_be_bytes([b[2], b[3]]);
        }
        (IpProtocol::ICMP | IpProtocol::ICMPV6, Some(b)) if b.len() >= 2 => {
            info.icmp = Some((b[0], b[1]));
        }
        _ => {}
    }
    info
}

fn first_pf(snap: &Snapshot) -> Option<(PortId, MacAddr)> {
    snap.ports
        .iter()
        .position(|p| p.kind == PortKind::Pf)
        .and_then(|i| Some((PortId::try_from(i).ok()?, snap.ports[i].mac)))
}

fn parse_ip(frame: &[u8]) -> Result<Ip<'_>, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let payload = &frame[eth.header_len()..];
    match eth.ethertype() {
        EtherType::IPV4 => Ok(Ip::V4(Ipv4Packet::new_checked(payload)?)),
        _ => Ok(Ip::V6(Ipv6Packet::new_checked(payload)?)),
    }
}

/// Destinations a router forwards: not multicast, broadcast, link-local or
/// unspecified.
fn routable(dst: IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_unspecified()),
        IpAddr::V6(a) => {
            !(a.is_multicast() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

enum Local {
    Nd,
    Dhcpv4(usize),
    Dhcpv6(usize),
    Echo,
}

/// Whether the frame is for one of the dp's own services, and where its
/// payload starts.
fn local_service(frame: &[u8], l3: &L3) -> Option<Local> {
    let l4 = l3.l4.clone()?;
    let body = frame.get(l4.clone())?;
    match l3.protocol {
        IpProtocol::UDP => {
            let udp = UdpPacket::new_checked(body).ok()?;
            let service = match l3.dst {
                IpAddr::V4(_) if udp.dst_port() == dhcpv4::SERVER_PORT => Local::Dhcpv4,
                IpAddr::V6(_) if udp.dst_port() == dhcpv6::SERVER_PORT => Local::Dhcpv6,
                _ => return None,
            };
            Some(service(l4.start + 8))
        }
        IpProtocol::ICMP if l3.dst == IpAddr::V4(GATEWAY_V4) => Some(Local::Echo),
        IpProtocol::ICMPV6 => match Icmpv6Packet::new_checked(body).ok()?.msg_type() {
            133 | 135 => Some(Local::Nd),
            128 if l3.dst == IpAddr::V6(GATEWAY_V6) => Some(Local::Echo),
            _ => None,
        },
        _ => None,
    }
}

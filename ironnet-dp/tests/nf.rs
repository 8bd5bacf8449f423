//! The network functions in the pipeline with built packets: virtual IPs,
//! the NAT gateway, neighbour NAT, load balancing, purges, and a property
//! test of NAT port bindings.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ironnet_dp::firewall::{FirewallRule, PortRange, ProtocolMatch, RuleAction, RuleDirection};
use ironnet_dp::pipeline::conntrack::{FlowAction, Timeouts};
use ironnet_dp::pipeline::{DropReason, Packet, Pipeline, Verdict};
use ironnet_dp::state::{ExternalRoute, InterfaceSpec, LbPort, LbSpec, NeighborNat};
use ironnet_dp::{DpConfig, DpState, Snapshot};
use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::checksum::{checksum, finish, pseudo_header_v4, sum};
use ironnet_overlay::wire::{IpProtocol, MacAddr, TcpFlags};
use proptest::prelude::*;

const PF0: u16 = 0;
const VM1: u16 = 2;
const VM2: u16 = 3;
const GUEST1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const GUEST2: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const ROUTER: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 1]);
const HOST: &str = "fc00:1::1";
const REMOTE: &str = "fc00:2::10";

fn vni() -> Vni {
    Vni::new(100).unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ip4(s: &str) -> IpAddr {
    IpAddr::V4(v4(s))
}

struct World {
    state: DpState,
    snap: Snapshot,
    pipe: Pipeline,
    now: Instant,
}

impl World {
    /// vm1 (10.0.0.1, port 2) and vm2 (10.0.0.2, port 3) in VNI 100, a
    /// default route and 192.168.0.0/16 to another host.
    fn new() -> World {
        Self::with_config(DpConfig::tap(v6(HOST), 2))
    }

    fn with_config(config: DpConfig) -> World {
        let mut state = DpState::new(config, 1);
        state.initialize();
        for (id, dev, ip) in [
            ("vm1", "net_tap2", "10.0.0.1"),
            ("vm2", "net_tap3", "10.0.0.2"),
        ] {
            state
                .create_interface(InterfaceSpec {
                    id: id.into(),
                    vni: vni(),
                    ipv4: Some(v4(ip)),
                    ipv6: None,
                    device: dev.into(),
                    preferred_underlay: None,
                    pxe: None,
                    hostname: None,
                })
                .unwrap();
        }
        for prefix in ["0.0.0.0/0", "192.168.0.0/16"] {
            state
                .create_route(ExternalRoute {
                    vni: vni(),
                    prefix: prefix.parse().unwrap(),
                    nexthop_vni: vni(),
                    nexthop: v6(REMOTE),
                })
                .unwrap();
        }
        let mut pipe = Pipeline::with_flows(
            1 << 16,
            Timeouts {
                tcp_established: Duration::from_secs(86_400),
                other: Duration::from_secs(30),
            },
        );
        pipe.set_neighbor(VM1, GUEST1);
        pipe.set_neighbor(VM2, GUEST2);
        pipe.set_neighbor(PF0, ROUTER);
        let snap = state.snapshot();
        World {
            state,
            snap,
            pipe,
            now: Instant::now(),
        }
    }

    fn publish(&mut self) {
        self.snap = self.state.snapshot();
    }

    fn run(&mut self, port: u16, frame: &[u8]) -> (Verdict, Vec<u8>) {
        let mut p = Packet::new(port, frame).unwrap();
        let v = self.pipe.process(&self.snap, self.now, &mut p);
        (v, p.frame().to_vec())
    }

    fn pf_mac(&self) -> MacAddr {
        self.snap.ports[usize::from(PF0)].mac
    }
}

/// A guest or remote frame: UDP, TCP (SYN unless flags given) or ICMP echo.
fn frame(src: &str, dst: &str, l4: L4Spec) -> Vec<u8> {
    FrameSpec {
        eth_src: GUEST1,
        eth_dst: MacAddr([0x66; 6]),
        src: ip4(src),
        dst: ip4(dst),
        ttl: 64,
        l4,
        payload: vec![0x5a; 24],
    }
    .to_vec()
    .unwrap()
}

fn udp(sport: u16, dport: u16) -> L4Spec {
    L4Spec::Udp {
        src_port: sport,
        dst_port: dport,
    }
}

fn tcp(sport: u16, dport: u16) -> L4Spec {
    L4Spec::Tcp {
        src_port: sport,
        dst_port: dport,
        seq: 1,
        ack: 0,
        flags: TcpFlags(TcpFlags::SYN),
        window: 1000,
    }
}

fn echo(request: bool, ident: u16) -> L4Spec {
    L4Spec::Echo {
        request,
        ident,
        seq: 1,
    }
}

/// `inner` encapsulated from `src` to `dst` as the router delivers it.
fn tunnel(w: &World, src: &str, dst: Ipv6Addr, inner: &[u8]) -> Vec<u8> {
    let mut buf = PacketBuf::new([&[0u8; 64][..], inner].concat(), 64, inner.len()).unwrap();
    encap::encapsulate(
        &mut buf,
        &EncapParams {
            eth_src: ROUTER,
            eth_dst: w.pf_mac(),
            src: v6(src),
            dst,
        },
    )
    .unwrap();
    buf.data().to_vec()
}

/// The fields of an IPv4 packet in an Ethernet frame (after the outer
/// headers, if any), with every checksum verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    outer: Option<(Ipv6Addr, Ipv6Addr)>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    /// Ports, or (type, identifier) for ICMP.
    sport: u16,
    dport: u16,
}

fn seen(frame: &[u8]) -> Seen {
    let mut ip = &frame[14..];
    let mut outer = None;
    if u16::from_be_bytes([frame[12], frame[13]]) == 0x86dd {
        let s: [u8; 16] = ip[8..24].try_into().unwrap();
        let d: [u8; 16] = ip[24..40].try_into().unwrap();
        assert_eq!(ip[6], 4, "IPv4 in IPv6");
        outer = Some((Ipv6Addr::from(s), Ipv6Addr::from(d)));
        ip = &ip[40..];
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(checksum(&ip[..ihl]), 0, "IPv4 header checksum");
    let (src, dst) = (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    );
    let l4 = &ip[ihl..total];
    let protocol = ip[9];
    let (sport, dport) = match protocol {
        1 => {
            assert_eq!(checksum(l4), 0, "ICMP checksum");
            (u16::from(l4[0]), u16::from_be_bytes([l4[4], l4[5]]))
        }
        6 | 17 => {
            let len = u16::try_from(l4.len()).unwrap();
            let acc = pseudo_header_v4(src, dst, protocol, len) + sum(l4);
            assert_eq!(finish(acc), 0, "L4 checksum");
            (
                u16::from_be_bytes([l4[0], l4[1]]),
                u16::from_be_bytes([l4[2], l4[3]]),
            )
        }
        _ => (0, 0),
    };
    Seen {
        outer,
        src,
        dst,
        protocol,
        sport,
        dport,
    }
}

#[test]
fn a_virtual_ip_translates_both_directions() {
    let mut w = World::new();
    let vip_underlay = w.state.create_vip("vm1", v4("45.0.0.1"), None).unwrap();
    w.publish();
    // Out through the default route: source becomes the VIP, ports kept.
    let (v, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.9", udp(4000, 53)));
    assert_eq!(v, Verdict::Tx(PF0));
    let s = seen(&out);
    assert_eq!(
        (s.src, s.dst, s.sport, s.dport),
        (v4("45.0.0.1"), v4("203.0.113.9"), 4000, 53)
    );
    // The answer arrives on the VIP's underlay address.
    let back = tunnel(
        &w,
        REMOTE,
        vip_underlay,
        &frame("203.0.113.9", "45.0.0.1", udp(53, 4000)),
    );
    let (v, out) = w.run(PF0, &back);
    assert_eq!(v, Verdict::Tx(VM1));
    let s = seen(&out);
    assert_eq!(
        (s.src, s.dst, s.dport),
        (v4("203.0.113.9"), v4("10.0.0.1"), 4000)
    );
    // Not through a default route: untranslated.
    let (_, out) = w.run(VM1, &frame("10.0.0.1", "192.168.1.1", udp(4001, 53)));
    assert_eq!(seen(&out).src, v4("10.0.0.1"));
    // Inbound: a new connection to the VIP reaches the interface, and the
    // answer leaves from the VIP.
    let syn = tunnel(
        &w,
        REMOTE,
        vip_underlay,
        &frame("198.51.100.7", "45.0.0.1", tcp(5555, 22)),
    );
    let (v, out) = w.run(PF0, &syn);
    assert_eq!(v, Verdict::Tx(VM1));
    assert_eq!(seen(&out).dst, v4("10.0.0.1"));
    let (v, out) = w.run(VM1, &frame("10.0.0.1", "198.51.100.7", tcp(22, 5555)));
    assert_eq!(v, Verdict::Tx(PF0));
    let s = seen(&out);
    assert_eq!((s.src, s.sport, s.dport), (v4("45.0.0.1"), 22, 5555));
    // Another address on the VIP's underlay: nothing accepts it.
    let wrong = tunnel(
        &w,
        REMOTE,
        vip_underlay,
        &frame("198.51.100.7", "45.0.0.2", tcp(1, 22)),
    );
    assert_eq!(w.run(PF0, &wrong).0, Verdict::Drop(DropReason::NoFlow));
    // DeleteVip purges its flows: the answer no longer gets through.
    w.state.delete_vip("vm1").unwrap();
    w.publish();
    assert_eq!(
        w.run(PF0, &back).0,
        Verdict::Drop(DropReason::UnknownUnderlay)
    );
    let (_, out) = w.run(VM1, &frame("10.0.0.1", "198.51.100.7", tcp(22, 5555)));
    assert_eq!(seen(&out).src, v4("10.0.0.1"), "no VIP, no translation");
}

#[test]
fn the_nat_gateway_binds_ports_per_endpoint_and_maps_answers_back() {
    let mut w = World::new();
    let nat_underlay = w
        .state
        .create_nat("vm1", v4("45.0.0.5"), 1000, 1003, None)
        .unwrap();
    w.publish();
    let mut ports = HashSet::new();
    for sport in [4000, 4001, 4002] {
        let (v, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.9", udp(sport, 53)));
        assert_eq!(v, Verdict::Tx(PF0));
        let s = seen(&out);
        assert_eq!(s.src, v4("45.0.0.5"));
        assert!((1000..1003).contains(&s.sport));
        ports.insert(s.sport);
        // The answer to that port reaches the right endpoint.
        let back = tunnel(
            &w,
            REMOTE,
            nat_underlay,
            &frame("203.0.113.9", "45.0.0.5", udp(53, s.sport)),
        );
        let (v, out) = w.run(PF0, &back);
        assert_eq!(v, Verdict::Tx(VM1));
        let b = seen(&out);
        assert_eq!((b.dst, b.dport), (v4("10.0.0.1"), sport));
    }
    assert_eq!(ports.len(), 3, "one port per inside endpoint");
    // The same endpoint to another destination keeps its port.
    let (_, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.10", udp(4000, 53)));
    let again = seen(&out).sport;
    let (_, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.9", udp(4000, 53)));
    assert_eq!(seen(&out).sport, again);
    // Range exhausted for a fourth endpoint; other protocols have their own.
    assert_eq!(
        w.run(VM1, &frame("10.0.0.1", "203.0.113.9", udp(4003, 53)))
            .0,
        Verdict::Drop(DropReason::NatPortsExhausted)
    );
    let (v, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.9", tcp(4003, 80)));
    assert_eq!(v, Verdict::Tx(PF0));
    assert_eq!(seen(&out).src, v4("45.0.0.5"));
    // Ping: the identifier is the NAT port, mapped back on the reply.
    let (v, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.9", echo(true, 77)));
    assert_eq!(v, Verdict::Tx(PF0));
    let s = seen(&out);
    assert!((1000..1003).contains(&s.dport), "identifier {}", s.dport);
    let back = tunnel(
        &w,
        REMOTE,
        nat_underlay,
        &frame("203.0.113.9", "45.0.0.5", echo(false, s.dport)),
    );
    let (v, out) = w.run(PF0, &back);
    assert_eq!(v, Verdict::Tx(VM1));
    assert_eq!(seen(&out).dport, 77);
    // A protocol without ports cannot share the NAT IP.
    let gre = frame("10.0.0.1", "203.0.113.9", L4Spec::Raw(IpProtocol(47)));
    assert_eq!(w.run(VM1, &gre).0, Verdict::Drop(DropReason::NatProtocol));
    // Unsolicited traffic to the NAT IP goes nowhere; ping is answered
    // through the tunnel it came by.
    let knock = tunnel(
        &w,
        REMOTE,
        nat_underlay,
        &frame("198.51.100.7", "45.0.0.5", tcp(9, 1001)),
    );
    assert_eq!(w.run(PF0, &knock).0, Verdict::Drop(DropReason::NoFlow));
    let ping = tunnel(
        &w,
        REMOTE,
        nat_underlay,
        &frame("198.51.100.7", "45.0.0.5", echo(true, 5)),
    );
    let (v, out) = w.run(PF0, &ping);
    assert_eq!(v, Verdict::Tx(PF0));
    let s = seen(&out);
    assert_eq!(s.outer, Some((nat_underlay, v6(REMOTE))));
    assert_eq!(
        (s.src, s.dst, s.sport),
        (v4("45.0.0.5"), v4("198.51.100.7"), 0)
    );
    // DeleteNat purges its flows and frees every binding.
    assert!(!w.pipe.flows().nat().is_empty());
    w.state.delete_nat("vm1").unwrap();
    w.publish();
    let (_, out) = w.run(VM1, &frame("10.0.0.1", "203.0.113.9", udp(4000, 53)));
    assert_eq!(seen(&out).src, v4("10.0.0.1"));
    assert!(w.pipe.flows().nat().is_empty());
    assert!(
        w.pipe
            .flows()
            .entries()
            .all(|e| !matches!(e.action, FlowAction::SrcNat { .. }))
    );
}

#[test]
fn ports_of_other_hosts_are_relayed_to_them() {
    let mut w = World::new();
    let nat_underlay = w
        .state
        .create_nat("vm1", v4("45.0.0.5"), 1000, 2000, None)
        .unwrap();
    w.state
        .create_neighbor_nat(NeighborNat {
            ip: v4("45.0.0.5"),
            vni: vni(),
            min_port: 2000,
            max_port: 3000,
            underlay: v6("fc00:3::1"),
        })
        .unwrap();
    w.publish();
    let inner = frame("203.0.113.9", "45.0.0.5", udp(53, 2500));
    let (v, out) = w.run(PF0, &tunnel(&w, REMOTE, nat_underlay, &inner));
    assert_eq!(v, Verdict::Tx(PF0));
    let s = seen(&out);
    assert_eq!(s.outer, Some((v6(HOST), v6("fc00:3::1"))));
    assert_eq!(
        (s.src, s.dst, s.sport, s.dport),
        (v4("203.0.113.9"), v4("45.0.0.5"), 53, 2500)
    );
    assert_eq!(
        &out[14 + 40..],
        &inner[14..],
        "the inner packet is untouched"
    );
    // Max is exclusive.
    let edge = frame("203.0.113.9", "45.0.0.5", udp(53, 3000));
    assert_eq!(
        w.run(PF0, &tunnel(&w, REMOTE, nat_underlay, &edge)).0,
        Verdict::Drop(DropReason::NoFlow)
    );
    // Deleting the entry removes its relayed flows.
    w.state
        .delete_neighbor_nat(v4("45.0.0.5"), vni(), 2000, 3000)
        .unwrap();
    w.publish();
    assert_eq!(
        w.run(PF0, &tunnel(&w, REMOTE, nat_underlay, &inner)).0,
        Verdict::Drop(DropReason::NoFlow)
    );
}

fn lb(w: &mut World) -> Ipv6Addr {
    w.state
        .create_lb(LbSpec {
            id: "lb1".into(),
            vni: vni(),
            ip: ip4("45.0.1.1"),
            ports: vec![LbPort {
                protocol: 6,
                port: 80,
            }],
            preferred_underlay: None,
        })
        .unwrap()
}

#[test]
fn a_load_balancer_spreads_flows_over_local_and_remote_targets() {
    let mut w = World::new();
    let lb_underlay = lb(&mut w);
    let local = w
        .state
        .create_lb_prefix("vm2", "45.0.1.1/32".parse().unwrap(), None)
        .unwrap();
    let remote = v6("fc00:3::1");
    w.state.create_lb_target("lb1", local).unwrap();
    w.state.create_lb_target("lb1", remote).unwrap();
    w.publish();
    let mut where_to = HashMap::new();
    for sport in 0..200u16 {
        let inner = frame("198.51.100.7", "45.0.1.1", tcp(10_000 + sport, 80));
        let (v, out) = w.run(PF0, &tunnel(&w, REMOTE, lb_underlay, &inner));
        let s = seen(&out);
        let target = match v {
            Verdict::Tx(VM2) => {
                assert_eq!((s.outer, s.dst), (None, v4("45.0.1.1")), "delivered as is");
                local
            }
            Verdict::Tx(PF0) => {
                assert_eq!(s.outer, Some((v6(HOST), remote)));
                remote
            }
            other => panic!("{other:?}"),
        };
        where_to.insert(sport, target);
        // The same flow lands on the same target.
        let (v2, _) = w.run(PF0, &tunnel(&w, REMOTE, lb_underlay, &inner));
        assert_eq!(v2, v);
    }
    let to_local = where_to.values().filter(|t| **t == local).count();
    assert!((60..=140).contains(&to_local), "{to_local} of 200 local");
    // Ports not balanced, and ping.
    let udp80 = frame("198.51.100.7", "45.0.1.1", udp(1, 80));
    assert_eq!(
        w.run(PF0, &tunnel(&w, REMOTE, lb_underlay, &udp80)).0,
        Verdict::Drop(DropReason::NotBalanced)
    );
    let ping = frame("198.51.100.7", "45.0.1.1", echo(true, 9));
    let (v, out) = w.run(PF0, &tunnel(&w, REMOTE, lb_underlay, &ping));
    assert_eq!(v, Verdict::Tx(PF0));
    assert_eq!(seen(&out).outer, Some((lb_underlay, v6(REMOTE))));
    // Removing the remote target moves only its flows, onto the other.
    w.state.delete_lb_target("lb1", remote).unwrap();
    w.publish();
    for (sport, target) in &where_to {
        let inner = frame("198.51.100.7", "45.0.1.1", tcp(10_000 + sport, 80));
        let (v, _) = w.run(PF0, &tunnel(&w, REMOTE, lb_underlay, &inner));
        assert_eq!(v, Verdict::Tx(VM2), "flow {sport} was on {target}");
    }
    // Without targets nothing is balanced.
    w.state.delete_lb_target("lb1", local).unwrap();
    w.publish();
    let inner = frame("198.51.100.7", "45.0.1.1", tcp(9, 80));
    assert_eq!(
        w.run(PF0, &tunnel(&w, REMOTE, lb_underlay, &inner)).0,
        Verdict::Drop(DropReason::NotBalanced)
    );
}

#[test]
fn firewall_rules_see_the_guest_side_of_translated_flows() {
    let mut w = World::new();
    let vip_underlay = w.state.create_vip("vm1", v4("45.0.0.1"), None).unwrap();
    w.state
        .create_firewall_rule(
            "vm1",
            FirewallRule {
                id: "ssh".into(),
                direction: RuleDirection::Ingress,
                action: RuleAction::Accept,
                priority: 1,
                src: "0.0.0.0/0".parse().unwrap(),
                dst: "10.0.0.1/32".parse().unwrap(),
                protocol: ProtocolMatch::Tcp {
                    src: PortRange::ANY,
                    dst: PortRange { lo: 22, hi: 22 },
                },
            },
        )
        .unwrap();
    w.publish();
    let to = |port| frame("198.51.100.7", "45.0.0.1", tcp(5555, port));
    let (v, _) = w.run(PF0, &tunnel(&w, REMOTE, vip_underlay, &to(22)));
    assert_eq!(
        v,
        Verdict::Tx(VM1),
        "the rule names the interface's address"
    );
    let (v, _) = w.run(PF0, &tunnel(&w, REMOTE, vip_underlay, &to(23)));
    assert_eq!(v, Verdict::Drop(DropReason::Firewall));
}

#[test]
fn deleting_an_interface_removes_its_functions_and_flows() {
    let mut w = World::new();
    let vip_underlay = w.state.create_vip("vm1", v4("45.0.0.1"), None).unwrap();
    w.state
        .create_lb_prefix("vm1", "45.0.1.1/32".parse().unwrap(), None)
        .unwrap();
    w.publish();
    w.run(VM1, &frame("10.0.0.1", "203.0.113.9", udp(1, 2)));
    w.run(VM2, &frame("10.0.0.2", "203.0.113.9", udp(1, 2)));
    assert_eq!(w.pipe.flows().len(), 2);
    w.state.delete_interface("vm1").unwrap();
    w.publish();
    w.run(VM2, &frame("10.0.0.2", "203.0.113.9", udp(1, 2)));
    assert_eq!(w.pipe.flows().len(), 1, "only vm2's flow is left");
    assert!(w.snap.vnf.is_empty() || !w.snap.vnf.contains_key(&vip_underlay));
    assert_eq!(w.snap.vnf.len(), 1, "vm2's own underlay address only");
    // The VIP is free for another interface.
    w.state.create_vip("vm2", v4("45.0.0.1"), None).unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    /// A guest (0: vm1, 1: vm2) opens a flow from a port to a destination.
    Open {
        vm: usize,
        sport: u16,
        dst: u8,
        tcp: bool,
    },
    /// Time passes.
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..2usize, 0..6u16, 0..4u8, any::<bool>())
            .prop_map(|(vm, sport, dst, tcp)| Op::Open { vm, sport, dst, tcp }),
        1 => (1..40u64).prop_map(Op::Wait),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Two interfaces share a NAT IP with overlapping ranges of four ports.
    /// Whatever flows open and expire: no (NAT IP, port, protocol) is ever
    /// bound to two inside endpoints at once, an endpoint keeps its port
    /// while it has flows, and the answer to every live translated flow
    /// reaches the endpoint that opened it.
    #[test]
    fn nat_never_shares_a_port_and_always_maps_answers_back(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut w = World::new();
        let u1 = w.state.create_nat("vm1", v4("45.0.0.5"), 1000, 1004, None).unwrap();
        let u2 = w.state.create_nat("vm2", v4("45.0.0.5"), 1002, 1006, None).unwrap();
        w.publish();
        let vms = [(VM1, "10.0.0.1", u1), (VM2, "10.0.0.2", u2)];
        for op in ops {
            match op {
                Op::Wait(s) => {
                    w.now += Duration::from_secs(s);
                    let mut none: Vec<Packet> = Vec::new();
                    let mut v = Vec::new();
                    for _ in 0..4 {
                        w.pipe.process_batch(&w.snap, w.now, &mut none, &mut v);
                    }
                }
                Op::Open { vm, sport, dst, tcp: is_tcp } => {
                    let (port, addr, underlay) = vms[vm];
                    let dst = format!("203.0.113.{}", 10 + dst);
                    let l4 = |s, d| if is_tcp { tcp(s, d) } else { udp(s, d) };
                    let (v, out) = w.run(port, &frame(addr, &dst, l4(5000 + sport, 80)));
                    if v == Verdict::Drop(DropReason::NatPortsExhausted) {
                        continue;
                    }
                    prop_assert_eq!(v, Verdict::Tx(PF0));
                    let s = seen(&out);
                    prop_assert_eq!(s.src, v4("45.0.0.5"));
                    let range = if vm == 0 { 1000..1004 } else { 1002..1006 };
                    prop_assert!(range.contains(&s.sport));
                    let back = tunnel(&w, REMOTE, underlay, &frame(&dst, "45.0.0.5", l4(80, s.sport)));
                    let (v, out) = w.run(PF0, &back);
                    prop_assert_eq!(v, Verdict::Tx(port));
                    let b = seen(&out);
                    prop_assert_eq!((b.dst, b.dport), (v4(addr), 5000 + sport));
                }
            }
            // Invariant over the live flows.
            let mut owner: HashMap<(IpAddr, u16, u8), (IpAddr, u16)> = HashMap::new();
            for e in w.pipe.flows().entries() {
                if let FlowAction::SrcNat { addr, port: Some(p) } = e.action {
                    let inside = (e.key.src, e.key.src_port);
                    let prev = owner.insert((addr, p, e.key.protocol), inside);
                    prop_assert!(prev.is_none_or(|x| x == inside), "shared {:?}", (addr, p));
                }
            }
        }
    }
}

/// An IPv6 frame from the router: `l4` from `src` to `dst`.
fn v6_frame(w: &World, src: Ipv6Addr, dst: Ipv6Addr, l4: L4Spec) -> Vec<u8> {
    FrameSpec {
        eth_src: ROUTER,
        eth_dst: w.pf_mac(),
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        ttl: 60,
        l4,
        payload: vec![0xa5; 24],
    }
    .to_vec()
    .unwrap()
}

/// (src, dst, next header, sport, dport) of an unencapsulated IPv6 frame,
/// its transport checksum verified.
fn seen_v6(frame: &[u8]) -> (Ipv6Addr, Ipv6Addr, u8, u16, u16) {
    assert_eq!(u16::from_be_bytes([frame[12], frame[13]]), 0x86dd);
    let ip = &frame[14..];
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
    let len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let l4 = &ip[40..40 + len];
    let acc =
        ironnet_overlay::wire::checksum::pseudo_header_v6(src, dst, ip[6], len as u32) + sum(l4);
    assert_eq!(finish(acc), 0, "L4 checksum over the IPv6 pseudo-header");
    (
        src,
        dst,
        ip[6],
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    )
}

#[test]
fn virtual_services_replace_headers_both_ways() {
    use ironnet_dp::virtsvc::{ServiceProtocol, VirtualService, VirtualServices, service_underlay};
    let mut config = DpConfig::tap(v6(HOST), 2);
    config.virtual_services = std::sync::Arc::new(
        VirtualServices::new(vec![
            VirtualService::parse(ServiceProtocol::Tcp, "169.254.169.254,80,fc00:b::5,8080")
                .unwrap(),
            VirtualService::parse(ServiceProtocol::Udp, "169.254.169.254,53,fc00:b::53,5353")
                .unwrap(),
        ])
        .unwrap(),
    );
    let mut w = World::with_config(config);
    let tcp_svc = service_underlay(v6(HOST), 0);
    let udp_svc = service_underlay(v6(HOST), 1);

    // Out: the IPv4 header becomes IPv6, one source port per guest endpoint.
    let (v, out) = w.run(VM1, &frame("10.0.0.1", "169.254.169.254", tcp(40000, 80)));
    assert_eq!(v, Verdict::Tx(PF0));
    assert_eq!(&out[0..6], &ROUTER.0, "to the router");
    assert_eq!(seen_v6(&out), (tcp_svc, v6("fc00:b::5"), 6, 1024, 8080));
    let mut f2 = frame("10.0.0.2", "169.254.169.254", tcp(40000, 80));
    f2[6..12].copy_from_slice(&GUEST2.0);
    let (v, out) = w.run(VM2, &f2);
    assert_eq!(v, Verdict::Tx(PF0));
    assert_eq!(seen_v6(&out).3, 1025);
    let (_, out) = w.run(VM1, &frame("10.0.0.1", "169.254.169.254", udp(5000, 53)));
    assert_eq!(seen_v6(&out), (udp_svc, v6("fc00:b::53"), 17, 1024, 5353));

    // Back: the service's answers reach the right guest as IPv4.
    let synack = L4Spec::Tcp {
        src_port: 8080,
        dst_port: 1025,
        seq: 9,
        ack: 2,
        flags: TcpFlags(TcpFlags::SYN | TcpFlags::ACK),
        window: 1000,
    };
    let (v, back) = w.run(PF0, &v6_frame(&w, v6("fc00:b::5"), tcp_svc, synack));
    assert_eq!(v, Verdict::Tx(VM2));
    assert_eq!(&back[0..6], &GUEST2.0);
    let s = seen(&back);
    assert_eq!(
        (s.outer, s.src, s.dst, s.protocol, s.sport, s.dport),
        (None, v4("169.254.169.254"), v4("10.0.0.2"), 6, 80, 40000)
    );
    let (v, back) = w.run(
        PF0,
        &v6_frame(&w, v6("fc00:b::53"), udp_svc, udp(5353, 1024)),
    );
    assert_eq!(v, Verdict::Tx(VM1));
    let s = seen(&back);
    assert_eq!(
        (s.src, s.dst, s.sport, s.dport),
        (v4("169.254.169.254"), v4("10.0.0.1"), 53, 5000)
    );

    // Not answers: an unused slot, the wrong service port or address.
    for bad in [
        v6_frame(&w, v6("fc00:b::5"), tcp_svc, tcp(8080, 1030)),
        v6_frame(&w, v6("fc00:b::5"), tcp_svc, tcp(8081, 1024)),
        v6_frame(&w, v6("fc00:b::6"), tcp_svc, tcp(8080, 1024)),
        v6_frame(&w, v6("fc00:b::5"), udp_svc, tcp(8080, 1024)),
    ] {
        assert_eq!(w.run(PF0, &bad).0, Verdict::Drop(DropReason::NoFlow));
    }
    // Plain IPv6 to other underlay addresses is still not ours.
    let (v, _) = w.run(PF0, &v6_frame(&w, v6("fc00:b::5"), v6(HOST), udp(1, 2)));
    assert_eq!(v, Verdict::Drop(DropReason::UntunnelledOnPf));
    // Another port on the service address is routed as usual (default route).
    let (v, out) = w.run(VM1, &frame("10.0.0.1", "169.254.169.254", tcp(40000, 81)));
    assert_eq!(v, Verdict::Tx(PF0));
    assert!(seen(&out).outer.is_some(), "encapsulated, not translated");

    // Deleting the interface frees its connections at once.
    w.state.delete_interface("vm2").unwrap();
    w.publish();
    let (v, _) = w.run(
        PF0,
        &v6_frame(&w, v6("fc00:b::5"), tcp_svc, tcp(8080, 1025)),
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoFlow));
    // Idle connections expire after the flow timeout.
    w.now += Duration::from_secs(31);
    let (v, _) = w.run(
        PF0,
        &v6_frame(&w, v6("fc00:b::53"), udp_svc, udp(5353, 1024)),
    );
    assert_eq!(v, Verdict::Drop(DropReason::NoFlow));
}

//! The pipeline with built packets: every path of the dp core and its
//! malformed-input behaviour.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use ironnet_dp::firewall::{FirewallRule, PortRange, ProtocolMatch, RuleAction, RuleDirection};
use ironnet_dp::pipeline::{DropReason, GATEWAY_V4, GATEWAY_V6, Packet, Pipeline, Verdict};
use ironnet_dp::state::{ExternalRoute, InterfaceSpec};
use ironnet_dp::{DpConfig, DpState, Snapshot};
use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::dhcpv4::{BootOp, Dhcpv4Packet, Dhcpv4Repr, MessageType};
use ironnet_overlay::wire::dhcpv6::{self, Dhcpv6Packet, Dhcpv6Repr, IaNa};
use ironnet_overlay::wire::icmpv6::NdpRepr;
use ironnet_overlay::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv6Message, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr, TcpFlags,
    UdpPacket,
};
use proptest::prelude::*;

const PF0: u16 = 0;
const VM1: u16 = 2;
const VM2: u16 = 3;
const VM3: u16 = 4;
const GUEST1: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 1]);
const GUEST2: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 2]);
const ROUTER: MacAddr = MacAddr([0x02, 0xee, 0, 0, 0, 1]);

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

struct World {
    state: DpState,
    snap: Snapshot,
    pipe: Pipeline,
    vm1_underlay: Ipv6Addr,
}

fn spec(id: &str, device: &str, ipv4: Option<&str>, ipv6: Option<&str>) -> InterfaceSpec {
    InterfaceSpec {
        id: id.into(),
        vni: vni(100),
        ipv4: ipv4.map(v4),
        ipv6: ipv6.map(v6),
        device: device.into(),
        preferred_underlay: None,
        pxe: None,
        hostname: Some(format!("{id}-host")),
    }
}

/// Two interfaces in VNI 100 (ports 2 and 3), one IPv4-only (port 4), a
/// default route to another host, both guests' MACs learned.
fn world(underlay_mtu: u16) -> World {
    let mut config = DpConfig::tap(v6("fc00:1::1"), 4);
    config.dhcp_dns = vec![v4("8.8.8.8")];
    config.dhcpv6_dns = vec![v6("2001:4860:4860::6464")];
    config.dhcp_mtu = 1337;
    config.underlay_mtu = underlay_mtu;
    let mut state = DpState::new(config, 1);
    state.initialize();
    let (vm1_underlay, _) = state
        .create_interface(spec(
            "vm1",
            "net_tap2",
            Some("10.0.0.1"),
            Some("2001:db8::1"),
        ))
        .unwrap();
    state
        .create_interface(spec(
            "vm2",
            "net_tap3",
            Some("10.0.0.2"),
            Some("2001:db8::2"),
        ))
        .unwrap();
    state
        .create_interface(spec("vm3", "net_tap4", Some("10.0.0.3"), None))
        .unwrap();
    for (prefix, hop) in [
        ("0.0.0.0/0", "fc00:2::10"),
        ("2001:db8:ff::/48", "fc00:2::10"),
    ] {
        state
            .create_route(ExternalRoute {
                vni: vni(100),
                prefix: prefix.parse().unwrap(),
                nexthop_vni: vni(100),
                nexthop: v6(hop),
            })
            .unwrap();
    }
    let snap = state.snapshot();
    let mut pipe = Pipeline::new();
    pipe.set_neighbor(VM1, GUEST1);
    pipe.set_neighbor(VM2, GUEST2);
    pipe.set_neighbor(PF0, ROUTER);
    World {
        state,
        snap,
        pipe,
        vm1_underlay,
    }
}

fn port_mac(w: &World, port: u16) -> MacAddr {
    w.snap.ports[usize::from(port)].mac
}

fn run(w: &mut World, port: u16, frame: Vec<u8>) -> (Verdict, Vec<u8>) {
    let mut p = Packet::new(port, &frame).unwrap();
    let v = w.pipe.process(&w.snap, Instant::now(), &mut p);
    (v, p.frame().to_vec())
}

fn udp(src: IpAddr, dst: IpAddr, ttl: u8, payload_len: usize) -> FrameSpec {
    FrameSpec {
        eth_src: GUEST1,
        eth_dst: MacAddr([0x66, 0x66, 0x66, 0x66, 0x66, 0x00]),
        src,
        dst,
        ttl,
        l4: L4Spec::Udp {
            src_port: 4000,
            dst_port: 5000,
        },
        payload: vec![0xab; payload_len],
    }
}

fn ip4(s: &str) -> IpAddr {
    IpAddr::V4(v4(s))
}

fn ip6(s: &str) -> IpAddr {
    IpAddr::V6(v6(s))
}

#[test]
fn arp_for_the_gateway_is_answered_and_teaches_the_guest_mac() {
    let mut w = world(1540);
    let mut pipe = Pipeline::new();
    std::mem::swap(&mut pipe, &mut w.pipe); // nothing learned
    let req = ArpRepr {
        operation: ArpOperation::Request,
        sender_mac: GUEST1,
        sender_ip: v4("10.0.0.1"),
        target_mac: MacAddr::ZERO,
        target_ip: GATEWAY_V4,
    };
    let eth = EthernetRepr {
        src: GUEST1,
        dst: MacAddr::BROADCAST,
        vlan: None,
        ethertype: EtherType::ARP,
    };
    let mut frame = vec![0u8; 14 + req.buffer_len()];
    eth.emit(&mut frame);
    req.emit(&mut frame[14..]);
    let (v, out) = run(&mut w, VM1, frame.clone());
    assert_eq!(v, Verdict::Tx(VM1));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!((e.dst(), e.src()), (GUEST1, port_mac(&w, VM1)));
    let reply = ArpRepr::parse(&ArpPacket::new_checked(e.payload()).unwrap()).unwrap();
    assert_eq!(reply.operation, ArpOperation::Reply);
    assert_eq!(
        (reply.sender_ip, reply.sender_mac),
        (GATEWAY_V4, port_mac(&w, VM1))
    );
    assert_eq!(w.pipe.neighbor(VM1), Some(GUEST1));
    // From the guest's own address but not for the gateway: only learned.
    let mut other = frame;
    other[14 + 24..14 + 28].copy_from_slice(&[10, 0, 0, 9]);
    assert_eq!(
        run(&mut w, VM1, other.clone()).0,
        Verdict::Drop(DropReason::Consumed)
    );
    // Neither: ignored.
    other[14 + 14..14 + 18].copy_from_slice(&[10, 0, 0, 8]);
    assert_eq!(
        run(&mut w, VM1, other).0,
        Verdict::Drop(DropReason::ArpIgnored)
    );
}

fn dhcp_request(t: MessageType) -> Vec<u8> {
    let mut r = Dhcpv4Repr::empty(BootOp::Request);
    r.xid = 0x1234_5678;
    r.client_mac = GUEST1;
    r.message_type = Some(t);
    r.parameter_request_list = vec![1, 3, 6, 121];
    let mut payload = vec![0u8; r.buffer_len()];
    r.emit(&mut payload).unwrap();
    FrameSpec {
        eth_src: GUEST1,
        eth_dst: MacAddr::BROADCAST,
        src: ip4("0.0.0.0"),
        dst: ip4("255.255.255.255"),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: 68,
            dst_port: 67,
        },
        payload,
    }
    .to_vec()
    .unwrap()
}

fn dhcp_reply(frame: &[u8]) -> (Ipv4Packet<Vec<u8>>, Dhcpv4Repr) {
    let e = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(e.payload().to_vec()).unwrap();
    let udp = UdpPacket::new_checked(ip.payload().to_vec()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
    let repr = Dhcpv4Repr::parse(&Dhcpv4Packet::new_checked(udp.payload()).unwrap()).unwrap();
    (ip, repr)
}

#[test]
fn dhcpv4_offers_and_acks_the_interface_address() {
    let mut w = world(1540);
    let (v, out) = run(&mut w, VM1, dhcp_request(MessageType::Discover));
    assert_eq!(v, Verdict::Tx(VM1));
    let (ip, offer) = dhcp_reply(&out);
    assert_eq!((ip.src(), ip.dst()), (GATEWAY_V4, v4("10.0.0.1")));
    assert_eq!(offer.message_type, Some(MessageType::Offer));
    assert_eq!(offer.xid, 0x1234_5678);
    assert_eq!(offer.yiaddr, v4("10.0.0.1"));
    assert_eq!(offer.subnet_mask, Some(Ipv4Addr::BROADCAST));
    assert_eq!(offer.lease_time, Some(u32::MAX));
    assert_eq!(offer.server_id, Some(GATEWAY_V4));
    assert_eq!(offer.mtu, Some(1337));
    assert_eq!(offer.dns_servers, [v4("8.8.8.8")]);
    assert_eq!(offer.routers, [GATEWAY_V4]);
    assert_eq!(offer.hostname.as_deref(), Some(&b"vm1-host"[..]));
    let routes: Vec<String> = offer
        .classless_routes
        .iter()
        .map(|r| format!("{} via {}", r.destination, r.router))
        .collect();
    assert_eq!(
        routes,
        ["169.254.0.0/16 via 0.0.0.0", "0.0.0.0/0 via 169.254.0.1"]
    );
    let (_, ack) = dhcp_reply(&run(&mut w, VM1, dhcp_request(MessageType::Request)).1);
    assert_eq!(ack.message_type, Some(MessageType::Ack));
    assert_eq!(
        run(&mut w, VM1, dhcp_request(MessageType::Release)).0,
        Verdict::Drop(DropReason::DhcpIgnored)
    );
}

fn dhcpv6_solicit(rapid: bool) -> Vec<u8> {
    let mut r = Dhcpv6Repr::new(dhcpv6::MessageType::Solicit, 0x00ab_cdef);
    r.client_id = Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
    r.ia_na = vec![IaNa {
        iaid: 7,
        t1: 0,
        t2: 0,
        addresses: vec![],
        status: None,
    }];
    r.rapid_commit = rapid;
    let mut payload = vec![0u8; r.buffer_len()];
    r.emit(&mut payload).unwrap();
    FrameSpec {
        eth_src: GUEST1,
        eth_dst: MacAddr([0x33, 0x33, 0, 1, 0, 2]),
        src: ip6("fe80::2"),
        dst: ip6("ff02::1:2"),
        ttl: 1,
        l4: L4Spec::Udp {
            src_port: 546,
            dst_port: 547,
        },
        payload,
    }
    .to_vec()
    .unwrap()
}

fn dhcpv6_reply(frame: &[u8]) -> Dhcpv6Repr {
    let e = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst()), (GATEWAY_V6, v6("fe80::2")));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    Dhcpv6Repr::parse(&Dhcpv6Packet::new_checked(udp.payload()).unwrap()).unwrap()
}

#[test]
fn dhcpv6_advertises_the_interface_address() {
    let mut w = world(1540);
    let (v, out) = run(&mut w, VM1, dhcpv6_solicit(false));
    assert_eq!(v, Verdict::Tx(VM1));
    let adv = dhcpv6_reply(&out);
    assert_eq!(adv.msg_type, dhcpv6::MessageType::Advertise);
    assert_eq!(adv.xid, 0x00ab_cdef);
    assert_eq!(adv.ia_na[0].iaid, 7);
    assert_eq!(adv.ia_na[0].addresses[0].addr, v6("2001:db8::1"));
    assert_eq!(
        adv.dns_servers.as_deref(),
        Some(&[v6("2001:4860:4860::6464")][..])
    );
    assert_eq!(
        adv.client_id.as_deref(),
        Some(&[0, 3, 0, 1, 2, 0, 0, 0, 0, 1][..])
    );
    // Rapid commit: REPLY at once.
    let rep = dhcpv6_reply(&run(&mut w, VM1, dhcpv6_solicit(true)).1);
    assert_eq!(rep.msg_type, dhcpv6::MessageType::Reply);
    assert!(rep.rapid_commit);
    // No IPv6 on the interface: NoAddrsAvail so the client stops asking.
    let none = dhcpv6_reply(&run(&mut w, VM3, dhcpv6_solicit(false)).1);
    assert_eq!(none.status.unwrap().code, dhcpv6::status::NO_ADDRS_AVAIL);
}

fn nd(message: Icmpv6Message, src: &str, dst: &str) -> Vec<u8> {
    let repr = Icmpv6Repr { message, data: &[] };
    let mut icmp = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmp, v6(src), v6(dst));
    FrameSpec {
        eth_src: GUEST1,
        eth_dst: MacAddr([0x33, 0x33, 0xff, 0, 0, 1]),
        src: ip6(src),
        dst: ip6(dst),
        ttl: 255,
        l4: L4Spec::Raw(IpProtocol::ICMPV6),
        payload: icmp,
    }
    .to_vec()
    .unwrap()
}

fn icmpv6_of(frame: &[u8]) -> (Ipv6Addr, Ipv6Addr, Vec<u8>) {
    let e = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv6Packet::new_checked(e.payload()).unwrap();
    (ip.src(), ip.dst(), ip.payload().to_vec())
}

#[test]
fn neighbor_and_router_solicitations_are_answered() {
    let mut w = world(1540);
    let ns = nd(
        Icmpv6Message::NeighborSolicit {
            target: GATEWAY_V6,
            options: NdpRepr {
                source_ll: Some(GUEST1),
                ..NdpRepr::default()
            },
        },
        "fe80::2",
        "ff02::1:ff00:1",
    );
    let (v, out) = run(&mut w, VM1, ns);
    assert_eq!(v, Verdict::Tx(VM1));
    let (src, dst, body) = icmpv6_of(&out);
    assert_eq!((src, dst), (GATEWAY_V6, v6("fe80::2")));
    let na = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&body[..]).unwrap(), src, dst).unwrap();
    match na.message {
        Icmpv6Message::NeighborAdvert {
            flags,
            target,
            options,
        } => {
            assert_eq!(target, GATEWAY_V6);
            assert_eq!(flags & 0xe0, 0xe0, "router, solicited, override");
            assert_eq!(options.target_ll, Some(port_mac(&w, VM1)));
        }
        other => panic!("{other:?}"),
    }
    let rs = nd(
        Icmpv6Message::RouterSolicit {
            options: NdpRepr::default(),
        },
        "fe80::2",
        "ff02::2",
    );
    let (_, out) = run(&mut w, VM1, rs);
    let (src, dst, body) = icmpv6_of(&out);
    let ra = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&body[..]).unwrap(), src, dst).unwrap();
    assert!(matches!(
        ra.message,
        Icmpv6Message::RouterAdvert {
            managed: true,
            other_config: true,
            ..
        }
    ));
}

#[test]
fn guest_to_guest_on_one_host() {
    let mut w = world(1540);
    for (src, dst) in [
        (ip4("10.0.0.1"), ip4("10.0.0.2")),
        (ip6("2001:db8::1"), ip6("2001:db8::2")),
    ] {
        let (v, out) = run(&mut w, VM1, udp(src, dst, 64, 32).to_vec().unwrap());
        assert_eq!(v, Verdict::Tx(VM2));
        let e = EthernetFrame::new_checked(&out[..]).unwrap();
        assert_eq!((e.src(), e.dst()), (port_mac(&w, VM2), GUEST2));
        let ttl = match dst {
            IpAddr::V4(_) => Ipv4Packet::new_checked(e.payload()).unwrap().ttl(),
            IpAddr::V6(_) => Ipv6Packet::new_checked(e.payload()).unwrap().hop_limit(),
        };
        assert_eq!(ttl, 63);
    }
}

#[test]
fn guest_to_remote_host_is_encapsulated() {
    let mut w = world(1540);
    for (src, dst, nh) in [
        (ip4("10.0.0.1"), ip4("192.0.2.7"), IpProtocol::IPV4),
        (ip6("2001:db8::1"), ip6("2001:db8:ff::9"), IpProtocol::IPV6),
    ] {
        let (v, out) = run(&mut w, VM1, udp(src, dst, 64, 32).to_vec().unwrap());
        assert_eq!(v, Verdict::Tx(PF0));
        let e = EthernetFrame::new_checked(&out[..]).unwrap();
        assert_eq!(
            (e.src(), e.dst(), e.ethertype()),
            (port_mac(&w, PF0), ROUTER, EtherType::IPV6)
        );
        let outer = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert_eq!(
            (outer.src(), outer.dst()),
            (w.vm1_underlay, v6("fc00:2::10"))
        );
        assert_eq!((outer.next_header(), outer.hop_limit()), (nh, 64));
    }
}

/// `inner` as host fc00:2::10 sends it to vm1 through the tunnel.
fn from_remote(w: &World, inner: &[u8]) -> Vec<u8> {
    let mut buf = PacketBuf::new([&[0u8; 64][..], inner].concat(), 64, inner.len()).unwrap();
    let params = EncapParams {
        eth_src: ROUTER,
        eth_dst: port_mac(w, PF0),
        src: v6("fc00:2::10"),
        dst: w.vm1_underlay,
    };
    encap::encapsulate(&mut buf, &params).unwrap();
    buf.data().to_vec()
}

#[test]
fn remote_host_to_guest_is_decapsulated() {
    let mut w = world(1540);
    let inner = udp(ip4("192.0.2.7"), ip4("10.0.0.1"), 20, 32)
        .to_vec()
        .unwrap();
    let frame = from_remote(&w, &inner);
    let (v, out) = run(&mut w, PF0, frame.clone());
    assert_eq!(v, Verdict::Tx(VM1));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!(
        (e.src(), e.dst(), e.ethertype()),
        (port_mac(&w, VM1), GUEST1, EtherType::IPV4)
    );
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert_eq!((ip.dst(), ip.ttl()), (v4("10.0.0.1"), 19));
    assert!(ip.verify_checksum());
    // An underlay address nobody owns, and plain IPv4 on the uplink.
    let mut stranger = frame;
    stranger[14 + 24 + 15] ^= 0xff;
    assert_eq!(
        run(&mut w, PF0, stranger).0,
        Verdict::Drop(DropReason::UnknownUnderlay)
    );
    assert_eq!(
        run(&mut w, PF0, inner).0,
        Verdict::Drop(DropReason::UntunnelledOnPf)
    );
}

/// The frame with the IPv4 don't-fragment bit set or cleared.
fn with_df(frame: &[u8], df: bool) -> Vec<u8> {
    let mut f = frame.to_vec();
    if df {
        f[14 + 6] |= 0x40;
    } else {
        f[14 + 6] &= !0x40;
    }
    f[14 + 10] = 0;
    f[14 + 11] = 0;
    let cks = ironnet_overlay::wire::checksum::checksum(&f[14..34]);
    f[14 + 10..14 + 12].copy_from_slice(&cks.to_be_bytes());
    f
}

#[test]
fn a_router_answers_with_icmp_errors() {
    let mut w = world(1400);
    // TTL 1: time exceeded, from the gateway, quoting the packet.
    let dying = udp(ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 32)
        .to_vec()
        .unwrap();
    let (v, out) = run(&mut w, VM1, dying.clone());
    assert_eq!(v, Verdict::Tx(VM1));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst()), (GATEWAY_V4, v4("10.0.0.1")));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.code()), (11, 0));
    assert_eq!(icmp.data(), &dying[14..]);
    // Too big for a 1400-byte underlay with DF: fragmentation needed, MTU 1360.
    let mut big = udp(ip4("10.0.0.1"), ip4("192.0.2.7"), 64, 1372);
    big.payload.truncate(1372);
    let big = big.to_vec().unwrap();
    let df = with_df(&big, true);
    let (v, out) = run(&mut w, VM1, df);
    assert_eq!(v, Verdict::Tx(VM1));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.code()), (3, 4));
    assert_eq!(u16::from_be_bytes([ip.payload()[6], ip.payload()[7]]), 1360);
    // Without DF it is fragmented, then each fragment encapsulated: every
    // outer packet fits the 1400-byte underlay.
    let (v, first) = run(&mut w, VM1, with_df(&big, false));
    assert_eq!(v, Verdict::Tx(PF0));
    let rest: Vec<_> = w.pipe.drain_extra().collect();
    assert_eq!(rest.len(), 1);
    let mut inner_bytes = 0;
    for frame in std::iter::once(first).chain(rest.iter().map(|(port, p)| {
        assert_eq!(*port, PF0);
        p.frame().to_vec()
    })) {
        let e = EthernetFrame::new_checked(&frame[..]).unwrap();
        let outer = Ipv6Packet::new_checked(e.payload()).unwrap();
        assert!(outer.total_len() <= 1400, "{}", outer.total_len());
        let inner = Ipv4Packet::new_checked(outer.payload()).unwrap();
        assert!(inner.verify_checksum());
        assert_eq!(inner.ttl(), 63);
        inner_bytes += inner.payload().len();
    }
    assert_eq!(inner_bytes, 8 + 1372, "UDP header and payload, once");
    // IPv6: packet too big.
    let big6 = udp(ip6("2001:db8::1"), ip6("2001:db8:ff::9"), 64, 1400)
        .to_vec()
        .unwrap();
    let (v, out) = run(&mut w, VM1, big6);
    assert_eq!(v, Verdict::Tx(VM1));
    let (src, _, body) = icmpv6_of(&out);
    assert_eq!((src, body[0]), (GATEWAY_V6, 2));
    assert_eq!(
        u32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        1360
    );
}

#[test]
fn no_route_is_destination_unreachable() {
    let mut w = world(1540);
    // A VNI without a default route.
    w.state
        .create_interface(InterfaceSpec {
            vni: vni(200),
            ..spec("lonely", "net_tap5", Some("10.9.0.1"), None)
        })
        .unwrap();
    w.snap = w.state.snapshot();
    w.pipe.set_neighbor(5, GUEST1);
    let (v, out) = run(
        &mut w,
        5,
        udp(ip4("10.9.0.1"), ip4("192.0.2.7"), 64, 8)
            .to_vec()
            .unwrap(),
    );
    assert_eq!(v, Verdict::Tx(5));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.code()), (3, 0));
    // An ICMP error about an ICMP error is never sent.
    let (v2, _) = run(&mut w, 5, {
        let mut f = out.clone();
        // Turn it around: from the guest to nowhere.
        let (a, b) = (f[14 + 12..14 + 16].to_vec(), f[14 + 16..14 + 20].to_vec());
        f[14 + 12..14 + 16].copy_from_slice(&b);
        f[14 + 16..14 + 20].copy_from_slice(&a);
        f[14 + 16..14 + 20].copy_from_slice(&[192, 0, 2, 7]);
        f
    });
    assert!(matches!(v2, Verdict::Drop(_)), "{v2:?}");
}

#[test]
fn the_gateway_answers_ping() {
    let mut w = world(1540);
    let ping = FrameSpec {
        eth_src: GUEST1,
        eth_dst: port_mac(&w, VM1),
        src: ip4("10.0.0.1"),
        dst: IpAddr::V4(GATEWAY_V4),
        ttl: 64,
        l4: L4Spec::Echo {
            request: true,
            ident: 9,
            seq: 3,
        },
        payload: b"hello".to_vec(),
    };
    let (v, out) = run(&mut w, VM1, ping.to_vec().unwrap());
    assert_eq!(v, Verdict::Tx(VM1));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    let ip = Ipv4Packet::new_checked(e.payload()).unwrap();
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (ip.src(), icmp.msg_type(), icmp.echo_ident(), icmp.data()),
        (GATEWAY_V4, 0, 9, &b"hello"[..])
    );
}

#[test]
fn counters_track_drops_by_reason() {
    let mut w = world(1540);
    run(&mut w, VM1, vec![0u8; 5]);
    run(
        &mut w,
        PF0,
        udp(ip4("1.1.1.1"), ip4("10.0.0.1"), 64, 1)
            .to_vec()
            .unwrap(),
    );
    let c = w.pipe.counters();
    assert_eq!(c.drops.get(&DropReason::Malformed), Some(&1));
    assert_eq!(c.drops.get(&DropReason::UntunnelledOnPf), Some(&1));
    assert_eq!(c.rx[usize::from(VM1)], 1);
}

proptest! {
    #[test]
    fn arbitrary_bytes_on_any_port_never_panic(
        port in 0u16..7,
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut w = world(1540);
        let mut p = Packet::new(port, &bytes).unwrap();
        let _ = w.pipe.process(&w.snap, Instant::now(), &mut p);
    }

    #[test]
    fn flipped_bytes_of_valid_frames_never_panic(
        port in 0u16..6,
        which in 0usize..4,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let mut w = world(1540);
        let mut frame = match which {
            0 => dhcp_request(MessageType::Discover),
            1 => dhcpv6_solicit(false),
            2 => udp(ip4("10.0.0.1"), ip4("192.0.2.7"), 64, 40).to_vec().unwrap(),
            _ => udp(ip6("2001:db8::1"), ip6("2001:db8::2"), 64, 40).to_vec().unwrap(),
        };
        for (i, x) in flips {
            let n = frame.len();
            frame[i % n] ^= x;
        }
        let mut p = Packet::new(port, &frame).unwrap();
        let _ = w.pipe.process(&w.snap, Instant::now(), &mut p);
    }
}

#[test]
fn flows_are_tracked_both_ways_bounded_and_aged() {
    use ironnet_dp::pipeline::conntrack::Timeouts;
    use std::time::Duration;
    let mut w = world(1540);
    w.pipe = Pipeline::with_flows(
        2,
        Timeouts {
            tcp_established: Duration::from_secs(86_400),
            other: Duration::from_secs(30),
        },
    );
    w.pipe.set_neighbor(VM1, GUEST1);
    w.pipe.set_neighbor(VM2, GUEST2);
    let t0 = Instant::now();
    let at = |w: &mut World, port: u16, frame: Vec<u8>, t: Instant| {
        let mut p = Packet::new(port, &frame).unwrap();
        w.pipe.process(&w.snap, t, &mut p)
    };
    let there = udp(ip4("10.0.0.1"), ip4("10.0.0.2"), 64, 8)
        .to_vec()
        .unwrap();
    let mut back_spec = udp(ip4("10.0.0.2"), ip4("10.0.0.1"), 64, 8);
    back_spec.l4 = L4Spec::Udp {
        src_port: 5000,
        dst_port: 4000,
    };
    assert_eq!(at(&mut w, VM1, there.clone(), t0), Verdict::Tx(VM2));
    assert_eq!(
        at(&mut w, VM2, back_spec.to_vec().unwrap(), t0),
        Verdict::Tx(VM1)
    );
    assert_eq!(
        w.pipe.flows().len(),
        1,
        "the reply belongs to the same flow"
    );
    let other = udp(ip4("10.0.0.1"), ip4("10.0.0.2"), 64, 8);
    let mut second = other.clone();
    second.l4 = L4Spec::Udp {
        src_port: 4001,
        dst_port: 5000,
    };
    let mut third = other;
    third.l4 = L4Spec::Udp {
        src_port: 4002,
        dst_port: 5000,
    };
    assert_eq!(
        at(&mut w, VM1, second.to_vec().unwrap(), t0),
        Verdict::Tx(VM2)
    );
    assert_eq!(
        at(&mut w, VM1, third.to_vec().unwrap(), t0),
        Verdict::Drop(DropReason::FlowTableFull)
    );
    // 31 s later an (empty) batch ages both flows out; new flows fit again.
    let mut verdicts = Vec::new();
    w.pipe.process_batch(
        &w.snap,
        t0 + Duration::from_secs(31),
        &mut [],
        &mut verdicts,
    );
    assert_eq!(w.pipe.flows().len(), 0);
    assert_eq!(
        at(
            &mut w,
            VM1,
            third.to_vec().unwrap(),
            t0 + Duration::from_secs(31)
        ),
        Verdict::Tx(VM2)
    );
    assert_eq!(
        w.pipe.counters().drops.get(&DropReason::FlowTableFull),
        Some(&1)
    );
}

#[test]
fn a_tunnelled_packet_out_of_ttl_gets_time_exceeded_back_through_the_tunnel() {
    let mut w = world(1540);
    let inner = udp(ip4("192.0.2.7"), ip4("10.0.0.1"), 1, 32)
        .to_vec()
        .unwrap();
    let frame = from_remote(&w, &inner);
    let (v, out) = run(&mut w, PF0, frame);
    assert_eq!(v, Verdict::Tx(PF0));
    let e = EthernetFrame::new_checked(&out[..]).unwrap();
    assert_eq!((e.src(), e.dst()), (port_mac(&w, PF0), ROUTER));
    let outer = Ipv6Packet::new_checked(e.payload()).unwrap();
    assert_eq!(
        (outer.src(), outer.dst()),
        (w.vm1_underlay, v6("fc00:2::10"))
    );
    let ip = Ipv4Packet::new_checked(outer.payload()).unwrap();
    assert_eq!((ip.src(), ip.dst()), (GATEWAY_V4, v4("192.0.2.7")));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.code()), (11, 0));
}

fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u16) -> Vec<u8> {
    FrameSpec {
        eth_src: GUEST1,
        eth_dst: MacAddr([0x66, 0x66, 0x66, 0x66, 0x66, 0x00]),
        src: ip4(src),
        dst: ip4(dst),
        ttl: 64,
        l4: L4Spec::Tcp {
            src_port: sport,
            dst_port: dport,
            seq: 1,
            ack: 0,
            flags: TcpFlags(flags),
            window: 1000,
        },
        payload: vec![],
    }
    .to_vec()
    .unwrap()
}

fn rule(
    id: &str,
    direction: RuleDirection,
    action: RuleAction,
    priority: u16,
    protocol: ProtocolMatch,
) -> FirewallRule {
    FirewallRule {
        id: id.into(),
        direction,
        action,
        priority,
        src: "0.0.0.0/0".parse().unwrap(),
        dst: "0.0.0.0/0".parse().unwrap(),
        protocol,
    }
}

fn tcp_to(port: u16) -> ProtocolMatch {
    ProtocolMatch::Tcp {
        src: PortRange::ANY,
        dst: PortRange { lo: port, hi: port },
    }
}

#[test]
fn the_firewall_decides_on_the_first_packet_for_both_directions() {
    const SYN: u16 = 0x002;
    const ACK: u16 = 0x010;
    let mut w = world(1540);
    // vm1 may open HTTPS only; it takes SSH from anywhere.
    w.state
        .create_firewall_rule(
            "vm1",
            rule(
                "out-https",
                RuleDirection::Egress,
                RuleAction::Accept,
                10,
                tcp_to(443),
            ),
        )
        .unwrap();
    w.state
        .create_firewall_rule(
            "vm1",
            rule(
                "in-ssh",
                RuleDirection::Ingress,
                RuleAction::Accept,
                10,
                tcp_to(22),
            ),
        )
        .unwrap();
    w.snap = w.state.snapshot();

    let (v, _) = run(&mut w, VM1, tcp("10.0.0.1", "192.0.2.1", 40000, 443, SYN));
    assert_eq!(v, Verdict::Tx(PF0), "egress HTTPS accepted");
    let (v, _) = run(&mut w, VM1, tcp("10.0.0.1", "192.0.2.1", 40001, 80, SYN));
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Firewall),
        "egress HTTP dropped by default"
    );
    // The answer to the accepted flow comes in although no ingress rule
    // allows port 40000: the decision is the flow's.
    let reply = tcp("192.0.2.1", "10.0.0.1", 443, 40000, SYN | ACK);
    let (v, _) = {
        let f = from_remote(&w, &reply);
        run(&mut w, PF0, f)
    };
    assert_eq!(v, Verdict::Tx(VM1));
    // Unsolicited inbound: SSH accepted, anything else dropped.
    let ssh = tcp("192.0.2.1", "10.0.0.1", 50000, 22, SYN);
    assert_eq!(
        {
            let f = from_remote(&w, &ssh);
            run(&mut w, PF0, f)
        }
        .0,
        Verdict::Tx(VM1)
    );
    let smtp = tcp("192.0.2.1", "10.0.0.1", 50000, 25, SYN);
    assert_eq!(
        {
            let f = from_remote(&w, &smtp);
            run(&mut w, PF0, f)
        }
        .0,
        Verdict::Drop(DropReason::Firewall)
    );
    // vm1's answer to the SSH flow leaves although no egress rule allows
    // source port 22.
    let (v, _) = run(
        &mut w,
        VM1,
        tcp("10.0.0.1", "192.0.2.1", 22, 50000, SYN | ACK),
    );
    assert_eq!(v, Verdict::Tx(PF0));
    // Guest to guest: vm2 (no rules) to vm1 needs vm1's ingress rules.
    let mut to_vm1 = tcp("10.0.0.2", "10.0.0.1", 1234, 8080, SYN);
    to_vm1[6..12].copy_from_slice(&GUEST2.0);
    assert_eq!(
        run(&mut w, VM2, to_vm1).0,
        Verdict::Drop(DropReason::Firewall)
    );

    // A rule change takes effect on flows already decided.
    w.state.delete_firewall_rule("vm1", "out-https").unwrap();
    w.state
        .create_firewall_rule(
            "vm1",
            rule(
                "no-https",
                RuleDirection::Egress,
                RuleAction::Drop,
                5,
                tcp_to(443),
            ),
        )
        .unwrap();
    w.state
        .create_firewall_rule(
            "vm1",
            rule(
                "all",
                RuleDirection::Egress,
                RuleAction::Accept,
                20,
                ProtocolMatch::Any,
            ),
        )
        .unwrap();
    w.snap = w.state.snapshot();
    let (v, _) = run(&mut w, VM1, tcp("10.0.0.1", "192.0.2.1", 40000, 443, ACK));
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Firewall),
        "the lower priority value wins"
    );
    let (v, _) = run(&mut w, VM1, tcp("10.0.0.1", "192.0.2.1", 40001, 80, SYN));
    assert_eq!(v, Verdict::Tx(PF0), "the earlier drop is decided again");
}

#[test]
fn interfaces_without_rules_accept_everything() {
    let mut w = world(1540);
    let (v, _) = run(&mut w, VM1, tcp("10.0.0.1", "192.0.2.1", 40000, 25, 0x002));
    assert_eq!(v, Verdict::Tx(PF0));
    let inbound = tcp("192.0.2.1", "10.0.0.1", 50000, 25, 0x002);
    assert_eq!(
        {
            let f = from_remote(&w, &inbound);
            run(&mut w, PF0, f)
        }
        .0,
        Verdict::Tx(VM1)
    );
}

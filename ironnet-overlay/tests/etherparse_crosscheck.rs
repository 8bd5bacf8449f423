//! Cross-check against an independent implementation: frames built by
//! etherparse parse here with the same fields and verifying checksums, and
//! frames built here parse in etherparse with the same fields and with
//! checksums equal to etherparse's own computation.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::{
    EtherType, EthernetFrame, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv6Message, Icmpv6Packet,
    Icmpv6Repr, IpPair, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, MacAddr, TcpFlags,
    TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Udp,
    Tcp,
    Echo,
}

#[derive(Debug, Clone)]
struct Case {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    kind: Kind,
    a: u16,
    b: u16,
    seq: u32,
    window: u16,
    payload: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let addrs = prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)))),
        (any::<u128>(), any::<u128>())
            .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)))),
    ];
    let kind = prop_oneof![Just(Kind::Udp), Just(Kind::Tcp), Just(Kind::Echo)];
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        addrs,
        any::<u8>(),
        kind,
        (any::<u16>(), any::<u16>(), any::<u32>(), any::<u16>()),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(
            |(src_mac, dst_mac, (src, dst), ttl, kind, (a, b, seq, window), payload)| Case {
                src_mac,
                dst_mac,
                src,
                dst,
                ttl,
                kind,
                a,
                b,
                seq,
                window,
                payload,
            },
        )
}

fn build_with_etherparse(c: &Case) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(c.src_mac, c.dst_mac);
    let ip = match (c.src, c.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), c.ttl),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), c.ttl),
        _ => unreachable!(),
    };
    let mut out = Vec::new();
    match (c.kind, c.src.is_ipv4()) {
        (Kind::Udp, _) => ip.udp(c.a, c.b).write(&mut out, &c.payload).unwrap(),
        (Kind::Tcp, _) => ip
            .tcp(c.a, c.b, c.seq, c.window)
            .write(&mut out, &c.payload)
            .unwrap(),
        (Kind::Echo, true) => ip
            .icmpv4_echo_request(c.a, c.b)
            .write(&mut out, &c.payload)
            .unwrap(),
        (Kind::Echo, false) => ip
            .icmpv6_echo_request(c.a, c.b)
            .write(&mut out, &c.payload)
            .unwrap(),
    }
    out
}

fn build_with_ironnet(c: &Case) -> Vec<u8> {
    let l4 = match c.kind {
        Kind::Udp => L4Spec::Udp {
            src_port: c.a,
            dst_port: c.b,
        },
        Kind::Tcp => L4Spec::Tcp {
            src_port: c.a,
            dst_port: c.b,
            seq: c.seq,
            ack: 0,
            flags: TcpFlags(0),
            window: c.window,
        },
        Kind::Echo => L4Spec::Echo {
            request: true,
            ident: c.a,
            seq: c.b,
        },
    };
    FrameSpec {
        eth_src: MacAddr(c.src_mac),
        eth_dst: MacAddr(c.dst_mac),
        src: c.src,
        dst: c.dst,
        ttl: c.ttl,
        l4,
        payload: c.payload.clone(),
    }
    .to_vec()
    .unwrap()
}

proptest! {
    #[test]
    fn etherparse_frames_parse_here(c in case()) {
        let bytes = build_with_etherparse(&c);
        let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(eth.src(), MacAddr(c.src_mac));
        prop_assert_eq!(eth.dst(), MacAddr(c.dst_mac));
        let (addrs, l4) = match eth.ethertype() {
            EtherType::IPV4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                let repr = Ipv4Repr::parse(&ip).unwrap();
                prop_assert_eq!((IpAddr::V4(repr.src), IpAddr::V4(repr.dst), repr.ttl), (c.src, c.dst, c.ttl));
                (ip.addrs(), &eth.payload()[ip.header_len()..ip.total_len()])
            }
            EtherType::IPV6 => {
                let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
                let repr = Ipv6Repr::parse(&ip);
                prop_assert_eq!((IpAddr::V6(repr.src), IpAddr::V6(repr.dst), repr.hop_limit), (c.src, c.dst, c.ttl));
                prop_assert_eq!(ip.upper_layer().unwrap().offset, 40);
                (ip.addrs(), &eth.payload()[40..ip.total_len()])
            }
            other => return Err(TestCaseError::fail(format!("ethertype {other:?}"))),
        };
        match (c.kind, addrs) {
            (Kind::Udp, _) => {
                let p = UdpPacket::new_checked(l4).unwrap();
                let r = UdpRepr::parse(&p, &addrs).unwrap();
                prop_assert_eq!((r.src_port, r.dst_port), (c.a, c.b));
                prop_assert_eq!(p.payload(), &c.payload[..]);
            }
            (Kind::Tcp, _) => {
                let p = TcpPacket::new_checked(l4).unwrap();
                let r = TcpRepr::parse(&p, &addrs).unwrap();
                prop_assert_eq!((r.src_port, r.dst_port, r.seq, r.window), (c.a, c.b, c.seq, c.window));
                prop_assert_eq!(p.payload(), &c.payload[..]);
            }
            (Kind::Echo, IpPair::V4 { .. }) => {
                let p = Icmpv4Packet::new_checked(l4).unwrap();
                let r = Icmpv4Repr::parse(&p).unwrap();
                prop_assert_eq!(r.message, Icmpv4Message::EchoRequest { ident: c.a, seq: c.b });
                prop_assert_eq!(r.data, &c.payload[..]);
            }
            (Kind::Echo, IpPair::V6 { src, dst }) => {
                let p = Icmpv6Packet::new_checked(l4).unwrap();
                let r = Icmpv6Repr::parse(&p, src, dst).unwrap();
                prop_assert_eq!(r.message, Icmpv6Message::EchoRequest { ident: c.a, seq: c.b });
                prop_assert_eq!(r.data, &c.payload[..]);
            }
        }
    }

    #[test]
    fn frames_built_here_parse_in_etherparse(c in case()) {
        let bytes = build_with_ironnet(&c);
        let h = PacketHeaders::from_ethernet_slice(&bytes).unwrap();
        let link = h.link.clone().unwrap();
        let eth = link.ethernet2().unwrap();
        prop_assert_eq!((eth.source, eth.destination), (c.src_mac, c.dst_mac));
        let payload = h.payload.slice();
        prop_assert_eq!(payload, &c.payload[..]);
        match h.net.clone().unwrap() {
            NetHeaders::Ipv4(ip, _) => {
                prop_assert_eq!(IpAddr::V4(ip.source.into()), c.src);
                prop_assert_eq!(IpAddr::V4(ip.destination.into()), c.dst);
                prop_assert_eq!(ip.time_to_live, c.ttl);
                prop_assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                match h.transport.clone().unwrap() {
                    TransportHeader::Udp(u) => {
                        prop_assert_eq!((u.source_port, u.destination_port), (c.a, c.b));
                        let expect = u.calc_checksum_ipv4(&ip, payload).unwrap();
                        prop_assert_eq!(u.checksum, expect);
                    }
                    TransportHeader::Tcp(t) => {
                        prop_assert_eq!((t.source_port, t.destination_port, t.sequence_number), (c.a, c.b, c.seq));
                        prop_assert_eq!(t.checksum, t.calc_checksum_ipv4(&ip, payload).unwrap());
                    }
                    TransportHeader::Icmpv4(i) => {
                        let expect = etherparse::Icmpv4Header::with_checksum(i.icmp_type.clone(), payload);
                        prop_assert_eq!(i.checksum, expect.checksum);
                        prop_assert!(matches!(i.icmp_type, etherparse::Icmpv4Type::EchoRequest(e) if e.id == c.a && e.seq == c.b));
                    }
                    other => return Err(TestCaseError::fail(format!("transport {other:?}"))),
                }
            }
            NetHeaders::Ipv6(ip, _) => {
                prop_assert_eq!(IpAddr::V6(ip.source.into()), c.src);
                prop_assert_eq!(IpAddr::V6(ip.destination.into()), c.dst);
                prop_assert_eq!(ip.hop_limit, c.ttl);
                match h.transport.clone().unwrap() {
                    TransportHeader::Udp(u) => {
                        prop_assert_eq!(u.checksum, u.calc_checksum_ipv6(&ip, payload).unwrap());
                    }
                    TransportHeader::Tcp(t) => {
                        prop_assert_eq!(t.checksum, t.calc_checksum_ipv6(&ip, payload).unwrap());
                    }
                    TransportHeader::Icmpv6(i) => {
                        let expect = etherparse::Icmpv6Header::with_checksum(i.icmp_type, ip.source, ip.destination, payload).unwrap();
                        prop_assert_eq!(i.checksum, expect.checksum);
                    }
                    other => return Err(TestCaseError::fail(format!("transport {other:?}"))),
                }
            }
            NetHeaders::Arp(_) => return Err(TestCaseError::fail("arp")),
        }
        let _ = IpProtocol::UDP;
    }
}

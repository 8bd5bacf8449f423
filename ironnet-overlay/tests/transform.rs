//! Header transforms and encapsulation on generated frames: checksums stay
//! equal to a from-scratch computation after any sequence of rewrites,
//! encap → decap returns the original packet, and a refused transform
//! changes nothing.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams, HOP_LIMIT, OUTER_LEN};
use ironnet_overlay::transform::{EtherRewrite, HeaderTransform};
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::checksum;
use ironnet_overlay::wire::{
    EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet,
    MacAddr, TcpFlags, TcpPacket, UdpPacket, WireError,
};
use proptest::collection::vec;
use proptest::prelude::*;

const HEADROOM: usize = 64;

fn spec(v4: bool) -> impl Strategy<Value = FrameSpec> {
    let addrs = if v4 {
        (any::<u32>(), any::<u32>())
            .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b))))
            .boxed()
    } else {
        (any::<u128>(), any::<u128>())
            .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b))))
            .boxed()
    };
    let l4 = prop_oneof![
        (any::<u16>(), any::<u16>())
            .prop_map(|(src_port, dst_port)| L4Spec::Udp { src_port, dst_port }),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>()
        )
            .prop_map(|(s, d, seq, ack, window)| {
                L4Spec::Tcp {
                    src_port: s,
                    dst_port: d,
                    seq,
                    ack,
                    flags: TcpFlags(TcpFlags::ACK),
                    window,
                }
            }),
        (any::<bool>(), any::<u16>(), any::<u16>()).prop_map(|(request, ident, seq)| {
            L4Spec::Echo {
                request,
                ident,
                seq,
            }
        }),
    ];
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        addrs,
        2u8..=255,
        l4,
        vec(any::<u8>(), 0..200),
    )
        .prop_map(|(s, d, (src, dst), ttl, l4, payload)| FrameSpec {
            eth_src: MacAddr(s),
            eth_dst: MacAddr(d),
            src,
            dst,
            ttl,
            l4,
            payload,
        })
}

fn any_spec() -> impl Strategy<Value = FrameSpec> {
    prop_oneof![spec(true), spec(false)]
}

/// A packet buffer holding `frame` after `HEADROOM` bytes, with `extra`
/// bytes of Ethernet padding behind it.
fn packet(frame: &[u8], extra: usize) -> PacketBuf<Vec<u8>> {
    let mut buf = vec![0u8; HEADROOM + frame.len() + extra + 64];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    PacketBuf::new(buf, HEADROOM, frame.len() + extra).unwrap()
}

/// Every checksum of an Ethernet + IP + L4 frame, as stored and as
/// recomputed from scratch.
fn checksums(frame: &[u8]) -> Vec<(u16, u16)> {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let mut out = Vec::new();
    let (addrs, protocol, l4) = if eth.ethertype() == EtherType::IPV4 {
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let mut hdr = frame[14..14 + ip.header_len()].to_vec();
        let stored = ip.checksum();
        hdr[10] = 0;
        hdr[11] = 0;
        out.push((stored, checksum::checksum(&hdr)));
        (ip.addrs(), ip.protocol(), ip.payload().to_vec())
    } else {
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        (ip.addrs(), ip.next_header(), ip.payload().to_vec())
    };
    let mut copy = l4.clone();
    match protocol {
        IpProtocol::UDP => {
            let stored = UdpPacket::new_checked(&l4[..]).unwrap().checksum();
            let mut p = UdpPacket::new_checked(&mut copy[..]).unwrap();
            p.fill_checksum(&addrs);
            out.push((stored, p.checksum()));
        }
        IpProtocol::TCP => {
            let stored = TcpPacket::new_checked(&l4[..]).unwrap().checksum();
            let mut p = TcpPacket::new_checked(&mut copy[..]).unwrap();
            p.fill_checksum(&addrs);
            out.push((stored, p.checksum()));
        }
        IpProtocol::ICMP => {
            let stored = Icmpv4Packet::new_checked(&l4[..]).unwrap().checksum();
            let mut p = Icmpv4Packet::new_checked(&mut copy[..]).unwrap();
            p.fill_checksum();
            out.push((stored, p.checksum()));
        }
        IpProtocol::ICMPV6 => {
            let (src, dst) = match addrs {
                ironnet_overlay::wire::IpPair::V6 { src, dst } => (src, dst),
                _ => unreachable!(),
            };
            let stored = Icmpv6Packet::new_checked(&l4[..]).unwrap().checksum();
            let mut p = Icmpv6Packet::new_checked(&mut copy[..]).unwrap();
            p.fill_checksum(src, dst);
            out.push((stored, p.checksum()));
        }
        _ => {}
    }
    out
}

fn rewrite(v4: bool) -> impl Strategy<Value = HeaderTransform> {
    let addr = move || {
        if v4 {
            any::<u32>()
                .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .boxed()
        } else {
            any::<u128>()
                .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                .boxed()
        }
    };
    (
        proptest::option::of(addr()),
        proptest::option::of(addr()),
        proptest::option::of(any::<u16>()),
        any::<bool>(),
    )
        .prop_map(|(src_ip, dst_ip, port, src_side)| HeaderTransform {
            src_ip,
            dst_ip,
            src_port: port.filter(|_| src_side),
            dst_port: port.filter(|_| !src_side),
            ..HeaderTransform::default()
        })
}

fn frame_and_rewrites() -> impl Strategy<Value = (FrameSpec, Vec<HeaderTransform>)> {
    any::<bool>().prop_flat_map(|v4| (spec(v4), vec(rewrite(v4), 1..12)))
}

fn params() -> impl Strategy<Value = EncapParams> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        any::<u128>(),
        any::<u128>(),
    )
        .prop_map(|(s, d, a, b)| EncapParams {
            eth_src: MacAddr(s),
            eth_dst: MacAddr(d),
            src: Ipv6Addr::from(a),
            dst: Ipv6Addr::from(b),
        })
}

proptest! {
    #[test]
    fn incremental_checksums_match_full_recomputation((spec, rewrites) in frame_and_rewrites()) {
        let frame = spec.to_vec().unwrap();
        let mut pkt = packet(&frame, 0);
        for t in rewrites {
            t.apply(&mut pkt).unwrap();
            for (stored, fresh) in checksums(pkt.data()) {
                prop_assert!(checksum::equivalent(stored, fresh), "stored {:#06x} fresh {:#06x}", stored, fresh);
            }
            let eth = EthernetFrame::new_checked(pkt.data()).unwrap();
            let (src, dst) = if eth.ethertype() == EtherType::IPV4 {
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                prop_assert!(ip.verify_checksum());
                (IpAddr::V4(ip.src()), IpAddr::V4(ip.dst()))
            } else {
                let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
                (IpAddr::V6(ip.src()), IpAddr::V6(ip.dst()))
            };
            if let Some(a) = t.src_ip { prop_assert_eq!(src, a); }
            if let Some(a) = t.dst_ip { prop_assert_eq!(dst, a); }
        }
    }

    #[test]
    fn encap_then_decap_returns_the_original(spec in any_spec(), p in params(), padding in 0usize..20) {
        let frame = spec.to_vec().unwrap();
        let mut pkt = packet(&frame, padding);
        encap::encapsulate(&mut pkt, &p).unwrap();

        // The outer headers, field by field (dpservice's format).
        let d = pkt.data();
        prop_assert_eq!(d.len(), OUTER_LEN + frame.len() - 14);
        prop_assert_eq!(&d[0..6], &p.eth_dst.0);
        prop_assert_eq!(&d[6..12], &p.eth_src.0);
        prop_assert_eq!(&d[12..14], &[0x86, 0xdd]);
        let outer = Ipv6Packet::new_checked(&d[14..]).unwrap();
        prop_assert_eq!(outer.traffic_class(), 0);
        prop_assert_eq!(outer.flow_label(), 0);
        prop_assert_eq!(outer.hop_limit(), HOP_LIMIT);
        prop_assert_eq!(outer.payload_len(), frame.len() - 14);
        prop_assert_eq!(outer.next_header(), if spec.src.is_ipv4() { IpProtocol::IPV4 } else { IpProtocol::IPV6 });
        prop_assert_eq!((outer.src(), outer.dst()), (p.src, p.dst));
        prop_assert_eq!(&d[OUTER_LEN..], &frame[14..]);

        let info = encap::decapsulate(&mut pkt).unwrap();
        prop_assert_eq!((info.outer_src, info.outer_dst), (p.src, p.dst));
        // Decap keeps the outer MACs; the rest is the original frame.
        prop_assert_eq!(&pkt.data()[12..], &frame[12..]);
        prop_assert_eq!(pkt.headroom(), HEADROOM);
    }

    #[test]
    fn one_transform_equals_its_steps(spec in any_spec(), p in params(), q in params(), r in any::<u16>(), mac in any::<[u8; 6]>()) {
        let frame = spec.to_vec().unwrap();
        let dst_ip = if spec.src.is_ipv4() { IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
        let ether = EtherRewrite { src: MacAddr(mac), dst: MacAddr([2, 0, 0, 0, 0, 1]) };

        let mut a = packet(&frame, 0);
        encap::encapsulate(&mut a, &p).unwrap();
        let mut b = a.clone();
        let all = HeaderTransform {
            decap: true, dst_ip: Some(dst_ip), dst_port: Some(r), decrement_ttl: true,
            ether: Some(ether), encap: Some(q), ..HeaderTransform::default()
        };
        let applied = all.apply(&mut a).unwrap();
        prop_assert_eq!(applied.decapsulated.map(|d| d.outer_dst), Some(p.dst));

        encap::decapsulate(&mut b).unwrap();
        HeaderTransform { dst_ip: Some(dst_ip), dst_port: Some(r), decrement_ttl: true, ether: Some(ether), ..HeaderTransform::default() }
            .apply(&mut b).unwrap();
        encap::encapsulate(&mut b, &q).unwrap();
        prop_assert_eq!(a.data(), b.data());
    }

    #[test]
    fn nat_and_encap_in_one_transform_equal_their_steps(spec in any_spec(), p in params(), port in any::<u16>()) {
        let frame = spec.to_vec().unwrap();
        let src_ip = if spec.src.is_ipv4() { IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)) } else { IpAddr::V6(Ipv6Addr::LOCALHOST) };
        let mut a = packet(&frame, 3);
        let mut b = a.clone();
        HeaderTransform { src_ip: Some(src_ip), src_port: Some(port), encap: Some(p), ..HeaderTransform::default() }
            .apply(&mut a)
            .unwrap();
        HeaderTransform { src_ip: Some(src_ip), src_port: Some(port), ..HeaderTransform::default() }.apply(&mut b).unwrap();
        encap::encapsulate(&mut b, &p).unwrap();
        prop_assert_eq!(a.data(), b.data());
    }

    #[test]
    fn refused_transforms_change_nothing(bytes in vec(any::<u8>(), 0..120), t in rewrite(true), decap in any::<bool>(), p in params()) {
        let mut pkt = packet(&bytes, 0);
        let before = pkt.clone();
        let t = HeaderTransform { decap, encap: Some(p), decrement_ttl: true, ..t };
        if t.apply(&mut pkt).is_err() {
            prop_assert_eq!(pkt, before);
        }
    }
}

#[test]
fn ttl_one_is_refused_untouched() {
    let spec = FrameSpec {
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        ttl: 1,
        l4: L4Spec::Udp {
            src_port: 1,
            dst_port: 2,
        },
        payload: vec![1, 2, 3],
    };
    let frame = spec.to_vec().unwrap();
    let mut pkt = packet(&frame, 0);
    let t = HeaderTransform {
        decrement_ttl: true,
        ..HeaderTransform::default()
    };
    assert!(matches!(
        t.apply(&mut pkt),
        Err(WireError::HopLimitExceeded { .. })
    ));
    assert_eq!(pkt.data(), &frame[..]);
}

#[test]
fn encap_needs_headroom_and_refuses_vlan() {
    let spec = FrameSpec {
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src: IpAddr::V6(Ipv6Addr::LOCALHOST),
        dst: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ttl: 64,
        l4: L4Spec::Echo {
            request: true,
            ident: 7,
            seq: 1,
        },
        payload: vec![0; 16],
    };
    let frame = spec.to_vec().unwrap();
    let p = EncapParams {
        eth_src: MacAddr::ZERO,
        eth_dst: MacAddr::ZERO,
        src: Ipv6Addr::LOCALHOST,
        dst: Ipv6Addr::LOCALHOST,
    };
    let mut tight = PacketBuf::new(frame.clone(), 0, frame.len()).unwrap();
    assert!(encap::encapsulate(&mut tight, &p).is_err());
    assert_eq!(tight.data(), &frame[..]);

    let mut tagged = frame.clone();
    tagged[12..14].copy_from_slice(&[0x81, 0x00]);
    let mut pkt = packet(&tagged, 0);
    assert!(matches!(
        encap::encapsulate(&mut pkt, &p),
        Err(WireError::Unsupported { .. })
    ));
}

#[test]
fn ipv4_udp_without_checksum_stays_without() {
    let spec = FrameSpec {
        eth_src: MacAddr::ZERO,
        eth_dst: MacAddr::ZERO,
        src: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 168, 0, 2)),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: 1000,
            dst_port: 53,
        },
        payload: vec![9; 10],
    };
    let mut frame = spec.to_vec().unwrap();
    frame[14 + 20 + 6] = 0;
    frame[14 + 20 + 7] = 0;
    let mut pkt = packet(&frame, 0);
    HeaderTransform {
        src_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        src_port: Some(40000),
        ..HeaderTransform::default()
    }
    .apply(&mut pkt)
    .unwrap();
    let udp = UdpPacket::new_checked(&pkt.data()[34..]).unwrap();
    assert_eq!(udp.checksum(), 0);
    assert_eq!(udp.src_port(), 40000);
}

//! Harnesses for `ironnet-overlay`: every parser on arbitrary bytes (no
//! panic; what parses re-emits to the same `Repr`), encapsulation and
//! header transforms (a refused transform changes nothing; encap → decap
//! returns the packet).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::transform::{EtherRewrite, HeaderTransform};
use ironnet_overlay::translate::{self, Translation};
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::dhcpv4::{Dhcpv4Packet, Dhcpv4Repr};
use ironnet_overlay::wire::dhcpv6::{Dhcpv6Packet, Dhcpv6Repr};
use ironnet_overlay::wire::icmpv6::NdpOptions;
use ironnet_overlay::wire::{
    ArpPacket, ArpRepr, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet,
    Icmpv6Repr, IpPair, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, MacAddr, TcpFlags, TcpPacket,
    TcpRepr, UdpPacket, UdpRepr,
};

/// Ethernet: accessors, and parse → emit → parse.
pub fn ethernet(data: &[u8]) {
    let Ok(f) = EthernetFrame::new_checked(data) else {
        return;
    };
    let repr = EthernetRepr::parse(&f);
    let _ = (f.payload().len(), f.vlan_tag(), f.header_len());
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out);
    let again = EthernetFrame::new_checked(&out[..]).expect("emitted header is valid");
    assert_eq!(EthernetRepr::parse(&again), repr);
}

/// ARP.
pub fn arp(data: &[u8]) {
    let Ok(p) = ArpPacket::new_checked(data) else {
        return;
    };
    let _ = (p.operation(), p.sender_mac(), p.target_ip());
    if let Ok(repr) = ArpRepr::parse(&p) {
        let mut out = [0u8; 28];
        repr.emit(&mut out);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&out[..]).expect("harness invariant")),
            Ok(repr)
        );
    }
}

/// IPv4 and the L4 parsers behind it.
pub fn ipv4(data: &[u8]) {
    let Ok(p) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.options(),
        p.payload(),
        p.frag_offset(),
        p.verify_checksum(),
    );
    l4(p.addrs(), p.protocol().0, p.payload());
    if let Ok(repr) = Ipv4Repr::parse(&p) {
        let mut out = vec![0u8; repr.total_len()];
        repr.emit(&mut out).expect("parsed header re-emits");
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&out[..]).expect("harness invariant")),
            Ok(repr)
        );
    }
}

/// IPv6, its extension headers and the L4 parsers behind them.
pub fn ipv6(data: &[u8]) {
    let Ok(p) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let repr = Ipv6Repr::parse(&p);
    let mut out = vec![0u8; 40 + repr.payload_len];
    repr.emit(&mut out).expect("parsed header re-emits");
    assert_eq!(
        Ipv6Repr::parse(&Ipv6Packet::new_checked(&out[..]).expect("harness invariant")),
        repr
    );
    if let Ok(upper) = p.upper_layer() {
        assert!(upper.offset <= p.total_len());
        if upper.has_header() {
            l4(
                p.addrs(),
                upper.protocol.0,
                &data[upper.offset..p.total_len()],
            );
        }
    }
}

fn l4(addrs: IpPair, protocol: u8, data: &[u8]) {
    match protocol {
        6 => {
            if let Ok(p) = TcpPacket::new_checked(data) {
                let _ = (p.options(), p.payload(), p.flags());
                if let Ok(r) = TcpRepr::parse(&p, &addrs) {
                    let mut out = data.to_vec();
                    r.emit(&mut out, &addrs);
                    assert_eq!(
                        TcpRepr::parse(
                            &TcpPacket::new_checked(&out[..]).expect("harness invariant"),
                            &addrs
                        ),
                        Ok(r)
                    );
                }
            }
        }
        17 => {
            if let Ok(p) = UdpPacket::new_checked(data) {
                let _ = UdpRepr::parse(&p, &addrs);
                if p.dst_port() == 67 || p.src_port() == 67 {
                    dhcpv4(p.payload());
                }
                if p.dst_port() == 547 || p.src_port() == 547 {
                    dhcpv6(p.payload());
                }
            }
        }
        1 => icmpv4(data),
        58 => {
            if let IpPair::V6 { src, dst } = addrs {
                icmpv6_with(src, dst, data);
            }
        }
        _ => {}
    }
}

/// UDP over IPv4 or IPv6 (addresses from the first 32 bytes).
pub fn udp(data: &[u8]) {
    let (addrs, rest) = pair(data);
    l4(addrs, 17, rest);
}

/// TCP over IPv4 or IPv6 (addresses from the first 32 bytes).
pub fn tcp(data: &[u8]) {
    let (addrs, rest) = pair(data);
    l4(addrs, 6, rest);
}

fn pair(data: &[u8]) -> (IpPair, &[u8]) {
    if data.len() < 33 {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        return (IpPair::V4 { src: a, dst: a }, data);
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&data[1..17]).expect("harness invariant"));
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&data[17..33]).expect("harness invariant"));
    if data[0] & 1 == 0 {
        let v4 = |a: Ipv6Addr| Ipv4Addr::from((u128::from(a) as u32).to_be_bytes());
        (
            IpPair::V4 {
                src: v4(src),
                dst: v4(dst),
            },
            &data[33..],
        )
    } else {
        (IpPair::V6 { src, dst }, &data[33..])
    }
}

/// ICMPv4.
pub fn icmpv4(data: &[u8]) {
    let Ok(p) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let _ = (p.echo_ident(), p.data(), p.rest());
    if let Ok(r) = Icmpv4Repr::parse(&p) {
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out);
        assert_eq!(
            Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[..]).expect("harness invariant"))
                .map(|x| x.message),
            Ok(r.message)
        );
    }
}

/// ICMPv6 (addresses from the first 32 bytes).
pub fn icmpv6(data: &[u8]) {
    if let (IpPair::V6 { src, dst }, rest) = pair(data) {
        icmpv6_with(src, dst, rest);
    } else if data.len() >= 4 {
        icmpv6_with(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, data);
    }
}

fn icmpv6_with(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) {
    let Ok(p) = Icmpv6Packet::new_checked(data) else {
        return;
    };
    let _ = (p.target(), p.word1(), p.body());
    for opt in p.ndp_options() {
        let _ = opt;
    }
    for opt in NdpOptions::new(data) {
        let _ = opt;
    }
    if let Ok(r) = Icmpv6Repr::parse(&p, src, dst) {
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out, src, dst);
        let again = Icmpv6Repr::parse(
            &Icmpv6Packet::new_checked(&out[..]).expect("harness invariant"),
            src,
            dst,
        );
        assert_eq!(again.map(|x| x.message), Ok(r.message));
    }
}

/// DHCPv4.
pub fn dhcpv4(data: &[u8]) {
    let Ok(p) = Dhcpv4Packet::new_checked(data) else {
        return;
    };
    let _ = (p.message_type(), p.client_mac(), p.options().count());
    if let Ok(r) = Dhcpv4Repr::parse(&p) {
        // Parsed messages may hold options too long to re-emit in one
        // piece (they were split); emit refuses those with an error.
        if r.validate().is_ok() {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out).expect("validated message emits");
            assert_eq!(
                Dhcpv4Repr::parse(&Dhcpv4Packet::new_checked(&out[..]).expect("harness invariant"))
                    .as_ref(),
                Ok(&r)
            );
        }
    }
}

/// DHCPv6.
pub fn dhcpv6(data: &[u8]) {
    let Ok(p) = Dhcpv6Packet::new_checked(data) else {
        return;
    };
    let _ = (p.msg_type(), p.xid(), p.options().count());
    if let Ok(r) = Dhcpv6Repr::parse(&p) {
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out).expect("parsed message re-emits");
        let again =
            Dhcpv6Repr::parse(&Dhcpv6Packet::new_checked(&out[..]).expect("harness invariant"))
                .expect("re-parses");
        // Re-emitting drops duplicates of first-wins options, so compare
        // a second round trip, which must be stable.
        let mut out2 = vec![0u8; again.buffer_len()];
        again.emit(&mut out2).expect("re-emits");
        assert_eq!(out, out2);
    }
}

#[derive(Debug, Arbitrary)]
struct TransformInput {
    decap: bool,
    src_ip: Option<u128>,
    dst_ip: Option<u128>,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    decrement_ttl: bool,
    ether: Option<([u8; 6], [u8; 6])>,
    encap: Option<([u8; 6], [u8; 6], u128, u128)>,
    headroom: u8,
}

fn params((s, d, a, b): ([u8; 6], [u8; 6], u128, u128)) -> EncapParams {
    EncapParams {
        eth_src: MacAddr(s),
        eth_dst: MacAddr(d),
        src: Ipv6Addr::from(a),
        dst: Ipv6Addr::from(b),
    }
}

fn to_addr(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// A frame: either built from a spec (valid, then some bytes flipped) or
/// raw bytes.
fn frame(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    if u.arbitrary::<bool>()? {
        let v4: bool = u.arbitrary()?;
        let l4 = match u.int_in_range(0..=2)? {
            0 => L4Spec::Udp {
                src_port: u.arbitrary()?,
                dst_port: u.arbitrary()?,
            },
            1 => L4Spec::Tcp {
                src_port: u.arbitrary()?,
                dst_port: u.arbitrary()?,
                seq: u.arbitrary()?,
                ack: u.arbitrary()?,
                flags: TcpFlags(u.arbitrary::<u16>()? & 0x1ff),
                window: u.arbitrary()?,
            },
            _ => L4Spec::Echo {
                request: u.arbitrary()?,
                ident: u.arbitrary()?,
                seq: u.arbitrary()?,
            },
        };
        let len = u.int_in_range(0..=64)?;
        let spec = FrameSpec {
            eth_src: MacAddr(u.arbitrary()?),
            eth_dst: MacAddr(u.arbitrary()?),
            src: to_addr(u.arbitrary()?, v4),
            dst: to_addr(u.arbitrary()?, v4),
            ttl: u.arbitrary()?,
            l4,
            payload: u.bytes(len)?.to_vec(),
        };
        let mut f = spec
            .to_vec()
            .map_err(|_| arbitrary::Error::IncorrectFormat)?;
        if u.arbitrary::<bool>()? {
            // Wrap it in an outer header so decap has something to pop.
            let mut buf = vec![0u8; 40 + f.len()];
            buf[40..].copy_from_slice(&f);
            let mut pkt = PacketBuf::new(buf, 40, f.len()).expect("sized above");
            encap::encapsulate(&mut pkt, &params(u.arbitrary()?))
                .expect("valid frame encapsulates");
            f = pkt.data().to_vec();
        }
        for _ in 0..u.int_in_range(0..=3)? {
            if f.is_empty() {
                break;
            }
            let at = u.choose_index(f.len())?;
            f[at] ^= u.arbitrary::<u8>()?;
        }
        Ok(f)
    } else {
        let len = u.arbitrary_len::<u8>()?;
        Ok(u.bytes(len)?.to_vec())
    }
}

/// Encapsulation: encap then decap returns the frame; decap of anything
/// never panics.
pub fn encap_decap(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(f) = frame(&mut u) else { return };
    let Ok(p) = u.arbitrary() else { return };
    let p = params(p);
    let mut pkt = PacketBuf::new(vec![0u8; 64 + f.len()], 64, 0).expect("empty packet fits");
    pkt.extend_back(f.len())
        .expect("sized above")
        .copy_from_slice(&f);
    let before = pkt.clone();
    match encap::encapsulate(&mut pkt, &p) {
        Ok(()) => {
            let inner_len = pkt.len() - encap::OUTER_LEN;
            encap::decapsulate(&mut pkt).expect("own encapsulation decapsulates");
            assert_eq!(&pkt.data()[12..], &f[12..14 + inner_len]);
        }
        Err(_) => assert_eq!(pkt, before),
    }
    let mut raw = before;
    let copy = raw.clone();
    if encap::decapsulate(&mut raw).is_err() {
        assert_eq!(raw, copy);
    }
}

/// IPv4 ↔ IPv6 translation: on error nothing changed; on success the
/// result parses as the other family with a transport checksum that
/// verifies over its pseudo-header, and the transport payload is intact.
pub fn translation(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(f) = frame(&mut u) else { return };
    let Ok((headroom, ports, ident)) = <(u8, (u16, u16), u16)>::arbitrary(&mut u) else {
        return;
    };
    let headroom = usize::from(headroom);
    let mut buf = vec![0u8; headroom + f.len()];
    buf[headroom..].copy_from_slice(&f);
    let mut pkt = PacketBuf::new(buf, headroom, f.len()).expect("sized above");
    let before = pkt.clone();
    let macs = (MacAddr([2; 6]), MacAddr([4; 6]));
    let to_v6 = Translation {
        eth_src: macs.0,
        eth_dst: macs.1,
        src: Ipv6Addr::new(0xfc00, 1, 0, 0, 0xd0ff, 0x4000, 0, 1),
        dst: Ipv6Addr::new(0xfc00, 0xb, 0, 0, 0, 0, 0, 5),
        src_port: ports.0,
        dst_port: ports.1,
    };
    let to_v4 = Translation {
        eth_src: macs.0,
        eth_dst: macs.1,
        src: Ipv4Addr::new(169, 254, 169, 254),
        dst: Ipv4Addr::new(10, 0, 0, 1),
        src_port: ports.0,
        dst_port: ports.1,
    };
    let result = match EthernetFrame::new_checked(&f[..]).map(|e| e.ethertype().0) {
        Ok(0x0800) => translate::ipv4_to_ipv6(&mut pkt, &to_v6),
        _ => translate::ipv6_to_ipv4(&mut pkt, &to_v4, ident),
    };
    let Ok(facts) = result else {
        assert_eq!(pkt, before, "a refused translation changed the packet");
        return;
    };
    let eth = EthernetFrame::new_checked(pkt.data()).expect("frame stays valid");
    let (pseudo, l4) = if let Ok(ip) = Ipv6Packet::new_checked(eth.payload())
        && eth.ethertype().0 == 0x86dd
    {
        let len = ip.payload().len() as u32;
        let p = ironnet_overlay::wire::checksum::pseudo_header_v6(
            ip.src(),
            ip.dst(),
            facts.protocol.0,
            len,
        );
        (p, ip.payload().to_vec())
    } else {
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("IPv4 out");
        assert!(ip.verify_checksum());
        let len = u16::try_from(ip.payload().len()).expect("fits");
        let p = ironnet_overlay::wire::checksum::pseudo_header_v4(
            ip.src(),
            ip.dst(),
            facts.protocol.0,
            len,
        );
        (p, ip.payload().to_vec())
    };
    let sum =
        ironnet_overlay::wire::checksum::fold(pseudo + ironnet_overlay::wire::checksum::sum(&l4));
    assert_eq!(sum, 0xffff, "transport checksum");
    assert_eq!(u16::from_be_bytes([l4[0], l4[1]]), ports.0);
    assert_eq!(u16::from_be_bytes([l4[2], l4[3]]), ports.1);
    let header = if facts.protocol.0 == 6 { 20 } else { 8 };
    let rest = &l4[header.min(l4.len())..];
    assert!(
        rest.is_empty() || before.data().windows(rest.len()).any(|w| w == rest),
        "transport payload changed"
    );
}

/// Header transforms: on error nothing changed; on success the IPv4
/// header checksum still verifies.
pub fn transform(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(f) = frame(&mut u) else { return };
    let Ok(t) = TransformInput::arbitrary(&mut u) else {
        return;
    };
    let v4 = u.arbitrary::<bool>().unwrap_or(true);
    let ht = HeaderTransform {
        decap: t.decap,
        src_ip: t.src_ip.map(|a| to_addr(a, v4)),
        dst_ip: t.dst_ip.map(|a| to_addr(a, v4)),
        src_port: t.src_port,
        dst_port: t.dst_port,
        decrement_ttl: t.decrement_ttl,
        ether: t.ether.map(|(s, d)| EtherRewrite {
            src: MacAddr(s),
            dst: MacAddr(d),
        }),
        encap: t.encap.map(params),
    };
    let headroom = usize::from(t.headroom);
    let mut buf = vec![0u8; headroom + f.len()];
    buf[headroom..].copy_from_slice(&f);
    let mut pkt = PacketBuf::new(buf, headroom, f.len()).expect("sized above");
    let before = pkt.clone();
    match ht.apply(&mut pkt) {
        Err(_) => assert_eq!(pkt, before),
        Ok(_) => {
            let out = if ht.encap.is_some() {
                let mut c = pkt.clone();
                encap::decapsulate(&mut c).expect("transform output decapsulates");
                c.data().to_vec()
            } else {
                pkt.data().to_vec()
            };
            let eth = EthernetFrame::new_checked(&out[..]).expect("frame stays valid");
            if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
                let was_valid = {
                    let orig = if ht.decap {
                        let mut c = before.clone();
                        encap::decapsulate(&mut c).map(|_| c.data().to_vec()).ok()
                    } else {
                        Some(before.data().to_vec())
                    };
                    orig.and_then(|o| {
                        let e = EthernetFrame::new_checked(&o[..]).ok()?;
                        Some(Ipv4Packet::new_checked(e.payload()).ok()?.verify_checksum())
                    })
                };
                if was_valid == Some(true) {
                    assert!(
                        ip.verify_checksum(),
                        "IPv4 header checksum broken by the transform"
                    );
                }
            }
        }
    }
}

/// A virtio-net header (first 10 bytes) and a frame: segmentation,
/// checksum completion and coalescing never panic, and coalescing what
/// segmentation produced, then segmenting that again, gives the same
/// segments.
pub fn offload(data: &[u8]) {
    use ironnet_overlay::offload::{
        TcpCoalescer, VNET_HDR_LEN, VnetHdr, complete_checksum, segment,
    };
    let Ok(hdr) = VnetHdr::parse(data) else {
        return;
    };
    let frame = &data[VNET_HDR_LEN..];
    let mut partial = frame.to_vec();
    let _ = complete_checksum(
        &mut partial,
        usize::from(hdr.csum_start),
        usize::from(hdr.csum_offset),
    );
    let mut scratch = Vec::new();
    let mut segs = Vec::new();
    if segment(frame, &hdr, &mut scratch, |s| segs.push(s.to_vec())).is_err() {
        let mut c = TcpCoalescer::new();
        let _ = c.offer(frame);
        let _ = c.offer(frame);
        let _ = c.flush();
        return;
    }
    let mut c = TcpCoalescer::new();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for s in &segs {
        if c.offer(s) {
            continue;
        }
        if let Some(f) = c.flush() {
            out.push(f.to_vec());
        }
        if !c.offer(s) {
            let mut raw = vec![0u8; VNET_HDR_LEN];
            raw.extend_from_slice(s);
            out.push(raw);
        }
    }
    if let Some(f) = c.flush() {
        out.push(f.to_vec());
    }
    let mut again = Vec::new();
    for f in &out {
        let h = VnetHdr::parse(f).expect("harness invariant");
        if h.is_gso() {
            segment(&f[VNET_HDR_LEN..], &h, &mut scratch, |s| {
                again.push(s.to_vec())
            })
            .expect("a coalesced frame segments");
        } else {
            again.push(f[VNET_HDR_LEN..].to_vec());
        }
    }
    assert_eq!(
        again, segs,
        "segment -> coalesce -> segment changed the wire"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parser_harnesses_hold(data in proptest::collection::vec(any::<u8>(), 0..700)) {
            ethernet(&data);
            arp(&data);
            ipv4(&data);
            ipv6(&data);
            udp(&data);
            tcp(&data);
            icmpv4(&data);
            icmpv6(&data);
            dhcpv4(&data);
            dhcpv6(&data);
        }

        #[test]
        fn offload_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..700)) {
            super::offload(&data);
        }

        #[test]
        fn offload_harness_holds_for_real_frames(len in 0usize..5000, mss in 1u16..3000, v6 in any::<bool>(), flags in any::<u8>()) {
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                (Ipv6Addr::LOCALHOST.into(), Ipv6Addr::UNSPECIFIED.into())
            } else {
                (Ipv4Addr::new(10, 0, 0, 1).into(), Ipv4Addr::new(10, 0, 0, 2).into())
            };
            let frame = FrameSpec {
                eth_src: ironnet_overlay::wire::MacAddr([2, 0, 0, 0, 0, 1]),
                eth_dst: ironnet_overlay::wire::MacAddr([2, 0, 0, 0, 0, 2]),
                src,
                dst,
                ttl: 64,
                l4: L4Spec::Tcp {
                    src_port: 1,
                    dst_port: 2,
                    seq: 3,
                    ack: 4,
                    flags: ironnet_overlay::wire::TcpFlags(u16::from(flags)),
                    window: 5,
                },
                payload: vec![0x5a; len],
            }
            .to_vec()
            .expect("harness invariant");
            let hdr = ironnet_overlay::offload::VnetHdr {
                gso_type: if v6 { 4 } else { 1 },
                gso_size: mss,
                ..Default::default()
            };
            let mut data = hdr.to_bytes().to_vec();
            data.extend(frame);
            super::offload(&data);
        }

        #[test]
        fn encap_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            encap_decap(&data);
        }

        #[test]
        fn transform_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            transform(&data);
        }

        #[test]
        fn translation_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            translation(&data);
        }
    }

    /// Parsers on frames that start out valid, so the deep paths run too.
    #[test]
    fn parser_harnesses_on_valid_frames() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut bytes = vec![0u8; 400];
            for b in &mut bytes {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let mut u = Unstructured::new(&bytes);
            let Ok(f) = frame(&mut u) else { continue };
            ethernet(&f);
            if f.len() > 14 {
                ipv4(&f[14..]);
                ipv6(&f[14..]);
            }
            encap_decap(&bytes);
            transform(&bytes);
            dhcp_with_flips(&bytes);
        }
    }

    /// Valid DHCP messages with a few bytes changed.
    fn dhcp_with_flips(bytes: &[u8]) {
        use ironnet_overlay::wire::dhcpv4::{BootOp, MessageType};
        use ironnet_overlay::wire::dhcpv6;
        let mut r4 = Dhcpv4Repr::empty(BootOp::Request);
        r4.message_type = Some(MessageType::Discover);
        r4.hostname = Some(b"guest".to_vec());
        r4.parameter_request_list = vec![1, 3, 6, 121];
        let mut m4 = vec![0u8; r4.buffer_len()];
        r4.emit(&mut m4).expect("harness invariant");
        let mut r6 = Dhcpv6Repr::new(dhcpv6::MessageType::Solicit, 0x123456);
        r6.client_id = Some(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1]);
        r6.oro = vec![23, 59];
        let mut m6 = vec![0u8; r6.buffer_len()];
        r6.emit(&mut m6).expect("harness invariant");
        for (i, pair) in bytes.chunks_exact(2).take(3).enumerate() {
            let at4 = 236 + usize::from(pair[0]) % (m4.len() - 236);
            m4[at4] ^= pair[1] | 1;
            let at6 = usize::from(pair[0]) % m6.len();
            m6[at6] ^= pair[1] | 1;
            if i % 2 == 0 {
                dhcpv4(&m4);
                dhcpv6(&m6);
            }
        }
        dhcpv4(&m4);
        dhcpv6(&m6);
    }
}

//! IPv4 ↔ IPv6 header replacement for TCP and UDP (the SIIT-style
//! translation dpservice's virtual services do): the IP header is swapped
//! for one of the other family, the ports are rewritten, the transport
//! checksum is recomputed over the new pseudo-header, and the Ethernet
//! header is rebuilt. The payload stays where it is; the buffer's headroom
//! absorbs the 20 extra bytes of IPv6.
//!
//! Only whole, unfragmented TCP and UDP packets are translated; anything
//! else is [`WireError::Unsupported`]. The hop limit is copied as it is
//! (the dp is not a router on this path, like dpservice). IPv4 options and
//! IPv6 extension headers are dropped.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::buf::PacketBuf;
use crate::wire::checksum;
use crate::wire::ip::RawOptions;
use crate::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, Layer,
    MacAddr, WireError,
};

const ETH_LEN: usize = 14;
const V4_LEN: usize = 20;
const V6_LEN: usize = 40;

/// The new outer fields of a translated packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation<A> {
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// New source address.
    pub src: A,
    /// New destination address.
    pub dst: A,
    /// New transport source port.
    pub src_port: u16,
    /// New transport destination port.
    pub dst_port: u16,
}

/// What a translated packet carried, read before its headers were replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translated {
    /// TCP or UDP.
    pub protocol: IpProtocol,
    /// The transport source port before translation.
    pub src_port: u16,
    /// The transport destination port before translation.
    pub dst_port: u16,
    /// TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
}

fn unsupported(layer: Layer, what: &'static str) -> WireError {
    WireError::Unsupported { layer, what }
}

/// Checks the transport header at `l4` and returns its protocol-specific
/// facts; the segment must be at least a full header long.
fn transport(protocol: IpProtocol, l4: &[u8], layer: Layer) -> Result<Translated, WireError> {
    let min = match protocol {
        IpProtocol::TCP => 20,
        IpProtocol::UDP => 8,
        _ => return Err(unsupported(layer, "only TCP and UDP are translated")),
    };
    if l4.len() < min {
        return Err(WireError::Truncated {
            layer: if protocol == IpProtocol::TCP {
                Layer::Tcp
            } else {
                Layer::Udp
            },
            needed: min,
            available: l4.len(),
        });
    }
    Ok(Translated {
        protocol,
        src_port: u16::from_be_bytes([l4[0], l4[1]]),
        dst_port: u16::from_be_bytes([l4[2], l4[3]]),
        tcp_flags: if protocol == IpProtocol::TCP {
            l4[13]
        } else {
            0
        },
    })
}

/// Rewrites the ports of the transport segment `l4` and fills its checksum
/// over `pseudo` (a pseudo-header sum).
fn rewrite_transport(protocol: IpProtocol, l4: &mut [u8], ports: (u16, u16), pseudo: u64) {
    l4[0..2].copy_from_slice(&ports.0.to_be_bytes());
    l4[2..4].copy_from_slice(&ports.1.to_be_bytes());
    let at = if protocol == IpProtocol::TCP { 16 } else { 6 };
    l4[at..at + 2].copy_from_slice(&[0, 0]);
    let mut sum = checksum::finish(pseudo + checksum::sum(l4));
    if protocol == IpProtocol::UDP && sum == 0 {
        sum = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

fn ethernet_of(frame: &[u8], family: EtherType, layer: Layer) -> Result<(), WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.is_vlan_tagged() {
        return Err(unsupported(Layer::Ethernet, "VLAN tag"));
    }
    if eth.ethertype() != family {
        return Err(unsupported(layer, "wrong address family"));
    }
    Ok(())
}

fn write_ethernet(buf: &mut [u8], eth_dst: MacAddr, eth_src: MacAddr, ty: EtherType) {
    buf[0..6].copy_from_slice(&eth_dst.0);
    buf[6..12].copy_from_slice(&eth_src.0);
    buf[12..14].copy_from_slice(&ty.0.to_be_bytes());
}

/// Replaces the IPv4 header of an untagged Ethernet frame carrying TCP or
/// UDP with an IPv6 header (traffic class from DSCP/ECN, hop limit from
/// TTL, flow label 0), applying `t`. Trailing padding beyond the IPv4 total
/// length is cut. On an error the packet is unchanged.
pub fn ipv4_to_ipv6<B: AsRef<[u8]> + AsMut<[u8]>>(
    pkt: &mut PacketBuf<B>,
    t: &Translation<Ipv6Addr>,
) -> Result<Translated, WireError> {
    let frame = pkt.data();
    ethernet_of(frame, EtherType::IPV4, Layer::Ipv4)?;
    let ip = Ipv4Packet::new_checked(&frame[ETH_LEN..])?;
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(unsupported(Layer::Ipv4, "fragments are not translated"));
    }
    let (hl, total) = (ip.header_len(), ip.total_len());
    let (protocol, tos, ttl) = (ip.protocol(), ip.dscp_ecn(), ip.ttl());
    let l4 = &frame[ETH_LEN + hl..ETH_LEN + total];
    let facts = transport(protocol, l4, Layer::Ipv4)?;
    let l4_len = total - hl;
    let repr = Ipv6Repr {
        src: t.src,
        dst: t.dst,
        next_header: protocol,
        payload_len: l4_len,
        hop_limit: ttl,
        traffic_class: tos,
        flow_label: 0,
    };
    let pseudo = checksum::pseudo_header_v6(t.src, t.dst, protocol.0, l4_len as u32);
    // Nothing can fail past this point but the headroom.
    if V6_LEN > hl && pkt.headroom() < V6_LEN - hl {
        return Err(WireError::Truncated {
            layer: Layer::Buffer,
            needed: V6_LEN - hl,
            available: pkt.headroom(),
        });
    }
    pkt.truncate(ETH_LEN + total);
    rewrite_transport(
        protocol,
        &mut pkt.data_mut()[ETH_LEN + hl..],
        (t.src_port, t.dst_port),
        pseudo,
    );
    if V6_LEN >= hl {
        pkt.push_front(V6_LEN - hl)?;
    } else {
        pkt.pull_front(hl - V6_LEN)?;
    }
    let data = pkt.data_mut();
    write_ethernet(data, t.eth_dst, t.eth_src, EtherType::IPV6);
    repr.emit(&mut data[ETH_LEN..ETH_LEN + V6_LEN])?;
    Ok(facts)
}

/// Replaces the IPv6 header (and extension headers) of an untagged
/// Ethernet frame carrying TCP or UDP with an IPv4 header (DSCP/ECN from
/// the traffic class, TTL from the hop limit, identification `ident`, DF
/// clear), applying `t`. On an error the packet is unchanged.
pub fn ipv6_to_ipv4<B: AsRef<[u8]> + AsMut<[u8]>>(
    pkt: &mut PacketBuf<B>,
    t: &Translation<Ipv4Addr>,
    ident: u16,
) -> Result<Translated, WireError> {
    let frame = pkt.data();
    ethernet_of(frame, EtherType::IPV6, Layer::Ipv6)?;
    let ip = Ipv6Packet::new_checked(&frame[ETH_LEN..])?;
    let upper = ip.upper_layer()?;
    if upper.fragment.is_some() {
        return Err(unsupported(Layer::Ipv6, "fragments are not translated"));
    }
    let total = ip.total_len();
    if upper.offset > total {
        return Err(WireError::Malformed {
            layer: Layer::Ipv6,
            reason: "extension headers beyond the payload",
        });
    }
    let (protocol, tclass, hop) = (upper.protocol, ip.traffic_class(), ip.hop_limit());
    let l4 = &frame[ETH_LEN + upper.offset..ETH_LEN + total];
    let facts = transport(protocol, l4, Layer::Ipv6)?;
    let l4_len = total - upper.offset;
    let repr = Ipv4Repr {
        src: t.src,
        dst: t.dst,
        protocol,
        payload_len: l4_len,
        ttl: hop,
        dscp_ecn: tclass,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: RawOptions::new(Layer::Ipv4, &[])?,
    };
    let length = u16::try_from(l4_len).map_err(|_| WireError::TooLarge {
        layer: Layer::Ipv4,
        field: "total length",
    })?;
    if repr.total_len() > usize::from(u16::MAX) {
        return Err(WireError::TooLarge {
            layer: Layer::Ipv4,
            field: "total length",
        });
    }
    let pseudo = checksum::pseudo_header_v4(t.src, t.dst, protocol.0, length);
    let offset = upper.offset;
    pkt.truncate(ETH_LEN + total);
    rewrite_transport(
        protocol,
        &mut pkt.data_mut()[ETH_LEN + offset..],
        (t.src_port, t.dst_port),
        pseudo,
    );
    // The IPv6 headers are at least 40 bytes: the IPv4 header always fits.
    pkt.pull_front(offset - V4_LEN)?;
    let data = pkt.data_mut();
    write_ethernet(data, t.eth_dst, t.eth_src, EtherType::IPV4);
    repr.emit(&mut data[ETH_LEN..ETH_LEN + V4_LEN])?;
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TcpPacket, UdpPacket};

    const HEADROOM: usize = 64;

    fn buf(frame: &[u8]) -> PacketBuf<Vec<u8>> {
        let mut v = vec![0u8; HEADROOM + frame.len()];
        v[HEADROOM..].copy_from_slice(frame);
        PacketBuf::new(v, HEADROOM, frame.len()).expect("fits")
    }

    fn v4_frame(protocol: IpProtocol, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ETH_LEN + V4_LEN];
        write_ethernet(&mut f, MacAddr([1; 6]), MacAddr([2; 6]), EtherType::IPV4);
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 5),
            dst: Ipv4Addr::new(169, 254, 169, 254),
            protocol,
            payload_len: l4.len(),
            ttl: 64,
            dscp_ecn: 0x10,
            ident: 7,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            options: RawOptions::new(Layer::Ipv4, &[]).expect("empty"),
        }
        .emit(&mut f[ETH_LEN..])
        .expect("emit");
        f.extend_from_slice(l4);
        f
    }

    fn udp(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend_from_slice(&src.to_be_bytes());
        u.extend_from_slice(&dst.to_be_bytes());
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    fn tcp_syn(src: u16, dst: u16) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&src.to_be_bytes());
        t[2..4].copy_from_slice(&dst.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = 0x02;
        t
    }

    fn to_v6() -> Translation<Ipv6Addr> {
        Translation {
            eth_src: MacAddr([3; 6]),
            eth_dst: MacAddr([4; 6]),
            src: "fc00:1::d0ff:4000:0".parse().expect("addr"),
            dst: "fc00:b::5".parse().expect("addr"),
            src_port: 1024,
            dst_port: 8080,
        }
    }

    #[test]
    fn udp_v4_to_v6_and_back() {
        let original = v4_frame(IpProtocol::UDP, &udp(40000, 80, b"hello"));
        let mut pkt = buf(&original);
        let facts = ipv4_to_ipv6(&mut pkt, &to_v6()).expect("translate");
        assert_eq!((facts.src_port, facts.dst_port), (40000, 80));
        let f = pkt.data();
        assert_eq!(f.len(), ETH_LEN + V6_LEN + 13);
        let eth = EthernetFrame::new_checked(f).expect("eth");
        assert_eq!(eth.ethertype(), EtherType::IPV6);
        assert_eq!(eth.dst(), MacAddr([4; 6]));
        let ip = Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
        assert_eq!(ip.hop_limit(), 64);
        assert_eq!(ip.traffic_class(), 0x10);
        assert_eq!(ip.next_header(), IpProtocol::UDP);
        let u = UdpPacket::new_checked(ip.payload()).expect("udp");
        assert_eq!((u.src_port(), u.dst_port()), (1024, 8080));
        let pseudo = checksum::pseudo_header_v6(ip.src(), ip.dst(), 17, 13);
        assert_eq!(checksum::fold(pseudo + checksum::sum(ip.payload())), 0xffff);

        let back = Translation {
            eth_src: MacAddr([2; 6]),
            eth_dst: MacAddr([1; 6]),
            src: Ipv4Addr::new(10, 0, 0, 5),
            dst: Ipv4Addr::new(169, 254, 169, 254),
            src_port: 40000,
            dst_port: 80,
        };
        ipv6_to_ipv4(&mut pkt, &back, 7).expect("back");
        let f = pkt.data();
        let ip = Ipv4Packet::new_checked(&f[ETH_LEN..]).expect("ipv4");
        assert!(ip.verify_checksum());
        assert_eq!((ip.ttl(), ip.dscp_ecn(), ip.ident()), (64, 0x10, 7));
        assert_eq!(f.len(), original.len());
        let u = UdpPacket::new_checked(ip.payload()).expect("udp");
        assert_eq!((u.src_port(), u.dst_port()), (40000, 80));
        let pseudo = checksum::pseudo_header_v4(ip.src(), ip.dst(), 17, 13);
        assert_eq!(checksum::fold(pseudo + checksum::sum(ip.payload())), 0xffff);
        assert_eq!(u.payload(), b"hello");
    }

    #[test]
    fn tcp_checksum_and_flags() {
        let mut pkt = buf(&v4_frame(IpProtocol::TCP, &tcp_syn(5555, 80)));
        let facts = ipv4_to_ipv6(&mut pkt, &to_v6()).expect("translate");
        assert_eq!(facts.tcp_flags, 0x02);
        let ip = Ipv6Packet::new_checked(&pkt.data()[ETH_LEN..]).expect("ipv6");
        let t = TcpPacket::new_checked(ip.payload()).expect("tcp");
        assert_eq!((t.src_port(), t.dst_port()), (1024, 8080));
        let pseudo = checksum::pseudo_header_v6(ip.src(), ip.dst(), 6, 20);
        assert_eq!(checksum::fold(pseudo + checksum::sum(ip.payload())), 0xffff);
    }

    #[test]
    fn rejects_what_it_cannot_translate_and_leaves_it() {
        let icmp = v4_frame(IpProtocol::ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]);
        let mut pkt = buf(&icmp);
        assert!(matches!(
            ipv4_to_ipv6(&mut pkt, &to_v6()),
            Err(WireError::Unsupported { .. })
        ));
        assert_eq!(pkt.data(), &icmp[..]);
        let short = v4_frame(IpProtocol::TCP, &[0; 10]);
        let mut pkt = buf(&short);
        assert!(ipv4_to_ipv6(&mut pkt, &to_v6()).is_err());
        assert_eq!(pkt.data(), &short[..]);
        // No headroom: refused, unchanged.
        let frame = v4_frame(IpProtocol::UDP, &udp(1, 2, b""));
        let mut pkt = PacketBuf::new(frame.clone(), 0, frame.len()).expect("buf");
        assert!(ipv4_to_ipv6(&mut pkt, &to_v6()).is_err());
        assert_eq!(pkt.data(), &frame[..]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let mut pkt = buf(&bytes);
            let _ = ipv4_to_ipv6(&mut pkt, &to_v6());
            let mut pkt = buf(&bytes);
            let back = Translation {
                eth_src: MacAddr([2; 6]),
                eth_dst: MacAddr([1; 6]),
                src: Ipv4Addr::new(10, 0, 0, 5),
                dst: Ipv4Addr::new(169, 254, 169, 254),
                src_port: 1,
                dst_port: 2,
            };
            let _ = ipv6_to_ipv4(&mut pkt, &back, 1);
        }
    }
}

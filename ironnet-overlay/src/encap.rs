//! IPv4-in-IPv6 and IPv6-in-IPv6 encapsulation exactly as dpservice puts
//! it on the wire (no UDP, no VNI field: the outer destination implies it).
//!
//! ```text
//! Ethernet  dst = underlay router MAC, src = PF MAC, type 0x86DD
//! IPv6      version 6, traffic class 0, flow label 0,
//!           payload length = inner IPv4 total length | inner IPv6 payload length + 40,
//!           next header 4 (IPv4) | 41 (IPv6), hop limit 64,
//!           src = sender's underlay address, dst = next hop's underlay address
//! inner     the IP packet, unchanged (its Ethernet header is dropped)
//! ```
//!
//! [`encapsulate`] turns an Ethernet frame carrying IP into that, using 40
//! bytes of headroom; [`decapsulate`] pops the outer headers in place and
//! leaves an Ethernet frame around the inner packet. Both validate before
//! writing: on error the packet is unchanged.

use std::net::Ipv6Addr;

use crate::buf::PacketBuf;
use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::ipv6::HEADER_LEN as IPV6_LEN;
use crate::wire::{
    EtherType, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, Layer, MacAddr, WireError,
};

/// Hop limit of the outer header.
pub const HOP_LIMIT: u8 = 64;
/// Bytes added in front of the inner IP packet (Ethernet + IPv6).
pub const OUTER_LEN: usize = ETH_LEN + IPV6_LEN;
/// Extra headroom encapsulation needs beyond the original Ethernet header.
pub const HEADROOM_NEEDED: usize = IPV6_LEN;

/// Addresses of the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncapParams {
    /// Outer Ethernet source (the uplink's MAC).
    pub eth_src: MacAddr,
    /// Outer Ethernet destination (the underlay router's MAC).
    pub eth_dst: MacAddr,
    /// Outer IPv6 source.
    pub src: Ipv6Addr,
    /// Outer IPv6 destination.
    pub dst: Ipv6Addr,
}

/// What decapsulation found in the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decapsulated {
    /// Outer IPv6 source (the sender's underlay address).
    pub outer_src: Ipv6Addr,
    /// Outer IPv6 destination (selects interface and VNI).
    pub outer_dst: Ipv6Addr,
    /// EtherType of the inner packet (IPv4 or IPv6).
    pub inner: EtherType,
}

/// The inner IP packet of an Ethernet frame: its EtherType and exact
/// length (without Ethernet padding).
pub(crate) fn inner_ip(frame: &[u8]) -> Result<(EtherType, usize), WireError> {
    let ty = ip_ethertype(frame)?;
    let len = ip_len(ty, &frame[ETH_LEN..])?;
    Ok((ty, len))
}

/// The EtherType of an untagged Ethernet frame carrying IPv4 or IPv6; the
/// IP header itself is not checked.
pub(crate) fn ip_ethertype(frame: &[u8]) -> Result<EtherType, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.is_vlan_tagged() {
        return Err(WireError::Unsupported {
            layer: Layer::Ethernet,
            what: "VLAN-tagged frames",
        });
    }
    match eth.ethertype() {
        ty @ (EtherType::IPV4 | EtherType::IPV6) => Ok(ty),
        _ => Err(WireError::Unsupported {
            layer: Layer::Encap,
            what: "payload other than IPv4 or IPv6",
        }),
    }
}

fn ip_len(ty: EtherType, ip: &[u8]) -> Result<usize, WireError> {
    match ty {
        EtherType::IPV4 => Ok(Ipv4Packet::new_checked(ip)?.total_len()),
        EtherType::IPV6 => Ok(Ipv6Packet::new_checked(ip)?.total_len()),
        _ => Err(WireError::Unsupported {
            layer: Layer::Encap,
            what: "payload other than IPv4 or IPv6",
        }),
    }
}

/// Replaces the Ethernet header of `pkt` (an untagged frame carrying IPv4
/// or IPv6) with outer Ethernet + IPv6. Trailing Ethernet padding is cut.
pub fn encapsulate<B: AsRef<[u8]> + AsMut<[u8]>>(
    pkt: &mut PacketBuf<B>,
    params: &EncapParams,
) -> Result<(), WireError> {
    let (ty, inner_len) = inner_ip(pkt.data())?;
    let payload_len = u16::try_from(inner_len).map_err(|_| WireError::TooLarge {
        layer: Layer::Encap,
        field: "outer payload length",
    })?;
    if pkt.headroom() < HEADROOM_NEEDED {
        return Err(WireError::Truncated {
            layer: Layer::Buffer,
            needed: HEADROOM_NEEDED,
            available: pkt.headroom(),
        });
    }
    push_outer(pkt, params, ty == EtherType::IPV4, usize::from(payload_len));
    Ok(())
}

/// The writing half of [`encapsulate`], for callers that validated the
/// frame (an untagged Ethernet frame whose IP packet is `inner_len` ≤ 65535
/// bytes) and the headroom already.
pub(crate) fn push_outer<B: AsRef<[u8]> + AsMut<[u8]>>(
    pkt: &mut PacketBuf<B>,
    params: &EncapParams,
    inner_v4: bool,
    inner_len: usize,
) {
    pkt.truncate(ETH_LEN + inner_len);
    let next_header = if inner_v4 {
        IpProtocol::IPV4
    } else {
        IpProtocol::IPV6
    };
    if let Ok(out) = pkt.push_front(HEADROOM_NEEDED) {
        write_outer(out, params, inner_len as u16, next_header);
    }
}

fn write_outer(out: &mut [u8], p: &EncapParams, payload_len: u16, next_header: IpProtocol) {
    out[0..6].copy_from_slice(&p.eth_dst.0);
    out[6..12].copy_from_slice(&p.eth_src.0);
    out[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
    let ip = &mut out[ETH_LEN..OUTER_LEN];
    ip[0..4].copy_from_slice(&0x6000_0000u32.to_be_bytes());
    ip[4..6].copy_from_slice(&payload_len.to_be_bytes());
    ip[6] = next_header.0;
    ip[7] = HOP_LIMIT;
    ip[8..24].copy_from_slice(&p.src.octets());
    ip[24..40].copy_from_slice(&p.dst.octets());
}

/// Where the inner packet of an encapsulated frame starts, and what it is.
pub(crate) struct OuterInfo {
    pub(crate) decap: Decapsulated,
    /// Offset of the inner IP header in the frame.
    pub(crate) inner_offset: usize,
    /// Length of the inner IP packet.
    pub(crate) inner_len: usize,
}

/// Reads the outer headers: untagged Ethernet, IPv6 whose upper layer
/// (after any extension headers, unfragmented) is IPv4 or IPv6.
pub(crate) fn outer_info(frame: &[u8]) -> Result<OuterInfo, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.is_vlan_tagged() || eth.ethertype() != EtherType::IPV6 {
        return Err(WireError::Unsupported {
            layer: Layer::Encap,
            what: "outer header other than untagged IPv6",
        });
    }
    let outer = Ipv6Packet::new_checked(eth.payload())?;
    let upper = outer.upper_layer()?;
    if upper.fragment.is_some() {
        return Err(WireError::Unsupported {
            layer: Layer::Encap,
            what: "fragmented outer packet",
        });
    }
    let inner = match upper.protocol {
        IpProtocol::IPV4 => EtherType::IPV4,
        IpProtocol::IPV6 => EtherType::IPV6,
        _ => {
            return Err(WireError::Unsupported {
                layer: Layer::Encap,
                what: "outer next header other than 4 or 41",
            });
        }
    };
    let inner_offset = ETH_LEN + upper.offset;
    let inner_len = ip_len(inner, &frame[inner_offset..ETH_LEN + outer.total_len()])?;
    Ok(OuterInfo {
        decap: Decapsulated {
            outer_src: outer.src(),
            outer_dst: outer.dst(),
            inner,
        },
        inner_offset,
        inner_len,
    })
}

/// Pops the outer Ethernet + IPv6 (and its extension headers) of an
/// encapsulated frame, leaving an Ethernet header (outer MACs kept, type of
/// the inner packet) in front of the inner IP packet.
pub fn decapsulate<B: AsRef<[u8]> + AsMut<[u8]>>(
    pkt: &mut PacketBuf<B>,
) -> Result<Decapsulated, WireError> {
    let info = outer_info(pkt.data())?;
    pop_outer(pkt, &info);
    Ok(info.decap)
}

pub(crate) fn pop_outer<B: AsRef<[u8]> + AsMut<[u8]>>(pkt: &mut PacketBuf<B>, info: &OuterInfo) {
    let mut macs = [0u8; 12];
    macs.copy_from_slice(&pkt.data()[..12]);
    let pop = info.inner_offset - ETH_LEN;
    // `outer_info` checked that the inner packet lies inside the data.
    let _ = pkt.pull_front(pop);
    pkt.truncate(ETH_LEN + info.inner_len);
    let d = pkt.data_mut();
    d[..12].copy_from_slice(&macs);
    d[12..14].copy_from_slice(&info.decap.inner.0.to_be_bytes());
}

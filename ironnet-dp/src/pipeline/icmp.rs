//! ICMP the dp originates towards a guest: errors a router owes its
//! senders, and echo replies from the gateway addresses.

use std::net::IpAddr;

use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::{
    EthernetFrame, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv6Message, Icmpv6Packet,
    Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv6Packet, MacAddr,
};

use super::guest::{Answer, GATEWAY_V4, GATEWAY_V6};
use super::{Ip, parse_ip};

/// Which error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// No route: destination (network) unreachable.
    NoRoute,
    /// TTL / hop limit exhausted in transit.
    TimeExceeded,
    /// Does not fit the path: the MTU that does.
    TooBig(u16),
}

/// Largest IPv4 error datagram (RFC 1812: at most 576 bytes).
const V4_LIMIT: usize = 576;
/// Largest IPv6 error packet (RFC 4443: the minimum MTU).
const V6_LIMIT: usize = 1280;

/// The ICMP error answering `frame`, addressed back to its sender, or
/// `None` where RFC 1812 / 4443 forbid one (errors about errors, about
/// packets from unspecified or multicast sources).
pub(crate) fn error_reply(
    frame: &[u8],
    error: Error,
    port_mac: MacAddr,
    _guest_mac: MacAddr,
) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = &frame[eth.header_len()..];
    let (src, dst, icmp) = match parse_ip(frame).ok()? {
        Ip::V4(ip) => {
            if ip.src().is_unspecified() || ip.src().is_multicast() || ip.src().is_broadcast() {
                return None;
            }
            if ip.protocol() == IpProtocol::ICMP
                && Icmpv4Packet::new_checked(ip.payload())
                    .is_ok_and(|i| !matches!(i.msg_type(), 0 | 8))
            {
                return None;
            }
            let quote = &l3[..ip.total_len().min(l3.len()).min(V4_LIMIT - 20 - 8)];
            let message = match error {
                Error::NoRoute => Icmpv4Message::DstUnreachable {
                    code: 0,
                    next_hop_mtu: 0,
                },
                Error::TimeExceeded => Icmpv4Message::TimeExceeded { code: 0 },
                Error::TooBig(mtu) => Icmpv4Message::DstUnreachable {
                    code: 4,
                    next_hop_mtu: mtu,
                },
            };
            let repr = Icmpv4Repr {
                message,
                data: quote,
            };
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut bytes);
            (
                IpAddr::V4(GATEWAY_V4),
                IpAddr::V4(ip.src()),
                (IpProtocol::ICMP, bytes),
            )
        }
        Ip::V6(ip) => {
            if ip.src().is_unspecified() || ip.src().is_multicast() {
                return None;
            }
            if let Ok(upper) = ip.upper_layer()
                && upper.protocol == IpProtocol::ICMPV6
                && l3
                    .get(upper.offset..)
                    .and_then(|b| Icmpv6Packet::new_checked(b).ok())
                    .is_some_and(|i| i.msg_type() < 128)
            {
                return None;
            }
            let quote = &l3[..ip.total_len().min(l3.len()).min(V6_LIMIT - 40 - 8)];
            let message = match error {
                Error::NoRoute => Icmpv6Message::DstUnreachable { code: 0 },
                Error::TimeExceeded => Icmpv6Message::TimeExceeded { code: 0 },
                Error::TooBig(mtu) => Icmpv6Message::PacketTooBig {
                    mtu: u32::from(mtu),
                },
            };
            let repr = Icmpv6Repr {
                message,
                data: quote,
            };
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut bytes, GATEWAY_V6, ip.src());
            (
                IpAddr::V6(GATEWAY_V6),
                IpAddr::V6(ip.src()),
                (IpProtocol::ICMPV6, bytes),
            )
        }
    };
    FrameSpec {
        eth_src: port_mac,
        eth_dst: eth.src(),
        src,
        dst,
        ttl: 64,
        l4: L4Spec::Raw(icmp.0),
        payload: icmp.1,
    }
    .to_vec()
    .ok()
}

/// An echo reply from the gateway address the request was sent to.
pub(crate) fn echo_reply(frame: &[u8]) -> Option<Answer> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (src, dst, ident, seq, data) = match parse_ip(frame).ok()? {
        Ip::V4(ip) => {
            let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
            if icmp.msg_type() != 8 {
                return None;
            }
            let ip4: &Ipv4Packet<&[u8]> = &ip;
            (
                IpAddr::V4(ip4.dst()),
                IpAddr::V4(ip4.src()),
                icmp.echo_ident(),
                icmp.echo_seq(),
                icmp.data().to_vec(),
            )
        }
        Ip::V6(ip) => {
            let ip6: &Ipv6Packet<&[u8]> = &ip;
            let icmp = Icmpv6Packet::new_checked(ip6.payload()).ok()?;
            if icmp.msg_type() != 128 || !icmp.verify_checksum(ip6.src(), ip6.dst()) {
                return None;
            }
            let body = icmp.body();
            let seq = u16::from_be_bytes([*body.get(2)?, *body.get(3)?]);
            (
                IpAddr::V6(ip6.dst()),
                IpAddr::V6(ip6.src()),
                icmp.echo_ident(),
                seq,
                body.get(4..)?.to_vec(),
            )
        }
    };
    let frame = FrameSpec {
        eth_src: eth.dst(),
        eth_dst: eth.src(),
        src,
        dst,
        ttl: 64,
        l4: L4Spec::Echo {
            request: false,
            ident,
            seq,
        },
        payload: data,
    }
    .to_vec()
    .ok()?;
    Some(Answer {
        frame,
        learned: None,
    })
}

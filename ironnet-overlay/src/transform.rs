//! Declarative header transforms and the one function that applies them.
//!
//! Network functions (NAT, VIP, load balancing, encapsulation) decide
//! *what* to change and describe it as a [`HeaderTransform`];
//! [`HeaderTransform::apply`] is the only code that rewrites headers, and it
//! keeps every checksum right with the incremental update of RFC 1624:
//! the IPv4 header checksum, and the TCP, UDP, ICMP and ICMPv6 checksums
//! (pseudo-headers included). Steps, in order:
//!
//! 1. pop the outer Ethernet + IPv6 of an encapsulated frame;
//! 2. rewrite source/destination address and port of the (inner) packet;
//!    for ICMP and ICMPv6 echo messages a port rewrite changes the echo
//!    identifier (the "port" NAT uses for ping);
//! 3. decrement the TTL / hop limit;
//! 4. rewrite the Ethernet addresses;
//! 5. push outer Ethernet + IPv6.
//!
//! Everything is validated before the first byte changes: if `apply`
//! returns an error the packet is exactly as it was. ICMP error messages
//! are rewritten in their outer headers only; the packet quoted inside
//! them is not translated.

use std::net::IpAddr;

use crate::buf::PacketBuf;
use crate::encap::{self, EncapParams, OUTER_LEN};
use crate::wire::ethernet::HEADER_LEN as ETH_LEN;
use crate::wire::field::{set_u16, u16_at};
use crate::wire::{
    EtherType, IpProtocol, Ipv4Packet, Ipv6Packet, Layer, MacAddr, WireError, checksum, icmpv4,
    icmpv6,
};

/// Ethernet addresses to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EtherRewrite {
    /// New source address.
    pub src: MacAddr,
    /// New destination address.
    pub dst: MacAddr,
}

/// A description of header changes; see the module docs for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HeaderTransform {
    /// Pop an outer Ethernet + IPv6 first.
    pub decap: bool,
    /// New source address (same family as the packet).
    pub src_ip: Option<IpAddr>,
    /// New destination address (same family as the packet).
    pub dst_ip: Option<IpAddr>,
    /// New TCP/UDP source port, or ICMP echo identifier.
    pub src_port: Option<u16>,
    /// New TCP/UDP destination port, or ICMP echo identifier.
    pub dst_port: Option<u16>,
    /// Decrement TTL / hop limit; a packet that would reach 0 is refused
    /// with [`WireError::HopLimitExceeded`].
    pub decrement_ttl: bool,
    /// New Ethernet addresses.
    pub ether: Option<EtherRewrite>,
    /// Push an outer Ethernet + IPv6 last.
    pub encap: Option<EncapParams>,
}

/// What `apply` found out about the packet on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Applied {
    /// The outer headers that were popped, if `decap` was set.
    pub decapsulated: Option<encap::Decapsulated>,
}

/// Where the upper-layer header lies and which checksum protects it.
#[derive(Debug, Clone, Copy)]
struct L4 {
    protocol: IpProtocol,
    /// Offset of the L4 header in the frame (after any decap).
    offset: usize,
    /// Whether the header is present (not a later fragment) and long
    /// enough for its ports / identifier and checksum.
    complete: bool,
}

impl L4 {
    fn checksum_at(&self) -> Option<usize> {
        match self.protocol {
            IpProtocol::TCP => Some(self.offset + 16),
            IpProtocol::UDP => Some(self.offset + 6),
            IpProtocol::ICMP | IpProtocol::ICMPV6 => Some(self.offset + 2),
            _ => None,
        }
    }

    /// Whether the checksum covers the IP addresses (pseudo-header).
    fn has_pseudo_header(&self) -> bool {
        matches!(
            self.protocol,
            IpProtocol::TCP | IpProtocol::UDP | IpProtocol::ICMPV6
        )
    }
}

/// The located inner packet.
#[derive(Debug, Clone, Copy)]
struct Located {
    v4: bool,
    /// Length of the IP packet (its header sits at `ETH_LEN` once any
    /// outer header is popped).
    ip_len: usize,
    ttl: u8,
    l4: L4,
}

fn mismatch() -> WireError {
    WireError::Malformed {
        layer: Layer::Buffer,
        reason: "rewrite address family differs from the packet",
    }
}

/// Reads the IP and L4 headers of the IP packet `ip`, whose header will
/// sit right after the Ethernet header of the transformed frame.
fn locate_ip(ip: &[u8], v4: bool) -> Result<Located, WireError> {
    let (ttl, protocol, l4_offset, ip_len, has_header) = if v4 {
        let p = Ipv4Packet::new_checked(ip)?;
        (
            p.ttl(),
            p.protocol(),
            p.header_len(),
            p.total_len(),
            !p.is_later_fragment(),
        )
    } else {
        let p = Ipv6Packet::new_checked(ip)?;
        let upper = p.upper_layer()?;
        (
            p.hop_limit(),
            upper.protocol,
            upper.offset,
            p.total_len(),
            upper.has_header(),
        )
    };
    let avail = ip_len - l4_offset;
    Ok(Located {
        v4,
        ip_len,
        ttl,
        l4: L4 {
            protocol,
            offset: ETH_LEN + l4_offset,
            complete: has_header && avail >= min_l4_len(protocol),
        },
    })
}

fn min_l4_len(p: IpProtocol) -> usize {
    match p {
        IpProtocol::TCP => 20,
        IpProtocol::UDP | IpProtocol::ICMP | IpProtocol::ICMPV6 => 8,
        _ => 0,
    }
}

/// Offset of the 16-bit field a port rewrite changes, or why it cannot.
fn port_field(frame: &[u8], l4: &L4, src: bool) -> Result<usize, WireError> {
    let unsupported = |what| WireError::Unsupported {
        layer: Layer::Buffer,
        what,
    };
    if !l4.complete {
        return Err(unsupported("port rewrite without a complete L4 header"));
    }
    match l4.protocol {
        IpProtocol::TCP | IpProtocol::UDP => Ok(l4.offset + if src { 0 } else { 2 }),
        IpProtocol::ICMP
            if matches!(
                frame[l4.offset],
                icmpv4::TYPE_ECHO_REQUEST | icmpv4::TYPE_ECHO_REPLY
            ) =>
        {
            Ok(l4.offset + 4)
        }
        IpProtocol::ICMPV6
            if matches!(
                frame[l4.offset],
                icmpv6::TYPE_ECHO_REQUEST | icmpv6::TYPE_ECHO_REPLY
            ) =>
        {
            Ok(l4.offset + 4)
        }
        _ => Err(unsupported("port rewrite on a protocol without ports")),
    }
}

/// Changes bytes `at..at + N` of `frame` and fixes the checksums that
/// cover them; the ones'-complement difference is computed once and
/// applied to each checksum (RFC 1624).
#[inline]
fn rewrite_field<const N: usize>(
    frame: &mut [u8],
    at: usize,
    new: [u8; N],
    ip_checksum: Option<usize>,
    l4: Option<usize>,
    udp: bool,
) {
    let mut old = [0u8; N];
    old.copy_from_slice(&frame[at..at + N]);
    if old == new {
        return;
    }
    frame[at..at + N].copy_from_slice(&new);
    let delta = checksum::delta(&old, &new);
    if let Some(c) = ip_checksum {
        let v = checksum::apply_delta(u16_at(frame, c), delta);
        set_u16(frame, c, v);
    }
    if let Some(c) = l4 {
        let current = u16_at(frame, c);
        if udp && current == 0 {
            // IPv4 UDP without checksum stays without.
            return;
        }
        let mut v = checksum::apply_delta(current, delta);
        if udp && v == 0 {
            v = 0xffff;
        }
        set_u16(frame, c, v);
    }
}

impl HeaderTransform {
    /// A transform that changes nothing.
    pub fn identity() -> Self {
        Self::default()
    }

    /// Applies the transform to the Ethernet frame in `pkt`. On error
    /// nothing was changed.
    #[inline]
    pub fn apply<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        pkt: &mut PacketBuf<B>,
    ) -> Result<Applied, WireError> {
        // 1. Validate everything against the frame as it will be after decap.
        let outer = if self.decap {
            Some(encap::outer_info(pkt.data())?)
        } else {
            None
        };
        // Offsets below are those of the frame after decap; `shift` maps
        // them to the frame as it is now.
        let shift = outer.as_ref().map_or(0, |o| o.inner_offset - ETH_LEN);
        let loc = match &outer {
            Some(o) => {
                let inner = &pkt.data()[o.inner_offset..o.inner_offset + o.inner_len];
                locate_ip(inner, o.decap.inner == EtherType::IPV4)?
            }
            None => {
                let ty = encap::ip_ethertype(pkt.data())?;
                locate_ip(&pkt.data()[ETH_LEN..], ty == EtherType::IPV4)?
            }
        };
        for addr in [self.src_ip, self.dst_ip].into_iter().flatten() {
            if addr.is_ipv4() != loc.v4 {
                return Err(mismatch());
            }
        }
        let inner_view = &pkt.data()[shift..];
        let src_port_at = self
            .src_port
            .map(|_| port_field(inner_view, &loc.l4, true))
            .transpose()?;
        let dst_port_at = self
            .dst_port
            .map(|_| port_field(inner_view, &loc.l4, false))
            .transpose()?;
        if let (Some(a), Some(b), Some(x), Some(y)) =
            (src_port_at, dst_port_at, self.src_port, self.dst_port)
            && a == b
            && x != y
        {
            return Err(WireError::Malformed {
                layer: Layer::Buffer,
                reason: "two different echo identifiers requested",
            });
        }
        if self.decrement_ttl && loc.ttl <= 1 {
            return Err(WireError::HopLimitExceeded {
                layer: if loc.v4 { Layer::Ipv4 } else { Layer::Ipv6 },
            });
        }
        if self.encap.is_some() {
            if loc.ip_len > usize::from(u16::MAX) {
                return Err(WireError::TooLarge {
                    layer: Layer::Encap,
                    field: "outer payload length",
                });
            }
            if pkt.headroom() + shift < encap::HEADROOM_NEEDED {
                return Err(WireError::Truncated {
                    layer: Layer::Buffer,
                    needed: encap::HEADROOM_NEEDED,
                    available: pkt.headroom() + shift,
                });
            }
        }

        // 2. Mutate; nothing below can fail.
        let decapsulated = outer.as_ref().map(|o| {
            encap::pop_outer(pkt, o);
            o.decap
        });
        let frame = pkt.data_mut();
        let l4_sum = loc.l4.complete.then(|| loc.l4.checksum_at()).flatten();
        let udp = loc.l4.protocol == IpProtocol::UDP && loc.v4;
        let ip = ETH_LEN;
        let ip_sum = loc.v4.then_some(ip + 10);
        let pseudo_sum = l4_sum.filter(|_| loc.l4.has_pseudo_header());
        for (addr, src) in [(self.src_ip, true), (self.dst_ip, false)] {
            match addr {
                Some(IpAddr::V4(a)) => {
                    let at = ip + if src { 12 } else { 16 };
                    rewrite_field(frame, at, a.octets(), ip_sum, pseudo_sum, udp);
                }
                Some(IpAddr::V6(a)) => {
                    let at = ip + if src { 8 } else { 24 };
                    rewrite_field(frame, at, a.octets(), None, pseudo_sum, false);
                }
                None => {}
            }
        }
        for (port, at) in [(self.src_port, src_port_at), (self.dst_port, dst_port_at)] {
            if let (Some(port), Some(at)) = (port, at) {
                rewrite_field(frame, at, port.to_be_bytes(), None, l4_sum, udp);
            }
        }
        if self.decrement_ttl {
            if loc.v4 {
                let word = [loc.ttl - 1, frame[ip + 9]];
                rewrite_field(frame, ip + 8, word, ip_sum, None, false);
            } else {
                frame[ip + 7] = loc.ttl - 1;
            }
        }
        if let Some(e) = self.ether {
            frame[0..6].copy_from_slice(&e.dst.0);
            frame[6..12].copy_from_slice(&e.src.0);
        }
        if let Some(params) = &self.encap {
            // Validated above: inner IP, length and headroom.
            encap::push_outer(pkt, params, loc.v4, loc.ip_len);
            debug_assert!(pkt.len() >= OUTER_LEN);
        }
        Ok(Applied { decapsulated })
    }
}

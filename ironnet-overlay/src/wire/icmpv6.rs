//! ICMPv6 (RFC 4443) with neighbour discovery (RFC 4861): echo, errors,
//! router and neighbour solicitations and advertisements, and their
//! options.
//!
//! [`Icmpv6Packet::new_checked`] guarantees the header length of the
//! message's type: 8 bytes for echo, errors and RS, 16 for RA, 24 for NS and
//! NA, 4 for unknown types. NDP options are walked by [`NdpOptions`], which
//! checks every option's length before yielding it.

use std::net::Ipv6Addr;

use super::checksum;
use super::error::{Layer, WireError};
use super::ethernet::MacAddr;
use super::field::{ipv6_at, set_u16, set_u32, u16_at, u32_at};
use super::ip::IpProtocol;

/// Destination unreachable.
pub const TYPE_DST_UNREACHABLE: u8 = 1;
/// Packet too big.
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 3;
/// Parameter problem.
pub const TYPE_PARAM_PROBLEM: u8 = 4;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 128;
/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 129;
/// Router solicitation.
pub const TYPE_ROUTER_SOLICIT: u8 = 133;
/// Router advertisement.
pub const TYPE_ROUTER_ADVERT: u8 = 134;
/// Neighbour solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbour advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

/// NA flag: sender is a router.
pub const NA_ROUTER: u8 = 0x80;
/// NA flag: solicited.
pub const NA_SOLICITED: u8 = 0x40;
/// NA flag: override.
pub const NA_OVERRIDE: u8 = 0x20;

/// Header length for a message type.
pub fn header_len(msg_type: u8) -> usize {
    match msg_type {
        TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT => 24,
        TYPE_ROUTER_ADVERT => 16,
        TYPE_DST_UNREACHABLE | TYPE_PACKET_TOO_BIG | TYPE_TIME_EXCEEDED | TYPE_PARAM_PROBLEM
        | TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY | TYPE_ROUTER_SOLICIT => 8,
        _ => 4,
    }
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// A view over at least the header of the message's type.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Icmpv6, 4, b.len())?;
        WireError::check_len(Layer::Icmpv6, header_len(b[0]), b.len())?;
        Ok(Icmpv6Packet { buffer })
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }

    /// Header length for this message's type.
    pub fn header_len(&self) -> usize {
        header_len(self.msg_type())
    }

    /// Whether this is an echo request or reply.
    pub fn is_echo(&self) -> bool {
        matches!(self.msg_type(), TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY)
    }

    /// Echo identifier (echo messages only; 0 otherwise).
    pub fn echo_ident(&self) -> u16 {
        if self.is_echo() {
            u16_at(self.buffer.as_ref(), 4)
        } else {
            0
        }
    }

    /// The 32-bit field at offset 4 of 8-byte headers (MTU, pointer, echo
    /// identifier + sequence); 0 for 4-byte headers.
    pub fn word1(&self) -> u32 {
        if self.header_len() >= 8 {
            u32_at(self.buffer.as_ref(), 4)
        } else {
            0
        }
    }

    /// The target address of NS / NA; `None` for other types.
    pub fn target(&self) -> Option<Ipv6Addr> {
        matches!(
            self.msg_type(),
            TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT
        )
        .then(|| ipv6_at(self.buffer.as_ref(), 8))
    }

    /// Everything after the type's header (NDP options, or the invoking
    /// packet of an error, or echo data).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// NDP options of RS, RA, NS and NA (empty for other types).
    pub fn ndp_options(&self) -> NdpOptions<'_> {
        let is_ndp = matches!(
            self.msg_type(),
            TYPE_ROUTER_SOLICIT | TYPE_ROUTER_ADVERT | TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT
        );
        NdpOptions {
            rest: if is_ndp { self.body() } else { &[] },
        }
    }

    /// Whether the checksum verifies for the IPv6 addresses.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, b.len() as u32)
            + checksum::sum(b);
        checksum::fold(acc) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the echo identifier (echo messages only; checksum untouched).
    pub fn set_echo_ident(&mut self, value: u16) {
        if self.is_echo() {
            set_u16(self.buffer.as_mut(), 4, value);
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), 2, value);
    }

    /// Computes and stores the checksum.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let b = self.buffer.as_mut();
        set_u16(b, 2, 0);
        let acc = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, b.len() as u32)
            + checksum::sum(b);
        set_u16(b, 2, checksum::finish(acc));
    }
}

/// Prefix information option (type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixInfo {
    /// Prefix length.
    pub prefix_len: u8,
    /// On-link flag (L).
    pub on_link: bool,
    /// Autonomous address configuration flag (A).
    pub autonomous: bool,
    /// Valid lifetime, seconds.
    pub valid_lifetime: u32,
    /// Preferred lifetime, seconds.
    pub preferred_lifetime: u32,
    /// The prefix.
    pub prefix: Ipv6Addr,
}

/// One NDP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpOption<'a> {
    /// Source link-layer address (type 1).
    SourceLinkLayer(MacAddr),
    /// Target link-layer address (type 2).
    TargetLinkLayer(MacAddr),
    /// Prefix information (type 3).
    PrefixInfo(PrefixInfo),
    /// MTU (type 5).
    Mtu(u32),
    /// Any other option: type and the bytes after type and length.
    Other(u8, &'a [u8]),
}

/// Iterator over NDP options; yields an error (once) on a zero or
/// overlong option length and then stops.
#[derive(Debug, Clone)]
pub struct NdpOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdpOptions<'a> {
    /// Options over raw bytes.
    pub fn new(raw: &'a [u8]) -> Self {
        NdpOptions { rest: raw }
    }
}

impl<'a> Iterator for NdpOptions<'a> {
    type Item = Result<NdpOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.is_empty() {
            return None;
        }
        let malformed = |reason| {
            Some(Err(WireError::Malformed {
                layer: Layer::Icmpv6,
                reason,
            }))
        };
        if b.len() < 2 {
            self.rest = &[];
            return malformed("truncated NDP option");
        }
        let len = usize::from(b[1]) * 8;
        if len == 0 || len > b.len() {
            self.rest = &[];
            return malformed("bad NDP option length");
        }
        let (opt, rest) = b.split_at(len);
        self.rest = rest;
        let mac = || {
            let mut m = [0u8; 6];
            m.copy_from_slice(&opt[2..8]);
            MacAddr(m)
        };
        Some(Ok(match opt[0] {
            1 => NdpOption::SourceLinkLayer(mac()),
            2 => NdpOption::TargetLinkLayer(mac()),
            3 if len == 32 => NdpOption::PrefixInfo(PrefixInfo {
                prefix_len: opt[2],
                on_link: opt[3] & 0x80 != 0,
                autonomous: opt[3] & 0x40 != 0,
                valid_lifetime: u32_at(opt, 4),
                preferred_lifetime: u32_at(opt, 8),
                prefix: ipv6_at(opt, 16),
            }),
            3 => return malformed("prefix information option not 32 bytes"),
            5 if len == 8 => NdpOption::Mtu(u32_at(opt, 4)),
            5 => return malformed("MTU option not 8 bytes"),
            kind => NdpOption::Other(kind, &opt[2..]),
        }))
    }
}

/// The NDP options a server needs, as values. Unknown options are skipped
/// when parsing; a repeated option keeps its first occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NdpRepr {
    /// Source link-layer address.
    pub source_ll: Option<MacAddr>,
    /// Target link-layer address.
    pub target_ll: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u32>,
    /// One prefix information option.
    pub prefix_info: Option<PrefixInfo>,
}

impl NdpRepr {
    /// Collects options, failing on the first malformed one.
    pub fn parse(options: NdpOptions<'_>) -> Result<Self, WireError> {
        let mut repr = NdpRepr::default();
        for opt in options {
            match opt? {
                NdpOption::SourceLinkLayer(m) => {
                    repr.source_ll.get_or_insert(m);
                }
                NdpOption::TargetLinkLayer(m) => {
                    repr.target_ll.get_or_insert(m);
                }
                NdpOption::Mtu(m) => {
                    repr.mtu.get_or_insert(m);
                }
                NdpOption::PrefixInfo(p) => {
                    repr.prefix_info.get_or_insert(p);
                }
                NdpOption::Other(..) => {}
            }
        }
        Ok(repr)
    }

    /// Bytes the options take.
    pub fn buffer_len(&self) -> usize {
        8 * (usize::from(self.source_ll.is_some())
            + usize::from(self.target_ll.is_some())
            + usize::from(self.mtu.is_some()))
            + if self.prefix_info.is_some() { 32 } else { 0 }
    }

    /// Writes the options (source LL, target LL, MTU, prefix) into `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let mut at = 0;
        for (kind, mac) in [(1u8, self.source_ll), (2u8, self.target_ll)] {
            if let Some(mac) = mac {
                buf[at] = kind;
                buf[at + 1] = 1;
                buf[at + 2..at + 8].copy_from_slice(&mac.0);
                at += 8;
            }
        }
        if let Some(mtu) = self.mtu {
            buf[at] = 5;
            buf[at + 1] = 1;
            set_u16(buf, at + 2, 0);
            set_u32(buf, at + 4, mtu);
            at += 8;
        }
        if let Some(p) = self.prefix_info {
            buf[at] = 3;
            buf[at + 1] = 4;
            buf[at + 2] = p.prefix_len;
            buf[at + 3] = (u8::from(p.on_link) << 7) | (u8::from(p.autonomous) << 6);
            set_u32(buf, at + 4, p.valid_lifetime);
            set_u32(buf, at + 8, p.preferred_lifetime);
            set_u32(buf, at + 12, 0);
            buf[at + 16..at + 32].copy_from_slice(&p.prefix.octets());
        }
    }
}

/// An ICMPv6 message header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv6Message {
    /// Destination unreachable; data holds as much of the invoking packet
    /// as fits.
    DstUnreachable {
        /// Reason code.
        code: u8,
    },
    /// Packet too big.
    PacketTooBig {
        /// MTU of the next hop.
        mtu: u32,
    },
    /// Time exceeded.
    TimeExceeded {
        /// Reason code (0: hop limit).
        code: u8,
    },
    /// Parameter problem.
    ParamProblem {
        /// Reason code.
        code: u8,
        /// Offset of the problem.
        pointer: u32,
    },
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq: u16,
    },
    /// Router solicitation.
    RouterSolicit {
        /// Options.
        options: NdpRepr,
    },
    /// Router advertisement.
    RouterAdvert {
        /// Current hop limit.
        cur_hop_limit: u8,
        /// Managed address configuration (M).
        managed: bool,
        /// Other configuration (O).
        other_config: bool,
        /// Router lifetime, seconds.
        router_lifetime: u16,
        /// Reachable time, milliseconds.
        reachable_time: u32,
        /// Retransmission timer, milliseconds.
        retrans_time: u32,
        /// Options.
        options: NdpRepr,
    },
    /// Neighbour solicitation.
    NeighborSolicit {
        /// Target address.
        target: Ipv6Addr,
        /// Options.
        options: NdpRepr,
    },
    /// Neighbour advertisement.
    NeighborAdvert {
        /// Flags: [`NA_ROUTER`], [`NA_SOLICITED`], [`NA_OVERRIDE`].
        flags: u8,
        /// Target address.
        target: Ipv6Addr,
        /// Options.
        options: NdpRepr,
    },
    /// Any other message (4-byte header).
    Other {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
}

/// An ICMPv6 message as values, borrowing its data. For NDP messages the
/// options are in the message and `data` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv6Repr<'a> {
    /// Type-specific fields.
    pub message: Icmpv6Message,
    /// Bytes after the header (echo data, invoking packet, unknown body).
    pub data: &'a [u8],
}

impl<'a> Icmpv6Repr<'a> {
    /// Reads a message whose checksum verifies for the IPv6 addresses. NDP
    /// messages must have code 0 and hop limit checking is the caller's.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        p: &Icmpv6Packet<&'a T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
    ) -> Result<Self, WireError> {
        if !p.verify_checksum(src, dst) {
            return Err(WireError::Checksum {
                layer: Layer::Icmpv6,
            });
        }
        let whole: &'a T = p.buffer;
        let b = whole.as_ref();
        let body = &b[header_len(b[0])..];
        let code = p.code();
        let ndp_code = || {
            if code == 0 {
                Ok(())
            } else {
                Err(WireError::Malformed {
                    layer: Layer::Icmpv6,
                    reason: "NDP message with non-zero code",
                })
            }
        };
        let (message, data) = match p.msg_type() {
            TYPE_DST_UNREACHABLE => (Icmpv6Message::DstUnreachable { code }, body),
            TYPE_PACKET_TOO_BIG => (Icmpv6Message::PacketTooBig { mtu: p.word1() }, body),
            TYPE_TIME_EXCEEDED => (Icmpv6Message::TimeExceeded { code }, body),
            TYPE_PARAM_PROBLEM => (
                Icmpv6Message::ParamProblem {
                    code,
                    pointer: p.word1(),
                },
                body,
            ),
            TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY => {
                let (ident, seq) = (u16_at(b, 4), u16_at(b, 6));
                let m = if p.msg_type() == TYPE_ECHO_REQUEST {
                    Icmpv6Message::EchoRequest { ident, seq }
                } else {
                    Icmpv6Message::EchoReply { ident, seq }
                };
                (m, body)
            }
            TYPE_ROUTER_SOLICIT => {
                ndp_code()?;
                let options = NdpRepr::parse(NdpOptions::new(body))?;
                (Icmpv6Message::RouterSolicit { options }, &b[..0])
            }
            TYPE_ROUTER_ADVERT => {
                ndp_code()?;
                let options = NdpRepr::parse(NdpOptions::new(body))?;
                let m = Icmpv6Message::RouterAdvert {
                    cur_hop_limit: b[4],
                    managed: b[5] & 0x80 != 0,
                    other_config: b[5] & 0x40 != 0,
                    router_lifetime: u16_at(b, 6),
                    reachable_time: u32_at(b, 8),
                    retrans_time: u32_at(b, 12),
                    options,
                };
                (m, &b[..0])
            }
            TYPE_NEIGHBOR_SOLICIT => {
                ndp_code()?;
                let options = NdpRepr::parse(NdpOptions::new(body))?;
                let target = ipv6_at(b, 8);
                (Icmpv6Message::NeighborSolicit { target, options }, &b[..0])
            }
            TYPE_NEIGHBOR_ADVERT => {
                ndp_code()?;
                let options = NdpRepr::parse(NdpOptions::new(body))?;
                let m = Icmpv6Message::NeighborAdvert {
                    flags: b[4] & 0xe0,
                    target: ipv6_at(b, 8),
                    options,
                };
                (m, &b[..0])
            }
            msg_type => (Icmpv6Message::Other { msg_type, code }, body),
        };
        Ok(Icmpv6Repr { message, data })
    }

    fn msg_type(&self) -> u8 {
        match self.message {
            Icmpv6Message::DstUnreachable { .. } => TYPE_DST_UNREACHABLE,
            Icmpv6Message::PacketTooBig { .. } => TYPE_PACKET_TOO_BIG,
            Icmpv6Message::TimeExceeded { .. } => TYPE_TIME_EXCEEDED,
            Icmpv6Message::ParamProblem { .. } => TYPE_PARAM_PROBLEM,
            Icmpv6Message::EchoRequest { .. } => TYPE_ECHO_REQUEST,
            Icmpv6Message::EchoReply { .. } => TYPE_ECHO_REPLY,
            Icmpv6Message::RouterSolicit { .. } => TYPE_ROUTER_SOLICIT,
            Icmpv6Message::RouterAdvert { .. } => TYPE_ROUTER_ADVERT,
            Icmpv6Message::NeighborSolicit { .. } => TYPE_NEIGHBOR_SOLICIT,
            Icmpv6Message::NeighborAdvert { .. } => TYPE_NEIGHBOR_ADVERT,
            Icmpv6Message::Other { msg_type, .. } => msg_type,
        }
    }

    fn options(&self) -> Option<&NdpRepr> {
        match &self.message {
            Icmpv6Message::RouterSolicit { options }
            | Icmpv6Message::RouterAdvert { options, .. }
            | Icmpv6Message::NeighborSolicit { options, .. }
            | Icmpv6Message::NeighborAdvert { options, .. } => Some(options),
            _ => None,
        }
    }

    /// Header + options + data length.
    pub fn buffer_len(&self) -> usize {
        header_len(self.msg_type())
            + self.options().map_or(0, NdpRepr::buffer_len)
            + self.data.len()
    }

    /// Writes the message into `buf` (exactly
    /// [`buffer_len`](Self::buffer_len) bytes) with its checksum.
    pub fn emit(&self, buf: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
        let ty = self.msg_type();
        let hl = header_len(ty);
        buf[..hl].fill(0);
        buf[0] = ty;
        match self.message {
            Icmpv6Message::DstUnreachable { code } | Icmpv6Message::TimeExceeded { code } => {
                buf[1] = code;
            }
            Icmpv6Message::PacketTooBig { mtu } => set_u32(buf, 4, mtu),
            Icmpv6Message::ParamProblem { code, pointer } => {
                buf[1] = code;
                set_u32(buf, 4, pointer);
            }
            Icmpv6Message::EchoRequest { ident, seq } | Icmpv6Message::EchoReply { ident, seq } => {
                set_u16(buf, 4, ident);
                set_u16(buf, 6, seq);
            }
            Icmpv6Message::RouterSolicit { .. } => {}
            Icmpv6Message::RouterAdvert {
                cur_hop_limit,
                managed,
                other_config,
                router_lifetime,
                reachable_time,
                retrans_time,
                ..
            } => {
                buf[4] = cur_hop_limit;
                buf[5] = (u8::from(managed) << 7) | (u8::from(other_config) << 6);
                set_u16(buf, 6, router_lifetime);
                set_u32(buf, 8, reachable_time);
                set_u32(buf, 12, retrans_time);
            }
            Icmpv6Message::NeighborSolicit { target, .. } => {
                buf[8..24].copy_from_slice(&target.octets());
            }
            Icmpv6Message::NeighborAdvert { flags, target, .. } => {
                buf[4] = flags & 0xe0;
                buf[8..24].copy_from_slice(&target.octets());
            }
            Icmpv6Message::Other { code, .. } => buf[1] = code,
        }
        let mut at = hl;
        if let Some(options) = self.options() {
            options.emit(&mut buf[at..]);
            at += options.buffer_len();
        }
        buf[at..at + self.data.len()].copy_from_slice(self.data);
        at += self.data.len();
        Icmpv6Packet::new_unchecked(&mut buf[..at]).fill_checksum(src, dst);
    }
}

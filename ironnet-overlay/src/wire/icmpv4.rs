//! ICMP for IPv4 (RFC 792): echo, destination unreachable, time exceeded,
//! and any other type as raw fields.
//!
//! [`Icmpv4Packet::new_checked`] guarantees the 8-byte header; the message
//! is the whole buffer (pass exactly the IP payload).

use super::checksum;
use super::error::{Layer, WireError};
use super::field::{set_u16, u16_at};

/// Length of the header (type, code, checksum, 4 bytes of "rest").
pub const HEADER_LEN: usize = 8;

/// Echo reply.
pub const TYPE_ECHO_REPLY: u8 = 0;
/// Destination unreachable.
pub const TYPE_DST_UNREACHABLE: u8 = 3;
/// Echo request.
pub const TYPE_ECHO_REQUEST: u8 = 8;
/// Time exceeded.
pub const TYPE_TIME_EXCEEDED: u8 = 11;

/// Destination unreachable code: fragmentation needed and DF set.
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Destination unreachable code: network unreachable.
pub const CODE_NET_UNREACHABLE: u8 = 0;
/// Destination unreachable code: host unreachable.
pub const CODE_HOST_UNREACHABLE: u8 = 1;
/// Destination unreachable code: communication administratively prohibited.
pub const CODE_ADMIN_PROHIBITED: u8 = 13;

/// A view of an ICMP message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// A view over at least the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        WireError::check_len(Layer::Icmpv4, HEADER_LEN, buffer.as_ref().len())?;
        Ok(Icmpv4Packet { buffer })
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

    /// The 4 bytes after the checksum.
    pub fn rest(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[4], b[5], b[6], b[7]]
    }

    /// Whether this is an echo request or reply.
    pub fn is_echo(&self) -> bool {
        matches!(self.msg_type(), TYPE_ECHO_REQUEST | TYPE_ECHO_REPLY)
    }

    /// Echo identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 4)
    }

    /// Echo sequence number (bytes 6..8).
    pub fn echo_seq(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 6)
    }

    /// Everything after the header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type (checksum untouched).
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[0] = value;
    }

    /// Sets the echo identifier (checksum untouched).
    pub fn set_echo_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), 4, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), 2, value);
    }

    /// Computes and stores the checksum.
    pub fn fill_checksum(&mut self) {
        let b = self.buffer.as_mut();
        set_u16(b, 2, 0);
        let c = checksum::checksum(b);
        set_u16(b, 2, c);
    }
}

/// An ICMP message header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
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
    /// Destination unreachable; data holds the offending header + 8 bytes.
    DstUnreachable {
        /// Reason code.
        code: u8,
        /// Next-hop MTU (code 4, RFC 1191), else 0.
        next_hop_mtu: u16,
    },
    /// Time exceeded (code 0: TTL, 1: reassembly).
    TimeExceeded {
        /// Reason code.
        code: u8,
    },
    /// Any other message.
    Other {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
        /// Bytes 4..8.
        rest: [u8; 4],
    },
}

/// An ICMP message as values, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmpv4Repr<'a> {
    /// Type-specific header fields.
    pub message: Icmpv4Message,
    /// Everything after the 8-byte header.
    pub data: &'a [u8],
}

impl<'a> Icmpv4Repr<'a> {
    /// Reads a message whose checksum verifies.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &Icmpv4Packet<&'a T>) -> Result<Self, WireError> {
        if !p.verify_checksum() {
            return Err(WireError::Checksum {
                layer: Layer::Icmpv4,
            });
        }
        let rest = p.rest();
        let message = match (p.msg_type(), p.code()) {
            (TYPE_ECHO_REQUEST, 0) => Icmpv4Message::EchoRequest {
                ident: p.echo_ident(),
                seq: p.echo_seq(),
            },
            (TYPE_ECHO_REPLY, 0) => Icmpv4Message::EchoReply {
                ident: p.echo_ident(),
                seq: p.echo_seq(),
            },
            (TYPE_DST_UNREACHABLE, code) if rest[0] == 0 && rest[1] == 0 => {
                Icmpv4Message::DstUnreachable {
                    code,
                    next_hop_mtu: u16::from_be_bytes([rest[2], rest[3]]),
                }
            }
            (TYPE_TIME_EXCEEDED, code) if rest == [0; 4] => Icmpv4Message::TimeExceeded { code },
            (msg_type, code) => Icmpv4Message::Other {
                msg_type,
                code,
                rest,
            },
        };
        let whole: &'a T = p.buffer;
        Ok(Icmpv4Repr {
            message,
            data: &whole.as_ref()[HEADER_LEN..],
        })
    }

    /// Header plus data length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data.len()
    }

    /// Writes the message into `buf` (exactly
    /// [`buffer_len`](Self::buffer_len) bytes) with its checksum.
    pub fn emit(&self, buf: &mut [u8]) {
        let (ty, code, rest) = match self.message {
            Icmpv4Message::EchoRequest { ident, seq } => {
                (TYPE_ECHO_REQUEST, 0, echo_rest(ident, seq))
            }
            Icmpv4Message::EchoReply { ident, seq } => (TYPE_ECHO_REPLY, 0, echo_rest(ident, seq)),
            Icmpv4Message::DstUnreachable { code, next_hop_mtu } => {
                let m = next_hop_mtu.to_be_bytes();
                (TYPE_DST_UNREACHABLE, code, [0, 0, m[0], m[1]])
            }
            Icmpv4Message::TimeExceeded { code } => (TYPE_TIME_EXCEEDED, code, [0; 4]),
            Icmpv4Message::Other {
                msg_type,
                code,
                rest,
            } => (msg_type, code, rest),
        };
        buf[0] = ty;
        buf[1] = code;
        buf[4..8].copy_from_slice(&rest);
        buf[HEADER_LEN..HEADER_LEN + self.data.len()].copy_from_slice(self.data);
        Icmpv4Packet::new_unchecked(&mut buf[..HEADER_LEN + self.data.len()]).fill_checksum();
    }
}

fn echo_rest(ident: u16, seq: u16) -> [u8; 4] {
    let i = ident.to_be_bytes();
    let s = seq.to_be_bytes();
    [i[0], i[1], s[0], s[1]]
}

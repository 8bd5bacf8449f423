//! TCP segments (RFC 9293): header, options as raw bytes, checksum.
//!
//! [`TcpPacket::new_checked`] guarantees 20 ≤ data offset ≤ buffer length.
//! The segment is the whole buffer: pass exactly the IP payload.

use super::checksum;
use super::error::{Layer, WireError};
use super::field::{set_u16, set_u32, u16_at, u32_at};
use super::ip::{IpPair, IpProtocol, RawOptions};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// TCP flags (the low 9 bits of bytes 12..14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// FIN.
    pub const FIN: u16 = 0x001;
    /// SYN.
    pub const SYN: u16 = 0x002;
    /// RST.
    pub const RST: u16 = 0x004;
    /// PSH.
    pub const PSH: u16 = 0x008;
    /// ACK.
    pub const ACK: u16 = 0x010;
    /// URG.
    pub const URG: u16 = 0x020;

    /// Whether every bit of `mask` is set.
    pub fn has(self, mask: u16) -> bool {
        self.0 & mask == mask
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// A view whose data offset is consistent with the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Tcp, MIN_HEADER_LEN, b.len())?;
        let hl = usize::from(b[12] >> 4) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(WireError::Malformed {
                layer: Layer::Tcp,
                reason: "data offset below 5",
            });
        }
        WireError::check_len(Layer::Tcp, hl, b.len())?;
        Ok(TcpPacket { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 4)
    }

    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 8)
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    /// Flags.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(u16_at(self.buffer.as_ref(), 12) & 0x01ff)
    }

    /// Window.
    pub fn window(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 14)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 16)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 18)
    }

    /// Option bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum verifies for `addrs`.
    pub fn verify_checksum(&self, addrs: &IpPair) -> bool {
        let b = self.buffer.as_ref();
        let acc = addrs.pseudo_header(IpProtocol::TCP, b.len() as u32) + checksum::sum(b);
        checksum::fold(acc) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port (checksum untouched; see `transform`).
    pub fn set_src_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), 0, port);
    }

    /// Sets the destination port (checksum untouched).
    pub fn set_dst_port(&mut self, port: u16) {
        set_u16(self.buffer.as_mut(), 2, port);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), 16, value);
    }

    /// Computes and stores the checksum.
    pub fn fill_checksum(&mut self, addrs: &IpPair) {
        let b = self.buffer.as_mut();
        set_u16(b, 16, 0);
        let acc = addrs.pseudo_header(IpProtocol::TCP, b.len() as u32) + checksum::sum(b);
        set_u16(b, 16, checksum::finish(acc));
    }
}

/// A TCP header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags.
    pub flags: TcpFlags,
    /// Window.
    pub window: u16,
    /// Urgent pointer.
    pub urgent: u16,
    /// Options, inline (length a multiple of 4, at most 40).
    pub options: RawOptions,
    /// Payload length.
    pub payload_len: usize,
}

impl TcpRepr {
    /// Reads a segment whose checksum verifies for `addrs`.
    pub fn parse<T: AsRef<[u8]>>(p: &TcpPacket<T>, addrs: &IpPair) -> Result<Self, WireError> {
        if !p.verify_checksum(addrs) {
            return Err(WireError::Checksum { layer: Layer::Tcp });
        }
        let options = RawOptions::new(Layer::Tcp, p.options())?;
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
            urgent: p.urgent(),
            options,
            payload_len: p.payload().len(),
        })
    }

    /// Header length.
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.as_bytes().len()
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header into `buf` (exactly [`buffer_len`](Self::buffer_len)
    /// bytes, payload already in place after the header) and fills the
    /// checksum.
    pub fn emit(&self, buf: &mut [u8], addrs: &IpPair) {
        let hl = self.header_len();
        set_u16(buf, 0, self.src_port);
        set_u16(buf, 2, self.dst_port);
        set_u32(buf, 4, self.seq);
        set_u32(buf, 8, self.ack);
        set_u16(buf, 12, ((hl as u16 / 4) << 12) | (self.flags.0 & 0x01ff));
        set_u16(buf, 14, self.window);
        set_u16(buf, 18, self.urgent);
        buf[MIN_HEADER_LEN..hl].copy_from_slice(self.options.as_bytes());
        let mut p = TcpPacket::new_unchecked(&mut buf[..hl + self.payload_len]);
        p.fill_checksum(addrs);
    }
}

//! UDP datagrams (RFC 768).
//!
//! [`UdpPacket::new_checked`] guarantees 8 ≤ length field ≤ buffer length;
//! the payload is `8..length`.

use super::checksum;
use super::error::{Layer, WireError};
use super::field::{set_u16, u16_at};
use super::ip::{IpPair, IpProtocol};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// A view whose length field is consistent with the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Udp, HEADER_LEN, b.len())?;
        let len = usize::from(u16_at(b, 4));
        if len < HEADER_LEN {
            return Err(WireError::Malformed {
                layer: Layer::Udp,
                reason: "length below 8",
            });
        }
        WireError::check_len(Layer::Udp, len, b.len())?;
        Ok(UdpPacket { buffer })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 2)
    }

    /// Length field (header + payload).
    pub fn len(&self) -> usize {
        usize::from(u16_at(self.buffer.as_ref(), 4))
    }

    /// Never true after `new_checked` (the length is at least 8).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checksum field (0 = none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 6)
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }

    /// Whether the checksum verifies. A zero checksum over IPv4 means "not
    /// computed" and verifies; over IPv6 it is invalid (RFC 8200 §8.1).
    pub fn verify_checksum(&self, addrs: &IpPair) -> bool {
        if self.checksum() == 0 {
            return matches!(addrs, IpPair::V4 { .. });
        }
        let b = &self.buffer.as_ref()[..self.len()];
        let acc = addrs.pseudo_header(IpProtocol::UDP, b.len() as u32) + checksum::sum(b);
        checksum::fold(acc) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
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
        set_u16(self.buffer.as_mut(), 6, value);
    }

    /// Computes and stores the checksum (a computed 0 is sent as `0xffff`).
    pub fn fill_checksum(&mut self, addrs: &IpPair) {
        let len = self.len();
        let b = self.buffer.as_mut();
        set_u16(b, 6, 0);
        let acc = addrs.pseudo_header(IpProtocol::UDP, len as u32) + checksum::sum(&b[..len]);
        let c = match checksum::finish(acc) {
            0 => 0xffff,
            c => c,
        };
        set_u16(b, 6, c);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// A UDP header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a datagram whose checksum verifies for `addrs`.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>, addrs: &IpPair) -> Result<Self, WireError> {
        if !p.verify_checksum(addrs) {
            return Err(WireError::Checksum { layer: Layer::Udp });
        }
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.len() - HEADER_LEN,
        })
    }

    /// Header plus payload length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header into `buf`, whose bytes
    /// `8..8 + payload_len` must already hold the payload, and fills the
    /// checksum.
    pub fn emit(&self, buf: &mut [u8], addrs: &IpPair) -> Result<(), WireError> {
        let len = u16::try_from(self.buffer_len()).map_err(|_| WireError::TooLarge {
            layer: Layer::Udp,
            field: "length",
        })?;
        set_u16(buf, 0, self.src_port);
        set_u16(buf, 2, self.dst_port);
        set_u16(buf, 4, len);
        let mut p = UdpPacket::new_unchecked(&mut buf[..usize::from(len)]);
        p.fill_checksum(addrs);
        Ok(())
    }
}

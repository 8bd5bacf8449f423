//! IPv4 headers (RFC 791), options included.
//!
//! [`Ipv4Packet::new_checked`] guarantees: the version is 4, the IHL is at
//! least 5, and header length ≤ total length ≤ buffer length. The payload is
//! `header_len..total_len`; bytes after `total_len` (Ethernet padding) are
//! ignored.

use std::net::Ipv4Addr;

use super::checksum;
use super::error::{Layer, WireError};
use super::field::{ipv4_at, set_u16, u16_at};
use super::ip::{IpPair, IpProtocol, RawOptions};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// A view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// A view whose version, header length and total length are consistent
    /// with the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Ipv4, MIN_HEADER_LEN, b.len())?;
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed {
                layer: Layer::Ipv4,
                reason: "version is not 4",
            });
        }
        let header_len = usize::from(b[0] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(WireError::Malformed {
                layer: Layer::Ipv4,
                reason: "header length below 20",
            });
        }
        let total_len = usize::from(u16_at(b, 2));
        if total_len < header_len {
            return Err(WireError::Malformed {
                layer: Layer::Ipv4,
                reason: "total length below header length",
            });
        }
        WireError::check_len(Layer::Ipv4, total_len, b.len())?;
        Ok(Ipv4Packet { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length in bytes (20..=60).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    /// DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// Total length (header + payload).
    pub fn total_len(&self) -> usize {
        usize::from(u16_at(self.buffer.as_ref(), 2))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 4)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.buffer.as_ref()[6] & 0x40 != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        self.buffer.as_ref()[6] & 0x20 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (u16_at(self.buffer.as_ref(), 6) & 0x1fff) << 3
    }

    /// Whether this is a fragment other than the first (no L4 header).
    pub fn is_later_fragment(&self) -> bool {
        self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[9])
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        u16_at(self.buffer.as_ref(), 10)
    }

    /// Source address.
    pub fn src(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 12)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), 16)
    }

    /// Source and destination.
    pub fn addrs(&self) -> IpPair {
        IpPair::V4 {
            src: self.src(),
            dst: self.dst(),
        }
    }

    /// The options bytes (possibly empty).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()])) == 0xffff
    }

    /// The payload (`header_len..total_len`).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the TTL, updating the checksum incrementally.
    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old = u16_at(b, 8);
        b[8] = ttl;
        let new = u16_at(b, 8);
        let hc = checksum::update_u16(u16_at(b, 10), old, new);
        set_u16(b, 10, hc);
    }

    /// Sets the source address, updating the header checksum incrementally.
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        self.replace_addr(12, addr);
    }

    /// Sets the destination address, updating the header checksum
    /// incrementally.
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        self.replace_addr(16, addr);
    }

    fn replace_addr(&mut self, at: usize, addr: Ipv4Addr) {
        let b = self.buffer.as_mut();
        let mut old = [0u8; 4];
        old.copy_from_slice(&b[at..at + 4]);
        let new = addr.octets();
        b[at..at + 4].copy_from_slice(&new);
        let hc = checksum::update_bytes(u16_at(b, 10), &old, &new);
        set_u16(b, 10, hc);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        set_u16(b, 10, 0);
        let c = checksum::checksum(&b[..hl]);
        set_u16(b, 10, c);
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// An IPv4 header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length (total length minus header).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't fragment.
    pub dont_frag: bool,
    /// More fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options.
    pub options: RawOptions,
}

impl Ipv4Repr {
    /// Reads a header whose checksum verifies.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self, WireError> {
        if !p.verify_checksum() {
            return Err(WireError::Checksum { layer: Layer::Ipv4 });
        }
        if p.buffer.as_ref()[6] & 0x80 != 0 {
            return Err(WireError::Malformed {
                layer: Layer::Ipv4,
                reason: "reserved flag set",
            });
        }
        Ok(Ipv4Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len(),
            ttl: p.ttl(),
            dscp_ecn: p.dscp_ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            options: RawOptions::new(Layer::Ipv4, p.options())?,
        })
    }

    /// Header length (20 + options).
    pub fn header_len(&self) -> usize {
        MIN_HEADER_LEN + self.options.as_bytes().len()
    }

    /// Header length plus payload length.
    pub fn total_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header with its checksum into the start of `buf` (at least
    /// [`header_len`](Self::header_len) bytes). Fails if the total length
    /// exceeds 65535 or the fragment offset is not a multiple of 8.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let total = u16::try_from(self.total_len()).map_err(|_| WireError::TooLarge {
            layer: Layer::Ipv4,
            field: "total length",
        })?;
        if !self.frag_offset.is_multiple_of(8) {
            return Err(WireError::Malformed {
                layer: Layer::Ipv4,
                reason: "fragment offset not a multiple of 8",
            });
        }
        let hl = self.header_len();
        buf[0] = 0x40 | (hl / 4) as u8;
        buf[1] = self.dscp_ecn;
        set_u16(buf, 2, total);
        set_u16(buf, 4, self.ident);
        let flags = (u16::from(self.dont_frag) << 14) | (u16::from(self.more_frags) << 13);
        set_u16(buf, 6, flags | (self.frag_offset >> 3));
        buf[8] = self.ttl;
        buf[9] = self.protocol.0;
        set_u16(buf, 10, 0);
        buf[12..16].copy_from_slice(&self.src.octets());
        buf[16..20].copy_from_slice(&self.dst.octets());
        buf[MIN_HEADER_LEN..hl].copy_from_slice(self.options.as_bytes());
        let c = checksum::checksum(&buf[..hl]);
        set_u16(buf, 10, c);
        Ok(())
    }
}

//! IPv6 headers (RFC 8200) and the walk over extension headers to the
//! upper layer.
//!
//! [`Ipv6Packet::new_checked`] guarantees the version is 6 and that the
//! 40-byte header plus the payload length fit the buffer. Bytes after the
//! payload are ignored. The extension-header walk in
//! [`Ipv6Packet::upper_layer`] bounds-checks every header it crosses and
//! stops after [`MAX_EXTENSION_HEADERS`].

use std::net::Ipv6Addr;

use super::error::{Layer, WireError};
use super::field::{ipv6_at, set_u16, set_u32, u16_at, u32_at};
use super::ip::{IpPair, IpProtocol};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// The most extension headers [`Ipv6Packet::upper_layer`] will cross.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

/// Where the upper-layer protocol starts, after any extension headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The upper-layer protocol.
    pub protocol: IpProtocol,
    /// Its offset from the start of the IPv6 header.
    pub offset: usize,
    /// Fragment header seen on the way: `(offset in bytes, more fragments)`.
    /// With a non-zero offset the upper-layer header is not in this packet.
    pub fragment: Option<(u16, bool)>,
}

impl UpperLayer {
    /// Whether the upper-layer header is present (not a later fragment, not
    /// "no next header").
    pub fn has_header(&self) -> bool {
        self.protocol != IpProtocol::NO_NEXT && !matches!(self.fragment, Some((off, _)) if off != 0)
    }
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// A view without checks.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// A view whose version is 6 and whose payload fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        WireError::check_len(Layer::Ipv6, HEADER_LEN, b.len())?;
        if b[0] >> 4 != 6 {
            return Err(WireError::Malformed {
                layer: Layer::Ipv6,
                reason: "version is not 6",
            });
        }
        let total = HEADER_LEN + usize::from(u16_at(b, 4));
        WireError::check_len(Layer::Ipv6, total, b.len())?;
        Ok(Ipv6Packet { buffer })
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        ((u16_at(self.buffer.as_ref(), 0) >> 4) & 0xff) as u8
    }

    /// Flow label (20 bits).
    pub fn flow_label(&self) -> u32 {
        u32_at(self.buffer.as_ref(), 0) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> usize {
        usize::from(u16_at(self.buffer.as_ref(), 4))
    }

    /// Header length plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[6])
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    /// Source address.
    pub fn src(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), 8)
    }

    /// Destination address.
    pub fn dst(&self) -> Ipv6Addr {
        ipv6_at(self.buffer.as_ref(), 24)
    }

    /// Source and destination.
    pub fn addrs(&self) -> IpPair {
        IpPair::V6 {
            src: self.src(),
            dst: self.dst(),
        }
    }

    /// The payload (extension headers included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walks hop-by-hop, routing, fragment, destination-options and
    /// authentication headers to the upper-layer protocol. ESP and unknown
    /// next headers end the walk and are reported as the upper layer.
    pub fn upper_layer(&self) -> Result<UpperLayer, WireError> {
        let b = &self.buffer.as_ref()[..self.total_len()];
        let mut protocol = self.next_header();
        let mut offset = HEADER_LEN;
        let mut fragment = None;
        for _ in 0..MAX_EXTENSION_HEADERS {
            let len = match protocol {
                IpProtocol::HOP_BY_HOP | IpProtocol::ROUTING | IpProtocol::DEST_OPTS => {
                    WireError::check_len(Layer::Ipv6, offset + 2, b.len())?;
                    (usize::from(b[offset + 1]) + 1) * 8
                }
                IpProtocol::AUTH => {
                    WireError::check_len(Layer::Ipv6, offset + 2, b.len())?;
                    (usize::from(b[offset + 1]) + 2) * 4
                }
                IpProtocol::FRAGMENT => {
                    WireError::check_len(Layer::Ipv6, offset + 8, b.len())?;
                    let field = u16_at(b, offset + 2);
                    fragment = Some((field & 0xfff8, field & 1 != 0));
                    8
                }
                _ => {
                    return Ok(UpperLayer {
                        protocol,
                        offset,
                        fragment,
                    });
                }
            };
            if protocol == IpProtocol::HOP_BY_HOP && offset != HEADER_LEN {
                return Err(WireError::Malformed {
                    layer: Layer::Ipv6,
                    reason: "hop-by-hop options not first",
                });
            }
            WireError::check_len(Layer::Ipv6, offset + len, b.len())?;
            protocol = IpProtocol(b[offset]);
            offset += len;
        }
        Err(WireError::Unsupported {
            layer: Layer::Ipv6,
            what: "more than 8 extension headers",
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the source address (IPv6 has no header checksum; upper-layer
    /// checksums are the caller's, see `transform`).
    pub fn set_src(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[8..24].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[24..40].copy_from_slice(&addr.octets());
    }

    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[7] = hop_limit;
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The fixed IPv6 header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Reads the fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Self {
        Ipv6Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Always 40.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 40 bytes of `buf`. Fails if the
    /// payload length exceeds 65535 or the flow label 20 bits.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let len = u16::try_from(self.payload_len).map_err(|_| WireError::TooLarge {
            layer: Layer::Ipv6,
            field: "payload length",
        })?;
        if self.flow_label > 0x000f_ffff {
            return Err(WireError::TooLarge {
                layer: Layer::Ipv6,
                field: "flow label",
            });
        }
        let word = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | self.flow_label;
        set_u32(buf, 0, word);
        set_u16(buf, 4, len);
        buf[6] = self.next_header.0;
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src.octets());
        buf[24..40].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

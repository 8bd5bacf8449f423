//! What IPv4 and IPv6 share: protocol numbers and the address pair an
//! upper-layer checksum covers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::error::{Layer, WireError};

/// An IP protocol / IPv6 next-header number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    /// IPv6 hop-by-hop options (0).
    pub const HOP_BY_HOP: IpProtocol = IpProtocol(0);
    /// ICMP (1).
    pub const ICMP: IpProtocol = IpProtocol(1);
    /// IPv4 encapsulated (4).
    pub const IPV4: IpProtocol = IpProtocol(4);
    /// TCP (6).
    pub const TCP: IpProtocol = IpProtocol(6);
    /// UDP (17).
    pub const UDP: IpProtocol = IpProtocol(17);
    /// IPv6 encapsulated (41).
    pub const IPV6: IpProtocol = IpProtocol(41);
    /// IPv6 routing header (43).
    pub const ROUTING: IpProtocol = IpProtocol(43);
    /// IPv6 fragment header (44).
    pub const FRAGMENT: IpProtocol = IpProtocol(44);
    /// ESP (50).
    pub const ESP: IpProtocol = IpProtocol(50);
    /// Authentication header (51).
    pub const AUTH: IpProtocol = IpProtocol(51);
    /// ICMPv6 (58).
    pub const ICMPV6: IpProtocol = IpProtocol(58);
    /// No next header (59).
    pub const NO_NEXT: IpProtocol = IpProtocol(59);
    /// IPv6 destination options (60).
    pub const DEST_OPTS: IpProtocol = IpProtocol(60);
}

/// Source and destination of a packet, for pseudo-header checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPair {
    /// IPv4 addresses.
    V4 {
        /// Source.
        src: Ipv4Addr,
        /// Destination.
        dst: Ipv4Addr,
    },
    /// IPv6 addresses.
    V6 {
        /// Source.
        src: Ipv6Addr,
        /// Destination.
        dst: Ipv6Addr,
    },
}

impl IpPair {
    /// Source address.
    pub fn src(&self) -> IpAddr {
        match *self {
            IpPair::V4 { src, .. } => src.into(),
            IpPair::V6 { src, .. } => src.into(),
        }
    }

    /// Destination address.
    pub fn dst(&self) -> IpAddr {
        match *self {
            IpPair::V4 { dst, .. } => dst.into(),
            IpPair::V6 { dst, .. } => dst.into(),
        }
    }

    /// Sum of the pseudo-header for `protocol` carrying `length` bytes.
    pub fn pseudo_header(&self, protocol: IpProtocol, length: u32) -> u64 {
        match *self {
            // An IPv4 upper-layer length always fits 16 bits (it comes from a
            // 16-bit total length).
            IpPair::V4 { src, dst } => {
                checksum::pseudo_header_v4(src, dst, protocol.0, length as u16)
            }
            IpPair::V6 { src, dst } => checksum::pseudo_header_v6(src, dst, protocol.0, length),
        }
    }
}

/// The longest options field of an IPv4 or TCP header.
pub const MAX_OPTIONS_LEN: usize = 40;

/// Up to 40 bytes of IPv4 or TCP options, stored inline (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawOptions {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
}

impl RawOptions {
    /// Options from raw bytes; their length must be a multiple of 4 and at
    /// most 40. `layer` names the header in errors.
    pub fn new(layer: Layer, raw: &[u8]) -> Result<Self, WireError> {
        if raw.len() > MAX_OPTIONS_LEN {
            return Err(WireError::TooLarge {
                layer,
                field: "options",
            });
        }
        if !raw.len().is_multiple_of(4) {
            return Err(WireError::Malformed {
                layer,
                reason: "options length not a multiple of 4",
            });
        }
        let mut bytes = [0u8; MAX_OPTIONS_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(RawOptions {
            bytes,
            len: raw.len() as u8,
        })
    }

    /// The raw option bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions {
            bytes: [0; MAX_OPTIONS_LEN],
            len: 0,
        }
    }
}

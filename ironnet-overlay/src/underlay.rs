//! The underlay IPv6 address format of dpservice (parse and build).
//!
//! Every interface, virtual IP, NAT, load balancer and prefix on a host owns
//! one underlay /128; the outer destination of an encapsulated packet
//! selects it, so there is no VNI on the wire. The layout:
//!
//! | bytes  | content                                                        |
//! |--------|----------------------------------------------------------------|
//! | 0..8   | the host's /64 (from its `--ipv6` address)                     |
//! | 8      | type, [`UNDERLAY_TYPE`] `0xD0`                                 |
//! | 9      | subtype, 0                                                     |
//! | 10     | flags: 0 generated, [`FLAG_EXTERNAL`] `0x80` chosen by a caller, [`FLAG_SECONDARY_POOL`] `0x40` virtual services |
//! | 11     | a random byte                                                  |
//! | 12..16 | a big-endian 32-bit counter                                    |
//!
//! Allocation (uniqueness, counters, preferred addresses) is
//! `ironnet_alloc::UnderlayAllocator`'s job; this module only knows the
//! layout, so the data plane can classify addresses without the allocator.

use std::net::Ipv6Addr;

/// Byte 8 of every address dpservice generates.
pub const UNDERLAY_TYPE: u8 = 0xD0;
/// Flag (byte 10): the address was chosen outside dpservice.
pub const FLAG_EXTERNAL: u8 = 0x80;
/// Flag (byte 10): the address belongs to the secondary (virtual service) pool.
pub const FLAG_SECONDARY_POOL: u8 = 0x40;

/// An underlay address taken apart field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnderlayParts {
    /// The host's /64, as the address's first 64 bits.
    pub host_prefix: u64,
    /// Byte 8, [`UNDERLAY_TYPE`] for dpservice's addresses.
    pub kind: u8,
    /// Byte 9.
    pub subtype: u8,
    /// Byte 10.
    pub flags: u8,
    /// Byte 11.
    pub random: u8,
    /// Bytes 12..16, big-endian.
    pub counter: u32,
}

impl UnderlayParts {
    /// Splits any IPv6 address into the fields of the format.
    pub fn parse(addr: Ipv6Addr) -> Self {
        let b = addr.octets();
        UnderlayParts {
            host_prefix: u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            kind: b[8],
            subtype: b[9],
            flags: b[10],
            random: b[11],
            counter: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
        }
    }

    /// Assembles the address.
    pub fn to_addr(&self) -> Ipv6Addr {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.host_prefix.to_be_bytes());
        b[8] = self.kind;
        b[9] = self.subtype;
        b[10] = self.flags;
        b[11] = self.random;
        b[12..].copy_from_slice(&self.counter.to_be_bytes());
        Ipv6Addr::from(b)
    }

    /// Whether the address carries dpservice's type byte.
    pub fn is_dp_format(&self) -> bool {
        self.kind == UNDERLAY_TYPE
    }

    /// Whether the "externally generated" flag is set.
    pub fn is_external(&self) -> bool {
        self.flags & FLAG_EXTERNAL != 0
    }
}

//! Offloads of Linux TAP devices, done in software where the data plane
//! must: the virtio-net header that precedes every frame once a TAP is
//! opened with `IFF_VNET_HDR`, segmentation of the large TCP/UDP frames a
//! guest hands over with TSO/USO ([`segment`]), completion of checksums the
//! guest left partial ([`complete_checksum`]), and coalescing of in-order
//! TCP segments into one large frame for a guest ([`TcpCoalescer`], what
//! GRO does in the kernel).
//!
//! Only untagged Ethernet frames with IPv4 (no fragments) or IPv6 whose
//! next header is TCP or UDP directly are segmented or coalesced; anything
//! else is a typed error (segmentation) or left alone (coalescing).

mod coalesce;
mod layout;
mod segment;

pub use coalesce::{MAX_SEGMENTS, TcpCoalescer};
pub use segment::segment;

use crate::wire::checksum;
use crate::wire::{Layer, WireError};

/// Length of the virtio-net header as a TAP device uses it by default
/// (`struct virtio_net_hdr`, without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// The virtio-net header (`struct virtio_net_hdr`). Its 16-bit fields are
/// in the host's byte order, as the TAP driver exchanges them unless told
/// otherwise (`TUNSETVNETLE`/`TUNSETVNETBE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// [`VnetHdr::F_NEEDS_CSUM`], [`VnetHdr::F_DATA_VALID`].
    pub flags: u8,
    /// One of the `GSO_*` constants, possibly with [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers in front of the payload.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where checksumming starts (with [`VnetHdr::F_NEEDS_CSUM`]).
    pub csum_start: u16,
    /// Where, from `csum_start`, the checksum goes.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// The checksum from `csum_start` on is still to be computed.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum has been verified.
    pub const F_DATA_VALID: u8 = 2;
    /// Not a segmentation offload frame.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4, to be cut into `gso_size` segments.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation offload (UFO, not supported).
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation (USO), either IP version.
    pub const GSO_UDP_L4: u8 = 5;
    /// The ECN bit that may accompany a TCP type.
    pub const GSO_ECN: u8 = 0x80;

    /// Reads a header from the first [`VNET_HDR_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let Some(b) = bytes.get(..VNET_HDR_LEN) else {
            return Err(WireError::Truncated {
                layer: Layer::Offload,
                needed: VNET_HDR_LEN,
                available: bytes.len(),
            });
        };
        let word = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Ok(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: word(2),
            gso_size: word(4),
            csum_start: word(6),
            csum_offset: word(8),
        })
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// The segmentation type without the ECN bit.
    pub fn gso_kind(&self) -> u8 {
        self.gso_type & !Self::GSO_ECN
    }

    /// Whether the frame is to be segmented.
    pub fn is_gso(&self) -> bool {
        self.gso_kind() != Self::GSO_NONE
    }

    /// Whether the checksum is left for us to complete.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }
}

/// Completes a partial checksum as a NIC would: the one's complement sum
/// of `frame[start..]` (whose checksum field holds the pseudo-header sum)
/// is stored at `start + offset`. A result of zero is written as `0xffff`,
/// which means the same to TCP and is required by UDP.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), WireError> {
    let field = start.checked_add(offset).ok_or(WireError::Malformed {
        layer: Layer::Offload,
        reason: "checksum offset overflows",
    })?;
    if field.checked_add(2).is_none_or(|end| end > frame.len()) {
        return Err(WireError::Truncated {
            layer: Layer::Offload,
            needed: field.saturating_add(2),
            available: frame.len(),
        });
    }
    let value = match checksum::checksum(&frame[start..]) {
        0 => 0xffff,
        v => v,
    };
    frame[field..field + 2].copy_from_slice(&value.to_be_bytes());
    Ok(())
}

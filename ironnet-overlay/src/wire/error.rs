//! The one error type of the wire layer: small and `Copy`, so the hot path
//! can return it by value.

use std::fmt;

/// Which header an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// Ethernet II, with or without a VLAN tag.
    Ethernet,
    /// ARP for IPv4 over Ethernet.
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6 and its extension headers.
    Ipv6,
    /// ICMP for IPv4.
    Icmpv4,
    /// ICMPv6, including neighbour discovery.
    Icmpv6,
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// DHCPv4 (BOOTP).
    Dhcpv4,
    /// DHCPv6.
    Dhcpv6,
    /// Outer Ethernet + IPv6 of an IP-in-IPv6 tunnel.
    Encap,
    /// The packet buffer (headroom, length).
    Buffer,
    /// The virtio-net header and segmentation offload.
    Offload,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Layer::Ethernet => "ethernet",
            Layer::Arp => "arp",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Icmpv4 => "icmpv4",
            Layer::Icmpv6 => "icmpv6",
            Layer::Udp => "udp",
            Layer::Tcp => "tcp",
            Layer::Dhcpv4 => "dhcpv4",
            Layer::Dhcpv6 => "dhcpv6",
            Layer::Encap => "encap",
            Layer::Buffer => "buffer",
            Layer::Offload => "offload",
        };
        f.write_str(name)
    }
}

/// Why bytes could not be read as a header, or a header could not be
/// written or transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the header (or a length field inside it) needs.
    #[error("{layer}: truncated: need {needed} bytes, have {available}")]
    Truncated {
        /// The header.
        layer: Layer,
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A field holds a value the format does not allow.
    #[error("{layer}: malformed: {reason}")]
    Malformed {
        /// The header.
        layer: Layer,
        /// What is wrong.
        reason: &'static str,
    },
    /// A valid packet that this code does not handle.
    #[error("{layer}: unsupported: {what}")]
    Unsupported {
        /// The header.
        layer: Layer,
        /// What is not handled.
        what: &'static str,
    },
    /// The checksum does not verify.
    #[error("{layer}: bad checksum")]
    Checksum {
        /// The header.
        layer: Layer,
    },
    /// The TTL / hop limit would reach zero (the caller answers with ICMP
    /// time exceeded).
    #[error("{layer}: hop limit exceeded")]
    HopLimitExceeded {
        /// The header.
        layer: Layer,
    },
    /// A value does not fit the field it must be written to.
    #[error("{layer}: value too large for {field}")]
    TooLarge {
        /// The header.
        layer: Layer,
        /// The field.
        field: &'static str,
    },
}

impl WireError {
    /// The header the error is about.
    pub fn layer(&self) -> Layer {
        match *self {
            WireError::Truncated { layer, .. }
            | WireError::Malformed { layer, .. }
            | WireError::Unsupported { layer, .. }
            | WireError::Checksum { layer }
            | WireError::HopLimitExceeded { layer }
            | WireError::TooLarge { layer, .. } => layer,
        }
    }

    pub(crate) fn check_len(layer: Layer, needed: usize, available: usize) -> Result<(), Self> {
        if available < needed {
            Err(WireError::Truncated {
                layer,
                needed,
                available,
            })
        } else {
            Ok(())
        }
    }
}

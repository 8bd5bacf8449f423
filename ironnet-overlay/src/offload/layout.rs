//! Where the headers of an untagged Ethernet frame carrying TCP or UDP over
//! IPv4 or IPv6 are, read once for segmentation and coalescing.

use crate::wire::{Layer, WireError};

/// Ethernet II header length (no VLAN tag).
pub(super) const ETH_LEN: usize = 14;
/// IPv6 fixed header length.
pub(super) const IPV6_LEN: usize = 40;
/// TCP's protocol number.
pub(super) const TCP: u8 = 6;
/// UDP's protocol number.
pub(super) const UDP: u8 = 17;

/// Offsets and sizes of a frame's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// IP header length (IPv4 with options, IPv6 fixed 40).
    pub ip_len: usize,
    /// TCP or UDP.
    pub protocol: u8,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// TCP/UDP header length.
    pub l4_len: usize,
    /// Offset of the payload.
    pub payload: usize,
    /// Frame length the IP length field claims (Ethernet padding excluded).
    pub end: usize,
}

fn unsupported(what: &'static str) -> WireError {
    WireError::Unsupported {
        layer: Layer::Offload,
        what,
    }
}

fn truncated(needed: usize, available: usize) -> WireError {
    WireError::Truncated {
        layer: Layer::Offload,
        needed,
        available,
    }
}

impl Layout {
    /// Reads the layout of `frame`.
    pub(super) fn parse(frame: &[u8]) -> Result<Layout, WireError> {
        if frame.len() < ETH_LEN {
            return Err(truncated(ETH_LEN, frame.len()));
        }
        let (v6, ip_len, protocol, end) = match [frame[12], frame[13]] {
            [0x08, 0x00] => {
                let ip = frame.get(ETH_LEN..).unwrap_or_default();
                if ip.len() < 20 {
                    return Err(truncated(ETH_LEN + 20, frame.len()));
                }
                if ip[0] >> 4 != 4 {
                    return Err(WireError::Malformed {
                        layer: Layer::Offload,
                        reason: "IPv4 ethertype without an IPv4 header",
                    });
                }
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                if ihl < 20 || total < ihl {
                    return Err(WireError::Malformed {
                        layer: Layer::Offload,
                        reason: "IPv4 header or total length",
                    });
                }
                let frag = u16::from_be_bytes([ip[6], ip[7]]);
                if frag & 0x3fff != 0 {
                    return Err(unsupported("IPv4 fragments"));
                }
                (false, ihl, ip[9], ETH_LEN + total)
            }
            [0x86, 0xdd] => {
                let ip = frame.get(ETH_LEN..).unwrap_or_default();
                if ip.len() < IPV6_LEN {
                    return Err(truncated(ETH_LEN + IPV6_LEN, frame.len()));
                }
                let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                (true, IPV6_LEN, ip[6], ETH_LEN + IPV6_LEN + payload)
            }
            _ => return Err(unsupported("neither untagged IPv4 nor IPv6")),
        };
        if end > frame.len() {
            return Err(truncated(end, frame.len()));
        }
        let l4 = ETH_LEN + ip_len;
        let l4_len = match protocol {
            TCP => {
                let off = l4 + 12;
                if off >= end {
                    return Err(truncated(off + 1, end));
                }
                usize::from(frame[off] >> 4) * 4
            }
            UDP => 8,
            _ => return Err(unsupported("neither TCP nor UDP directly after IP")),
        };
        if protocol == TCP && l4_len < 20 {
            return Err(WireError::Malformed {
                layer: Layer::Offload,
                reason: "TCP data offset",
            });
        }
        let payload = l4 + l4_len;
        if payload > end {
            return Err(truncated(payload, end));
        }
        Ok(Layout {
            v6,
            ip_len,
            protocol,
            l4,
            l4_len,
            payload,
            end,
        })
    }

    /// The pseudo-header sum for an L4 length of `len`.
    pub(super) fn pseudo_sum(&self, frame: &[u8], len: usize) -> u64 {
        use crate::wire::checksum::sum;
        let (addrs, proto) = if self.v6 {
            (&frame[ETH_LEN + 8..ETH_LEN + 40], self.protocol)
        } else {
            (&frame[ETH_LEN + 12..ETH_LEN + 20], self.protocol)
        };
        sum(addrs) + u64::from(proto) + len as u64
    }

    /// Writes the IP length fields for an L4 length of `l4_total` and, for
    /// IPv4, the identification `id` and a fresh header checksum.
    pub(super) fn set_ip_lengths(&self, frame: &mut [u8], l4_total: usize, id: Option<u16>) {
        let ip = &mut frame[ETH_LEN..ETH_LEN + self.ip_len];
        if self.v6 {
            ip[4..6].copy_from_slice(&(l4_total as u16).to_be_bytes());
        } else {
            ip[2..4].copy_from_slice(&((self.ip_len + l4_total) as u16).to_be_bytes());
            if let Some(id) = id {
                ip[4..6].copy_from_slice(&id.to_be_bytes());
            }
            ip[10..12].copy_from_slice(&[0, 0]);
            let c = crate::wire::checksum::checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
    }
}

//! Software segmentation of a TSO/USO frame into wire-sized frames, each
//! with its own lengths, sequence number, flags and full checksums.

use super::VnetHdr;
use super::layout::{ETH_LEN, Layout, TCP, UDP};
use crate::wire::checksum::{finish, sum};
use crate::wire::{Layer, WireError};

/// TCP flags byte: FIN and PSH stay on the last segment only, CWR on the
/// first only (as the kernel's `tcp_gso_segment`).
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Cuts `frame` (Ethernet, IP, TCP or UDP, payload) into segments of at
/// most `hdr.gso_size` payload bytes and hands each to `emit`, built in
/// `scratch`. Returns how many segments were emitted.
///
/// IPv4 identifications count up from the frame's, TCP sequence numbers
/// advance by the payload before each segment, every checksum (IPv4
/// header, TCP, UDP) is computed in full. The frame's checksum fields are
/// not trusted.
pub fn segment(
    frame: &[u8],
    hdr: &VnetHdr,
    scratch: &mut Vec<u8>,
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, WireError> {
    let layout = Layout::parse(frame)?;
    let expected = match hdr.gso_kind() {
        VnetHdr::GSO_TCPV4 if !layout.v6 => TCP,
        VnetHdr::GSO_TCPV6 if layout.v6 => TCP,
        VnetHdr::GSO_UDP_L4 => UDP,
        VnetHdr::GSO_UDP => {
            return Err(WireError::Unsupported {
                layer: Layer::Offload,
                what: "UDP fragmentation offload",
            });
        }
        _ => {
            return Err(WireError::Malformed {
                layer: Layer::Offload,
                reason: "segmentation type does not match the frame",
            });
        }
    };
    if layout.protocol != expected {
        return Err(WireError::Malformed {
            layer: Layer::Offload,
            reason: "segmentation type does not match the frame",
        });
    }
    let mss = usize::from(hdr.gso_size);
    if mss == 0 {
        return Err(WireError::Malformed {
            layer: Layer::Offload,
            reason: "segment size 0",
        });
    }
    let headers = &frame[..layout.payload];
    let payload = &frame[layout.payload..layout.end];
    let first_id = u16::from_be_bytes([frame[ETH_LEN + 4], frame[ETH_LEN + 5]]);
    let first_seq = u32::from_be_bytes([
        frame[layout.l4 + 4],
        frame[layout.l4 + 5],
        frame[layout.l4 + 6],
        frame[layout.l4 + 7],
    ]);
    let count = payload.len().div_ceil(mss).max(1);
    for (i, chunk) in payload
        .chunks(mss)
        .chain(payload.is_empty().then_some(&[][..]))
        .enumerate()
    {
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(chunk);
        let l4_total = layout.l4_len + chunk.len();
        layout.set_ip_lengths(scratch, l4_total, Some(first_id.wrapping_add(i as u16)));
        let l4 = layout.l4;
        if layout.protocol == TCP {
            let seq = first_seq.wrapping_add((i * mss) as u32);
            scratch[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            let flags = &mut scratch[l4 + 13];
            if i + 1 < count {
                *flags &= !(FIN | PSH);
            }
            if i > 0 {
                *flags &= !CWR;
            }
            scratch[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
            let c = finish(layout.pseudo_sum(scratch, l4_total) + sum(&scratch[l4..]));
            scratch[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        } else {
            scratch[l4 + 4..l4 + 6].copy_from_slice(&(l4_total as u16).to_be_bytes());
            scratch[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
            let c = match finish(layout.pseudo_sum(scratch, l4_total) + sum(&scratch[l4..])) {
                0 => 0xffff,
                c => c,
            };
            scratch[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
        }
        emit(scratch);
    }
    Ok(count)
}

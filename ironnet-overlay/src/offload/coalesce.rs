//! TCP receive coalescing (what the kernel calls GRO): in-order segments of
//! one connection become one large frame that a TAP device takes with a
//! virtio-net header asking for segmentation, so the guest's stack sees one
//! packet instead of dozens.
//!
//! A segment is merged only when the result is what the sender could have
//! sent as one TSO frame: same addresses, ports, IP fields, TCP header
//! (acknowledgement, window, options) and flags plain ACK (PSH allowed on
//! the last), the next sequence number, a payload no larger than the first
//! one, and verified checksums — the merged frame's checksum is left for
//! the receiver's stack to trust, so a corrupted segment is never hidden in
//! it.

use super::layout::{ETH_LEN, Layout, TCP};
use super::{VNET_HDR_LEN, VnetHdr};
use crate::wire::checksum::{checksum, finish, fold, sum};

/// Segments merged into one frame at most (the kernel's GRO limit).
pub const MAX_SEGMENTS: u16 = 64;
/// Largest L4 length of a merged frame (IPv4 total length, IPv6 payload
/// length are 16-bit).
const MAX_L4: usize = 65535 - 60;

const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// The frame being built.
#[derive(Debug, Clone, Copy)]
struct Pending {
    layout: Layout,
    /// Payload of the first segment: the segment size of the result.
    mss: usize,
    next_seq: u32,
    segments: u16,
    /// A short or PSH segment was merged: nothing may follow it.
    closed: bool,
    psh: bool,
}

/// Merges in-order TCP segments into one frame behind a virtio-net header.
/// Offer frames in order; when [`offer`](Self::offer) refuses one,
/// [`flush`](Self::flush) and offer it again (if refused again, send it as
/// it is).
#[derive(Debug, Default)]
pub struct TcpCoalescer {
    /// Virtio-net header, then the frame.
    buf: Vec<u8>,
    pending: Option<Pending>,
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl TcpCoalescer {
    /// An empty coalescer.
    pub fn new() -> Self {
        TcpCoalescer::default()
    }

    /// Whether a frame is being built.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes `frame` into the frame being built (or starts one with it);
    /// false if it cannot be merged, and then nothing changed.
    pub fn offer(&mut self, frame: &[u8]) -> bool {
        let Ok(layout) = Layout::parse(frame) else {
            return false;
        };
        if layout.protocol != TCP
            || layout.end != frame.len()
            || (!layout.v6 && layout.ip_len != 20)
        {
            return false;
        }
        let l4 = layout.l4;
        let payload_len = layout.end - layout.payload;
        let flags = frame[l4 + 13];
        if payload_len == 0 || (flags != ACK && flags != ACK | PSH) {
            return false;
        }
        if !layout.v6 && checksum(&frame[ETH_LEN..l4]) != 0 {
            return false;
        }
        let l4_total = frame.len() - l4;
        if finish(layout.pseudo_sum(frame, l4_total) + sum(&frame[l4..])) != 0 {
            return false;
        }
        let seq = word(frame, l4 + 4);
        let psh = flags & PSH != 0;
        let Some(p) = self.pending.as_mut() else {
            self.buf.clear();
            self.buf.extend_from_slice(&[0; VNET_HDR_LEN]);
            self.buf.extend_from_slice(frame);
            self.pending = Some(Pending {
                layout,
                mss: payload_len,
                next_seq: seq.wrapping_add(payload_len as u32),
                segments: 1,
                closed: psh,
                psh,
            });
            return true;
        };
        let first = &self.buf[VNET_HDR_LEN..];
        let same_ip = if layout.v6 {
            first[ETH_LEN..ETH_LEN + 4] == frame[ETH_LEN..ETH_LEN + 4]
                && first[ETH_LEN + 6..l4] == frame[ETH_LEN + 6..l4]
        } else {
            // Version/IHL, TOS; flags (DF), TTL, protocol; addresses.
            first[ETH_LEN..ETH_LEN + 2] == frame[ETH_LEN..ETH_LEN + 2]
                && first[ETH_LEN + 6..ETH_LEN + 10] == frame[ETH_LEN + 6..ETH_LEN + 10]
                && first[ETH_LEN + 12..l4] == frame[ETH_LEN + 12..l4]
        };
        let fits = p.layout.v6 == layout.v6
            && p.layout.l4_len == layout.l4_len
            && !p.closed
            && p.segments < MAX_SEGMENTS
            && payload_len <= p.mss
            && seq == p.next_seq
            && first.len() - l4 + payload_len <= MAX_L4
            && first[..ETH_LEN] == frame[..ETH_LEN]
            && same_ip
            // Ports, acknowledgement, data offset, window, options.
            && first[l4..l4 + 4] == frame[l4..l4 + 4]
            && first[l4 + 8..l4 + 13] == frame[l4 + 8..l4 + 13]
            && first[l4 + 14..l4 + 16] == frame[l4 + 14..l4 + 16]
            && first[l4 + 20..layout.payload] == frame[l4 + 20..layout.payload];
        if !fits {
            return false;
        }
        self.buf.extend_from_slice(&frame[layout.payload..]);
        p.next_seq = seq.wrapping_add(payload_len as u32);
        p.segments += 1;
        p.psh |= psh;
        p.closed = psh || payload_len < p.mss;
        true
    }

    /// Finishes the frame being built: its virtio-net header followed by
    /// the frame. A single segment comes back unchanged behind an empty
    /// header; several come back as one frame with its lengths fixed, the
    /// TCP checksum left partial and a header asking for segmentation at
    /// the first segment's size.
    pub fn flush(&mut self) -> Option<&[u8]> {
        let p = self.pending.take()?;
        if p.segments > 1 {
            let layout = p.layout;
            let l4 = layout.l4;
            let frame = &mut self.buf[VNET_HDR_LEN..];
            let l4_total = frame.len() - l4;
            layout.set_ip_lengths(frame, l4_total, None);
            if p.psh {
                frame[l4 + 13] |= PSH;
            }
            let pseudo = fold(layout.pseudo_sum(frame, l4_total));
            frame[l4 + 16..l4 + 18].copy_from_slice(&pseudo.to_be_bytes());
            let hdr = VnetHdr {
                flags: VnetHdr::F_NEEDS_CSUM,
                gso_type: if layout.v6 {
                    VnetHdr::GSO_TCPV6
                } else {
                    VnetHdr::GSO_TCPV4
                },
                hdr_len: layout.payload as u16,
                gso_size: p.mss as u16,
                csum_start: l4 as u16,
                csum_offset: 16,
            };
            self.buf[..VNET_HDR_LEN].copy_from_slice(&hdr.to_bytes());
        }
        Some(&self.buf)
    }
}

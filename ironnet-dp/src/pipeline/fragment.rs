//! IPv4 fragmentation (RFC 791) for guest packets that do not fit the
//! underlay after encapsulation and may be fragmented (DF clear). The
//! inner packet is fragmented before encapsulation, so the receiving guest
//! reassembles, as it would behind any router.

use ironnet_overlay::wire::{EthernetFrame, Ipv4Packet, checksum};

/// Splits the IPv4 packet of `frame` (Ethernet + IPv4) into frames whose
/// IP packets are at most `mtu` bytes. `None` if the header carries
/// options (not fragmented here), `mtu` leaves no room for 8 bytes of
/// payload, or the packet does not parse.
pub(crate) fn fragment_ipv4(frame: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = eth.header_len();
    let ip = Ipv4Packet::new_checked(frame.get(l3..)?).ok()?;
    let hl = ip.header_len();
    if hl != 20 {
        return None;
    }
    let total = ip.total_len();
    let payload = frame.get(l3 + hl..l3 + total)?;
    let chunk = (mtu.checked_sub(hl)? / 8) * 8;
    if chunk == 0 {
        return None;
    }
    let base = usize::from(ip.frag_offset());
    let more_after = ip.more_frags();
    let pieces = payload.chunks(chunk).count();
    let mut out = Vec::with_capacity(pieces);
    for (i, piece) in payload.chunks(chunk).enumerate() {
        let mut f = Vec::with_capacity(l3 + hl + piece.len());
        f.extend_from_slice(&frame[..l3 + hl]);
        f.extend_from_slice(piece);
        let h = &mut f[l3..l3 + hl];
        let len = u16::try_from(hl + piece.len()).ok()?;
        h[2..4].copy_from_slice(&len.to_be_bytes());
        let offset = u16::try_from((base + i * chunk) / 8).ok()?;
        if offset > 0x1fff {
            return None;
        }
        let more = i + 1 < pieces || more_after;
        let flags: u16 = if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&(flags | offset).to_be_bytes());
        h[10] = 0;
        h[11] = 0;
        let cks = checksum::checksum(h);
        h[10..12].copy_from_slice(&cks.to_be_bytes());
        out.push(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_overlay::wire::MacAddr;
    use ironnet_overlay::wire::build::{FrameSpec, L4Spec};

    #[test]
    fn fragments_cover_the_payload_exactly_once() {
        let frame = FrameSpec {
            eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
            eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            ttl: 64,
            l4: L4Spec::Udp {
                src_port: 1,
                dst_port: 2,
            },
            payload: (0..3000u32).map(|i| i as u8).collect(),
        }
        .to_vec()
        .unwrap();
        let frags = fragment_ipv4(&frame, 1400).unwrap();
        assert_eq!(frags.len(), 3);
        let mut reassembled = vec![0u8; 3008];
        for (i, f) in frags.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.total_len() <= 1400);
            assert!(ip.verify_checksum());
            assert_eq!(ip.more_frags(), i < 2);
            assert!(!ip.dont_frag());
            let off = usize::from(ip.frag_offset());
            reassembled[off..off + ip.payload().len()].copy_from_slice(ip.payload());
        }
        assert_eq!(&reassembled[..], &frame[34..]);
        assert!(fragment_ipv4(&frame, 27).is_none());
    }
}

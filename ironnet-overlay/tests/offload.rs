//! Offloads: segmentation, checksum completion and coalescing, checked
//! against etherparse, plus the round trip segment → coalesce → segment.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use ironnet_overlay::offload::{TcpCoalescer, VNET_HDR_LEN, VnetHdr, complete_checksum, segment};
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::{MacAddr, TcpFlags};
use proptest::prelude::*;

const ACK: u16 = 0x010;
const PSH: u16 = 0x008;
const FIN: u16 = 0x001;

fn tcp_frame(v6: bool, seq: u32, flags: u16, payload: Vec<u8>) -> Vec<u8> {
    let (src, dst): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        )
    } else {
        ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap())
    };
    FrameSpec {
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src,
        dst,
        ttl: 64,
        l4: L4Spec::Tcp {
            src_port: 40000,
            dst_port: 5201,
            seq,
            ack: 77,
            flags: TcpFlags(flags),
            window: 501,
        },
        payload,
    }
    .to_vec()
    .unwrap()
}

fn udp_frame(payload: Vec<u8>) -> Vec<u8> {
    FrameSpec {
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src: "10.0.0.1".parse().unwrap(),
        dst: "10.0.0.2".parse().unwrap(),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: 1000,
            dst_port: 2000,
        },
        payload,
    }
    .to_vec()
    .unwrap()
}

/// What etherparse sees in a segment, with every checksum verified.
#[derive(Debug, PartialEq)]
struct Seen {
    seq: u32,
    ip_id: Option<u16>,
    flags: (bool, bool),
    payload: Vec<u8>,
}

fn checked(frame: &[u8]) -> Seen {
    let h = PacketHeaders::from_ethernet_slice(frame).unwrap();
    let payload = h.payload.slice().to_vec();
    let (seq, flags) = match h.transport.clone().unwrap() {
        TransportHeader::Tcp(t) => {
            let ok = match h.net.clone().unwrap() {
                NetHeaders::Ipv4(ip, _) => {
                    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
                    t.calc_checksum_ipv4(&ip, &payload).unwrap()
                }
                NetHeaders::Ipv6(ip, _) => t.calc_checksum_ipv6(&ip, &payload).unwrap(),
                NetHeaders::Arp(_) => unreachable!(),
            };
            assert_eq!(t.checksum, ok, "TCP checksum");
            (t.sequence_number, (t.fin, t.psh))
        }
        TransportHeader::Udp(u) => {
            let NetHeaders::Ipv4(ip, _) = h.net.clone().unwrap() else {
                unreachable!()
            };
            assert_eq!(u.checksum, u.calc_checksum_ipv4(&ip, &payload).unwrap());
            assert_eq!(usize::from(u.length), 8 + payload.len());
            (0, (false, false))
        }
        other => panic!("transport {other:?}"),
    };
    let ip_id = match h.net.unwrap() {
        NetHeaders::Ipv4(ip, _) => Some(ip.identification),
        _ => None,
    };
    Seen {
        seq,
        ip_id,
        flags,
        payload,
    }
}

fn tso_hdr(v6: bool, mss: u16) -> VnetHdr {
    VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: if v6 {
            VnetHdr::GSO_TCPV6
        } else {
            VnetHdr::GSO_TCPV4
        },
        gso_size: mss,
        ..VnetHdr::default()
    }
}

fn segments(frame: &[u8], hdr: &VnetHdr) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let n = segment(frame, hdr, &mut scratch, |s| out.push(s.to_vec())).unwrap();
    assert_eq!(n, out.len());
    out
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn vnet_header_round_trips_and_rejects_short_input() {
    let h = VnetHdr {
        flags: 1,
        gso_type: 4,
        hdr_len: 74,
        gso_size: 1440,
        csum_start: 54,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::parse(&h.to_bytes()).unwrap(), h);
    assert!(VnetHdr::parse(&[0; 9]).is_err());
}

#[test]
fn tso_frames_become_wire_segments_with_their_own_headers() {
    for v6 in [false, true] {
        let data = payload(10_000);
        let big = tcp_frame(v6, 1000, ACK | PSH | FIN, data.clone());
        let segs = segments(&big, &tso_hdr(v6, 1448));
        assert_eq!(segs.len(), 7);
        let mut joined = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let seen = checked(s);
            assert_eq!(seen.seq, 1000 + 1448 * i as u32);
            let last = i + 1 == segs.len();
            assert_eq!(seen.flags, (last, last), "FIN and PSH on the last only");
            if !v6 {
                assert_eq!(seen.ip_id, Some(i as u16), "IPv4 ids count up");
            }
            assert!(seen.payload.len() <= 1448);
            joined.extend(seen.payload);
        }
        assert_eq!(joined, data);
    }
}

#[test]
fn uso_frames_become_udp_datagrams() {
    let data = payload(3000);
    let big = udp_frame(data.clone());
    let hdr = VnetHdr {
        gso_type: VnetHdr::GSO_UDP_L4,
        gso_size: 1200,
        ..VnetHdr::default()
    };
    let segs = segments(&big, &hdr);
    let sizes: Vec<usize> = segs.iter().map(|s| checked(s).payload.len()).collect();
    assert_eq!(sizes, [1200, 1200, 600]);
}

#[test]
fn mismatched_or_unsupported_segmentation_is_a_typed_error() {
    let big = tcp_frame(false, 1, ACK, payload(3000));
    let mut scratch = Vec::new();
    assert!(segment(&big, &tso_hdr(true, 1000), &mut scratch, |_| {}).is_err());
    assert!(segment(&big, &tso_hdr(false, 0), &mut scratch, |_| {}).is_err());
    let ufo = VnetHdr {
        gso_type: VnetHdr::GSO_UDP,
        gso_size: 1000,
        ..VnetHdr::default()
    };
    assert!(segment(&udp_frame(payload(3000)), &ufo, &mut scratch, |_| {}).is_err());
    assert!(segment(&big[..60], &tso_hdr(false, 1000), &mut scratch, |_| {}).is_err());
}

#[test]
fn partial_checksums_are_completed_like_a_nic() {
    for v6 in [false, true] {
        let good = tcp_frame(v6, 5, ACK, payload(999));
        let l4 = if v6 { 54 } else { 34 };
        // What a guest hands over: the pseudo-header sum in the field.
        let mut partial = good.clone();
        partial[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
        let full = u16::from_be_bytes([good[l4 + 16], good[l4 + 17]]);
        let body = ironnet_overlay::wire::checksum::sum(&partial[l4..]);
        // field = fold(pseudo) where !fold(pseudo + body) == full.
        let pseudo = !ironnet_overlay::wire::checksum::fold(
            u64::from(!full) + (0xffff - u64::from(ironnet_overlay::wire::checksum::fold(body))),
        );
        partial[l4 + 16..l4 + 18].copy_from_slice(&(!pseudo).to_be_bytes());
        complete_checksum(&mut partial, l4, 16).unwrap();
        checked(&partial);
        assert!(complete_checksum(&mut partial, l4, 70000).is_err());
    }
}

#[test]
fn coalescing_the_segments_gives_back_the_tso_frame() {
    for v6 in [false, true] {
        let data = payload(20_000);
        let segs = segments(
            &tcp_frame(v6, 9, ACK | PSH, data.clone()),
            &tso_hdr(v6, 1400),
        );
        let mut c = TcpCoalescer::new();
        for s in &segs {
            assert!(c.offer(s));
        }
        let merged = c.flush().unwrap().to_vec();
        assert!(!c.is_pending());
        let hdr = VnetHdr::parse(&merged).unwrap();
        let l4 = if v6 { 54 } else { 34 };
        assert_eq!(
            hdr,
            VnetHdr {
                flags: VnetHdr::F_NEEDS_CSUM,
                gso_type: tso_hdr(v6, 0).gso_type,
                hdr_len: l4 + 20,
                gso_size: 1400,
                csum_start: l4,
                csum_offset: 16,
            }
        );
        let frame = &merged[VNET_HDR_LEN..];
        assert_eq!(&frame[usize::from(l4) + 20..], &data[..]);
        // The receiver's segmentation of it is exactly the original wire.
        assert_eq!(segments(frame, &hdr), segs);
        // Completing the partial checksum gives a valid frame.
        let mut whole = frame.to_vec();
        complete_checksum(&mut whole, usize::from(l4), 16).unwrap();
        assert_eq!(checked(&whole).payload, data);
    }
}

#[test]
fn a_single_segment_comes_back_unchanged_behind_an_empty_header() {
    let f = tcp_frame(false, 1, ACK, payload(100));
    let mut c = TcpCoalescer::new();
    assert!(c.offer(&f));
    let out = c.flush().unwrap();
    assert_eq!(&out[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
    assert_eq!(&out[VNET_HDR_LEN..], &f[..]);
    assert!(c.flush().is_none());
}

#[test]
fn segments_that_cannot_be_one_frame_are_refused() {
    let first = tcp_frame(false, 1000, ACK, payload(1000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a gap", tcp_frame(false, 3000, ACK, payload(1000))),
        (
            "larger than the first",
            tcp_frame(false, 2000, ACK, payload(1001)),
        ),
        ("FIN", tcp_frame(false, 2000, ACK | FIN, payload(1000))),
        ("no payload", tcp_frame(false, 2000, ACK, vec![])),
        ("IPv6 after IPv4", tcp_frame(true, 2000, ACK, payload(1000))),
        ("UDP", udp_frame(payload(1000))),
        ("bad checksum", {
            let mut f = tcp_frame(false, 2000, ACK, payload(1000));
            let n = f.len();
            f[n - 1] ^= 0xff;
            f
        }),
        ("another port", {
            let mut f = tcp_frame(false, 2000, ACK, payload(1000));
            f[34] ^= 1;
            f[34 + 16] ^= 1; // keep the checksum valid
            f
        }),
    ];
    for (why, frame) in cases {
        let mut c = TcpCoalescer::new();
        assert!(c.offer(&first));
        assert!(!c.offer(&frame), "{why}");
        assert_eq!(&c.flush().unwrap()[VNET_HDR_LEN..], &first[..], "{why}");
    }
    // After a short segment or a PSH nothing more is merged.
    for closing in [
        tcp_frame(false, 2000, ACK, payload(500)),
        tcp_frame(false, 2000, ACK | PSH, payload(1000)),
    ] {
        let mut c = TcpCoalescer::new();
        assert!(c.offer(&first));
        assert!(c.offer(&closing));
        assert!(!c.offer(&tcp_frame(false, 3000, ACK, payload(10))));
    }
}

proptest! {
    #[test]
    fn segmentation_then_coalescing_round_trips(
        v6 in any::<bool>(),
        len in 1usize..40_000,
        mss in 536u16..9000,
        seq in any::<u32>(),
    ) {
        let data = payload(len);
        let segs = segments(&tcp_frame(v6, seq, ACK, data.clone()), &tso_hdr(v6, mss));
        let mut c = TcpCoalescer::new();
        let mut frames = Vec::new();
        for s in &segs {
            if !c.offer(s) {
                frames.push(c.flush().unwrap().to_vec());
                prop_assert!(c.offer(s));
            }
        }
        frames.push(c.flush().unwrap().to_vec());
        let mut wire = Vec::new();
        for f in &frames {
            let hdr = VnetHdr::parse(f).unwrap();
            let frame = &f[VNET_HDR_LEN..];
            if hdr.is_gso() {
                wire.extend(segments(frame, &hdr));
            } else {
                wire.push(frame.to_vec());
            }
        }
        prop_assert_eq!(wire, segs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        gso_type in any::<u8>(),
        gso_size in any::<u16>(),
        start in any::<u16>(),
        offset in any::<u16>(),
    ) {
        let hdr = VnetHdr { gso_type, gso_size, ..VnetHdr::default() };
        let mut scratch = Vec::new();
        let _ = segment(&bytes, &hdr, &mut scratch, |_| {});
        let mut c = TcpCoalescer::new();
        let _ = c.offer(&bytes);
        let _ = c.offer(&bytes);
        let _ = c.flush();
        let mut b = bytes.clone();
        let _ = complete_checksum(&mut b, usize::from(start), usize::from(offset));
    }
}

//! Per-packet costs of the wire layer, each beside a baseline measured in
//! the same process:
//!
//! - parse Ethernet + IPv4 + UDP (views, checksums verified) vs etherparse's
//!   `SlicedPacket::from_ethernet` on the same frame;
//! - encapsulation alone, and a NAT rewrite (source address + port with
//!   incremental checksums) plus encapsulation in one `HeaderTransform`,
//!   vs copying the frame (the cost of touching the bytes at all);
//! - incremental vs full checksum update after a NAT rewrite of a 1500-byte
//!   TCP packet.
//!
//! Run: `cargo bench -p ironnet-overlay --bench packet_bench`
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::transform::HeaderTransform;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::checksum;
use ironnet_overlay::wire::{
    EthernetFrame, IpProtocol, Ipv4Packet, MacAddr, TcpFlags, TcpPacket, UdpPacket,
};

/// Nanoseconds per call of `f`, over about `budget`.
fn ns_per_op(budget: Duration, mut f: impl FnMut() -> u64) -> f64 {
    // Warm up.
    for _ in 0..10_000 {
        black_box(f());
    }
    let start = Instant::now();
    let mut calls = 0u64;
    let mut sink = 0u64;
    while start.elapsed() < budget {
        for _ in 0..1000 {
            sink = sink.wrapping_add(f());
        }
        calls += 1000;
    }
    black_box(sink);
    start.elapsed().as_nanos() as f64 / calls as f64
}

fn frame(l4: L4Spec, payload: usize) -> Vec<u8> {
    FrameSpec {
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 2]),
        src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        ttl: 64,
        l4,
        payload: vec![0xab; payload],
    }
    .to_vec()
    .unwrap()
}

fn row(name: &str, ours: f64, base_name: &str, base: f64) {
    println!(
        "{name:<44} {ours:>8.1} ns   {base_name:<28} {base:>8.1} ns   ratio {:>6.2}",
        ours / base
    );
}

fn main() {
    let budget = support::budget();
    println!("wire-layer cost per packet (ratio = ironnet / baseline, same process)");

    // Parse: Ethernet + IPv4 + UDP, 64-byte payload.
    let udp = frame(
        L4Spec::Udp {
            src_port: 40000,
            dst_port: 53,
        },
        64,
    );
    let ours = ns_per_op(budget, || {
        let f = black_box(&udp[..]);
        let eth = EthernetFrame::new_checked(f).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let ok = ip.verify_checksum();
        let addrs = ip.addrs();
        let l4 = &eth.payload()[ip.header_len()..ip.total_len()];
        let u = UdpPacket::new_checked(l4).unwrap();
        u64::from(ok) + u64::from(u.verify_checksum(&addrs)) + u64::from(u.dst_port())
    });
    let theirs = ns_per_op(budget, || {
        let p = etherparse::SlicedPacket::from_ethernet(black_box(&udp[..])).unwrap();
        u64::from(p.transport.is_some())
    });
    row(
        "parse eth+ipv4+udp, checksums verified",
        ours,
        "etherparse slice (no verify)",
        theirs,
    );
    let ours_nocsum = ns_per_op(budget, || {
        let f = black_box(&udp[..]);
        let eth = EthernetFrame::new_checked(f).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let l4 = &eth.payload()[ip.header_len()..ip.total_len()];
        let u = UdpPacket::new_checked(l4).unwrap();
        u64::from(u.dst_port()) + u64::from(ip.protocol() == IpProtocol::UDP)
    });
    row(
        "parse eth+ipv4+udp, no verify",
        ours_nocsum,
        "etherparse slice (no verify)",
        theirs,
    );

    // Encapsulation, and NAT + encapsulation, on the same 64-byte UDP frame.
    let params = EncapParams {
        eth_src: MacAddr([2, 0, 0, 0, 0, 0x10]),
        eth_dst: MacAddr([2, 0, 0, 0, 0, 0x20]),
        src: "fc00:1::d000:5:0:1".parse::<Ipv6Addr>().unwrap(),
        dst: "fc00:2::d000:9:0:7".parse::<Ipv6Addr>().unwrap(),
    };
    let headroom = 128;
    let mut buf = vec![0u8; headroom + udp.len()];
    buf[headroom..].copy_from_slice(&udp);
    let eth_header: [u8; 14] = udp[..14].try_into().unwrap();
    let mut copy_dst = vec![0u8; udp.len()];
    let baseline = ns_per_op(budget, || {
        copy_dst.copy_from_slice(black_box(&udp[..]));
        u64::from(copy_dst[20])
    });
    let encap_ns = ns_per_op(budget, || {
        // Restore the Ethernet header the previous round overwrote.
        buf[headroom..headroom + 14].copy_from_slice(&eth_header);
        let mut pkt = PacketBuf::new(&mut buf[..], headroom, udp.len()).unwrap();
        encap::encapsulate(&mut pkt, black_box(&params)).unwrap();
        pkt.len() as u64
    });
    row(
        "encapsulate (IPv4-in-IPv6)",
        encap_ns,
        "copy the frame",
        baseline,
    );
    let nat = HeaderTransform {
        src_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))),
        src_port: Some(1024),
        encap: Some(params),
        ..HeaderTransform::default()
    };
    let mut counter = 0u16;
    let nat_ns = ns_per_op(budget, || {
        buf[headroom..headroom + 14].copy_from_slice(&eth_header);
        let mut pkt = PacketBuf::new(&mut buf[..], headroom, udp.len()).unwrap();
        counter = counter.wrapping_add(1);
        let t = HeaderTransform {
            src_port: Some(1024 + (counter & 1023)),
            ..nat
        };
        t.apply(&mut pkt).unwrap();
        pkt.len() as u64
    });
    row(
        "NAT rewrite + checksum fix-up + encap",
        nat_ns,
        "copy the frame",
        baseline,
    );

    // Incremental vs full checksum update, 1500-byte TCP packet.
    let tcp = frame(
        L4Spec::Tcp {
            src_port: 40000,
            dst_port: 443,
            seq: 1,
            ack: 1,
            flags: TcpFlags(TcpFlags::ACK),
            window: 512,
        },
        1500 - 40,
    );
    let mut t1 = tcp.clone();
    let mut n = 0u32;
    let incremental = ns_per_op(budget, || {
        n = n.wrapping_add(1);
        let mut pkt = PacketBuf::new(&mut t1[..], 0, tcp.len()).unwrap();
        HeaderTransform {
            src_ip: Some(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 | (n & 0xff)))),
            src_port: Some(n as u16),
            ..HeaderTransform::default()
        }
        .apply(&mut pkt)
        .unwrap();
        u64::from(t1[50])
    });
    let mut t2 = tcp.clone();
    let full = ns_per_op(budget, || {
        n = n.wrapping_add(1);
        let new = Ipv4Addr::from(0xcb00_7100 | (n & 0xff));
        let mut ip = Ipv4Packet::new_checked(&mut t2[14..]).unwrap();
        ip.set_src(new);
        ip.fill_checksum();
        let addrs = ip.addrs();
        let mut l4 = TcpPacket::new_checked(&mut t2[34..]).unwrap();
        l4.set_src_port(n as u16);
        l4.fill_checksum(&addrs);
        u64::from(t2[50])
    });
    row(
        "NAT on 1500 B TCP, incremental checksums",
        incremental,
        "full recomputation",
        full,
    );
    // The raw primitive, for reference.
    let words = black_box([0x0a00_0001u32.to_be_bytes(), 0xcb00_7109u32.to_be_bytes()]);
    let prim = ns_per_op(budget, || {
        u64::from(checksum::update_bytes(
            black_box(0x1234),
            &words[0],
            &words[1],
        ))
    });
    let whole = ns_per_op(budget, || {
        u64::from(checksum::checksum(black_box(&tcp[34..])))
    });
    row(
        "RFC 1624 update of one address",
        prim,
        "checksum of 1480 bytes",
        whole,
    );
}

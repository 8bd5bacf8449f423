//! Packets per second through the pipeline on one core (memory backend:
//! frames already in memory, verdicts discarded), for the three forwarding
//! paths with established flows and for new flows (flow-table misses),
//! printed beside a baseline that only copies the same frames into the
//! same packet buffers in the same run.
//!
//! `cargo bench -p ironnet-dp --bench pipeline_bench`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use ironnet_dp::pipeline::{Packet, Pipeline, Verdict};
use ironnet_dp::state::{ExternalRoute, InterfaceSpec};
use ironnet_dp::{DpConfig, DpState, Snapshot};
use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::MacAddr;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};

const BATCH: usize = 64;

fn world() -> (Snapshot, Ipv6Addr) {
    let vni = Vni::new(100).unwrap();
    let mut state = DpState::new(DpConfig::tap("fc00:1::1".parse().unwrap(), 2), 1);
    state.initialize();
    let spec = |id: &str, dev: &str, ip: &str| InterfaceSpec {
        id: id.into(),
        vni,
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
        device: dev.into(),
        preferred_underlay: None,
        pxe: None,
        hostname: None,
    };
    let (ul, _) = state
        .create_interface(spec("vm1", "net_tap2", "10.0.0.1"))
        .unwrap();
    state
        .create_interface(spec("vm2", "net_tap3", "10.0.0.2"))
        .unwrap();
    state
        .create_route(ExternalRoute {
            vni,
            prefix: "0.0.0.0/0".parse().unwrap(),
            nexthop_vni: vni,
            nexthop: "fc00:2::1".parse().unwrap(),
        })
        .unwrap();
    (state.snapshot(), ul)
}

fn udp64(src: &str, dst: &str, sport: u16) -> Vec<u8> {
    // 64-byte frame: 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload.
    FrameSpec {
        eth_src: MacAddr([2, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr([0x66, 0x66, 0x66, 0x66, 0x66, 0]),
        src: src.parse::<IpAddr>().unwrap(),
        dst: dst.parse::<IpAddr>().unwrap(),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: sport,
            dst_port: 5000,
        },
        payload: vec![0; 22],
    }
    .to_vec()
    .unwrap()
}

/// Runs `frames` (cycled) through the pipeline for about `budget`;
/// returns (pipeline ns/packet, copy-only ns/packet).
fn measure(
    snap: &Snapshot,
    pipe: &mut Pipeline,
    port: u16,
    frames: &[Vec<u8>],
    budget: Duration,
    once: bool,
) -> (f64, f64) {
    let mut packets: Vec<Packet> = (0..BATCH)
        .map(|_| Packet::new(port, &frames[0]).unwrap())
        .collect();
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(BATCH);
    let now = Instant::now();
    // Baseline: refill only.
    let mut n = 0usize;
    let t = Instant::now();
    while t.elapsed() < budget && (!once || n < frames.len()) {
        for (i, p) in packets.iter_mut().enumerate() {
            p.refill(&frames[(n + i) % frames.len()]).unwrap();
        }
        black_box(&packets);
        n += BATCH;
    }
    let copy_ns = t.elapsed().as_nanos() as f64 / n as f64;
    // Pipeline: refill + process.
    let mut m = 0usize;
    let t = Instant::now();
    while t.elapsed() < budget && (!once || m < frames.len()) {
        for (i, p) in packets.iter_mut().enumerate() {
            p.refill(&frames[(m + i) % frames.len()]).unwrap();
        }
        pipe.process_batch(snap, now, &mut packets, &mut verdicts);
        black_box(&verdicts);
        m += BATCH;
    }
    let pipe_ns = t.elapsed().as_nanos() as f64 / m as f64;
    (pipe_ns, copy_ns)
}

fn main() {
    let (snap, vm1_underlay) = world();
    let budget = Duration::from_millis(
        std::env::var("DP_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    println!("pipeline, one core, 64-byte UDP frames, batches of {BATCH}, memory backend");
    println!(
        "{:<34} {:>10} {:>10} {:>12} {:>8}",
        "path", "ns/pkt", "Mpps", "copy ns/pkt", "ratio"
    );
    let report = |name: &str, (p, c): (f64, f64)| {
        println!(
            "{name:<34} {p:>10.1} {:>10.2} {c:>12.1} {:>8.1}",
            1e3 / p,
            p / c
        );
    };

    // Established flows: 64 flows cycled.
    let vf_vf: Vec<Vec<u8>> = (0..64)
        .map(|i| udp64("10.0.0.1", "10.0.0.2", 4000 + i))
        .collect();
    let vf_pf: Vec<Vec<u8>> = (0..64)
        .map(|i| udp64("10.0.0.1", "192.0.2.7", 4000 + i))
        .collect();
    let pf_vf: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let inner = udp64("192.0.2.7", "10.0.0.1", 4000 + i);
            let mut buf =
                PacketBuf::new([vec![0u8; 64], inner.clone()].concat(), 64, inner.len()).unwrap();
            encap::encapsulate(
                &mut buf,
                &EncapParams {
                    eth_src: MacAddr([2, 0xee, 0, 0, 0, 1]),
                    eth_dst: MacAddr([0x22; 6]),
                    src: "fc00:2::1".parse().unwrap(),
                    dst: vm1_underlay,
                },
            )
            .unwrap();
            buf.data().to_vec()
        })
        .collect();
    let mut pipe = Pipeline::new();
    pipe.set_neighbor(3, MacAddr([2, 0, 0, 0, 0, 2]));
    pipe.set_neighbor(2, MacAddr([2, 0, 0, 0, 0, 1]));
    pipe.set_neighbor(0, MacAddr([2, 0xee, 0, 0, 0, 1]));
    report(
        "VF→VF, established",
        measure(&snap, &mut pipe, 2, &vf_vf, budget, false),
    );
    report(
        "VF→PF (encap), established",
        measure(&snap, &mut pipe, 2, &vf_pf, budget, false),
    );
    report(
        "PF→VF (decap), established",
        measure(&snap, &mut pipe, 0, &pf_vf, budget, false),
    );

    // New flows: 1M distinct flows, each packet a flow-table miss.
    let fresh: Vec<Vec<u8>> = (0..1_000_000u32)
        .map(|i| {
            let src = format!("10.{}.{}.{}", 100 + (i >> 16), (i >> 8) & 0xff, i & 0xff);
            udp64(&src, "192.0.2.7", (i % 60000) as u16 + 1)
        })
        .collect();
    // Source addresses other than the interface's are still routed (no
    // anti-spoofing yet), so this measures table inserts.
    let mut pipe = Pipeline::new();
    pipe.set_neighbor(0, MacAddr([2, 0xee, 0, 0, 0, 1]));
    let r = measure(&snap, &mut pipe, 2, &fresh, Duration::from_secs(60), true);
    report("VF→PF (encap), new flow each", r);
    println!(
        "flows in the table after the new-flow run: {}",
        pipe.flows().len()
    );
}

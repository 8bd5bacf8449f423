//! Packets per second through the pipeline on one core (memory backend:
//! frames already in memory, verdicts discarded): the forwarding paths and
//! every network function with established flows, and new flows
//! (flow-table misses, NAT bindings, firewall decisions over 1, 100 and
//! 1000 rules). Each line is printed beside a baseline that only copies
//! the same frames into the same packet buffers in the same run, and
//! compared with plain encapsulation of established flows.
//!
//! `cargo bench -p ironnet-dp --bench pipeline_bench`
#![allow(clippy::unwrap_used)]

use ironnet_dp::virtsvc::{ServiceProtocol, VirtualService, VirtualServices, service_underlay};
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use ironnet_dp::firewall::{FirewallRule, PortRange, ProtocolMatch, RuleAction, RuleDirection};
use ironnet_dp::pipeline::{Packet, Pipeline, Verdict};
use ironnet_dp::state::{ExternalRoute, InterfaceSpec, LbPort, LbSpec};
use ironnet_dp::{DpConfig, DpState, Snapshot};
use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::{self, EncapParams};
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::MacAddr;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};

const BATCH: usize = 64;

/// What the bench's state holds: plain interfaces vm1/vm2, vm3 behind a
/// NAT gateway, vm4 with a virtual IP, vm5..vm7 with 1, 100 and 1000
/// egress firewall rules, vm8 a load-balancer target (LB prefix), and a
/// load balancer with a local and a remote target.
struct World {
    snap: Snapshot,
    vm1: Ipv6Addr,
    nat: Ipv6Addr,
    vip: Ipv6Addr,
    lb: Ipv6Addr,
}

fn world() -> World {
    let vni = Vni::new(100).unwrap();
    let mut config = DpConfig::tap("fc00:1::1".parse().unwrap(), 8);
    config.virtual_services = std::sync::Arc::new(
        VirtualServices::new(vec![
            VirtualService::parse(ServiceProtocol::Udp, "169.254.169.254,5000,fc00:b::5,5353")
                .unwrap(),
        ])
        .unwrap(),
    );
    let mut state = DpState::new(config, 1);
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
    let mut underlays = Vec::new();
    for i in 1..=8 {
        let (ul, _) = state
            .create_interface(spec(
                &format!("vm{i}"),
                &format!("net_tap{}", i + 1),
                &format!("10.0.0.{i}"),
            ))
            .unwrap();
        underlays.push(ul);
    }
    state
        .create_route(ExternalRoute {
            vni,
            prefix: "0.0.0.0/0".parse().unwrap(),
            nexthop_vni: vni,
            nexthop: "fc00:2::1".parse().unwrap(),
        })
        .unwrap();
    let nat = state
        .create_nat("vm3", "45.0.0.5".parse().unwrap(), 1024, 65535, None)
        .unwrap();
    let vip = state
        .create_vip("vm4", "45.0.0.1".parse().unwrap(), None)
        .unwrap();
    for (vm, n) in [("vm5", 1u16), ("vm6", 100), ("vm7", 1000)] {
        // n - 1 rules that do not match, then one that accepts.
        for r in 0..n {
            let last = r + 1 == n;
            state
                .create_firewall_rule(
                    vm,
                    FirewallRule {
                        id: format!("r{r}"),
                        direction: RuleDirection::Egress,
                        action: RuleAction::Accept,
                        priority: r,
                        src: "0.0.0.0/0".parse().unwrap(),
                        dst: if last {
                            "0.0.0.0/0".parse().unwrap()
                        } else {
                            format!("172.{}.{}.0/24", 16 + r / 256, r % 256)
                                .parse()
                                .unwrap()
                        },
                        protocol: ProtocolMatch::Udp {
                            src: PortRange::ANY,
                            dst: PortRange::ANY,
                        },
                    },
                )
                .unwrap();
        }
    }
    let lb = state
        .create_lb(LbSpec {
            id: "lb".into(),
            vni,
            ip: "45.0.1.1".parse().unwrap(),
            ports: vec![LbPort {
                protocol: 17,
                port: 5000,
            }],
            preferred_underlay: None,
        })
        .unwrap();
    let local = state
        .create_lb_prefix("vm8", "45.0.1.1/32".parse().unwrap(), None)
        .unwrap();
    state.create_lb_target("lb", local).unwrap();
    state
        .create_lb_target("lb", "fc00:3::1".parse().unwrap())
        .unwrap();
    World {
        snap: state.snapshot(),
        vm1: underlays[0],
        nat,
        vip,
        lb,
    }
}

fn tunnelled(inner: &[u8], dst: Ipv6Addr) -> Vec<u8> {
    let mut buf = PacketBuf::new([&[0u8; 64][..], inner].concat(), 64, inner.len()).unwrap();
    encap::encapsulate(
        &mut buf,
        &EncapParams {
            eth_src: MacAddr([2, 0xee, 0, 0, 0, 1]),
            eth_dst: MacAddr([0x22; 6]),
            src: "fc00:2::1".parse().unwrap(),
            dst,
        },
    )
    .unwrap();
    buf.data().to_vec()
}

fn pipeline() -> Pipeline {
    let mut pipe = Pipeline::new();
    for port in 2..10 {
        pipe.set_neighbor(port, MacAddr([2, 0, 0, 0, 0, port as u8]));
    }
    pipe.set_neighbor(0, MacAddr([2, 0xee, 0, 0, 0, 1]));
    pipe
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
    let w = world();
    let snap = &w.snap;
    let budget = Duration::from_millis(
        std::env::var("DP_BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    println!("pipeline, one core, 64-byte UDP frames, batches of {BATCH}, memory backend");
    println!(
        "{:<36} {:>10} {:>10} {:>12} {:>8} {:>9}",
        "path", "ns/pkt", "Mpps", "copy ns/pkt", "ratio", "vs encap"
    );
    let mut encap_ns = f64::NAN;
    let mut report = |name: &str, (p, c): (f64, f64)| {
        if name.starts_with("VF→PF (encap), established") {
            encap_ns = p;
        }
        println!(
            "{name:<36} {p:>10.1} {:>10.2} {c:>12.1} {:>8.1} {:>9.2}",
            1e3 / p,
            p / c,
            p / encap_ns
        );
    };
    let flows = |src: &str, dst: &str| -> Vec<Vec<u8>> {
        (0..64).map(|i| udp64(src, dst, 4000 + i)).collect()
    };
    let tunnel_flows = |src: &str, dst: &str, sport0: u16, ul: Ipv6Addr| -> Vec<Vec<u8>> {
        (0..64)
            .map(|i| tunnelled(&udp64(src, dst, sport0 + i), ul))
            .collect()
    };

    // Established flows: 64 flows cycled. Plain encapsulation first: the
    // last column compares every path with it.
    let mut pipe = pipeline();
    report(
        "VF→PF (encap), established",
        measure(
            snap,
            &mut pipe,
            2,
            &flows("10.0.0.1", "192.0.2.7"),
            budget,
            false,
        ),
    );
    report(
        "VF→VF, established",
        measure(
            snap,
            &mut pipe,
            2,
            &flows("10.0.0.1", "10.0.0.2"),
            budget,
            false,
        ),
    );
    report(
        "PF→VF (decap), established",
        measure(
            snap,
            &mut pipe,
            0,
            &tunnel_flows("192.0.2.7", "10.0.0.1", 4000, w.vm1),
            budget,
            false,
        ),
    );
    // NAT gateway: the answers need the NAT ports the flows got.
    let out = flows("10.0.0.3", "192.0.2.7");
    report(
        "NAT out, established",
        measure(snap, &mut pipe, 4, &out, budget, false),
    );
    let nat_ports: Vec<u16> = out
        .iter()
        .map(|f| {
            let mut p = Packet::new(4, f).unwrap();
            pipe.process(snap, Instant::now(), &mut p);
            let ip = &p.frame()[14 + 40..];
            u16::from_be_bytes([ip[20], ip[21]])
        })
        .collect();
    let answers: Vec<Vec<u8>> = nat_ports
        .iter()
        .map(|port| {
            let mut f = udp64("192.0.2.7", "45.0.0.5", 5000);
            // Swap in the ports of the answer (UDP checksum zero: none).
            f[34..36].copy_from_slice(&5000u16.to_be_bytes());
            f[36..38].copy_from_slice(&port.to_be_bytes());
            f[40..42].copy_from_slice(&[0, 0]);
            tunnelled(&f, w.nat)
        })
        .collect();
    report(
        "NAT answer in, established",
        measure(snap, &mut pipe, 0, &answers, budget, false),
    );
    report(
        "VIP out, established",
        measure(
            snap,
            &mut pipe,
            5,
            &flows("10.0.0.4", "192.0.2.7"),
            budget,
            false,
        ),
    );
    report(
        "VIP in, established",
        measure(
            snap,
            &mut pipe,
            0,
            &tunnel_flows("192.0.2.7", "45.0.0.1", 4000, w.vip),
            budget,
            false,
        ),
    );
    report(
        "LB (local or re-encap), established",
        measure(
            snap,
            &mut pipe,
            0,
            &tunnel_flows("192.0.2.7", "45.0.1.1", 4000, w.lb),
            budget,
            false,
        ),
    );
    // Virtual service: 64 guest ports on slots 1024..1088, and answers.
    report(
        "virtual service out (IPv4→IPv6)",
        measure(
            snap,
            &mut pipe,
            3,
            &flows("10.0.0.2", "169.254.169.254"),
            budget,
            false,
        ),
    );
    let svc_answers: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            FrameSpec {
                eth_src: MacAddr([2, 0xee, 0, 0, 0, 1]),
                eth_dst: MacAddr([0x22, 0x22, 0x22, 0x22, 0x22, 0]),
                src: IpAddr::V6("fc00:b::5".parse().unwrap()),
                dst: IpAddr::V6(service_underlay(snap.host_ipv6, 0)),
                ttl: 64,
                l4: L4Spec::Udp {
                    src_port: 5353,
                    dst_port: 1024 + i,
                },
                payload: vec![0; 2],
            }
            .to_vec()
            .unwrap()
        })
        .collect();
    report(
        "virtual service in (IPv6→IPv4)",
        measure(snap, &mut pipe, 0, &svc_answers, budget, false),
    );
    report(
        "firewall 1000 rules, established",
        measure(
            snap,
            &mut pipe,
            8,
            &flows("10.0.0.7", "192.0.2.7"),
            budget,
            false,
        ),
    );

    // New flows: every packet a flow-table miss.
    let new_flows = |n: u32, src: &dyn Fn(u32) -> String, sport: &dyn Fn(u32) -> u16| {
        (0..n)
            .map(|i| udp64(&src(i), "192.0.2.7", sport(i)))
            .collect::<Vec<_>>()
    };
    let spread = |i: u32| format!("10.{}.{}.{}", 100 + (i >> 16), (i >> 8) & 0xff, i & 0xff);
    let fresh = new_flows(1_000_000, &spread, &|i| (i % 60000) as u16 + 1);
    // Source addresses other than the interface's are still routed (no
    // anti-spoofing yet), so this measures table inserts.
    let mut pipe = pipeline();
    let r = measure(snap, &mut pipe, 2, &fresh, Duration::from_secs(60), true);
    report("VF→PF (encap), new flow each", r);
    // NAT: one inside address, 60 000 source ports, each a new binding.
    let fresh_nat = new_flows(60_000, &|_| "10.0.0.3".into(), &|i| i as u16 + 1);
    let mut pipe = pipeline();
    let r = measure(
        snap,
        &mut pipe,
        4,
        &fresh_nat,
        Duration::from_secs(60),
        true,
    );
    report("NAT out, new flow each", r);
    println!("NAT bindings after that run: {}", pipe.flows().nat().len());
    for (vm, port, rules) in [
        ("10.0.0.5", 6, 1),
        ("10.0.0.6", 7, 100),
        ("10.0.0.7", 8, 1000),
    ] {
        let fresh = new_flows(200_000, &|_| vm.to_string(), &|i| (i % 60000) as u16 + 1);
        // Distinct destinations keep every flow new.
        let fresh: Vec<Vec<u8>> = fresh
            .into_iter()
            .enumerate()
            .map(|(i, mut f)| {
                let d = 7 + (i / 60000) as u8;
                f[33] = d;
                fix_ip_checksum(&mut f);
                f
            })
            .collect();
        let mut pipe = pipeline();
        let r = measure(snap, &mut pipe, port, &fresh, Duration::from_secs(60), true);
        report(&format!("firewall {rules} rules, new flow each"), r);
        let dropped: u64 = pipe.counters().drops.values().sum();
        assert_eq!(dropped, 0, "the last rule accepts");
    }
}

fn fix_ip_checksum(f: &mut [u8]) {
    f[24..26].copy_from_slice(&[0, 0]);
    let c = ironnet_overlay::wire::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

//! The worker over memory ports: frames from several ports at once are all
//! processed, in order per port, and a snapshot published later takes
//! effect without restarting anything.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ironnet_dp::dataplane::Dataplane;
use ironnet_dp::io::{MemoryPort, MemoryPortHandle, PortIo};
use ironnet_dp::pipeline::{DropReason, Pipeline};
use ironnet_dp::state::ExternalRoute;
use ironnet_dp::state::InterfaceSpec;
use ironnet_dp::{DpConfig, DpState, Published};
use ironnet_overlay::PacketBuf;
use ironnet_overlay::encap::decapsulate;
use ironnet_overlay::offload::{VNET_HDR_LEN, VnetHdr};
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::build::{FrameSpec, L4Spec};
use ironnet_overlay::wire::{Ipv4Packet, MacAddr, TcpFlags, TcpPacket};
use tokio::time::timeout;

const VM1: usize = 2;
const VM2: usize = 3;

fn spec(id: &str, device: &str, ip: &str) -> InterfaceSpec {
    InterfaceSpec {
        id: id.into(),
        vni: Vni::new(100).unwrap(),
        ipv4: Some(ip.parse().unwrap()),
        ipv6: None,
        device: device.into(),
        preferred_underlay: None,
        pxe: None,
        hostname: None,
    }
}

/// A UDP frame from `src` to `dst` carrying `seq`.
fn frame(mac: u8, src: &str, dst: &str, seq: u32) -> Vec<u8> {
    FrameSpec {
        eth_src: MacAddr([0x02, 0, 0, 0, 0, mac]),
        eth_dst: MacAddr::BROADCAST,
        src: IpAddr::V4(src.parse::<Ipv4Addr>().unwrap()),
        dst: IpAddr::V4(dst.parse::<Ipv4Addr>().unwrap()),
        ttl: 64,
        l4: L4Spec::Udp {
            src_port: 4000,
            dst_port: 5000,
        },
        payload: seq.to_be_bytes().to_vec(),
    }
    .to_vec()
    .unwrap()
}

fn seq_of(frame: &[u8]) -> u32 {
    let n = frame.len();
    u32::from_be_bytes(frame[n - 4..].try_into().unwrap())
}

/// A 2-PF, 2-VF dp with guest vm1 (10.0.0.1, VNI 100) on VF port 2;
/// with `vnet`, the guest ports carry virtio-net headers.
fn start(vnet: bool) -> (DpState, Published, Dataplane, Vec<MemoryPortHandle>) {
    let mut state = DpState::new(DpConfig::tap("fc00:1::1".parse().unwrap(), 2), 7);
    state.initialize();
    state
        .create_interface(spec("vm1", "net_tap2", "10.0.0.1"))
        .unwrap();
    let published = Published::new(state.snapshot());
    let mut ports: Vec<Arc<dyn PortIo>> = Vec::new();
    let mut handles = Vec::new();
    for i in 0..4 {
        let (port, handle) = if vnet && i >= 2 {
            MemoryPort::pair_with_vnet_hdr()
        } else {
            MemoryPort::pair()
        };
        ports.push(Arc::new(port));
        handles.push(handle);
    }
    let dp = Dataplane::spawn(ports, published.clone(), Pipeline::new());
    (state, published, dp, handles)
}

/// Plugs guest vm2 (10.0.0.2) into VF port 3 of a running dp.
fn add_vm2(state: &mut DpState, published: &Published) {
    state
        .create_interface(spec("vm2", "net_tap3", "10.0.0.2"))
        .unwrap();
    published.store(state.snapshot());
}

async fn next(h: &mut MemoryPortHandle) -> Vec<u8> {
    timeout(Duration::from_secs(5), h.sent())
        .await
        .expect("a frame within 5 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_at_once_arrive_complete_and_in_order() {
    let (mut state, published, dp, mut h) = start(false);
    // vm2 appears after the worker started: a new snapshot is enough.
    add_vm2(&mut state, &published);
    const N: u32 = 1000;
    for seq in 0..N {
        h[VM1].inject(frame(1, "10.0.0.1", "10.0.0.2", seq));
        h[VM2].inject(frame(2, "10.0.0.2", "10.0.0.1", seq));
    }
    for port in [VM2, VM1] {
        for want in 0..N {
            assert_eq!(seq_of(&next(&mut h[port]).await), want, "port {port}");
        }
    }
    // Counters are copied out when the worker goes idle.
    let mut stats = dp.stats();
    for _ in 0..50 {
        if stats.counters.tx.iter().sum::<u64>() == u64::from(2 * N) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = dp.stats();
    }
    assert_eq!(stats.counters.rx[VM1], u64::from(N));
    assert_eq!(stats.counters.rx[VM2], u64::from(N));
    assert_eq!(stats.counters.tx[VM1], u64::from(N));
    assert_eq!(stats.counters.tx[VM2], u64::from(N));
    assert_eq!(stats.tx_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_after_an_idle_period_wakes_the_worker() {
    let (_state, _published, _dp, mut h) = start(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // To an address without a route: the guest gets ICMP unreachable back.
    h[VM1].inject(frame(1, "10.0.0.1", "10.9.9.9", 7));
    let reply = next(&mut h[VM1]).await;
    assert_eq!(&reply[..6], &[0x02, 0, 0, 0, 0, 1], "back to the guest");
    assert_eq!(reply[14 + 9], 1, "ICMP");
    assert_eq!(reply[14 + 20], 3, "destination unreachable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnet_ports_strip_and_add_the_header() {
    let (mut state, published, _dp, mut h) = start(true);
    add_vm2(&mut state, &published);
    let mut f = vec![0u8; VNET_HDR_LEN];
    f.extend(frame(1, "10.0.0.1", "10.0.0.2", 5));
    h[VM1].inject(f);
    let out = next(&mut h[VM2]).await;
    assert_eq!(VnetHdr::parse(&out).unwrap(), VnetHdr::default());
    assert_eq!(seq_of(&out), 5);
    assert_eq!(
        out.len(),
        VNET_HDR_LEN + frame(1, "10.0.0.1", "10.0.0.2", 5).len()
    );
}

/// A TSO frame from 10.0.0.1 as a guest hands it over: virtio-net header,
/// then one large TCP frame.
fn tso_frame(dst: &str, data: &[u8], mss: u16) -> Vec<u8> {
    let frame = FrameSpec {
        eth_src: MacAddr([0x02, 0, 0, 0, 0, 1]),
        eth_dst: MacAddr::BROADCAST,
        src: IpAddr::V4("10.0.0.1".parse().unwrap()),
        dst: IpAddr::V4(dst.parse().unwrap()),
        ttl: 64,
        l4: L4Spec::Tcp {
            src_port: 40000,
            dst_port: 5201,
            seq: 1,
            ack: 1,
            flags: TcpFlags(0x10),
            window: 500,
        },
        payload: data.to_vec(),
    }
    .to_vec()
    .unwrap();
    let hdr = VnetHdr {
        flags: VnetHdr::F_NEEDS_CSUM,
        gso_type: VnetHdr::GSO_TCPV4,
        hdr_len: 54,
        gso_size: mss,
        csum_start: 34,
        csum_offset: 16,
    };
    let mut out = hdr.to_bytes().to_vec();
    out.extend(frame);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tso_from_a_guest_is_cut_for_the_wire_and_merged_for_a_guest() {
    let (mut state, published, dp, mut h) = start(true);
    add_vm2(&mut state, &published);
    state
        .create_route(ExternalRoute {
            vni: Vni::new(100).unwrap(),
            prefix: "10.1.0.0/16".parse().unwrap(),
            nexthop_vni: Vni::new(100).unwrap(),
            nexthop: "fc00:2::1".parse().unwrap(),
        })
        .unwrap();
    published.store(state.snapshot());
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();

    // To another host: wire-sized segments, each encapsulated, each valid.
    h[VM1].inject(tso_frame("10.1.0.9", &data, 1448));
    let mut joined = Vec::new();
    while joined.len() < data.len() {
        let wire = next(&mut h[0]).await;
        assert!(
            wire.len() <= 14 + 40 + 1500,
            "{} bytes on the wire",
            wire.len()
        );
        let mut buf = PacketBuf::new(wire.clone(), 0, wire.len()).unwrap();
        decapsulate(&mut buf).unwrap();
        let inner = buf.data();
        let ip = Ipv4Packet::new_checked(&inner[14..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&ip.addrs()));
        joined.extend_from_slice(tcp.payload());
    }
    assert_eq!(joined, data);

    // To a guest on this host: cut, routed, merged again into one frame.
    h[VM1].inject(tso_frame("10.0.0.2", &data, 1448));
    let out = next(&mut h[VM2]).await;
    let hdr = VnetHdr::parse(&out).unwrap();
    assert_eq!(hdr.gso_type, VnetHdr::GSO_TCPV4);
    assert_eq!(hdr.gso_size, 1448);
    assert_eq!(&out[VNET_HDR_LEN + 54..], &data[..]);
    assert!(h[VM2].try_sent().is_none());

    // A segmentation request the frame does not match is dropped, counted.
    let mut bad = tso_frame("10.0.0.2", &data, 1448);
    bad[1] = VnetHdr::GSO_TCPV6;
    h[VM1].inject(bad);
    let mut drops = 0;
    for _ in 0..100 {
        drops = dp
            .stats()
            .counters
            .drops
            .get(&DropReason::BadOffload)
            .copied()
            .unwrap_or(0);
        if drops > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(drops, 1);
}

//! ironnet-dp's network functions with real traffic over TAP devices: two
//! dps, guests in network namespaces (addresses from the dp's DHCP), and a
//! router namespace that is also the way to an "external" namespace. The
//! router is the Linux kernel: SRv6 `End.DX4` decapsulates what the dps
//! send to its address, and `encap.red` sends the public addresses
//! (virtual IP, NAT IP, load balancer) to their underlay addresses.
//!
//! - A guest behind the NAT gateway pings and talks TCP to the external
//!   namespace, which has no route to the guests' addresses, so only
//!   translated traffic can come back; the NAT IP answers ping itself.
//! - A guest with a virtual IP is reachable from outside on it and
//!   reaches outside from it.
//! - An external client connects to a load balancer on host A whose
//!   targets are guests on host A and host B; both answer.
//! - A firewall rule that only lets TCP 8080 in blocks ping to the
//!   virtual IP while TCP to 8080 still gets through.
//!
//! Needs root and what `scripts/setup.sh` installs. Every address lives in
//! the namespaces the test creates, all removed on drop.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use ironnet_bins::testbed::{
    DpProcess, Topology, attach, connect, create_interface, create_route, free_port, helper, ip,
    lease, ping, run, sh, skip_packet_test, spawn_dp, tcp_transfer, wait_for,
};
use ironnet_dp::proto;

const DP: &str = env!("CARGO_BIN_EXE_ironnet-dp");
const SERVER_ENV: &str = "IRONNET_NAME_SERVER";
const CLIENT_ENV: &str = "IRONNET_NAME_CLIENT";

/// Not a test by itself: the LB test runs this binary inside a guest with
/// `IRONNET_NAME_SERVER=<name>`, and it answers every TCP connection on
/// port 8080 with that name.
#[test]
fn name_server_helper() {
    let Ok(name) = std::env::var(SERVER_ENV) else {
        return;
    };
    let listener = TcpListener::bind("0.0.0.0:8080").unwrap();
    for mut conn in listener.incoming().flatten() {
        let _ = conn.write_all(format!("{name}\n").as_bytes());
    }
}

/// Not a test by itself: with `IRONNET_NAME_CLIENT=<addr:port>,<n>` it
/// makes `n` connections (each from a new source port) and prints
/// `seen <name>` for each answer.
#[test]
fn name_client_helper() {
    let Ok(spec) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let (addr, n) = spec.split_once(',').unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let n: usize = n.parse().unwrap();
    let mut done = 0;
    for _ in 0..n * 3 {
        if done == n {
            break;
        }
        let Ok(mut c) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut s = String::new();
        if c.read_to_string(&mut s).is_ok() && !s.trim().is_empty() {
            println!("seen {}", s.trim());
            done += 1;
        }
    }
}

/// Connects `n` times from `ns` to `addr` and counts the answers per name.
fn names_seen(ns: &str, addr: &str, n: usize) -> BTreeMap<String, usize> {
    let out = helper(
        ns,
        "name_client_helper",
        (CLIENT_ENV, &format!("{addr},{n}")),
    )
    .output()
    .unwrap();
    let mut seen = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // libtest prints "test name ... " before the first line.
        if let Some(name) = line.split_once("seen ").map(|(_, n)| n.trim()) {
            *seen.entry(name.to_owned()).or_default() += 1;
        }
    }
    seen
}

fn ok(status: Option<proto::Status>, what: &str) {
    assert_eq!(status.map(|s| s.code), Some(0), "{what}");
}

fn underlay(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn start_dp(
    topo: &mut Topology,
    tag: &str,
    ipv6: &str,
    vfs: usize,
    mac: u8,
    port: u16,
) -> DpProcess {
    let router_mac = format!("22:22:22:22:{mac:02x}:80");
    spawn_dp(
        topo,
        DP,
        tag,
        ipv6,
        vfs,
        mac,
        port,
        &["--pf-router-mac", &router_mac],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_vip_load_balancer_and_firewall_with_real_traffic() {
    if skip_packet_test() {
        return;
    }
    let tag = format!("n{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let [ga1, ga2, gb1, hr, ex] = ["ga1", "ga2", "gb1", "hr", "ex"].map(|n| format!("{tag}{n}"));
    for ns in [&ga1, &ga2, &gb1, &hr, &ex] {
        topo.netns(ns).unwrap();
    }
    let (mac_a, mac_b) = (0x0au8, 0x0bu8);
    let a = start_dp(
        &mut topo,
        &format!("{tag}a"),
        "fc00:1::1",
        2,
        mac_a,
        free_port(),
    );
    let b = start_dp(
        &mut topo,
        &format!("{tag}b"),
        "fc00:2::1",
        1,
        mac_b,
        free_port(),
    );
    let (pf_a, pf_b) = (a.ports[0].clone(), b.ports[0].clone());
    attach(&pf_a, &hr).unwrap();
    attach(&pf_b, &hr).unwrap();
    attach(&a.ports[2], &ga1).unwrap();
    attach(&a.ports[3], &ga2).unwrap();
    attach(&b.ports[2], &gb1).unwrap();
    run(&[
        "ip", "link", "add", "hrx", "netns", &hr, "type", "veth", "peer", "name", "exh", "netns",
        &ex,
    ])
    .unwrap();
    // The router: underlay /64s towards each dp, its SID decapsulating
    // towards the external namespace.
    for cmd in [
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
        "ip link set hrx up",
        "ip addr add 198.51.100.1/24 dev hrx",
        &format!("ip link set {pf_a} up"),
        &format!("ip link set {pf_b} up"),
        &format!("ip -6 route add fc00:1::/64 dev {pf_a}"),
        &format!("ip -6 route add fc00:2::/64 dev {pf_b}"),
        "ip -6 addr add fc00:b::1/128 dev lo",
        // Answers the dps make themselves (ping to a NAT IP) go back to
        // the tunnel's source: make that the decapsulating SID.
        "ip sr tunsrc set fc00:b::100",
        "ip -6 route add fc00:b::100/128 encap seg6local action End.DX4 nh4 198.51.100.2 dev hrx",
    ] {
        sh(&hr, cmd).unwrap();
    }
    for cmd in [
        "ip link set exh up",
        "ip addr add 198.51.100.2/24 dev exh",
        "ip route add default via 198.51.100.1",
    ] {
        sh(&ex, cmd).unwrap();
    }
    // The router answers no ND for the dps, and the dps none for it.
    let neigh = |addr: &str, mac: u8, pf: &str| {
        sh(
            &hr,
            &format!(
                "ip -6 neigh replace {addr} lladdr 22:22:22:22:{mac:02x}:00 dev {pf} nud permanent"
            ),
        )
        .unwrap();
    };
    let mut ca = connect(&a).await.unwrap();
    let mut cb = connect(&b).await.unwrap();
    create_interface(&mut ca, "vm1", "net_tap2", "10.4.0.1", "2001:db8:4::1")
        .await
        .unwrap();
    create_interface(&mut ca, "vm2", "net_tap3", "10.4.0.2", "2001:db8:4::2")
        .await
        .unwrap();
    create_interface(&mut cb, "vmb", "net_tap2", "10.4.0.3", "2001:db8:4::3")
        .await
        .unwrap();
    for c in [&mut ca, &mut cb] {
        create_route(c, "0.0.0.0", 0, "fc00:b::100").await.unwrap();
    }
    // vm1: a virtual IP; vm2: a NAT gateway port range.
    let r = ca
        .create_vip(proto::CreateVipRequest {
            interface_id: b"vm1".to_vec(),
            vip_ip: ip("45.0.0.1"),
            preferred_underlay_route: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ok(r.status, "CreateVip");
    let vip_ul = underlay(r.underlay_route);
    let r = ca
        .create_nat(proto::CreateNatRequest {
            interface_id: b"vm2".to_vec(),
            nat_ip: ip("45.0.0.5"),
            min_port: 1024,
            max_port: 2048,
            preferred_underlay_route: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ok(r.status, "CreateNat");
    let nat_ul = underlay(r.underlay_route);
    // A load balancer on A for TCP 8080 with targets vm1 (A) and vmb (B).
    let r = ca
        .create_load_balancer(proto::CreateLoadBalancerRequest {
            loadbalancer_id: b"lb1".to_vec(),
            loadbalanced_ip: ip("45.0.1.1"),
            vni: 100,
            loadbalanced_ports: vec![proto::LbPort {
                port: 8080,
                protocol: proto::Protocol::Tcp as i32,
            }],
            preferred_underlay_route: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ok(r.status, "CreateLoadBalancer");
    let lb_ul = underlay(r.underlay_route);
    let mut targets = Vec::new();
    for (c, id) in [(&mut ca, "vm1"), (&mut cb, "vmb")] {
        let r = c
            .create_load_balancer_prefix(proto::CreateLoadBalancerPrefixRequest {
                interface_id: id.as_bytes().to_vec(),
                prefix: Some(proto::Prefix {
                    ip: ip("45.0.1.1"),
                    length: 32,
                    underlay_route: Vec::new(),
                }),
                preferred_underlay_route: Vec::new(),
            })
            .await
            .unwrap()
            .into_inner();
        ok(r.status, "CreateLoadBalancerPrefix");
        targets.push(underlay(r.underlay_route));
    }
    for t in &targets {
        let r = ca
            .create_load_balancer_target(proto::CreateLoadBalancerTargetRequest {
                loadbalancer_id: b"lb1".to_vec(),
                target_ip: ip(t),
            })
            .await
            .unwrap()
            .into_inner();
        ok(r.status, "CreateLoadBalancerTarget");
    }
    for (addr, mac, pf) in [
        (&vip_ul, mac_a, &pf_a),
        (&nat_ul, mac_a, &pf_a),
        (&lb_ul, mac_a, &pf_a),
        (&targets[0], mac_a, &pf_a),
        (&targets[1], mac_b, &pf_b),
    ] {
        neigh(addr, mac, pf);
    }
    for (public, ul) in [
        ("45.0.0.1", &vip_ul),
        ("45.0.0.5", &nat_ul),
        ("45.0.1.1", &lb_ul),
    ] {
        sh(
            &hr,
            &format!("ip route add {public}/32 encap seg6 mode encap.red segs {ul} dev {pf_a}"),
        )
        .unwrap();
    }
    for (ns, dp, port) in [(&ga1, &a, 2), (&ga2, &a, 3), (&gb1, &b, 2)] {
        lease(&topo, ns, &dp.ports[port]).unwrap();
    }

    // NAT: out and back, ping and TCP; the NAT IP answers ping.
    let out = ping(&ga2, "198.51.100.2");
    assert!(out.is_ok(), "guest behind NAT to outside: {out:?}");
    let got = tcp_transfer(&ex, &ga2, "198.51.100.2", 2 << 20);
    assert!(
        got.as_ref().is_ok_and(|&(sent, _)| sent >= 2 << 20),
        "TCP through NAT: {got:?}"
    );
    let out = ping(&ex, "45.0.0.5");
    assert!(out.is_ok(), "the NAT IP answers ping: {out:?}");
    // Without the translation nothing comes back: the external side has
    // no route to 10.4.0.0/16, and neither has the router.
    assert!(ping(&ex, "10.4.0.2").is_err());

    // VIP: reachable from outside, and the guest reaches out from it.
    let out = ping(&ex, "45.0.0.1");
    assert!(out.is_ok(), "outside to the VIP: {out:?}");
    let out = ping(&ga1, "198.51.100.2");
    assert!(out.is_ok(), "VIP guest to outside: {out:?}");

    // LB: guests on both hosts answer on the LB address.
    for (ns, name) in [(&ga1, "vm1"), (&gb1, "vmb")] {
        sh(ns, "ip addr add 45.0.1.1/32 dev lo").unwrap();
        let child = helper(ns, "name_server_helper", (SERVER_ENV, name))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        topo.adopt(child);
    }
    for (ns, name) in [(&ga1, "vm1"), (&gb1, "vmb")] {
        wait_for(Duration::from_secs(10), || {
            Ok(names_seen(ns, "127.0.0.1:8080", 1)
                .contains_key(name)
                .then_some(()))
        })
        .unwrap();
    }
    let seen = names_seen(&ex, "45.0.1.1:8080", 40);
    let total: usize = seen.values().sum();
    assert_eq!(total, 40, "every connection answered: {seen:?}");
    assert!(
        seen.get("vm1").is_some_and(|n| *n >= 4) && seen.get("vmb").is_some_and(|n| *n >= 4),
        "spread over both hosts: {seen:?}"
    );

    // Firewall: only TCP 8080 may enter vm1. Ping to its VIP stops; TCP
    // to 8080 on the VIP and through the LB still works.
    let r = ca
        .create_firewall_rule(proto::CreateFirewallRuleRequest {
            interface_id: b"vm1".to_vec(),
            rule: Some(proto::FirewallRule {
                id: b"web".to_vec(),
                direction: proto::TrafficDirection::Ingress as i32,
                action: proto::FirewallAction::Accept as i32,
                priority: 100,
                source_prefix: Some(proto::Prefix {
                    ip: ip("0.0.0.0"),
                    length: 0,
                    underlay_route: Vec::new(),
                }),
                destination_prefix: Some(proto::Prefix {
                    ip: ip("0.0.0.0"),
                    length: 0,
                    underlay_route: Vec::new(),
                }),
                protocol_filter: Some(proto::ProtocolFilter {
                    filter: Some(proto::protocol_filter::Filter::Tcp(proto::TcpFilter {
                        src_port_lower: -1,
                        src_port_upper: -1,
                        dst_port_lower: 8080,
                        dst_port_upper: 8080,
                    })),
                }),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    ok(r.status, "CreateFirewallRule");
    assert!(ping(&ex, "45.0.0.1").is_err(), "ping is not TCP 8080");
    let seen = names_seen(&ex, "45.0.0.1:8080", 3);
    assert_eq!(seen.get("vm1"), Some(&3), "TCP 8080 to the VIP: {seen:?}");
    let seen = names_seen(&ex, "45.0.1.1:8080", 20);
    assert_eq!(
        seen.values().sum::<usize>(),
        20,
        "LB after the rule: {seen:?}"
    );
}

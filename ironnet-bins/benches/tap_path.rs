//! Guest-to-guest throughput across two hosts: ironnet-dp over TAP with
//! the guests' offloads (virtio-net header, TSO, checksum), ironnet-dp
//! without them (`--no-offload`), and the kernel doing the same
//! encapsulation (SRv6 `encap.red` + `End.DX4`, the topology of
//! `shared/reference/kernel-peer.md`). Runs are interleaved so all three
//! see the same machine state. Reports TCP throughput (iperf3, one stream)
//! and the 64-byte UDP packet rate that arrives (iperf3 `-l 18`), as
//! medians of 3 and as ratios dp / kernel. `TAP_PATH_VERBOSE=1` also
//! prints the TCP retransmits of every run.
//!
//! Needs root and iperf3 (`scripts/setup.sh` installs it); prints why and
//! exits otherwise. `cargo bench -p ironnet-bins --bench tap_path`
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ironnet_bins::testbed::{
    Topology, attach, bridge_fabric, connect, create_interface, create_route, in_ns, missing, run,
    sh, spawn_dp,
};

const DP: &str = env!("CARGO_BIN_EXE_ironnet-dp");

fn mac_of(ns: &str, dev: &str) -> String {
    let out = in_ns(ns, &["ip", "link", "show", "dev", dev]).unwrap();
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap()
        .to_owned()
}

/// The kernel topology: vm-a -- host-a ==SRv6== host-b -- vm-b.
fn kernel(topo: &mut Topology, t: &str) -> String {
    let (va, ha, hb, vb) = (
        format!("{t}kva"),
        format!("{t}kha"),
        format!("{t}khb"),
        format!("{t}kvb"),
    );
    for ns in [&va, &ha, &hb, &vb] {
        topo.netns(ns).unwrap();
    }
    run(&[
        "ip", "link", "add", "va", "netns", &va, "type", "veth", "peer", "name", "ha", "netns", &ha,
    ])
    .unwrap();
    run(&[
        "ip", "link", "add", "ua", "netns", &ha, "type", "veth", "peer", "name", "ub", "netns", &hb,
    ])
    .unwrap();
    run(&[
        "ip", "link", "add", "hb", "netns", &hb, "type", "veth", "peer", "name", "vb", "netns", &vb,
    ])
    .unwrap();
    for (ns, cmds) in [
        (
            &va,
            vec![
                "ip link set va up",
                "ip addr add 10.5.1.2/24 dev va",
                "ip route add default via 10.5.1.1",
            ],
        ),
        (
            &vb,
            vec![
                "ip link set vb up",
                "ip addr add 10.5.2.2/24 dev vb",
                "ip route add default via 10.5.2.1",
            ],
        ),
        (
            &ha,
            vec![
                "ip link set ha up",
                "ip link set ua mtu 1600",
                "ip link set ua up",
                "ip addr add 10.5.1.1/24 dev ha",
                "ip -6 addr add fc00:5::1/64 dev ua nodad",
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
                "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
                "ip -6 addr add fc00:a::1/128 dev lo",
                "ip -6 route add fc00:b::/64 via fc00:5::2 dev ua",
                "ip sr tunsrc set fc00:a::1",
                "ip route add 10.5.2.0/24 encap seg6 mode encap.red segs fc00:b::100 dev ua",
                "ip -6 route add fc00:a::100/128 encap seg6local action End.DX4 nh4 10.5.1.2 dev ha",
            ],
        ),
        (
            &hb,
            vec![
                "ip link set hb up",
                "ip link set ub mtu 1600",
                "ip link set ub up",
                "ip addr add 10.5.2.1/24 dev hb",
                "ip -6 addr add fc00:5::2/64 dev ub nodad",
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
                "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
                "ip -6 addr add fc00:b::1/128 dev lo",
                "ip -6 route add fc00:a::/64 via fc00:5::1 dev ub",
                "ip sr tunsrc set fc00:b::1",
                "ip route add 10.5.1.0/24 encap seg6 mode encap.red segs fc00:a::100 dev ub",
                "ip -6 route add fc00:b::100/128 encap seg6local action End.DX4 nh4 10.5.2.2 dev hb",
            ],
        ),
    ] {
        for c in cmds {
            sh(ns, c).unwrap();
        }
    }
    // Static neighbours (kernel-peer.md pitfall 9.3).
    let (m_ub, m_ua, m_vb, m_va, m_ha, m_hb) = (
        mac_of(&hb, "ub"),
        mac_of(&ha, "ua"),
        mac_of(&vb, "vb"),
        mac_of(&va, "va"),
        mac_of(&ha, "ha"),
        mac_of(&hb, "hb"),
    );
    sh(
        &ha,
        &format!("ip neigh replace fc00:5::2 lladdr {m_ub} dev ua nud permanent"),
    )
    .unwrap();
    sh(
        &hb,
        &format!("ip neigh replace fc00:5::1 lladdr {m_ua} dev ub nud permanent"),
    )
    .unwrap();
    sh(
        &hb,
        &format!("ip neigh replace 10.5.2.2 lladdr {m_vb} dev hb nud permanent"),
    )
    .unwrap();
    sh(
        &ha,
        &format!("ip neigh replace 10.5.1.2 lladdr {m_va} dev ha nud permanent"),
    )
    .unwrap();
    sh(
        &va,
        &format!("ip neigh replace 10.5.1.1 lladdr {m_ha} dev va nud permanent"),
    )
    .unwrap();
    sh(
        &vb,
        &format!("ip neigh replace 10.5.2.1 lladdr {m_hb} dev vb nud permanent"),
    )
    .unwrap();
    sh(&va, "ping -c 1 -W 3 10.5.2.2").unwrap();
    sh(&vb, "iperf3 -s -D").unwrap();
    va
}

/// The ironnet topology: guest-a -- dp A ==bridge== dp B -- guest-b.
async fn ironnet(topo: &mut Topology, t: &str, offload: bool) -> String {
    let t = &format!("{t}{}", if offload { "o" } else { "n" });
    let (ga, gb, fabric) = (format!("{t}dga"), format!("{t}dgb"), format!("{t}df"));
    for ns in [&ga, &gb, &fabric] {
        topo.netns(ns).unwrap();
    }
    let base = 30000 + (std::process::id() % 10000) as u16 + if offload { 0 } else { 2 };
    let mut extra_a = vec!["--pf-router-mac", "22:22:22:22:02:00"];
    let mut extra_b = vec!["--pf-router-mac", "22:22:22:22:01:00"];
    if !offload {
        extra_a.push("--no-offload");
        extra_b.push("--no-offload");
    }
    let a = spawn_dp(
        topo,
        DP,
        &format!("{t}a"),
        "fc00:1::1",
        1,
        1,
        base,
        &extra_a,
    )
    .unwrap();
    let b = spawn_dp(
        topo,
        DP,
        &format!("{t}b"),
        "fc00:2::1",
        1,
        2,
        base + 1,
        &extra_b,
    )
    .unwrap();
    bridge_fabric(&fabric, &[&a, &b]).unwrap();
    attach(&a.ports[2], &ga).unwrap();
    attach(&b.ports[2], &gb).unwrap();
    let mut ca = connect(&a).await.unwrap();
    let mut cb = connect(&b).await.unwrap();
    let ul_a = create_interface(&mut ca, "vma", "net_tap2", "10.6.0.1", "::")
        .await
        .unwrap();
    let ul_b = create_interface(&mut cb, "vmb", "net_tap2", "10.6.0.2", "::")
        .await
        .unwrap();
    create_route(&mut ca, "10.6.0.2", 32, &ul_b).await.unwrap();
    create_route(&mut cb, "10.6.0.1", 32, &ul_a).await.unwrap();
    for (ns, dev, ip) in [
        (&ga, &a.ports[2], "10.6.0.1"),
        (&gb, &b.ports[2], "10.6.0.2"),
    ] {
        sh(ns, &format!("ip addr add {ip}/32 dev {dev}")).unwrap();
        sh(ns, &format!("ip route add 169.254.0.1 dev {dev}")).unwrap();
        sh(
            ns,
            &format!("ip route add default via 169.254.0.1 dev {dev}"),
        )
        .unwrap();
    }
    sh(&ga, "ping -c 1 -W 3 10.6.0.2").unwrap();
    sh(&gb, "iperf3 -s -D").unwrap();
    ga
}

/// One iperf3 run; TCP bit/s or received UDP packets/s.
fn iperf(client_ns: &str, server: &str, udp: bool) -> f64 {
    let mut args = vec!["iperf3", "-c", server, "-t", "3", "-J"];
    if udp {
        args.extend(["-u", "-b", "0", "-l", "18"]);
    }
    let out = in_ns(client_ns, &args).unwrap_or_else(|e| panic!("iperf3: {e}"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    if udp {
        let s = &v["end"]["sum"];
        let packets = s["packets"].as_f64().unwrap_or(0.0);
        let lost = s["lost_packets"].as_f64().unwrap_or(0.0);
        let secs = s["seconds"].as_f64().unwrap_or(1.0);
        (packets - lost) / secs
    } else {
        if std::env::var_os("TAP_PATH_VERBOSE").is_some() {
            eprintln!(
                "{client_ns}: tcp retransmits {}",
                v["end"]["sum_sent"]["retransmits"]
            );
        }
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if let Some(why) = missing(&["ip", "iperf3", "ping"]) {
        println!("tap_path: skipped ({why})");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = format!("b{}", std::process::id() % 10000);
    let mut topo = Topology::new(&t);
    let kclient = kernel(&mut topo, &t);
    let oclient = rt.block_on(ironnet(&mut topo, &t, true));
    let nclient = rt.block_on(ironnet(&mut topo, &t, false));
    std::thread::sleep(Duration::from_millis(500));
    let mut runs: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    let sides = [
        (&kclient, "10.5.2.2"),
        (&oclient, "10.6.0.2"),
        (&nclient, "10.6.0.2"),
    ];
    for _ in 0..3 {
        for (i, (client, server)) in sides.iter().enumerate() {
            runs[i].0.push(iperf(client, server, false));
        }
        for (i, (client, server)) in sides.iter().enumerate() {
            runs[i].1.push(iperf(client, server, true));
        }
    }
    let [k, o, n] = runs.map(|(t, u)| (median(t), median(u)));
    println!("guest to guest across two hosts, IPv4-in-IPv6, medians of 3 interleaved runs");
    println!(
        "{:<34} {:>12} {:>18} {:>18} {:>8} {:>8}",
        "", "kernel SRv6", "dp, offloads", "dp, no offloads", "ratio", "ratio"
    );
    println!(
        "{:<34} {:>9.2} Gb {:>15.2} Gb {:>15.2} Gb {:>8.3} {:>8.3}",
        "TCP, 1 stream (Gbit/s)",
        k.0 / 1e9,
        o.0 / 1e9,
        n.0 / 1e9,
        o.0 / k.0,
        n.0 / k.0
    );
    println!(
        "{:<34} {:>8.0} pps {:>14.0} pps {:>14.0} pps {:>8.3} {:>8.3}",
        "UDP 64-byte frames received",
        k.1,
        o.1,
        n.1,
        o.1 / k.1,
        n.1 / k.1
    );
    drop(topo);
}

//! ironnet-dp over real TAP devices: guests are network namespaces that
//! take over a VF TAP, get their address from the dp's DHCP server with
//! Debian's stock `dhclient`, and ping each other (IPv4 and IPv6), on one
//! host, across two hosts, and with the Linux kernel as the other host.
//!
//! Needs root, iproute2, isc-dhcp-client and iputils-ping
//! (`scripts/setup.sh` installs them). Every address lives inside the
//! namespaces the tests create ([`ironnet_bins::testbed`]); everything is
//! removed on drop, also when a test fails. Without root a test says so
//! and passes, except under CI, where it fails.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ironnet_bins::testbed::{
    DpProcess, Topology, attach, bridge_fabric, connect, create_interface, create_route, free_port,
    in_ns, lease, metrics, ping, run, sh, skip_packet_test, tcp_transfer,
};

const DP: &str = env!("CARGO_BIN_EXE_ironnet-dp");

fn dp(
    topo: &mut Topology,
    tag: &str,
    ipv6: &str,
    vfs: usize,
    mac: u8,
    port: u16,
    extra: &[&str],
) -> DpProcess {
    ironnet_bins::testbed::spawn_dp(topo, DP, tag, ipv6, vfs, mac, port, extra).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_dhcp_leases_and_ping_each_other() {
    if skip_packet_test() {
        return;
    }
    let tag = format!("d{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let (g1, g2, fabric) = (format!("{tag}g1"), format!("{tag}g2"), format!("{tag}f"));
    for ns in [&g1, &g2, &fabric] {
        topo.netns(ns).unwrap();
    }
    let d = dp(&mut topo, &tag, "fc00:1::1", 2, 0x66, free_port(), &[]);
    let names = &d.ports;
    // PFs into the fabric namespace, VFs into the guests: nothing stays in
    // the root namespace.
    for (dev, ns) in [
        (&names[0], &fabric),
        (&names[1], &fabric),
        (&names[2], &g1),
        (&names[3], &g2),
    ] {
        attach(dev, ns).unwrap();
    }
    let mut client = connect(&d).await.unwrap();
    create_interface(&mut client, "vm1", "net_tap2", "10.1.0.1", "2001:db8::1")
        .await
        .unwrap();
    create_interface(&mut client, "vm2", "net_tap3", "10.1.0.2", "2001:db8::2")
        .await
        .unwrap();
    for (i, (ns, dev)) in [(&g1, &names[2]), (&g2, &names[3])].into_iter().enumerate() {
        let (v4, v6) = lease(&topo, ns, dev).unwrap();
        assert_eq!(v4, format!("10.1.0.{} 1400 vm{}-host", i + 1, i + 1));
        assert_eq!(v6, format!("2001:db8::{}", i + 1));
    }
    let ping4 = ping(&g1, "10.1.0.2");
    assert!(ping4.is_ok(), "IPv4 guest to guest: {ping4:?}");
    let ping6 = ping(&g2, "2001:db8::1");
    assert!(ping6.is_ok(), "IPv6 guest to guest: {ping6:?}");
    let gw = in_ns(&g1, &["ping", "-c", "1", "-W", "2", "169.254.0.1"]);
    assert!(gw.is_ok(), "gateway ping: {gw:?}");
    // The counters saw it (they are copied out every 100 ms).
    std::thread::sleep(Duration::from_millis(300));
    let m = metrics(&d).unwrap();
    assert!(m.contains("ironnet_dp_interfaces 2"), "{m}");
    let rx_line = m
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "ironnet_dp_rx_packets_total{{port=\"{}\"}}",
                names[2]
            ))
        })
        .unwrap_or_else(|| panic!("no rx counter for {}: {m}", names[2]));
    let rx: u64 = rx_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(rx >= 10, "{rx_line}");
    let flows_line = m
        .lines()
        .find(|l| l.starts_with("ironnet_dp_flows "))
        .unwrap();
    assert!(!flows_line.ends_with(" 0"), "{flows_line}");
    // Nothing of ours in the root namespace.
    let root = run(&["ip", "-o", "addr"]).unwrap();
    assert!(
        !root.contains("10.1.0.") && !root.contains("2001:db8"),
        "{root}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_on_two_hosts_reach_each_other_through_the_tunnel() {
    if skip_packet_test() {
        return;
    }
    let tag = format!("x{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let (ga, gb, fabric) = (format!("{tag}ga"), format!("{tag}gb"), format!("{tag}f"));
    for ns in [&ga, &gb, &fabric] {
        topo.netns(ns).unwrap();
    }
    let a = dp(
        &mut topo,
        &format!("{tag}a"),
        "fc00:1::1",
        1,
        0x01,
        free_port(),
        &[],
    );
    let b = dp(
        &mut topo,
        &format!("{tag}b"),
        "fc00:2::1",
        1,
        0x02,
        free_port(),
        &[],
    );
    bridge_fabric(&fabric, &[&a, &b]).unwrap();
    attach(&a.ports[2], &ga).unwrap();
    attach(&b.ports[2], &gb).unwrap();
    let mut ca = connect(&a).await.unwrap();
    let mut cb = connect(&b).await.unwrap();
    let ul_a = create_interface(&mut ca, "vma", "net_tap2", "10.2.0.1", "2001:db8:2::1")
        .await
        .unwrap();
    let ul_b = create_interface(&mut cb, "vmb", "net_tap2", "10.2.0.2", "2001:db8:2::2")
        .await
        .unwrap();
    create_route(&mut ca, "10.2.0.2", 32, &ul_b).await.unwrap();
    create_route(&mut ca, "2001:db8:2::2", 128, &ul_b)
        .await
        .unwrap();
    create_route(&mut cb, "10.2.0.1", 32, &ul_a).await.unwrap();
    create_route(&mut cb, "2001:db8:2::1", 128, &ul_a)
        .await
        .unwrap();
    lease(&topo, &ga, &a.ports[2]).unwrap();
    lease(&topo, &gb, &b.ports[2]).unwrap();
    let ping4 = ping(&ga, "10.2.0.2");
    assert!(ping4.is_ok(), "IPv4 across hosts: {ping4:?}");
    let ping6 = ping(&gb, "2001:db8:2::1");
    assert!(ping6.is_ok(), "IPv6 across hosts: {ping6:?}");

    // TCP both ways with the guests' offloads on: their large frames are
    // cut for the wire on one side and merged again on the other, and the
    // guests' kernels accept what comes out.
    const BYTES: u64 = 8 << 20;
    for (server, client, dst) in [(&gb, &ga, "10.2.0.2"), (&ga, &gb, "2001:db8:2::1")] {
        let got = tcp_transfer(server, client, dst, BYTES);
        assert!(
            got.as_ref()
                .is_ok_and(|&(sent, received)| sent >= BYTES && received >= BYTES / 2),
            "TCP to {dst}: (sent, received) {got:?}"
        );
    }
    let offload_count = |dp: &DpProcess, kind: &str| -> u64 {
        let text = metrics(dp).unwrap();
        let key = format!("ironnet_dp_offload_frames_total{{kind=\"{kind}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    for dp in [&a, &b] {
        assert!(
            offload_count(dp, "segmented") > 0,
            "a guest sent TSO frames"
        );
        assert!(
            offload_count(dp, "coalesced") > 0,
            "segments were merged for a guest"
        );
    }
}

/// The Linux kernel as an independent peer for the wire format: host B is
/// a namespace where SRv6 `encap.red` with one segment emits plain
/// IPv4-in-IPv6 towards our interface's underlay address, and
/// `seg6local End.DX4` decapsulates what ironnet-dp encapsulates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_speaks_our_tunnel_format() {
    if skip_packet_test() {
        return;
    }
    let tag = format!("k{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let (ga, hb, vb) = (format!("{tag}ga"), format!("{tag}hb"), format!("{tag}vb"));
    for ns in [&ga, &hb, &vb] {
        topo.netns(ns).unwrap();
    }
    // The PF0 netdev (the dp's MAC with the last byte's top bit flipped)
    // becomes host B's underlay interface, so it is the dp's router.
    let mac_index = 7u8;
    let router_mac = format!("22:22:22:22:{mac_index:02x}:80");
    let a = dp(
        &mut topo,
        &format!("{tag}a"),
        "fc00::1",
        1,
        mac_index,
        free_port(),
        &["--pf-router-mac", &router_mac],
    );
    let pf = &a.ports[0];
    attach(pf, &hb).unwrap();
    attach(&a.ports[2], &ga).unwrap();
    // Host B and its VM (kernel-routed), as in kernel-peer.md.
    run(&[
        "ip", "link", "add", "hbv", "netns", &hb, "type", "veth", "peer", "name", "vbv", "netns",
        &vb,
    ])
    .unwrap();
    for cmd in [
        "ip link set hbv up",
        "ip addr add 10.3.1.1/24 dev hbv",
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
        &format!("ip -6 addr add fc00::2/64 dev {pf} nodad"),
        "ip -6 addr add fc00:b::1/128 dev lo",
        "ip sr tunsrc set fc00:b::1",
        "ip -6 route add fc00:b::100/128 encap seg6local action End.DX4 nh4 10.3.1.2 dev hbv",
    ] {
        sh(&hb, cmd).unwrap();
    }
    for cmd in [
        "ip link set vbv up",
        "ip addr add 10.3.1.2/24 dev vbv",
        "ip route add default via 10.3.1.1",
    ] {
        sh(&vb, cmd).unwrap();
    }
    // The dp's side: guest A, a route to B's VM through B's End.DX4 SID.
    let mut client = connect(&a).await.unwrap();
    let ul_a = create_interface(&mut client, "vma", "net_tap2", "10.3.0.1", "2001:db8:3::1")
        .await
        .unwrap();
    create_route(&mut client, "10.3.1.0", 24, "fc00:b::100")
        .await
        .unwrap();
    // B encapsulates towards A's interface underlay (one segment, no SRH);
    // the dp answers no ND on its uplink, so B gets a static neighbour.
    let dp_pf_mac = format!("22:22:22:22:{mac_index:02x}:00");
    sh(
        &hb,
        &format!("ip -6 neigh replace {ul_a} lladdr {dp_pf_mac} dev {pf} nud permanent"),
    )
    .unwrap();
    sh(
        &hb,
        &format!("ip route add 10.3.0.1/32 encap seg6 mode encap.red segs {ul_a} dev {pf}"),
    )
    .unwrap();
    let (v4, _) = lease(&topo, &ga, &a.ports[2]).unwrap();
    assert!(v4.starts_with("10.3.0.1 "), "{v4}");
    let out = ping(&ga, "10.3.1.2");
    assert!(
        out.is_ok(),
        "guest behind ironnet-dp to VM behind the kernel: {out:?}"
    );
    let back = ping(&vb, "10.3.0.1");
    assert!(
        back.is_ok(),
        "VM behind the kernel to guest behind ironnet-dp: {back:?}"
    );
}

//! ironnet-dp over real TAP devices: guests are network namespaces that
//! take over a VF TAP, get their address from the dp's DHCP server with
//! Debian's stock `dhclient`, and ping each other (IPv4 and IPv6).
//!
//! Needs root, iproute2, isc-dhcp-client and iputils-ping
//! (`scripts/setup.sh` installs them). Every address lives inside the
//! namespaces this test creates; the root namespace gets only the dp's
//! gRPC socket on 127.0.0.1 and TAP devices that are moved away at once.
//! Everything is removed on drop, also when the test fails. Without root
//! the test says so and passes, except under CI, where it fails.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironnet_dp::proto;
use ironnet_dp::proto::dpd_kironcore_client::DpdKironcoreClient;

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// Whether packet tests can run here; `None` means skip (with reason).
fn capable() -> Option<String> {
    let root = run(&["id", "-u"]).map(|s| s.trim() == "0").unwrap_or(false);
    let tools = ["ip", "dhclient", "ping"]
        .iter()
        .all(|t| run(&["sh", "-c", &format!("command -v {t}")]).is_ok());
    match (root, tools) {
        (true, true) => None,
        (false, _) => Some("not root".into()),
        (_, false) => Some("ip, dhclient or ping missing (run scripts/setup.sh)".into()),
    }
}

/// Namespaces, processes and temp files of one test; removed on drop.
struct Topology {
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Topology {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ironnet-{tag}-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        Topology {
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        }
    }

    fn netns(&mut self, name: &str) {
        let _ = run(&["ip", "netns", "del", name]);
        run(&["ip", "netns", "add", name]).unwrap();
        self.namespaces.push(name.to_owned());
        in_ns(name, &["ip", "link", "set", "lo", "up"]).unwrap();
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            // dhclient keeps running inside; kill whatever is left there.
            if let Ok(pids) = run(&["ip", "netns", "pids", ns]) {
                for pid in pids.split_whitespace() {
                    let _ = run(&["kill", "-9", pid]);
                }
            }
            let _ = run(&["ip", "netns", "del", ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The DHCP hook: applies what the server handed out (address, gateway
/// route for /32 addresses) inside the guest, and nothing else (no
/// resolv.conf changes on the host).
const HOOK: &str = r#"#!/bin/sh
case "$reason" in
BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr add "$new_ip_address/32" dev "$interface"
    [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
    for r in $new_routers; do
        ip -4 route replace "$r" dev "$interface"
        ip -4 route replace default via "$r" dev "$interface"
    done
    echo "$new_ip_address $new_interface_mtu $new_host_name" > "$LEASE_OUT"
    ;;
BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad
    echo "$new_ip6_address" > "$LEASE_OUT"
    ;;
esac
exit 0
"#;

/// Starts an ironnet-dp with TAP names prefixed by `tag`; returns its port
/// names (PF0, PF1, VFs…).
fn spawn_dp(
    topo: &mut Topology,
    tag: &str,
    ipv6: &str,
    vfs: usize,
    mac_index: u8,
    port: u16,
) -> Vec<String> {
    spawn_dp_with(topo, tag, ipv6, vfs, mac_index, port, &[])
}

/// [`spawn_dp`] with extra options.
fn spawn_dp_with(
    topo: &mut Topology,
    tag: &str,
    ipv6: &str,
    vfs: usize,
    mac_index: u8,
    port: u16,
    extra: &[&str],
) -> Vec<String> {
    let mut dp = Command::new(env!("CARGO_BIN_EXE_ironnet-dp"))
        .args([
            "--ipv6",
            ipv6,
            "--vfs",
            &vfs.to_string(),
            "--tap-prefix",
            tag,
        ])
        .args([
            "--mac-index",
            &mac_index.to_string(),
            "--grpc-port",
            &port.to_string(),
        ])
        .args(["--enable-ipv6-overlay", "--dhcp-mtu", "1400"])
        .args(["--http", &format!("127.0.0.1:{}", port.wrapping_add(10000))])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dp.stdout.take().unwrap()).lines();
    topo.children.push(dp);
    let ports_line = lines.next().unwrap().unwrap();
    let names: Vec<String> = ports_line
        .strip_prefix("ports ")
        .unwrap()
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(names.len(), 2 + vfs, "{ports_line}");
    let _grpc_line = lines.next().unwrap().unwrap();
    let metrics_line = lines.next().unwrap().unwrap();
    assert!(
        metrics_line.starts_with("metrics on http://127.0.0.1:"),
        "{metrics_line}"
    );
    names
}

/// `GET /metrics` of the dp whose gRPC port is `port`.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port.wrapping_add(10000))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: dp\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Moves a TAP into a namespace and brings it up (guests without DAD).
fn attach(dev: &str, ns: &str) {
    for conf in ["all", "default"] {
        let _ = in_ns(
            ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{conf}.accept_dad=0"),
            ],
        );
    }
    run(&["ip", "link", "set", dev, "netns", ns]).unwrap();
    in_ns(ns, &["ip", "link", "set", dev, "up"]).unwrap();
}

/// Leases IPv4 and IPv6 with dhclient inside `ns` on `dev`; returns what
/// the hook saw, for each family.
fn lease(topo: &Topology, ns: &str, dev: &str) -> (String, String) {
    // dhclient -6 needs a usable link-local address.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = in_ns(
            ns,
            &["ip", "-6", "addr", "show", "dev", dev, "scope", "link"],
        )
        .unwrap();
        if a.contains("fe80") && !a.contains("tentative") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no link-local address on {dev}: {a}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got = Vec::new();
    for family in ["-4", "-6"] {
        let out = topo.dir.join(format!("out-{ns}{family}"));
        // dhclient gives its script a clean environment: the output path
        // is written into the script.
        let hook = topo.dir.join(format!("hook-{ns}{family}.sh"));
        std::fs::write(
            &hook,
            HOOK.replace("$LEASE_OUT", &out.display().to_string()),
        )
        .unwrap();
        run(&["chmod", "+x", hook.to_str().unwrap()]).unwrap();
        let r = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(["dhclient", "-v", family, "-1", "-sf"])
            .arg(&hook)
            .arg("-lf")
            .arg(topo.dir.join(format!("lease-{ns}{family}")))
            .arg("-pf")
            .arg(topo.dir.join(format!("pid-{ns}{family}")))
            .arg(dev)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "dhclient {family} in {ns}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let text = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("no lease {family} in {ns}: {e}"));
        got.push(text.trim().to_owned());
    }
    // IPv6 needs the router: the RA from the dp gives the default route.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let routes = in_ns(ns, &["ip", "-6", "route", "show", "default"]).unwrap();
        if routes.contains("fe80::1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no IPv6 default route from the RA in {ns}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    (got.remove(0), got.remove(0))
}

async fn create_interface(
    client: &mut DpdKironcoreClient<tonic::transport::Channel>,
    id: &str,
    dev: &str,
    v4: &str,
    v6: &str,
) -> String {
    let r = client
        .create_interface(proto::CreateInterfaceRequest {
            interface_id: id.as_bytes().to_vec(),
            vni: 100,
            ipv4_config: Some(proto::IpConfig {
                primary_address: v4.as_bytes().to_vec(),
            }),
            ipv6_config: Some(proto::IpConfig {
                primary_address: v6.as_bytes().to_vec(),
            }),
            device_name: dev.to_owned(),
            hostname: format!("{id}-host"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, 0);
    String::from_utf8(r.underlay_route).unwrap()
}

async fn create_route(
    client: &mut DpdKironcoreClient<tonic::transport::Channel>,
    prefix: &str,
    len: u32,
    via: &str,
) {
    let ipver = |s: &str| {
        if s.contains(':') {
            proto::IpVersion::Ipv6
        } else {
            proto::IpVersion::Ipv4
        }
    };
    let ip = |s: &str| {
        Some(proto::IpAddress {
            ipver: ipver(s) as i32,
            address: s.as_bytes().to_vec(),
        })
    };
    let r = client
        .create_route(proto::CreateRouteRequest {
            vni: 100,
            route: Some(proto::Route {
                prefix: Some(proto::Prefix {
                    ip: ip(prefix),
                    length: len,
                    underlay_route: Vec::new(),
                }),
                nexthop_vni: 100,
                nexthop_address: ip(via),
                weight: 100,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.status.unwrap().code, 0);
}

async fn connect(port: u16) -> DpdKironcoreClient<tonic::transport::Channel> {
    let mut client = DpdKironcoreClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    client
        .initialize(proto::InitializeRequest {})
        .await
        .unwrap();
    client
}

fn skip() -> bool {
    if let Some(why) = capable() {
        assert!(
            std::env::var_os("CI").is_none(),
            "packet test cannot run in CI: {why}"
        );
        eprintln!("skipping packet test: {why}");
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_dhcp_leases_and_ping_each_other() {
    if skip() {
        return;
    }
    let tag = format!("d{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let (g1, g2, fabric) = (format!("{tag}g1"), format!("{tag}g2"), format!("{tag}f"));
    for ns in [&g1, &g2, &fabric] {
        topo.netns(ns);
    }
    let port = 20000 + (std::process::id() % 20000) as u16;
    let names = spawn_dp(&mut topo, &tag, "fc00:1::1", 2, 0x66, port);
    // PFs into the fabric namespace, VFs into the guests: nothing stays in
    // the root namespace.
    for (dev, ns) in [
        (&names[0], &fabric),
        (&names[1], &fabric),
        (&names[2], &g1),
        (&names[3], &g2),
    ] {
        attach(dev, ns);
    }
    let mut client = connect(port).await;
    create_interface(&mut client, "vm1", "net_tap2", "10.1.0.1", "2001:db8::1").await;
    create_interface(&mut client, "vm2", "net_tap3", "10.1.0.2", "2001:db8::2").await;
    for (i, (ns, dev)) in [(&g1, &names[2]), (&g2, &names[3])].into_iter().enumerate() {
        let (v4, v6) = lease(&topo, ns, dev);
        assert_eq!(v4, format!("10.1.0.{} 1400 vm{}-host", i + 1, i + 1));
        assert_eq!(v6, format!("2001:db8::{}", i + 1));
    }
    let ping4 = in_ns(
        &g1,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.0.2"],
    );
    assert!(ping4.is_ok(), "IPv4 guest to guest: {ping4:?}");
    let ping6 = in_ns(
        &g2,
        &[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "2001:db8::1",
        ],
    );
    assert!(ping6.is_ok(), "IPv6 guest to guest: {ping6:?}");
    let gw = in_ns(&g1, &["ping", "-c", "1", "-W", "2", "169.254.0.1"]);
    assert!(gw.is_ok(), "gateway ping: {gw:?}");
    // The counters saw it (they are copied out every 100 ms).
    std::thread::sleep(Duration::from_millis(300));
    let m = metrics(port);
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
    if skip() {
        return;
    }
    let tag = format!("x{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let (ga, gb, fabric) = (format!("{tag}ga"), format!("{tag}gb"), format!("{tag}f"));
    for ns in [&ga, &gb, &fabric] {
        topo.netns(ns);
    }
    // The fabric: a bridge joining both hosts' PF0.
    // A MAC of its own: a bridge otherwise takes its lowest port's MAC and
    // keeps frames for that MAC to itself.
    in_ns(
        &fabric,
        &[
            "ip",
            "link",
            "add",
            "br0",
            "address",
            "02:00:00:00:00:fe",
            "type",
            "bridge",
        ],
    )
    .unwrap();
    in_ns(&fabric, &["ip", "link", "set", "br0", "up"]).unwrap();
    let base = 20000 + (std::process::id() % 20000) as u16;
    let (port_a, port_b) = (base.wrapping_add(1), base.wrapping_add(2));
    let a = spawn_dp(&mut topo, &format!("{tag}a"), "fc00:1::1", 1, 0x01, port_a);
    let b = spawn_dp(&mut topo, &format!("{tag}b"), "fc00:2::1", 1, 0x02, port_b);
    for pf in [&a[0], &a[1], &b[0], &b[1]] {
        attach(pf, &fabric);
    }
    for pf in [&a[0], &b[0]] {
        in_ns(&fabric, &["ip", "link", "set", pf, "master", "br0"]).unwrap();
    }
    attach(&a[2], &ga);
    attach(&b[2], &gb);
    let mut ca = connect(port_a).await;
    let mut cb = connect(port_b).await;
    let ul_a = create_interface(&mut ca, "vma", "net_tap2", "10.2.0.1", "2001:db8:2::1").await;
    let ul_b = create_interface(&mut cb, "vmb", "net_tap2", "10.2.0.2", "2001:db8:2::2").await;
    create_route(&mut ca, "10.2.0.2", 32, &ul_b).await;
    create_route(&mut ca, "2001:db8:2::2", 128, &ul_b).await;
    create_route(&mut cb, "10.2.0.1", 32, &ul_a).await;
    create_route(&mut cb, "2001:db8:2::1", 128, &ul_a).await;
    lease(&topo, &ga, &a[2]);
    lease(&topo, &gb, &b[2]);
    let ping4 = in_ns(
        &ga,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.2"],
    );
    assert!(ping4.is_ok(), "IPv4 across hosts: {ping4:?}");
    let ping6 = in_ns(
        &gb,
        &[
            "ping",
            "-6",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "2001:db8:2::1",
        ],
    );
    assert!(ping6.is_ok(), "IPv6 across hosts: {ping6:?}");
}

/// The Linux kernel as an independent peer for the wire format: host B is
/// a namespace where SRv6 `encap.red` with one segment emits plain
/// IPv4-in-IPv6 towards our interface's underlay address, and
/// `seg6local End.DX4` decapsulates what ironnet-dp encapsulates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_speaks_our_tunnel_format() {
    if skip() {
        return;
    }
    let tag = format!("k{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let (ga, hb, vb) = (format!("{tag}ga"), format!("{tag}hb"), format!("{tag}vb"));
    for ns in [&ga, &hb, &vb] {
        topo.netns(ns);
    }
    let port = 20000 + (std::process::id() % 20000) as u16 + 5;
    let mac_index = 7u8;
    // The PF0 netdev (the dp's MAC with the last byte's top bit flipped)
    // becomes host B's underlay interface, so it is the dp's router.
    let router_mac = format!("22:22:22:22:{mac_index:02x}:80");
    let a = spawn_dp_with(
        &mut topo,
        &format!("{tag}a"),
        "fc00::1",
        1,
        mac_index,
        port,
        &["--pf-router-mac", &router_mac],
    );
    attach(&a[0], &hb);
    attach(&a[2], &ga);
    let pf = &a[0];
    let sh = |ns: &str, cmd: &str| {
        let mut args = vec!["ip", "netns", "exec", ns];
        args.extend(cmd.split_whitespace());
        run(&args).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    };
    // Host B and its VM (kernel-routed), as in kernel-peer.md.
    run(&[
        "ip", "link", "add", "hbv", "netns", &hb, "type", "veth", "peer", "name", "vbv", "netns",
        &vb,
    ])
    .unwrap();
    sh(&hb, "ip link set hbv up");
    sh(&vb, "ip link set vbv up");
    sh(&hb, "ip addr add 10.3.1.1/24 dev hbv");
    sh(&vb, "ip addr add 10.3.1.2/24 dev vbv");
    sh(&vb, "ip route add default via 10.3.1.1");
    sh(
        &hb,
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
    );
    sh(
        &hb,
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0",
    );
    sh(&hb, &format!("ip -6 addr add fc00::2/64 dev {pf} nodad"));
    sh(&hb, "ip -6 addr add fc00:b::1/128 dev lo");
    sh(&hb, "ip sr tunsrc set fc00:b::1");
    sh(
        &hb,
        "ip -6 route add fc00:b::100/128 encap seg6local action End.DX4 nh4 10.3.1.2 dev hbv",
    );

    // The dp's side: guest A, a route to B's VM through B's End.DX4 SID.
    let mut client = connect(port).await;
    let ul_a = create_interface(&mut client, "vma", "net_tap2", "10.3.0.1", "2001:db8:3::1").await;
    create_route(&mut client, "10.3.1.0", 24, "fc00:b::100").await;
    // B encapsulates towards A's interface underlay (one segment, no SRH);
    // the dp answers no ND on its uplink, so B gets a static neighbour.
    let dp_pf_mac = format!("22:22:22:22:{mac_index:02x}:00");
    sh(
        &hb,
        &format!("ip -6 neigh replace {ul_a} lladdr {dp_pf_mac} dev {pf} nud permanent"),
    );
    sh(
        &hb,
        &format!("ip route add 10.3.0.1/32 encap seg6 mode encap.red segs {ul_a} dev {pf}"),
    );
    let (v4, _) = lease(&topo, &ga, &a[2]);
    assert!(v4.starts_with("10.3.0.1 "), "{v4}");
    let ping = in_ns(
        &ga,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.3.1.2"],
    );
    assert!(
        ping.is_ok(),
        "guest behind ironnet-dp to VM behind the kernel: {ping:?}"
    );
    let back = in_ns(
        &vb,
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.3.0.1"],
    );
    assert!(
        back.is_ok(),
        "VM behind the kernel to guest behind ironnet-dp: {back:?}"
    );
}

//! Virtual services with real traffic: a guest (a network namespace on a
//! VF TAP, address from the dp's DHCP) talks TCP and UDP to
//! 169.254.169.254, and the dp carries it as plain IPv6 to a service
//! namespace on the uplink that only speaks IPv6 on `fc00:b::5`. The
//! service echoes what it got together with the address it saw the
//! request come from, so the test checks the translation on both sides:
//! the guest gets its answer from the IPv4 service address, and the
//! service saw the dp's per-service underlay address and port 1024+.
//!
//! Needs root and what `scripts/setup.sh` installs. Every address lives in
//! the namespaces the test creates, all removed on drop.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use ironnet_bins::testbed::{
    Topology, attach, connect, create_interface, free_port, helper, lease, sh, skip_packet_test,
    spawn_dp, wait_for,
};

const DP: &str = env!("CARGO_BIN_EXE_ironnet-dp");
const SERVICE_ENV: &str = "IRONNET_VIRTSVC_SERVICE";
const CLIENT_ENV: &str = "IRONNET_VIRTSVC_CLIENT";

/// Not a test by itself: with `IRONNET_VIRTSVC_SERVICE=<addr>` it answers
/// TCP on 8080 and UDP on 5353 of `addr` with `<peer> <request>`.
#[test]
fn service_helper() {
    let Ok(addr) = std::env::var(SERVICE_ENV) else {
        return;
    };
    let udp = UdpSocket::bind(format!("[{addr}]:5353")).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = udp.send_to(format!("{peer} {text}").as_bytes(), peer);
        }
    });
    let tcp = TcpListener::bind(format!("[{addr}]:8080")).unwrap();
    println!("ready");
    for mut conn in tcp.incoming().flatten() {
        let peer = conn.peer_addr().unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let _ = conn.write_all(format!("{peer} {text}").as_bytes());
    }
}

/// Not a test by itself: with `IRONNET_VIRTSVC_CLIENT=<ipv4>` it sends
/// "hello-tcp" to `<ipv4>:80` and "hello-udp" to `<ipv4>:53` and prints
/// `tcp <answer>` and `udp <answer>` with the answer's source.
#[test]
fn client_helper() {
    let Ok(addr) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let tcp: SocketAddr = format!("{addr}:80").parse().unwrap();
    for _ in 0..20 {
        let Ok(mut c) = TcpStream::connect_timeout(&tcp, Duration::from_secs(2)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"hello-tcp").unwrap();
        let mut s = String::new();
        if c.read_to_string(&mut s).is_ok() && !s.is_empty() {
            println!("tcp {} {s}", c.peer_addr().unwrap());
            break;
        }
    }
    let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for _ in 0..20 {
        udp.send_to(b"hello-udp", format!("{addr}:53")).unwrap();
        let mut buf = [0u8; 512];
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            println!("udp {from} {}", String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_reaches_ipv6_services_on_ipv4_addresses() {
    if skip_packet_test() {
        return;
    }
    let tag = format!("v{}", std::process::id() % 10000);
    let mut topo = Topology::new(&tag);
    let [guest, svc] = ["g", "s"].map(|n| format!("{tag}{n}"));
    for ns in [&guest, &svc] {
        topo.netns(ns).unwrap();
    }
    let mac = 0x0cu8;
    let dp = spawn_dp(
        &mut topo,
        DP,
        &format!("{tag}x"),
        "fc00:1::1",
        1,
        mac,
        free_port(),
        &[
            "--pf-router-mac",
            &format!("22:22:22:22:{mac:02x}:80"),
            "--tcp-virtsvc",
            "169.254.169.254,80,fc00:b::5,8080",
            "--udp-virtsvc",
            "169.254.169.254,53,fc00:b::5,5353",
        ],
    )
    .unwrap();
    let pf = dp.ports[0].clone();
    attach(&pf, &svc).unwrap();
    attach(&dp.ports[2], &guest).unwrap();
    // The service side: its address, the host's /64 on the uplink, and the
    // dp's MAC for the per-service underlay addresses (no ND on the PF).
    for cmd in [
        "ip -6 addr add fc00:b::5/128 dev lo".to_owned(),
        format!("ip -6 route add fc00:1::/64 dev {pf}"),
        format!(
            "ip -6 neigh replace fc00:1::d0ff:4000:0:0 lladdr 22:22:22:22:{mac:02x}:00 dev {pf} nud permanent"
        ),
        format!(
            "ip -6 neigh replace fc00:1::d0ff:4000:0:1 lladdr 22:22:22:22:{mac:02x}:00 dev {pf} nud permanent"
        ),
    ] {
        sh(&svc, &cmd).unwrap();
    }
    let mut c = connect(&dp).await.unwrap();
    create_interface(&mut c, "vm1", "net_tap2", "10.6.0.1", "2001:db8:6::1")
        .await
        .unwrap();
    let (v4, _) = lease(&topo, &guest, &dp.ports[2]).unwrap();
    assert!(v4.starts_with("10.6.0.1 "), "lease {v4}");

    let mut server = helper(&svc, "service_helper", (SERVICE_ENV, "fc00:b::5"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = server.stdout.take().unwrap();
    topo.adopt(server);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    wait_for(Duration::from_secs(10), || {
        Ok(lines
            .next()
            .and_then(Result::ok)
            .filter(|l| l.contains("ready"))
            .map(|_| ()))
    })
    .unwrap();

    let out = helper(&guest, "client_helper", (CLIENT_ENV, "169.254.169.254"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |proto: &str| {
        text.lines()
            .find_map(|l| {
                l.split_once(&format!("{proto} "))
                    .map(|(_, r)| r.to_owned())
            })
            .unwrap_or_else(|| panic!("no {proto} answer; client said:\n{text}"))
    };
    // "<answer source> <peer the service saw> <request>"
    for (proto, port, svc_underlay) in [("tcp", 80, "0"), ("udp", 53, "1")] {
        let answer = line(proto);
        let fields: Vec<&str> = answer.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "{answer}");
        assert_eq!(fields[0], format!("169.254.169.254:{port}"), "{answer}");
        let seen: SocketAddr = fields[1].parse().unwrap();
        assert_eq!(
            seen.ip().to_string(),
            format!("fc00:1::d0ff:4000:0:{svc_underlay}"),
            "{answer}"
        );
        assert!(seen.port() >= 1024, "{answer}");
        assert_eq!(fields[2], format!("hello-{proto}"), "{answer}");
    }
}

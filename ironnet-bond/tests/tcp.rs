//! The server and client over real TCP on loopback: a scripted metalbond
//! peer byte for byte, 2 servers with 20 clients and random flaps, a slow
//! subscriber, and the HTTP endpoints.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ironnet_bond::client::RouteEvent;
use ironnet_bond::codec::{self, Action, Message};
use ironnet_bond::{BondClient, ClientConfig, ServerConfig, ServerHandle};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

fn route(c: usize, i: usize) -> Route {
    let v = vni(1 + (i % 2) as u32);
    let kind = if i % 3 == 2 {
        NextHopKind::Nat {
            port_from: 1024 * (c as u16 + 1),
            port_to: 1024 * (c as u16 + 2) - 1,
        }
    } else {
        NextHopKind::Standard
    };
    let dest = if i % 3 == 2 {
        "198.51.100.1/32".to_owned()
    } else {
        format!("10.{c}.{i}.0/24")
    };
    Route {
        vni: v,
        destination: Destination::new(dest.parse().unwrap()),
        next_hop: NextHop {
            underlay: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, c as u16 + 1),
            vni: v,
            kind,
        },
    }
}

const SECS10: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn server(listen: SocketAddr, http: Option<SocketAddr>, stall: Duration) -> ServerHandle {
    // A restarted server may find its port briefly busy.
    for _ in 0..50 {
        let cfg = ServerConfig {
            listen,
            http,
            keepalive_secs: 1,
            stall_timeout: stall,
            // Byte-for-byte metalbond: a closed peer's routes go at once.
            departed_grace: Duration::ZERO,
            ..ServerConfig::default()
        };
        match ServerHandle::start(cfg).await {
            Ok(h) => return h,
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not bind {listen}");
}

fn client_config(seed: u64, grace: Duration) -> ClientConfig {
    ClientConfig {
        keepalive_secs: 1,
        grace,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(800),
        seed,
    }
}

async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("timed out reading")
        .unwrap();
    buf
}

async fn raw_handshake(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // HELLO{keepalive 1} as a metalbond client sends it.
    s.write_all(&[0x01, 0x00, 0x02, 0x01, 0x08, 0x01])
        .await
        .unwrap();
    // The server answers HELLO{keepalive 1, isServer true}.
    assert_eq!(
        read_exact(&mut s, 8).await,
        [0x01, 0x00, 0x04, 0x01, 0x08, 0x01, 0x10, 0x01]
    );
    s.write_all(&[0x01, 0x00, 0x00, 0x02]).await.unwrap();
    // ... and echoes the KEEPALIVE.
    assert_eq!(read_exact(&mut s, 4).await, [0x01, 0x00, 0x00, 0x02]);
    s
}

fn frame(msg: Message) -> Vec<u8> {
    let mut out = Vec::new();
    codec::encode(&msg, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_metalbond_peers_byte_for_byte() {
    let srv = server(loopback(), None, SECS10).await;
    let addr = srv.local_addr();
    let mut sub = raw_handshake(addr).await;
    sub.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x01])
        .await
        .unwrap(); // SUBSCRIBE 1
    let mut ann = raw_handshake(addr).await;
    let r = route(5, 0);
    let add = frame(Message::Update(Action::Add, r));
    ann.write_all(&add).await.unwrap();
    // The subscriber receives exactly the announced frame.
    assert_eq!(read_exact(&mut sub, add.len()).await, add);
    // The announcer goes away: its route is withdrawn.
    drop(ann);
    let remove = frame(Message::Update(Action::Remove, r));
    assert_eq!(read_exact(&mut sub, remove.len()).await, remove);
    // A frame with version 2 gets the connection reset, nothing else.
    let mut bad = raw_handshake(addr).await;
    bad.write_all(&[0x02, 0x00, 0x00, 0x02]).await.unwrap();
    let mut buf = [0u8; 16];
    let n = timeout(Duration::from_secs(5), bad.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "connection still open: {n:?}");
    // A second subscriber gets the table as a dump.
    let mut ann2 = raw_handshake(addr).await;
    let r2 = route(6, 2);
    let add2 = frame(Message::Update(Action::Add, r2));
    ann2.write_all(&add2).await.unwrap();
    assert_eq!(read_exact(&mut sub, add2.len()).await, add2);
    let mut late = raw_handshake(addr).await;
    late.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x01])
        .await
        .unwrap();
    assert_eq!(read_exact(&mut late, add2.len()).await, add2);
    srv.shutdown().await;
}

/// Applies a client's event stream to a set until the client stops,
/// checking that it is consistent.
fn track(
    mut events: mpsc::UnboundedReceiver<RouteEvent>,
) -> tokio::task::JoinHandle<BTreeSet<Route>> {
    tokio::spawn(async move {
        let mut set = BTreeSet::new();
        while let Some(ev) = events.recv().await {
            match ev {
                RouteEvent::Add(r) => assert!(set.insert(r), "double Add {r:?}"),
                RouteEvent::Remove(r) => assert!(set.remove(&r), "Remove of absent {r:?}"),
            }
        }
        set
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_twenty_clients_random_flaps() {
    const N: usize = 20;
    let mut servers = vec![
        server(loopback(), None, SECS10).await,
        server(loopback(), None, SECS10).await,
    ];
    let addrs: Vec<SocketAddr> = servers.iter().map(ServerHandle::local_addr).collect();
    let mut clients = Vec::new();
    let mut trackers = Vec::new();
    let mut subs: Vec<BTreeSet<Vni>> = Vec::new();
    let mut anns: Vec<BTreeSet<Route>> = Vec::new();
    for c in 0..N {
        let grace = if c % 2 == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(2)
        };
        let (client, events) = BondClient::spawn(client_config(c as u64, grace), addrs.clone());
        let mut s = BTreeSet::new();
        for v in [1, 2].into_iter().filter(|v| c % 3 != 0 || *v == 1) {
            client.subscribe(vni(v)).await.unwrap();
            s.insert(vni(v));
        }
        let mut a = BTreeSet::new();
        for i in 0..5 {
            client.announce(route(c, i)).await.unwrap();
            a.insert(route(c, i));
        }
        clients.push(client);
        trackers.push(track(events));
        subs.push(s);
        anns.push(a);
    }
    let mut rng = 0x5eed_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _round in 0..8 {
        match next() % 3 {
            0 => {
                // Restart a server on the same port.
                let s = (next() % 2) as usize;
                let old = servers.remove(s);
                old.shutdown().await;
                sleep(Duration::from_millis(next() % 400)).await;
                servers.insert(s, server(addrs[s], None, SECS10).await);
            }
            _ => {
                // Toggle announcements of a few clients.
                for _ in 0..4 {
                    let c = (next() % N as u64) as usize;
                    let r = route(c, (next() % 6) as usize);
                    if anns[c].remove(&r) {
                        assert!(clients[c].withdraw(r).await.unwrap());
                    } else {
                        assert!(clients[c].announce(r).await.unwrap());
                        anns[c].insert(r);
                    }
                }
            }
        }
        sleep(Duration::from_millis(150 + next() % 300)).await;
    }
    let expected = |c: usize| -> BTreeSet<Route> {
        (0..N)
            .filter(|o| *o != c)
            .flat_map(|o| anns[o].iter().copied())
            .filter(|r| subs[c].contains(&r.vni) && !anns[c].contains(r))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut mismatches = BTreeMap::new();
    loop {
        mismatches.clear();
        for (c, client) in clients.iter().enumerate() {
            let got: BTreeSet<Route> = client.routes().await.unwrap().into_iter().collect();
            if got != expected(c) {
                mismatches.insert(c, got.len());
            }
        }
        if mismatches.is_empty() || Instant::now() > deadline {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    assert!(
        mismatches.is_empty(),
        "clients not converged: {mismatches:?}"
    );
    // Every link is up again.
    for client in &clients {
        for (_, state) in client.servers().await.unwrap() {
            assert_eq!(
                state,
                ironnet_bond::client::LinkState::Up(ironnet_bond::State::Established)
            );
        }
    }
    // Each server holds exactly what is announced.
    let total: BTreeSet<Route> = anns.iter().flatten().copied().collect();
    for s in &servers {
        let snap = s.snapshot().await.unwrap();
        let on_server: BTreeSet<Route> = snap.routes.iter().map(|(r, _)| *r).collect();
        assert!(
            on_server == total,
            "server has {} routes, {} announced; missing {:?}, extra {:?}",
            on_server.len(),
            total.len(),
            total.difference(&on_server).next(),
            on_server.difference(&total).next()
        );
    }
    // Each event stream, read to its end, built the same table.
    drop(clients);
    for (c, t) in trackers.into_iter().enumerate() {
        assert!(t.await.unwrap() == expected(c), "client {c} events");
    }
    for s in servers {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_disconnected_and_others_carry_on() {
    let srv = server(loopback(), Some(loopback()), Duration::from_secs(1)).await;
    let addr = srv.local_addr();
    // A subscriber with a tiny receive buffer that keeps its connection
    // alive but never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let slow = sock.connect(addr).await.unwrap();
    let (mut slow_rd, mut slow_wr) = slow.into_split();
    // HELLO, KEEPALIVE (a raw client need not wait for the server's
    // HELLO), SUBSCRIBE 1.
    slow_wr
        .write_all(&[0x01, 0x00, 0x02, 0x01, 0x08, 0x01])
        .await
        .unwrap();
    slow_wr.write_all(&[0x01, 0x00, 0x00, 0x02]).await.unwrap();
    slow_wr
        .write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x01])
        .await
        .unwrap();
    let slow_wr = Arc::new(tokio::sync::Mutex::new(slow_wr));
    let slow_keepalive = keep_alive(Arc::clone(&slow_wr));
    let (good, mut good_events) = BondClient::spawn(client_config(1, Duration::ZERO), vec![addr]);
    good.subscribe(vni(1)).await.unwrap();
    while good.servers().await.unwrap()[0].1
        != ironnet_bond::client::LinkState::Up(ironnet_bond::State::Established)
    {
        sleep(Duration::from_millis(10)).await;
    }
    // A raw announcer pushes 100k routes (about 4.6 MB) in one write.
    const ROUTES: u32 = 100_000;
    let mut bulk = Vec::new();
    for i in 0..ROUTES {
        let r = Route {
            vni: vni(1),
            destination: Destination::new(
                format!("10.{}.{}.0/24", i / 65536, i / 256 % 256)
                    .parse()
                    .unwrap(),
            ),
            next_hop: NextHop {
                underlay: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, (i >> 16) as u16, i as u16),
                vni: vni(1),
                kind: NextHopKind::Standard,
            },
        };
        codec::encode(&Message::Update(Action::Add, r), &mut bulk).unwrap();
    }
    let (_ann_rd, mut ann_wr) = raw_handshake(addr).await.into_split();
    ann_wr.write_all(&bulk).await.unwrap();
    let ann_keepalive = keep_alive(Arc::new(tokio::sync::Mutex::new(ann_wr)));
    let mut got = 0;
    while got < ROUTES {
        match timeout(Duration::from_secs(20), good_events.recv()).await {
            Ok(Some(RouteEvent::Add(_))) => got += 1,
            other => panic!("good subscriber stalled after {got} routes: {other:?}"),
        }
    }
    // Re-subscribing asks for the 4.6 MB table again, more than kernel
    // buffers hold for a peer that does not read.
    for _ in 0..4 {
        let mut w = slow_wr.lock().await;
        w.write_all(&[0x01, 0x00, 0x02, 0x04, 0x08, 0x01])
            .await
            .unwrap();
        w.write_all(&[0x01, 0x00, 0x02, 0x03, 0x08, 0x01])
            .await
            .unwrap();
    }
    // The server drops the stalled peer (stall timeout 1 s) ...
    let deadline = Instant::now() + Duration::from_secs(15);
    while srv.snapshot().await.unwrap().peers.len() > 2 {
        assert!(Instant::now() < deadline, "stalled peer never disconnected");
        sleep(Duration::from_millis(100)).await;
    }
    // ... and its connection ends once we drain it.
    let mut buf = vec![0u8; 1 << 16];
    let drained = timeout(Duration::from_secs(10), async {
        loop {
            match slow_rd.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert_eq!(drained, Ok(true));
    let snap = srv.snapshot().await.unwrap();
    assert_eq!(snap.peers.len(), 2, "slow peer still listed");
    assert_eq!(snap.routes.len(), ROUTES as usize);
    let metrics = http_get(srv.http_addr().unwrap(), "/metrics").await;
    assert!(
        metrics.contains("ironnet_bond_slow_consumer_disconnects_total 1"),
        "{metrics}"
    );
    slow_keepalive.abort();
    ann_keepalive.abort();
    srv.shutdown().await;
}

/// Sends a KEEPALIVE every 300 ms.
fn keep_alive(wr: Arc<tokio::sync::Mutex<OwnedWriteHalf>>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if wr
                .lock()
                .await
                .write_all(&[0x01, 0x00, 0x00, 0x02])
                .await
                .is_err()
            {
                return;
            }
            sleep(Duration::from_millis(300)).await;
        }
    })
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: bond\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_routes_json_and_metrics() {
    let srv = server(loopback(), Some(loopback()), SECS10).await;
    let (a, _ea) = BondClient::spawn(client_config(1, Duration::ZERO), vec![srv.local_addr()]);
    let (b, mut eb) = BondClient::spawn(client_config(2, Duration::ZERO), vec![srv.local_addr()]);
    b.subscribe(vni(2)).await.unwrap();
    let nat = route(3, 5); // NAT hop in VNI 2
    a.announce(nat).await.unwrap();
    a.announce(route(3, 1)).await.unwrap();
    let mut got = BTreeSet::new();
    for _ in 0..2 {
        match timeout(Duration::from_secs(5), eb.recv()).await.unwrap() {
            Some(RouteEvent::Add(r)) => got.insert(r),
            other => panic!("{other:?}"),
        };
    }
    assert_eq!(got, BTreeSet::from([nat, route(3, 1)]));
    let http = srv.http_addr().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&http_get(http, "/routes.json").await).unwrap();
    let hop = &json["vnet"]["2"]["198.51.100.1/32"][0];
    assert_eq!(hop["TargetAddress"], "fd00::4");
    assert_eq!(hop["Type"], 1);
    assert_eq!(hop["NATPortRangeFrom"], 4096);
    assert_eq!(hop["NATPortRangeTo"], 5119);
    assert!(json["vnet"]["2"]["10.3.1.0/24"].is_array());
    assert!(
        json["metalbondVersion"]
            .as_str()
            .unwrap()
            .starts_with("ironnet-bond")
    );
    let page = http_get(http, "/").await;
    assert!(
        page.contains("ESTABLISHED") && page.contains("VNI 2"),
        "{page}"
    );
    let metrics = http_get(http, "/metrics").await;
    for line in [
        "ironnet_bond_peers 2",
        "ironnet_bond_peers_established 2",
        "ironnet_bond_routes 2",
        "ironnet_bond_updates_received_total 2",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
    srv.shutdown().await;
}

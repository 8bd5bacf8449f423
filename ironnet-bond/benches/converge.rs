//! Convergence benchmark: 100k routes announced by 50 clients until all 50
//! subscribers hold all of them, over loopback TCP through one bond server;
//! beside it, the same bytes pushed through plain TCP sockets by a relay
//! that copies without parsing (same connection counts, same run). The
//! ratio is the bond's overhead over moving the bytes.
//!
//! `cargo bench -p ironnet-bond --bench converge` (`BOND_ROUTES`,
//! `BOND_ANNOUNCERS`, `BOND_SUBSCRIBERS` override the sizes).
#![allow(clippy::unwrap_used)]

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironnet_bond::client::{LinkState, RouteEvent};
use ironnet_bond::codec::{self, Action, Message};
use ironnet_bond::{BondClient, ClientConfig, ServerConfig, ServerHandle, State};
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn route(i: usize, announcer: usize) -> Route {
    let vni = Vni::new(1).unwrap();
    Route {
        vni,
        destination: Destination::new(
            format!("10.{}.{}.0/24", i / 65536, i / 256 % 256)
                .parse()
                .unwrap(),
        ),
        next_hop: NextHop {
            underlay: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, announcer as u16, i as u16),
            vni,
            kind: NextHopKind::Standard,
        },
    }
}

async fn bond_run(routes: usize, announcers: usize, subscribers: usize) -> Duration {
    let server = ServerHandle::start(ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let addr = server.local_addr();
    let config = ClientConfig {
        backoff_initial: Duration::from_millis(20),
        ..ClientConfig::default()
    };
    let vni = Vni::new(1).unwrap();
    let mut subs = Vec::new();
    for _ in 0..subscribers {
        let (c, events) = BondClient::spawn(config.clone(), vec![addr]);
        c.subscribe(vni).await.unwrap();
        subs.push((c, events));
    }
    let mut anns = Vec::new();
    for _ in 0..announcers {
        anns.push(BondClient::spawn(config.clone(), vec![addr]));
    }
    // Everyone connected before the clock starts.
    for c in subs.iter().map(|s| &s.0).chain(anns.iter().map(|a| &a.0)) {
        while c.servers().await.unwrap()[0].1 != LinkState::Up(State::Established) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (done_tx, mut done_rx) = mpsc::channel(subscribers);
    let start = Instant::now();
    let mut waiters = Vec::new();
    let mut keep = Vec::new();
    for (client, mut events) in subs.drain(..) {
        keep.push(client);
        let done = done_tx.clone();
        waiters.push(tokio::spawn(async move {
            let mut n = 0;
            while n < routes {
                match events.recv().await {
                    Some(RouteEvent::Add(_)) => n += 1,
                    Some(RouteEvent::Remove(_)) => n -= 1,
                    None => return,
                }
            }
            let _ = done.send(()).await;
        }));
    }
    let per = routes / announcers;
    let mut senders = Vec::new();
    let anns = Arc::new(anns);
    for a in 0..announcers {
        let anns = Arc::clone(&anns);
        senders.push(tokio::spawn(async move {
            for i in a * per..(a + 1) * per {
                anns[a].0.announce(route(i, a)).await.unwrap();
            }
        }));
    }
    for _ in 0..subscribers {
        done_rx.recv().await.unwrap();
    }
    let elapsed = start.elapsed();
    for s in senders {
        s.await.unwrap();
    }
    drop(keep);
    server.shutdown().await;
    elapsed
}

/// The same bytes through plain TCP: announcers write their frames to a
/// relay that copies every chunk to every subscriber.
async fn tcp_run(routes: usize, announcers: usize, subscribers: usize) -> (Duration, usize) {
    let per = routes / announcers;
    let frames: Vec<Vec<u8>> = (0..announcers)
        .map(|a| {
            let mut out = Vec::new();
            for i in a * per..(a + 1) * per {
                codec::encode(&Message::Update(Action::Add, route(i, a)), &mut out).unwrap();
            }
            out
        })
        .collect();
    let total: usize = frames.iter().map(Vec::len).sum();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr: SocketAddr = relay.local_addr().unwrap();
    // Subscribers connect first; the relay keeps a writer per subscriber.
    let mut readers = Vec::new();
    let mut outs = Vec::new();
    for _ in 0..subscribers {
        let s = TcpStream::connect(relay_addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (peer, _) = relay.accept().await.unwrap();
        peer.set_nodelay(true).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Vec<u8>>>();
        let (_, mut w) = peer.into_split();
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                w.write_all(&chunk).await.unwrap();
            }
        });
        outs.push(tx);
        readers.push(s);
    }
    let outs = Arc::new(outs);
    let mut ins = Vec::new();
    for _ in 0..announcers {
        let s = TcpStream::connect(relay_addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (peer, _) = relay.accept().await.unwrap();
        let outs = Arc::clone(&outs);
        tokio::spawn(async move {
            let (mut r, _) = peer.into_split();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                let chunk = Arc::new(buf[..n].to_vec());
                for o in outs.iter() {
                    let _ = o.send(Arc::clone(&chunk));
                }
            }
        });
        ins.push(s);
    }
    let start = Instant::now();
    let mut waiters = Vec::new();
    for mut s in readers {
        waiters.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut got = 0;
            while got < total {
                got += s.read(&mut buf).await.unwrap();
            }
        }));
    }
    for (mut s, bytes) in ins.into_iter().zip(frames) {
        tokio::spawn(async move {
            s.write_all(&bytes).await.unwrap();
            // Keep the socket open until the run ends.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
    }
    for w in waiters {
        w.await.unwrap();
    }
    (start.elapsed(), total)
}

fn main() {
    let routes = env("BOND_ROUTES", 100_000);
    let announcers = env("BOND_ANNOUNCERS", 50);
    let subscribers = env("BOND_SUBSCRIBERS", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "convergence: {routes} routes from {announcers} announcers to {subscribers} subscribers, loopback TCP, {} worker threads",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // The relay run is short and noisy: take the median of five.
    let mut runs: Vec<(Duration, usize)> = (0..5)
        .map(|_| rt.block_on(tcp_run(routes, announcers, subscribers)))
        .collect();
    runs.sort();
    let (tcp, bytes) = runs[2];
    let bond = rt.block_on(bond_run(routes, announcers, subscribers));
    let deliveries = (routes * subscribers) as f64;
    println!(
        "plain TCP relay : {:>8.3} s  ({} B in, {} B out; median of 5)",
        tcp.as_secs_f64(),
        bytes,
        bytes * subscribers
    );
    println!(
        "ironnet-bond    : {:>8.3} s  {:>10.0} routes/s converged, {:>10.0} route deliveries/s",
        bond.as_secs_f64(),
        routes as f64 / bond.as_secs_f64(),
        deliveries / bond.as_secs_f64()
    );
    println!(
        "overhead ratio  : {:>8.2} × the plain TCP time",
        bond.as_secs_f64() / tcp.as_secs_f64()
    );
}

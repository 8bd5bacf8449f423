//! How fast the network controller brings interfaces to Available: N user
//! NetworkInterfaces in one network with a NAT gateway, every second one
//! with its own VirtualIP (the others are NAT'd), two nodes, and an agent
//! played by the bench that reports each internal interface Ready as soon
//! as it appears. Measured from the first create to the last interface
//! Available, and to the NAT gateway holding a section for every NAT'd
//! interface; per backend, with the memory store as the baseline of the
//! same run.
//!
//! `cargo bench -p ironnet-core --features etcd --bench controller_bench`
//! (`CONTROLLER_BENCH_N`, default 10000; `CONTROLLER_BENCH_ONLY=memory`,
//! `embedded` or `etcd` for the baseline and at most that store;
//! `CONTROLLER_BENCH_PROGRESS=1` prints the controller's counters every
//! 10 s on stderr)
#![allow(clippy::unwrap_used, missing_docs)]

#[cfg(feature = "etcd")]
#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironnet_core::api::apinet;
use ironnet_core::api::common::{IpFamily, LocalObjectReference};
use ironnet_core::api::networking::{self, State};
use ironnet_core::control::{Config, NetworkController};
use ironnet_core::object::Resource;
use ironnet_core::registry::DynObject;
use ironnet_core::store::embedded::EmbeddedStore;
use ironnet_core::store::memory::MemoryStore;
use ironnet_core::store::{EventType, Selection, Store};
use tokio::sync::Semaphore;

fn obj<T: Resource>(o: &T) -> DynObject {
    DynObject::from_typed(o).unwrap()
}

fn nic(i: usize) -> networking::NetworkInterface {
    networking::NetworkInterface::new(
        "default",
        &format!("nic-{i}"),
        networking::NetworkInterfaceSpec {
            network_ref: LocalObjectReference::new("net"),
            ip_families: vec![IpFamily::IPv4],
            ips: vec![networking::IpSource {
                value: Some(std::net::IpAddr::V4((0x0a80_0000u32 + i as u32).into())),
                ephemeral: None,
            }],
            virtual_ip: i.is_multiple_of(2).then(|| networking::VirtualIpSource {
                virtual_ip_ref: Some(LocalObjectReference::new(&format!("vip-{i}"))),
                ephemeral: None,
            }),
            ..Default::default()
        },
    )
}

/// Plays the agent: every internal interface not yet Ready is reported
/// Ready. Like a real agent it lists, watches, and lists again when its
/// watch falls behind (a durable store writes slower than the controller
/// plans, so the agent's queue can overflow).
async fn agent<S: Store>(store: S) {
    let gate = Arc::new(Semaphore::new(16));
    let sel = Selection::kind(apinet::NetworkInterface::INFO);
    let ready = |obj: &DynObject| {
        let mut n: apinet::NetworkInterface = obj.to_typed().unwrap();
        (n.status.state != Some(apinet::NicState::Ready)).then(|| {
            n.status.state = Some(apinet::NicState::Ready);
            n.metadata.resource_version.clear();
            n
        })
    };
    loop {
        let (objs, version) = store.list(&sel).await.unwrap();
        let mut todo: Vec<apinet::NetworkInterface> = objs.iter().filter_map(ready).collect();
        let Ok(mut watch) = store.watch(sel.clone(), version).await else {
            continue;
        };
        loop {
            for n in todo.drain(..) {
                let (store, permit) = (
                    store.clone(),
                    Arc::clone(&gate).acquire_owned().await.unwrap(),
                );
                tokio::spawn(async move {
                    let _ = store.update_status(obj(&n)).await;
                    drop(permit);
                });
            }
            match watch.next().await {
                Ok(Some(ev)) if ev.ty != EventType::Deleted => todo.extend(ready(&ev.object)),
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => break,
            }
        }
    }
}

/// Seconds until all `n` interfaces are Available, and until the NAT
/// gateway holds a section for each NAT'd one.
async fn run<S: Store>(store: S, n: usize) -> (f64, f64) {
    for name in ["n1", "n2"] {
        let mut node = apinet::Node::new("", name, apinet::Empty {});
        node.metadata.namespace.clear();
        store.create(obj(&node)).await.unwrap();
    }
    store
        .create(obj(&networking::Network::new(
            "default",
            "net",
            Default::default(),
        )))
        .await
        .unwrap();
    store
        .create(obj(&networking::NATGateway::new(
            "default",
            "nat",
            networking::NatGatewaySpec {
                ty: Some(networking::PublicType::Public),
                ip_family: Some(IpFamily::IPv4),
                network_ref: LocalObjectReference::new("net"),
                ports_per_network_interface: Some(64),
            },
        )))
        .await
        .unwrap();
    let cfg = Config {
        public_prefixes: vec!["10.0.0.0/16".parse().unwrap()],
        nat_max_ips: 10,
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = NetworkController::new(store.clone(), cfg);
    let metrics = controller.metrics();
    let controller = tokio::spawn(controller.run(async {
        let _ = stopped.await;
    }));
    let agent = tokio::spawn(agent(store.clone()));
    let mut nics = store
        .watch(Selection::kind(networking::NetworkInterface::INFO), 0)
        .await
        .unwrap();
    let mut gws = store
        .watch(Selection::kind(apinet::NATGateway::INFO), 0)
        .await
        .unwrap();
    let start = Instant::now();
    let creator = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..n {
                if i.is_multiple_of(2) {
                    let v = networking::VirtualIP::new(
                        "default",
                        &format!("vip-{i}"),
                        networking::VirtualIpSpec {
                            ty: Some(networking::PublicType::Public),
                            ip_family: Some(IpFamily::IPv4),
                            target_ref: None,
                        },
                    );
                    store.create(obj(&v)).await.unwrap();
                }
                store.create(obj(&nic(i))).await.unwrap();
            }
        })
    };
    let mut available = BTreeSet::new();
    let mut t_available = None;
    let mut t_nat = None;
    let want_nat = (n / 2) as i64;
    let progress = std::env::var_os("CONTROLLER_BENCH_PROGRESS").is_some();
    let mut next_progress = tokio::time::Instant::now() + Duration::from_secs(10);
    while t_available.is_none() || t_nat.is_none() {
        tokio::select! {
            ev = nics.next() => {
                let ev = ev.unwrap().unwrap();
                let u: networking::NetworkInterface = ev.object.to_typed().unwrap();
                if u.status.state == Some(State::Available) {
                    available.insert(u.metadata.name);
                    if available.len() == n && t_available.is_none() {
                        t_available = Some(start.elapsed().as_secs_f64());
                    }
                }
            }
            ev = gws.next() => {
                let ev = ev.unwrap().unwrap();
                let g: apinet::NATGateway = ev.object.to_typed().unwrap();
                if g.status.used_nat_ips == Some(want_nat) && t_nat.is_none() {
                    t_nat = Some(start.elapsed().as_secs_f64());
                }
            }
            () = tokio::time::sleep(Duration::from_secs(600)) => panic!("no progress for 10 minutes"),
            () = tokio::time::sleep_until(next_progress), if progress => {
                next_progress += Duration::from_secs(10);
                let m = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
                eprintln!(
                    "  {:>6.1} s: {} available, rounds {}, writes {}, conflicts {}, errors {}, last round {}",
                    start.elapsed().as_secs_f64(),
                    available.len(),
                    m(&metrics.rounds),
                    m(&metrics.writes),
                    m(&metrics.conflicts),
                    m(&metrics.errors),
                    m(&metrics.last_round_writes),
                );
            }
        }
    }
    creator.await.unwrap();
    let _ = stop.send(());
    let _ = controller.await;
    agent.abort();
    // Every VirtualIP has its own address.
    let (vips, _) = store
        .list(&Selection::kind(networking::VirtualIP::INFO))
        .await
        .unwrap();
    let addrs: BTreeSet<String> = vips
        .iter()
        .map(|v| v.value["status"]["ip"].to_string())
        .collect();
    assert_eq!(addrs.len(), n / 2, "every VirtualIP has its own address");
    (t_available.unwrap(), t_nat.unwrap())
}

fn main() {
    let n: usize = std::env::var("CONTROLLER_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("{n} NetworkInterfaces (half with a VirtualIP, half NAT'd), one run");
    println!(
        "{:<10} {:>14} {:>14} {:>12} {:>16}",
        "backend", "Available s", "NICs/s", "÷ memory", "NAT complete s"
    );
    // Each row as soon as it is measured (the etcd run is long).
    let row = |name: &str, (avail, nat): (f64, f64), base: f64| {
        println!(
            "{name:<10} {avail:>14.2} {:>14.0} {:>12.3} {nat:>16.2}",
            n as f64 / avail,
            base / avail
        );
    };
    let mem = rt.block_on(run(MemoryStore::with_log(64 * n), n));
    row("memory", mem, mem.0);
    // The memory baseline always runs; `CONTROLLER_BENCH_ONLY` names the
    // one other store to measure (or `memory` for none).
    let only = std::env::var("CONTROLLER_BENCH_ONLY").ok();
    let wanted = |store: &str| only.as_deref().is_none_or(|o| o == store);
    if wanted("embedded") {
        let dir =
            std::env::temp_dir().join(format!("ironnet-controller-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let emb = rt.block_on(run(
            EmbeddedStore::open(&dir.join("bench.redb")).unwrap(),
            n,
        ));
        let _ = std::fs::remove_dir_all(&dir);
        row("embedded", emb, mem.0);
    }
    #[cfg(feature = "etcd")]
    if wanted("etcd") {
        let etcd = common::EtcdServer::start("controller-bench");
        let store = rt
            .block_on(ironnet_core::store::etcd::EtcdStore::open(
                std::slice::from_ref(&etcd.endpoint),
                "/bench",
            ))
            .unwrap();
        row("etcd", rt.block_on(run(store, n)), mem.0);
    }
}

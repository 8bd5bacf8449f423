//! Store throughput per backend, side by side in one run: creates,
//! updates (each a new version) and watch events delivered, in objects per
//! second. The embedded store commits (fsyncs) every operation; `api` is
//! the HTTP API client in front of a memory store on loopback; `etcd`
//! (with `--features etcd`) a real etcd started on loopback, its WAL
//! fsync'd per write.
//!
//! `cargo bench -p ironnet-core --features etcd --bench store_bench`
#![allow(clippy::unwrap_used, missing_docs)]

#[cfg(feature = "etcd")]
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use ironnet_core::api::{common::IpFamily, networking};
use ironnet_core::registry::DynObject;
use ironnet_core::store::embedded::EmbeddedStore;
use ironnet_core::store::memory::MemoryStore;
use ironnet_core::store::{Selection, Store};

fn vip(i: usize) -> DynObject {
    let v = networking::VirtualIP::new(
        "default",
        &format!("vip-{i}"),
        networking::VirtualIpSpec {
            ty: Some(networking::PublicType::Public),
            ip_family: Some(IpFamily::IPv4),
            target_ref: None,
        },
    );
    DynObject::from_typed(&v).unwrap()
}

async fn run<S: Store>(store: S, n: usize) -> (f64, f64, f64) {
    let sel = Selection::kind(<networking::VirtualIP as ironnet_core::object::Resource>::INFO);
    let mut watch = store.watch(sel, 0).await.unwrap();
    let t = Instant::now();
    let mut created = Vec::with_capacity(n);
    for i in 0..n {
        created.push(store.create(vip(i)).await.unwrap());
    }
    let create = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for mut o in created {
        let mut m = o.meta();
        m.labels.insert("touched".into(), "yes".into());
        o.set_meta(&m);
        store.update(o).await.unwrap();
    }
    let update = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut events = 0;
    while events < 2 * n {
        watch.next().await.unwrap().unwrap();
        events += 1;
    }
    let watch_rate = events as f64 / t.elapsed().as_secs_f64();
    (create, update, watch_rate)
}

fn main() {
    let n: usize = std::env::var("STORE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("ironnet-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mem = rt.block_on(run(MemoryStore::with_log(4 * n), n));
    let emb = rt.block_on(run(
        EmbeddedStore::open(&dir.join("bench.redb")).unwrap(),
        n,
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let api = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ironnet_core::apiserver::ApiServer::new(MemoryStore::with_log(4 * n));
        tokio::spawn(server.serve(listener, std::future::pending()));
        let client = ironnet_core::client::ApiClient::new(&format!("http://{addr}"), None).unwrap();
        run(client, n).await
    });
    let mut rows = vec![("memory", mem), ("embedded", emb), ("api", api)];
    #[cfg(feature = "etcd")]
    {
        let etcd = common::EtcdServer::start("bench");
        let store = rt
            .block_on(ironnet_core::store::etcd::EtcdStore::open(
                std::slice::from_ref(&etcd.endpoint),
                "/bench",
            ))
            .unwrap();
        rows.push(("etcd", rt.block_on(run(store, n))));
    }
    println!("store throughput, {n} objects, objects/s (one run)");
    println!(
        "{:<10} {:>12} {:>12} {:>14} {:>16} {:>16}",
        "backend", "create", "update", "watch events", "create/memory", "update/memory"
    );
    for (name, (c, u, w)) in rows {
        println!(
            "{name:<10} {c:>12.0} {u:>12.0} {w:>14.0} {:>16.3} {:>16.3}",
            c / mem.0,
            u / mem.1
        );
    }
}

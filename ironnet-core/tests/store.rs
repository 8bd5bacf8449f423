//! One conformance suite run unchanged against every store backend
//! (memory, embedded file, etcd started on loopback, and the API client
//! through the API server), a model-based property test of the engine, and
//! a crash test of the embedded store (kill -9 during writes).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use ironnet_core::api::networking;
use ironnet_core::manifest::parse_manifests;
use ironnet_core::meta::{LabelSelector, OwnerReference};
use ironnet_core::object::Resource;
use ironnet_core::registry::DynObject;
use ironnet_core::store::embedded::EmbeddedStore;
use ironnet_core::store::memory::MemoryStore;
use ironnet_core::store::{Engine, EventType, ObjectKey, Selection, Store, StoreError};
use proptest::prelude::*;

mod common;
#[cfg(feature = "etcd")]
use common::EtcdServer;

fn vip(ns: &str, name: &str, labels: &[(&str, &str)]) -> DynObject {
    let mut v = networking::VirtualIP::new(
        ns,
        name,
        networking::VirtualIpSpec {
            ty: Some(networking::PublicType::Public),
            ip_family: Some(ironnet_core::api::common::IpFamily::IPv4),
            target_ref: None,
        },
    );
    for (k, val) in labels {
        v.metadata.labels.insert((*k).into(), (*val).into());
    }
    DynObject::from_typed(&v).unwrap()
}

fn key(ns: &str, name: &str) -> ObjectKey {
    ObjectKey::new(&networking::VirtualIP::INFO, ns, name)
}

fn rv(o: &DynObject) -> u64 {
    o.meta().resource_version.parse().unwrap()
}

async fn conformance<S: Store>(store: S) {
    // Create, get, duplicate.
    let a = store
        .create(vip("default", "a", &[("app", "web")]))
        .await
        .unwrap();
    assert!(!a.meta().uid.is_empty());
    assert_eq!(a.meta().generation, 1);
    assert!(a.meta().creation_timestamp.is_some());
    assert_eq!(store.get(&key("default", "a")).await.unwrap(), a);
    assert!(matches!(
        store.create(vip("default", "a", &[])).await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .create(vip("default", "b", &[("app", "db")]))
        .await
        .unwrap();
    store
        .create(vip("other", "c", &[("app", "web")]))
        .await
        .unwrap();

    // List by kind, namespace, labels.
    let all = Selection::kind(networking::VirtualIP::INFO);
    let (objs, list_rv) = store.list(&all).await.unwrap();
    assert_eq!(objs.len(), 3);
    let (objs, _) = store
        .list(&all.clone().in_namespace("default"))
        .await
        .unwrap();
    assert_eq!(objs.len(), 2);
    let web = LabelSelector::parse("app=web").unwrap();
    let (objs, _) = store.list(&all.clone().with_labels(web)).await.unwrap();
    let names: Vec<String> = objs.iter().map(|o| o.meta().name).collect();
    assert_eq!(names, ["a", "c"]);

    // Watch from the list's version sees what follows, in order.
    let mut watch = store.watch(all.clone(), list_rv).await.unwrap();

    // Optimistic concurrency: a stale version is refused and changes nothing.
    let mut stale = a.clone();
    let mut m = stale.meta();
    m.labels.insert("v".into(), "2".into());
    stale.set_meta(&m);
    let updated = store.update(stale.clone()).await.unwrap();
    assert!(rv(&updated) > rv(&a));
    assert_eq!(updated.meta().generation, 1, "labels are not spec");
    assert!(matches!(
        store.update(stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.get(&key("default", "a")).await.unwrap(), updated);

    // A once-set field may not change; the refusal changes nothing.
    let mut v6 = updated.clone();
    v6.value["spec"]["ipFamily"] = "IPv6".into();
    let err = store.update(v6).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Immutable {
                field: "/spec/ipFamily",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("spec.ipFamily may not change once set"),
        "{err}"
    );
    assert_eq!(store.get(&key("default", "a")).await.unwrap(), updated);

    // Status is written apart: update keeps it, update_status sets only it.
    let mut with_status = updated.clone();
    with_status.value["status"] = serde_json::json!({"ip": "192.0.2.1"});
    with_status.value["spec"]["ipFamily"] = serde_json::json!("IPv6");
    let s = store.update_status(with_status).await.unwrap();
    assert_eq!(s.value["status"]["ip"], "192.0.2.1");
    assert_eq!(
        s.value["spec"]["ipFamily"], "IPv4",
        "spec kept by update_status"
    );
    let mut spec_change = s.clone();
    spec_change.value["spec"]["targetRef"] = serde_json::json!({"name": "nic", "uid": "u1"});
    spec_change.value.as_object_mut().unwrap().remove("status");
    let u = store.update(spec_change).await.unwrap();
    assert_eq!(
        u.value["status"]["ip"], "192.0.2.1",
        "status kept by update"
    );
    assert_eq!(u.meta().generation, 2, "spec change bumps generation");

    // Finalizers hold a deletion; removing the last one completes it.
    let mut f = u.clone();
    let mut m = f.meta();
    m.finalizers.push("ironnet.dev/test".into());
    f.set_meta(&m);
    let f = store.update(f).await.unwrap();
    let held = store.delete(&key("default", "a")).await.unwrap().unwrap();
    assert!(held.meta().deletion_timestamp.is_some());
    assert!(store.get(&key("default", "a")).await.is_ok());
    let mut release = held.clone();
    let mut m = release.meta();
    m.finalizers.clear();
    release.set_meta(&m);
    store.update(release).await.unwrap();
    assert!(matches!(
        store.get(&key("default", "a")).await,
        Err(StoreError::NotFound(_))
    ));
    let _ = f;

    // Owner references: dependents go with their last owner.
    let owner = store.create(vip("default", "owner", &[])).await.unwrap();
    let mut dep = vip("default", "dep", &[]);
    let mut m = dep.meta();
    m.owner_references.push(OwnerReference {
        api_version: "networking.ironcore.dev/v1alpha1".into(),
        kind: "VirtualIP".into(),
        name: "owner".into(),
        uid: owner.meta().uid,
        controller: Some(true),
        block_owner_deletion: None,
    });
    dep.set_meta(&m);
    store.create(dep).await.unwrap();
    store.delete(&key("default", "owner")).await.unwrap();
    assert!(matches!(
        store.get(&key("default", "dep")).await,
        Err(StoreError::NotFound(_))
    ));

    // generateName.
    let mut typed: networking::VirtualIP = vip("default", "x", &[]).to_typed().unwrap();
    typed.metadata.name.clear();
    typed.metadata.generate_name = "eph-".into();
    let g = store
        .create(DynObject::from_typed(&typed).unwrap())
        .await
        .unwrap();
    assert!(g.meta().name.starts_with("eph-") && g.meta().name.len() == 9);

    // The watch saw exactly the committed changes, in order.
    let mut seen = Vec::new();
    while let Ok(Ok(Some(ev))) =
        tokio::time::timeout(Duration::from_millis(200), watch.next()).await
    {
        seen.push((ev.ty, ev.object.meta().name, ev.resource_version));
    }
    let types: Vec<(EventType, &str)> = seen.iter().map(|(t, n, _)| (*t, n.as_str())).collect();
    use EventType::*;
    assert_eq!(
        types,
        [
            (Modified, "a"),
            (Modified, "a"),
            (Modified, "a"),
            (Modified, "a"),
            (Modified, "a"),
            (Modified, "a"),
            (Deleted, "a"),
            (Added, "owner"),
            (Added, "dep"),
            (Deleted, "owner"),
            (Deleted, "dep"),
            (Added, g.meta().name.as_str()),
        ]
    );
    assert!(
        seen.windows(2).all(|w| w[0].2 < w[1].2),
        "versions increase"
    );

    // A watch from before what the store remembers has expired.
    let (_, now) = store.list(&all).await.unwrap();
    assert!(store.watch(all.clone(), now).await.is_ok());
    assert!(matches!(
        store.watch(all, now + 5).await,
        Err(StoreError::Expired { .. })
    ));
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(MemoryStore::new()).await;
}

/// The API server's client is a store too: the same suite through HTTP
/// (an API server on loopback in front of a memory store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_client_conforms_through_the_api_server() {
    use ironnet_core::apiserver::ApiServer;
    use ironnet_core::client::ApiClient;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        ApiServer::new(MemoryStore::new()).serve(listener, async move {
            let _ = stopped.await;
        }),
    );
    let client = ApiClient::new(&format!("http://{addr}"), None).unwrap();
    conformance(client).await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn embedded_store_conforms_and_survives_reopen() {
    let dir = common::ScratchDir::new("store");
    let path = dir.0.join("conformance.redb");
    let store = EmbeddedStore::open(&path).unwrap();
    conformance(store.clone()).await;
    let (before, version) = store.list(&Selection::default()).await.unwrap();
    drop(store);
    let reopened = EmbeddedStore::open(&path).unwrap();
    let (after, version2) = reopened.list(&Selection::default()).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(version, version2);
    // Watching from before the restart must relist.
    assert!(matches!(
        reopened.watch(Selection::default(), version - 1).await,
        Err(StoreError::Expired { .. })
    ));
    let next = reopened.create(vip("default", "after", &[])).await.unwrap();
    assert!(rv(&next) > version, "versions continue after a restart");
}

#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_conforms_and_survives_reopen() {
    use ironnet_core::store::etcd::EtcdStore;
    let etcd = EtcdServer::start("conformance");
    let endpoints = vec![etcd.endpoint.clone()];
    let store = EtcdStore::open(&endpoints, "/conformance").await.unwrap();
    conformance(store.clone()).await;
    let (before, version) = store.list(&Selection::default()).await.unwrap();
    drop(store);
    let reopened = EtcdStore::open(&endpoints, "/conformance").await.unwrap();
    let (after, version2) = reopened.list(&Selection::default()).await.unwrap();
    assert_eq!(before, after);
    assert_eq!(version, version2);
    let next = reopened.create(vip("default", "after", &[])).await.unwrap();
    assert_eq!(rv(&next), version + 1, "versions continue after a reopen");
    // Another prefix is another store.
    let other = EtcdStore::open(&endpoints, "/other").await.unwrap();
    assert!(
        other
            .list(&Selection::default())
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

/// Two processes' worth of stores on one etcd: each sees the other's
/// writes with the same versions, in its watch too; racing writers never
/// both win, and no increment is lost.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_replicas_share_one_store() {
    use ironnet_core::store::etcd::EtcdStore;
    let etcd = EtcdServer::start("replicas");
    let endpoints = vec![etcd.endpoint.clone()];
    let a = EtcdStore::open(&endpoints, "/shared").await.unwrap();
    let b = EtcdStore::open(&endpoints, "/shared").await.unwrap();
    let mut watch_b = b.watch(Selection::default(), 0).await.unwrap();

    let created = a.create(vip("default", "x", &[("n", "0")])).await.unwrap();
    assert_eq!(b.get(&key("default", "x")).await.unwrap(), created);
    let ev = tokio::time::timeout(Duration::from_secs(5), watch_b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.ty, ev.object.clone()),
        (EventType::Added, created.clone())
    );

    // The same name created on both at once: exactly one wins.
    let (ra, rb) = tokio::join!(
        a.create(vip("default", "race", &[])),
        b.create(vip("default", "race", &[]))
    );
    assert!(ra.is_ok() != rb.is_ok(), "{ra:?} / {rb:?}");
    assert!(matches!(
        ra.err().or(rb.err()),
        Some(StoreError::AlreadyExists(_))
    ));

    // Read-modify-write increments from both replicas, retried on
    // conflict: none lost.
    async fn increment<S: Store>(s: S, times: usize) {
        for _ in 0..times {
            loop {
                let mut o = s.get(&key("default", "x")).await.unwrap();
                let mut m = o.meta();
                let n: u64 = m.labels["n"].parse().unwrap();
                m.labels.insert("n".into(), (n + 1).to_string());
                o.set_meta(&m);
                match s.update(o).await {
                    Ok(_) => break,
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
    tokio::join!(increment(a.clone(), 25), increment(b.clone(), 25));
    let final_a = a.get(&key("default", "x")).await.unwrap();
    assert_eq!(final_a.meta().labels["n"], "50");
    assert_eq!(b.get(&key("default", "x")).await.unwrap(), final_a);
    assert_eq!(
        a.list(&Selection::default()).await.unwrap(),
        b.list(&Selection::default()).await.unwrap()
    );

    // Callers that give up mid-transaction (a hung-up HTTP client) leave
    // nothing half-done: afterwards both replicas and a fresh one agree.
    for i in 0..40u64 {
        let _ = tokio::time::timeout(
            Duration::from_micros(50 * i),
            a.create(vip("default", &format!("cancel-{i}"), &[])),
        )
        .await;
    }
    a.create(vip("default", "after-cancels", &[]))
        .await
        .unwrap();
    let fresh = EtcdStore::open(&endpoints, "/shared").await.unwrap();
    let truth = fresh.list(&Selection::default()).await.unwrap();
    assert_eq!(a.list(&Selection::default()).await.unwrap(), truth);
    assert_eq!(b.list(&Selection::default()).await.unwrap(), truth);

    // B's watch saw every change, in order, ending at the final state.
    let mut last = ev.resource_version;
    let mut seen_final = false;
    while !seen_final {
        let ev = tokio::time::timeout(Duration::from_secs(5), watch_b.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ev.resource_version, last + 1, "a gap in the watch");
        last = ev.resource_version;
        seen_final = ev.object == final_a;
    }
}

#[tokio::test]
async fn a_lagging_watcher_gets_expired() {
    let store = MemoryStore::new();
    let mut w = store.watch(Selection::default(), 0).await.unwrap();
    for i in 0..(ironnet_core::store::WATCH_QUEUE + 10) {
        store
            .create(vip("default", &format!("v{i}"), &[]))
            .await
            .unwrap();
    }
    let mut n = 0;
    let err = loop {
        match w.next().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("closed without an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, ironnet_core::store::WATCH_QUEUE);
    assert!(matches!(err, StoreError::Expired { .. }));
}

/// A model: name → (labels value, version). Operations on the engine and
/// the model must agree; the watch must report exactly the committed
/// changes.
#[derive(Debug, Clone)]
enum Op {
    Create(u8, u8),
    Update(u8, u8, bool),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..3).prop_map(|(n, l)| Op::Create(n, l)),
        (0u8..6, 0u8..3, any::<bool>()).prop_map(|(n, l, s)| Op::Update(n, l, s)),
        (0u8..6).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn engine_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut engine = Engine::with_log(1, 100_000);
        let mut watch = engine.watch(Selection::default(), 0).unwrap();
        let mut model: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let mut expected = Vec::new();
        for op in ops {
            match op {
                Op::Create(n, l) => {
                    let name = format!("o{n}");
                    let r = engine.create(vip("default", &name, &[("l", &l.to_string())]));
                    if model.contains_key(&name) {
                        prop_assert!(matches!(r, Err(StoreError::AlreadyExists(_))), "wrong result");
                    } else {
                        let o = r.unwrap();
                        model.insert(name.clone(), (l.to_string(), rv(&o)));
                        expected.push((EventType::Added, name, rv(&o)));
                    }
                }
                Op::Update(n, l, stale) => {
                    let name = format!("o{n}");
                    let mut o = vip("default", &name, &[("l", &l.to_string())]);
                    let mut m = o.meta();
                    if let Some((_, v)) = model.get(&name) {
                        m.resource_version = (if stale { v - 1 } else { *v }).to_string();
                    }
                    o.set_meta(&m);
                    let r = engine.update(o, false);
                    match model.get_mut(&name) {
                        None => prop_assert!(matches!(r, Err(StoreError::NotFound(_))), "wrong result"),
                        Some(_) if stale => prop_assert!(matches!(r, Err(StoreError::Conflict { .. })), "stale update accepted"),
                        Some((labels, v)) => {
                            let o = r.unwrap();
                            if *labels != l.to_string() {
                                prop_assert!(rv(&o) > *v);
                                expected.push((EventType::Modified, name.clone(), rv(&o)));
                            } else {
                                prop_assert_eq!(rv(&o), *v, "a no-op update keeps the version");
                            }
                            *labels = l.to_string();
                            *v = rv(&o);
                        }
                    }
                }
                Op::Delete(n) => {
                    let name = format!("o{n}");
                    let r = engine.delete(&key("default", &name));
                    match model.remove(&name) {
                        None => prop_assert!(matches!(r, Err(StoreError::NotFound(_))), "wrong result"),
                        Some(_) => {
                            prop_assert!(r.unwrap().is_none());
                            expected.push((EventType::Deleted, name, engine.version()));
                        }
                    }
                }
            }
            let changes = engine.take_changes();
            engine.publish(changes.events);
            let (objs, _) = engine.list(&Selection::default());
            let got: BTreeMap<String, (String, u64)> = objs
                .iter()
                .map(|o| {
                    let m = o.meta();
                    (m.name.clone(), (m.labels["l"].clone(), rv(o)))
                })
                .collect();
            prop_assert_eq!(&got, &model);
        }
        let mut seen = Vec::new();
        rt.block_on(async {
            while let Ok(Ok(Some(ev))) =
                tokio::time::timeout(Duration::from_millis(1), watch.next()).await
            {
                seen.push((ev.ty, ev.object.meta().name, ev.resource_version));
            }
        });
        prop_assert_eq!(seen, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Every operation, rolled back, leaves no trace (objects, version,
    /// watch); done for real, a mirror engine fed only its events (as a
    /// replica on a shared backend is) ends equal.
    #[test]
    fn rollback_leaves_no_trace_and_a_mirror_follows(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut engine = Engine::with_log(1, 100_000);
        let mut mirror = Engine::with_log(2, 100_000);
        let mut watch = engine.watch(Selection::default(), 0).unwrap();
        let mut published = 0usize;
        for op in ops {
            let run = |e: &mut Engine| match &op {
                Op::Create(n, l) => e.create(vip("default", &format!("o{n}"), &[("l", &l.to_string())])).map(|_| ()),
                Op::Update(n, l, _) => {
                    let mut o = vip("default", &format!("o{n}"), &[("l", &l.to_string())]);
                    let mut m = o.meta();
                    m.finalizers = if *l == 0 { vec!["x/y".into()] } else { vec![] };
                    o.set_meta(&m);
                    e.update(o, false).map(|_| ())
                }
                Op::Delete(n) => e.delete(&key("default", &format!("o{n}"))).map(|_| ()),
            };
            let before = engine.list(&Selection::default());
            let _ = run(&mut engine);
            let _ = engine.take_changes();
            engine.rollback();
            prop_assert_eq!(engine.list(&Selection::default()), before);
            let _ = run(&mut engine);
            let changes = engine.take_changes();
            published += changes.events.len();
            mirror.apply_committed(changes.events.clone()).unwrap();
            engine.publish(changes.events);
            prop_assert_eq!(mirror.list(&Selection::default()), engine.list(&Selection::default()));
        }
        let mut seen = 0;
        rt.block_on(async {
            while let Ok(Ok(Some(_))) =
                tokio::time::timeout(Duration::from_millis(1), watch.next()).await
            {
                seen += 1;
            }
        });
        prop_assert_eq!(seen, published, "rolled-back operations reached the watch");
    }
}

const CRASH_ENV: &str = "IRONNET_STORE_CRASH_WRITER";

/// Not a test by itself: with `IRONNET_STORE_CRASH_WRITER=<file>` it
/// creates objects in the embedded store at `<file>` forever, printing
/// each name once the store acknowledged it.
#[tokio::test]
async fn crash_writer_helper() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let store = EmbeddedStore::open(std::path::Path::new(&path)).unwrap();
    for i in 0.. {
        let name = format!("w{i}");
        store.create(vip("default", &name, &[])).await.unwrap();
        println!("acked {name}");
    }
}

#[test]
fn no_acknowledged_write_is_lost_on_kill_9() {
    use std::io::BufRead;
    let dir = common::ScratchDir::new("crash");
    let path = dir.0.join("crash.redb");
    let mut acked = Vec::new();
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_helper",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_ENV, &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        let mut this_round = 0;
        // Let it write a while, then kill it mid-stream.
        let target = 20 + round * 15;
        while let Some(Ok(line)) = lines.next() {
            if let Some(name) = line.split("acked ").nth(1) {
                acked.push(name.trim().to_owned());
                this_round += 1;
                if this_round == target {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Names the child printed after we stopped reading were also
        // acknowledged; the ones read are enough to check.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = EmbeddedStore::open(&path).unwrap();
        let (objs, _) = rt
            .block_on(store.list(&Selection::kind(networking::VirtualIP::INFO)))
            .unwrap();
        let names: std::collections::BTreeSet<String> =
            objs.iter().map(|o| o.meta().name).collect();
        for name in &acked {
            assert!(
                names.contains(name),
                "round {round}: acknowledged {name} lost"
            );
        }
        // Every object read back is whole and valid.
        for o in &objs {
            assert_eq!(o.value["spec"]["type"], "Public");
        }
        drop(store);
        // The next writer starts over at w0: move the earlier names aside.
        let rt2 = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = EmbeddedStore::open(&path).unwrap();
        rt2.block_on(async {
            for name in &names {
                store.delete(&key("default", name)).await.unwrap();
            }
        });
        acked.clear();
    }
}

#[test]
fn every_seed_example_goes_into_the_store() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = MemoryStore::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seeds");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.extension().is_none_or(|e| e != "yaml") || file.contains("-status") {
            continue;
        }
        for obj in parse_manifests(&std::fs::read_to_string(&path).unwrap(), "default").unwrap() {
            rt.block_on(store.create(obj)).unwrap();
            n += 1;
        }
    }
    assert_eq!(n, 7);
}

/// Compaction (what every etcd store does every few minutes) discards
/// history without disturbing stores that keep up: both replicas go on
/// reading and writing, and a fresh one opens.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stores_survive_compaction() {
    use ironnet_core::store::etcd::EtcdStore;
    let etcd = EtcdServer::start("compaction");
    let endpoints = vec![etcd.endpoint.clone()];
    let a = EtcdStore::open(&endpoints, "/c").await.unwrap();
    let b = EtcdStore::open(&endpoints, "/c").await.unwrap();
    for i in 0..20 {
        a.create(vip("default", &format!("v{i}"), &[]))
            .await
            .unwrap();
    }
    let (_, revision) = a.client().get(b"/c/version", 0).await.unwrap();
    a.client().compact(revision).await.unwrap();
    assert!(
        a.client().compact(revision - 1).await.is_err(),
        "compacting to an older revision is refused"
    );
    let created = b.create(vip("default", "after", &[])).await.unwrap();
    assert_eq!(a.get(&key("default", "after")).await.unwrap(), created);
    let fresh = EtcdStore::open(&endpoints, "/c").await.unwrap();
    assert_eq!(fresh.list(&Selection::default()).await.unwrap().0.len(), 21);
}

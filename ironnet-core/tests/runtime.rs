//! The reconcile runtime against a real store: watch-driven reconciles,
//! deduplication and one reconcile per key at a time, backoff on failure,
//! requeue, resync, related kinds; and leader election on a real etcd.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironnet_core::api::networking;
use ironnet_core::meta::OwnerReference;
use ironnet_core::object::Resource;
use ironnet_core::registry::DynObject;
use ironnet_core::runtime::{Action, Backoff, Controller};
use ironnet_core::store::memory::MemoryStore;
use ironnet_core::store::{ObjectKey, Store};

fn vip(name: &str, label: &str) -> DynObject {
    let mut v = networking::VirtualIP::new(
        "default",
        name,
        networking::VirtualIpSpec {
            ty: Some(networking::PublicType::Public),
            ip_family: Some(ironnet_core::api::common::IpFamily::IPv4),
            target_ref: None,
        },
    );
    v.metadata.labels.insert("l".into(), label.into());
    DynObject::from_typed(&v).unwrap()
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(&networking::VirtualIP::INFO, "default", name)
}

/// Calls per key, each with the label it saw (`-` when gone).
type Calls = Arc<Mutex<HashMap<String, Vec<(String, Instant)>>>>;

fn record(calls: &Calls, key: &ObjectKey, obj: Option<&DynObject>) {
    let label = obj.map_or("-".to_owned(), |o| o.meta().labels["l"].clone());
    calls
        .lock()
        .unwrap()
        .entry(key.name.clone())
        .or_default()
        .push((label, Instant::now()));
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn last(calls: &Calls, name: &str) -> Option<String> {
    calls
        .lock()
        .unwrap()
        .get(name)
        .and_then(|v| v.last().map(|c| c.0.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_follow_the_store_one_at_a_time_per_key() {
    let store = MemoryStore::new();
    store.create(vip("before", "0")).await.unwrap();
    let calls: Calls = Arc::default();
    let running = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::new(store.clone(), networking::VirtualIP::INFO).workers(4);
    let stats = controller.stats();
    let task = {
        let (calls, running, overlap) = (calls.clone(), running.clone(), overlap.clone());
        tokio::spawn(controller.run(
            move |k: ObjectKey, obj: Option<Arc<DynObject>>| {
                let (calls, running, overlap) = (calls.clone(), running.clone(), overlap.clone());
                async move {
                    if k.name == "slow" && running.fetch_add(1, Ordering::SeqCst) > 0 {
                        overlap.fetch_add(1, Ordering::SeqCst);
                    }
                    record(&calls, &k, obj.as_deref());
                    if k.name == "slow" {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                    Ok::<_, String>(Action::AwaitChange)
                }
            },
            async move {
                let _ = stop_rx.await;
            },
        ))
    };
    // Existing objects are reconciled at start.
    until("the existing object", || {
        last(&calls, "before").as_deref() == Some("0")
    })
    .await;
    // A create, then many quick updates of one key while its reconcile is
    // slow: never two at once, far fewer reconciles than updates, and the
    // last reconcile saw the last state.
    store.create(vip("slow", "0")).await.unwrap();
    for i in 1..=100 {
        let mut o = store.get(&key("slow")).await.unwrap();
        let mut m = o.meta();
        m.labels.insert("l".into(), i.to_string());
        o.set_meta(&m);
        store.update(o).await.unwrap();
    }
    until("the last update", || {
        last(&calls, "slow").as_deref() == Some("100")
    })
    .await;
    assert_eq!(
        overlap.load(Ordering::SeqCst),
        0,
        "one key reconciled twice at once"
    );
    let n = calls.lock().unwrap()["slow"].len();
    assert!(n < 50, "{n} reconciles for 101 changes: no deduplication");
    // A delete is reconciled with the object gone.
    store.delete(&key("before")).await.unwrap();
    until("the delete", || {
        last(&calls, "before").as_deref() == Some("-")
    })
    .await;
    let total = calls.lock().unwrap().values().map(Vec::len).sum::<usize>() as u64;
    until("the counter", || {
        stats.reconciles.load(Ordering::Relaxed) == total
    })
    .await;
    stop_tx.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_requeue_and_resync_come_back() {
    let store = MemoryStore::new();
    store.create(vip("flaky", "0")).await.unwrap();
    store.create(vip("periodic", "0")).await.unwrap();
    store.create(vip("quiet", "0")).await.unwrap();
    let calls: Calls = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::new(store.clone(), networking::VirtualIP::INFO)
        .backoff(Backoff {
            base: Duration::from_millis(40),
            max: Duration::from_secs(5),
        })
        .resync(Duration::from_millis(700));
    let stats = controller.stats();
    let task = {
        let calls = calls.clone();
        tokio::spawn(controller.run(
            move |k: ObjectKey, obj: Option<Arc<DynObject>>| {
                let calls = calls.clone();
                async move {
                    record(&calls, &k, obj.as_deref());
                    let n = calls.lock().unwrap()[&k.name].len();
                    match k.name.as_str() {
                        "flaky" if n <= 4 => Err(format!("attempt {n} fails")),
                        "periodic" => Ok(Action::RequeueAfter(Duration::from_millis(100))),
                        _ => Ok(Action::AwaitChange),
                    }
                }
            },
            async move {
                let _ = stop_rx.await;
            },
        ))
    };
    until("five attempts", || {
        calls
            .lock()
            .unwrap()
            .get("flaky")
            .is_some_and(|c| c.len() >= 5)
    })
    .await;
    let flaky: Vec<Instant> = calls.lock().unwrap()["flaky"].iter().map(|c| c.1).collect();
    let gaps: Vec<Duration> = flaky.windows(2).map(|w| w[1] - w[0]).collect();
    // 40, 80, 160, 320 ms (at least; timers only run late).
    for (i, gap) in gaps.iter().take(4).enumerate() {
        let want = Duration::from_millis(40 << i);
        assert!(
            *gap >= want,
            "retry {i} after {gap:?}, before its backoff {want:?}"
        );
    }
    assert!(stats.failures.load(Ordering::Relaxed) >= 4);
    until("requeues", || calls.lock().unwrap()["periodic"].len() >= 4).await;
    // The quiet one is reconciled again only by the resync.
    until("a resync", || calls.lock().unwrap()["quiet"].len() >= 2).await;
    let quiet = calls.lock().unwrap()["quiet"].clone();
    assert!(quiet[1].1 - quiet[0].1 >= Duration::from_millis(600));
    stop_tx.send(()).unwrap();
    task.await.unwrap();
}

/// A reconcile that panics counts as a failure: its key is retried, not
/// stuck, and the worker lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_reconcile_is_retried() {
    let store = MemoryStore::new();
    store.create(vip("boom", "0")).await.unwrap();
    let calls: Calls = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = Controller::new(store.clone(), networking::VirtualIP::INFO)
        .workers(1)
        .backoff(Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_secs(1),
        });
    let stats = controller.stats();
    let task = {
        let calls = calls.clone();
        tokio::spawn(controller.run(
            move |k: ObjectKey, obj: Option<Arc<DynObject>>| {
                let calls = calls.clone();
                async move {
                    record(&calls, &k, obj.as_deref());
                    assert!(calls.lock().unwrap()[&k.name].len() > 2, "deliberate panic");
                    Ok::<_, String>(Action::AwaitChange)
                }
            },
            async move {
                let _ = stop_rx.await;
            },
        ))
    };
    until("a third call", || {
        calls
            .lock()
            .unwrap()
            .get("boom")
            .is_some_and(|c| c.len() >= 3)
    })
    .await;
    until("two failures", || {
        stats.failures.load(Ordering::Relaxed) == 2
    })
    .await;
    // The one worker still serves other keys.
    store.create(vip("next", "0")).await.unwrap();
    until("the next key", || last(&calls, "next").is_some()).await;
    stop_tx.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_of_owned_objects_reconcile_their_owner() {
    let store = MemoryStore::new();
    let owner = store.create(vip("owner", "0")).await.unwrap();
    let calls: Calls = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller =
        Controller::new(store.clone(), networking::VirtualIP::INFO).owns(networking::Network::INFO);
    let task = {
        let calls = calls.clone();
        tokio::spawn(controller.run(
            move |k: ObjectKey, obj: Option<Arc<DynObject>>| {
                let calls = calls.clone();
                async move {
                    record(&calls, &k, obj.as_deref());
                    Ok::<_, String>(Action::AwaitChange)
                }
            },
            async move {
                let _ = stop_rx.await;
            },
        ))
    };
    until("the owner", || last(&calls, "owner").is_some()).await;
    let before = calls.lock().unwrap()["owner"].len();
    let mut net = networking::Network::new("default", "owned", Default::default());
    net.metadata.owner_references.push(OwnerReference {
        api_version: owner.kind.info.api_version(),
        kind: "VirtualIP".into(),
        name: "owner".into(),
        uid: owner.meta().uid,
        controller: Some(true),
        block_owner_deletion: None,
    });
    store
        .create(DynObject::from_typed(&net).unwrap())
        .await
        .unwrap();
    until("the owner again", || {
        calls.lock().unwrap()["owner"].len() > before
    })
    .await;
    stop_tx.send(()).unwrap();
    task.await.unwrap();
}

/// Two replicas on one etcd: one leads, the other waits; when the leader
/// stops renewing (a crash), the other takes over within the TTL; a
/// resignation hands over at once.
#[cfg(feature = "etcd")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_on_etcd_fails_over() {
    use ironnet_core::etcd::EtcdClient;
    use ironnet_core::runtime::leader::LeaderElection;
    let etcd = common::EtcdServer::start("leader");
    let client = EtcdClient::connect(std::slice::from_ref(&etcd.endpoint)).unwrap();
    let a = LeaderElection::new(client.clone(), "/leader/test", "a", 2);
    let b = LeaderElection::new(client.clone(), "/leader/test", "b", 2);
    let lead_a = a.acquire().await.unwrap();
    assert!(lead_a.is_leader());
    assert_eq!(b.leader().await.unwrap().as_deref(), Some("a"));
    let b_task = tokio::spawn(async move {
        let lead = b.acquire().await.unwrap();
        (lead, Instant::now())
    });
    // A keeps leading across several TTLs while it renews.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!b_task.is_finished(), "b took the lead while a renewed it");
    assert!(lead_a.is_leader());
    // A crashes (stops renewing): b leads within the TTL (plus a renewal).
    let crashed = Instant::now();
    drop(lead_a);
    let (lead_b, since) = tokio::time::timeout(Duration::from_secs(10), b_task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        since - crashed <= Duration::from_secs(4),
        "takeover after {:?}",
        since - crashed
    );
    assert_eq!(a.leader().await.unwrap().as_deref(), Some("b"));
    // B resigns: a takes over at once.
    let a_task = tokio::spawn(async move { a.acquire().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resigned = Instant::now();
    lead_b.resign().await.unwrap();
    let lead_a = tokio::time::timeout(Duration::from_secs(5), a_task)
        .await
        .unwrap()
        .unwrap();
    assert!(resigned.elapsed() < Duration::from_secs(2));
    assert!(lead_a.is_leader());
}

//! A controller in the kube-rs style: a reconcile function is called with
//! the key (and cached object) of each primary object that may need work;
//! it returns an [`Action`] or an error. Keys come from a watch of the
//! primary kind, from watches of related kinds mapped to primary keys,
//! and from a periodic resync; they go through a [`WorkQueue`], so a key
//! is never reconciled twice at once and failures back off.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::queue::{Backoff, WorkQueue};
use crate::object::KindInfo;
use crate::registry::DynObject;
use crate::store::{EventType, ObjectKey, Selection, Store, WatchEvent};

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object (or something mapped to it) changes, or
    /// the next resync.
    AwaitChange,
    /// Reconcile again after this long (even without a change).
    RequeueAfter(Duration),
}

/// Maps a changed related object to the primary keys it affects.
pub type Mapper = Arc<dyn Fn(&DynObject) -> Vec<ObjectKey> + Send + Sync>;

/// Counters of one controller, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Reconciles run.
    pub reconciles: AtomicU64,
    /// Reconciles that failed.
    pub failures: AtomicU64,
    /// Keys waiting (ready or delayed).
    pub depth: AtomicUsize,
    /// Relists after an expired watch.
    pub relists: AtomicU64,
}

/// A controller of one primary kind.
pub struct Controller<S: Store> {
    store: S,
    primary: Selection,
    related: Vec<(Selection, Mapper)>,
    resync: Duration,
    workers: usize,
    backoff: Backoff,
    stats: Arc<Stats>,
}

impl<S: Store> std::fmt::Debug for Controller<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("primary", &self.primary)
            .field("related", &self.related.len())
            .field("resync", &self.resync)
            .field("workers", &self.workers)
            .finish()
    }
}

type Cache = Arc<Mutex<BTreeMap<ObjectKey, Arc<DynObject>>>>;

struct Shared {
    queue: Mutex<WorkQueue<ObjectKey>>,
    wake: Notify,
    stats: Arc<Stats>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, WorkQueue<ObjectKey>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(&self, keys: impl IntoIterator<Item = ObjectKey>) {
        let mut q = self.queue();
        for k in keys {
            q.add(k);
        }
        self.stats.depth.store(q.depth(), Ordering::Relaxed);
        drop(q);
        self.wake.notify_waiters();
    }
}

fn lock(cache: &Cache) -> MutexGuard<'_, BTreeMap<ObjectKey, Arc<DynObject>>> {
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: Store> Controller<S> {
    /// A controller of every object of `kind`.
    pub fn new(store: S, kind: KindInfo) -> Self {
        Controller {
            store,
            primary: Selection::kind(kind),
            related: Vec::new(),
            resync: Duration::from_secs(300),
            workers: 2,
            backoff: Backoff::default(),
            stats: Arc::new(Stats::default()),
        }
    }

    /// Only primary objects in `sel` (namespace, labels); the kind stays.
    pub fn select(mut self, sel: Selection) -> Self {
        let kind = self.primary.kind;
        self.primary = Selection { kind, ..sel };
        self
    }

    /// Also reconciles the primary keys `map` returns for each change of an
    /// object in `sel`.
    pub fn watches(
        mut self,
        sel: Selection,
        map: impl Fn(&DynObject) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self {
        self.related.push((sel, Arc::new(map)));
        self
    }

    /// Also reconciles the controlling owner (of the primary kind) of each
    /// changed object of `kind`.
    pub fn owns(self, kind: KindInfo) -> Self {
        let primary = self.primary.kind;
        self.watches(Selection::kind(kind), move |obj| {
            let Some(p) = primary else { return Vec::new() };
            let meta = obj.meta();
            let api_version = p.api_version();
            meta.owner_references
                .iter()
                .filter(|r| {
                    r.controller == Some(true) && r.kind == p.kind && r.api_version == api_version
                })
                .map(|r| ObjectKey::new(&p, &meta.namespace, &r.name))
                .collect()
        })
    }

    /// Every primary key again after this long (default 5 minutes).
    pub fn resync(mut self, every: Duration) -> Self {
        self.resync = every;
        self
    }

    /// Reconciles running at once, for different keys (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Backoff of failing keys.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The counters (share them with a metrics exporter before `run`).
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown` completes. `reconcile` gets a key and the
    /// cached object (`None`: it is gone); errors are logged and retried
    /// with backoff.
    pub async fn run<F, Fut, E>(self, reconcile: F, shutdown: impl Future<Output = ()>)
    where
        F: Fn(ObjectKey, Option<Arc<DynObject>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let shared = Arc::new(Shared {
            queue: Mutex::new(WorkQueue::new(self.backoff)),
            wake: Notify::new(),
            stats: Arc::clone(&self.stats),
        });
        let cache: Cache = Arc::default();
        let reconcile = Arc::new(reconcile);
        let mut tasks = JoinSet::new();
        tasks.spawn(reflect_primary(
            self.store.clone(),
            self.primary.clone(),
            Arc::clone(&cache),
            Arc::clone(&shared),
        ));
        for (sel, map) in self.related {
            tasks.spawn(reflect_related(
                self.store.clone(),
                sel,
                map,
                Arc::clone(&shared),
            ));
        }
        {
            let (cache, shared, every) = (Arc::clone(&cache), Arc::clone(&shared), self.resync);
            tasks.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let keys: Vec<ObjectKey> = lock(&cache).keys().cloned().collect();
                    shared.enqueue(keys);
                }
            });
        }
        for _ in 0..self.workers {
            tasks.spawn(work(
                Arc::clone(&shared),
                Arc::clone(&cache),
                Arc::clone(&reconcile),
            ));
        }
        shutdown.await;
        tasks.shutdown().await;
    }
}

/// Lists `sel` and follows its watch, forever: `on_list` gets every list
/// (the first, and each after an expired or failed watch), `on_event`
/// every change. Ends when the store goes away.
pub(crate) async fn reflect<S: Store>(
    store: S,
    sel: Selection,
    stats: &Stats,
    mut on_list: impl FnMut(Vec<DynObject>),
    mut on_event: impl FnMut(WatchEvent),
) {
    loop {
        let version = match store.list(&sel).await {
            Ok((objs, version)) => {
                on_list(objs);
                version
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller: list failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut watch = match store.watch(sel.clone(), version).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "controller: watch failed; relisting");
                stats.relists.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        loop {
            match watch.next().await {
                Ok(Some(ev)) => on_event(ev),
                Ok(None) => return,
                Err(_) => {
                    stats.relists.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

/// Keeps the cache of primary objects current and enqueues every change;
/// a relist enqueues what appeared or went as well.
async fn reflect_primary<S: Store>(store: S, sel: Selection, cache: Cache, shared: Arc<Shared>) {
    let on_list = |objs: Vec<DynObject>| {
        let fresh: BTreeMap<ObjectKey, Arc<DynObject>> = objs
            .into_iter()
            .map(|o| (ObjectKey::of(&o), Arc::new(o)))
            .collect();
        let mut c = lock(&cache);
        let gone: Vec<ObjectKey> = c
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        let keys: Vec<ObjectKey> = fresh.keys().cloned().chain(gone).collect();
        *c = fresh;
        drop(c);
        shared.enqueue(keys);
    };
    let on_event = |ev: WatchEvent| {
        let key = ObjectKey::of(&ev.object);
        {
            let mut c = lock(&cache);
            match ev.ty {
                EventType::Deleted => c.remove(&key),
                _ => c.insert(key.clone(), Arc::new(ev.object)),
            };
        }
        shared.enqueue([key]);
    };
    reflect(store, sel, &shared.stats, on_list, on_event).await;
}

/// Enqueues the primary keys mapped from every change of related objects.
async fn reflect_related<S: Store>(store: S, sel: Selection, map: Mapper, shared: Arc<Shared>) {
    reflect(
        store,
        sel,
        &shared.stats,
        |objs| shared.enqueue(objs.iter().flat_map(|o| map(o)).collect::<Vec<_>>()),
        |ev| shared.enqueue(map(&ev.object)),
    )
    .await;
}

/// One worker: takes keys and reconciles them.
async fn work<F, Fut, E>(shared: Arc<Shared>, cache: Cache, reconcile: Arc<F>)
where
    F: Fn(ObjectKey, Option<Arc<DynObject>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    loop {
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (key, due) = {
            let mut q = shared.queue();
            let key = q.pop(Instant::now());
            shared.stats.depth.store(q.depth(), Ordering::Relaxed);
            (key, q.next_due())
        };
        let Some(key) = key else {
            match due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => notified.await,
            }
            continue;
        };
        let obj = lock(&cache).get(&key).cloned();
        // In a task of its own: a panicking reconcile counts as a failure
        // and the key is released (and retried), not stuck.
        let result = match tokio::spawn(reconcile(key.clone(), obj)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("reconcile panicked: {e}")),
        };
        shared.stats.reconciles.fetch_add(1, Ordering::Relaxed);
        let mut q = shared.queue();
        q.done(&key);
        match result {
            Ok(Action::AwaitChange) => q.forget(&key),
            Ok(Action::RequeueAfter(d)) => {
                q.forget(&key);
                q.add_at(key, Instant::now() + d);
            }
            Err(e) => {
                shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                let delay = q.retry(key.clone(), Instant::now());
                tracing::warn!(%key, error = %e, retry_in = ?delay, "reconcile failed");
            }
        }
        shared.stats.depth.store(q.depth(), Ordering::Relaxed);
        drop(q);
        // Another worker may be waiting for this key or an earlier due time.
        shared.wake.notify_waiters();
    }
}

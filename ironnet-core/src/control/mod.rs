//! The network controller (IronCore's ironcore-net and apinetlet): the one
//! place that decides unique things — network IDs, public addresses, NAT
//! port sections, load-balancer placement — translates the user API into
//! the internal one, compiles policies and binds peerings.
//!
//! It is level-triggered and sans-IO at its core: [`plan`] reads a
//! [`World`] (every object it cares about, typed) and returns the writes
//! that move the store towards the desired state, nothing else.
//! [`NetworkController`] keeps the world current from watches, runs a
//! round whenever something changed, and executes the writes (in
//! dependency order, concurrently within a level), feeding each result
//! straight back into the world.
//!
//! Uniqueness does not rest on the planner: each VNI and public address is
//! an object (`NetworkID`, `IPAddress`) created atomically, so a stale
//! world, a restart or a second replica can at worst cause a failed
//! create, never two holders.

pub mod apinetlet;
pub mod holders;
pub mod ipam;
pub mod lb;
pub mod nat;
pub mod plan;
pub mod policy;
pub mod world;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use ironnet_alloc::VniRange;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

pub use plan::{Op, OpKind, Plan};
pub use world::{Change, World};

use crate::registry::DynObject;
use crate::store::{ObjectKey, Selection, Store, StoreError};

/// What the controller is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the internal objects translated from the user API.
    pub namespace: String,
    /// Public prefixes (IPv4 and IPv6) addresses are allocated from.
    pub public_prefixes: Vec<IpNet>,
    /// VNIs networks get.
    pub vni_range: VniRange,
    /// Most addresses a NAT gateway grows to.
    pub nat_max_ips: u32,
    /// Name in events.
    pub reporter: String,
    /// A round even without changes this often.
    pub resync: Duration,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "ironnet-system".into(),
            public_prefixes: Vec::new(),
            vni_range: VniRange::IRONCORE_DEFAULT,
            nat_max_ips: 10,
            reporter: "ironnet-controller".into(),
            resync: Duration::from_secs(60),
            concurrency: 16,
        }
    }
}

/// One planning round over `world`: the writes, and descriptions of
/// objects the planner could not express.
pub fn plan(world: &World, cfg: &Config) -> (Vec<Op>, Vec<String>) {
    let (ops, invalid, _) = plan_with_pools(world, cfg);
    (ops, invalid)
}

fn plan_with_pools(world: &World, cfg: &Config) -> (Vec<Op>, Vec<String>, PoolFigures) {
    let mut p = Plan::new(world, cfg);
    let figures = PoolFigures::of(&p.pools);
    apinetlet::reconcile(&mut p);
    ipam::reconcile(&mut p);
    holders::reconcile(&mut p);
    nat::reconcile(&mut p);
    lb::reconcile(&mut p);
    policy::reconcile(&mut p);
    let (ops, invalid) = p.finish();
    (ops, invalid, figures)
}

#[derive(Debug, Default, Clone, Copy)]
struct PoolFigures {
    v4: (u64, u64),
    v6: (u64, u64),
    vni: (u64, u64),
}

impl PoolFigures {
    fn of(p: &plan::Pools) -> Self {
        let sat = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        let ip = |p: &Option<ironnet_alloc::IpPool>| {
            p.as_ref()
                .map_or((0, 0), |p| (sat(p.allocated_count()), sat(p.capacity())))
        };
        let r = p.vni.range();
        PoolFigures {
            v4: ip(&p.v4),
            v6: ip(&p.v6),
            vni: (
                u64::from(p.vni.allocated_count()),
                u64::from(r.max() - r.min()) + 1,
            ),
        }
    }
}

/// Counters and gauges of a running controller.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Planning rounds run.
    pub rounds: AtomicU64,
    /// Writes that succeeded.
    pub writes: AtomicU64,
    /// Writes refused because the world was stale (conflict, exists,
    /// not found); the next round plans again.
    pub conflicts: AtomicU64,
    /// Writes that failed otherwise, or were skipped with them.
    pub errors: AtomicU64,
    /// Changes received and not yet planned for.
    pub pending: AtomicU64,
    /// Writes of the last round.
    pub last_round_writes: AtomicU64,
    /// Public IPv4 addresses allocated / in the pools.
    pub ipv4_used: AtomicU64,
    /// Capacity of the IPv4 pools.
    pub ipv4_size: AtomicU64,
    /// Public IPv6 addresses allocated.
    pub ipv6_used: AtomicU64,
    /// Capacity of the IPv6 pools (saturating).
    pub ipv6_size: AtomicU64,
    /// VNIs allocated.
    pub vni_used: AtomicU64,
    /// VNIs in the range.
    pub vni_size: AtomicU64,
}

/// Runs [`plan`] against a store.
#[derive(Debug)]
pub struct NetworkController<S: Store> {
    store: S,
    cfg: Config,
    metrics: Arc<Metrics>,
}

/// What a round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundOutcome {
    /// Writes planned.
    pub planned: usize,
    /// Succeeded.
    pub written: usize,
    /// Refused as stale.
    pub conflicts: usize,
    /// Failed or skipped.
    pub errors: usize,
}

impl<S: Store> NetworkController<S> {
    /// A controller of `store`.
    pub fn new(store: S, cfg: Config) -> Self {
        NetworkController {
            store,
            cfg,
            metrics: Arc::default(),
        }
    }

    /// Counts into `metrics` (shared by successive controllers of one
    /// process, e.g. across leadership terms).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Its metrics (share before `run`).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs until `shutdown` completes: watches every kind, and plans and
    /// writes whenever something changed (and every `resync`).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut reflectors = world::follow(&self.store, World::KINDS, tx);
        let work = async {
            let mut world = World::default();
            let mut listed = BTreeSet::new();
            // Nothing is planned before every kind is known: an allocator
            // that has not seen the reservations would only collide.
            while listed.len() < World::KINDS.len() {
                let Some(msg) = rx.recv().await else { return };
                if let Change::Listed(k, _) = &msg {
                    listed.insert((k.group, k.kind));
                }
                self.take(&mut world, msg);
            }
            let mut failures = 0u32;
            loop {
                while let Ok(msg) = rx.try_recv() {
                    self.take(&mut world, msg);
                }
                self.metrics.pending.store(0, Ordering::Relaxed);
                let began = Instant::now();
                let out = self.round(&mut world).await;
                let wait = if out.errors > 0 && out.written == 0 {
                    failures = failures.saturating_add(1);
                    Duration::from_millis(100u64 << failures.min(7))
                } else {
                    failures = 0;
                    if out.planned > 0 {
                        // Pace rounds by their own cost: while changes
                        // stream in, each round takes in as many as the
                        // last one took time, so objects summing up many
                        // others (NAT tables, routings) are rewritten
                        // per batch, not per change.
                        let pace = began
                            .elapsed()
                            .clamp(Duration::from_millis(5), Duration::from_millis(500));
                        tokio::time::sleep(pace).await;
                        continue;
                    }
                    self.cfg.resync
                };
                let deadline = Instant::now() + wait;
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(m) => {
                            self.metrics.pending.fetch_add(1, Ordering::Relaxed);
                            self.take(&mut world, m);
                            // Gather what else arrives together, then plan.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            if failures > 0 {
                                tokio::time::sleep_until(deadline.into()).await;
                            }
                        }
                        None => return,
                    },
                    () = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = shutdown => {}
        }
        reflectors.shutdown().await;
    }

    fn take(&self, world: &mut World, change: Change) {
        if let Err(e) = world.take(change) {
            tracing::warn!(error = %e, "controller: an object of the store does not parse");
        }
    }

    /// One round: plans over `world` and executes the writes, feeding
    /// results back into `world`.
    pub async fn round(&self, world: &mut World) -> RoundOutcome {
        let (ops, invalid, figures) = plan_with_pools(world, &self.cfg);
        for i in &invalid {
            tracing::warn!("controller: {i}");
        }
        let m = &self.metrics;
        m.rounds.fetch_add(1, Ordering::Relaxed);
        m.ipv4_used.store(figures.v4.0, Ordering::Relaxed);
        m.ipv4_size.store(figures.v4.1, Ordering::Relaxed);
        m.ipv6_used.store(figures.v6.0, Ordering::Relaxed);
        m.ipv6_size.store(figures.v6.1, Ordering::Relaxed);
        m.vni_used.store(figures.vni.0, Ordering::Relaxed);
        m.vni_size.store(figures.vni.1, Ordering::Relaxed);
        let out = execute(&self.store, ops, world, self.cfg.concurrency).await;
        m.writes.fetch_add(out.written as u64, Ordering::Relaxed);
        m.conflicts
            .fetch_add(out.conflicts as u64, Ordering::Relaxed);
        m.errors
            .fetch_add((out.errors + invalid.len()) as u64, Ordering::Relaxed);
        m.last_round_writes
            .store(out.written as u64, Ordering::Relaxed);
        out
    }

    /// Rounds until one plans nothing (or `max` rounds), reading changes
    /// straight from the store in between: for tests and tools that want
    /// a settled store without running the watch loop.
    pub async fn settle(&self, max: usize) -> Result<usize, StoreError> {
        for n in 0..max {
            let mut world = World::default();
            for kind in World::KINDS {
                let (objs, _) = self.store.list(&Selection::kind(*kind)).await?;
                world.replace(*kind, &objs).map_err(StoreError::Invalid)?;
            }
            let out = self.round(&mut world).await;
            if out.planned == 0 {
                return Ok(n);
            }
        }
        Ok(max)
    }
}

enum Outcome {
    Written(Option<DynObject>, ObjectKey),
    Stale(ObjectKey),
    Failed(String),
}

async fn run_op<S: Store>(store: S, op: Op) -> Outcome {
    let key = op.key();
    let r = match op.kind {
        OpKind::Create(o) => store.create(o).await.map(Some),
        OpKind::Update(o) => store.update(o).await.map(Some),
        OpKind::UpdateStatus(o) => store.update_status(o).await.map(Some),
        OpKind::Delete(k, _) => match store.delete(&k).await {
            Err(StoreError::NotFound(_)) => Ok(None),
            r => r,
        },
    };
    match r {
        Ok(obj) => Outcome::Written(obj, key),
        Err(
            StoreError::Conflict { .. } | StoreError::AlreadyExists(_) | StoreError::NotFound(_),
        ) => Outcome::Stale(key),
        Err(e) => Outcome::Failed(format!("{key}: {e}")),
    }
}

/// Executes `ops` level by level (an op runs after everything it
/// requires), up to `concurrency` at once; an op whose requirement failed
/// is skipped.
async fn execute<S: Store>(
    store: &S,
    ops: Vec<Op>,
    world: &mut World,
    concurrency: usize,
) -> RoundOutcome {
    let mut out = RoundOutcome {
        planned: ops.len(),
        ..RoundOutcome::default()
    };
    let mut level = vec![0usize; ops.len()];
    for i in 0..ops.len() {
        level[i] = ops[i]
            .requires
            .iter()
            .filter(|r| **r < i)
            .map(|r| level[*r] + 1)
            .max()
            .unwrap_or(0);
    }
    let max_level = level.iter().copied().max().unwrap_or(0);
    let mut ok = vec![false; ops.len()];
    let mut ops: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
    for l in 0..=max_level {
        let mut running = JoinSet::new();
        let ids: Vec<usize> = (0..ops.len()).filter(|i| level[*i] == l).collect();
        let mut iter = ids.into_iter();
        loop {
            while running.len() < concurrency.max(1) {
                let Some(i) = iter.next() else { break };
                let Some(op) = ops[i].take() else { continue };
                if op
                    .requires
                    .iter()
                    .any(|r| !ok.get(*r).copied().unwrap_or(false))
                {
                    out.errors += 1;
                    continue;
                }
                let store = store.clone();
                let kind = match &op.kind {
                    OpKind::Delete(_, k) => Some(*k),
                    _ => None,
                };
                running.spawn(async move { (i, kind, run_op(store, op).await) });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            let Ok((i, deleted_kind, outcome)) = done else {
                out.errors += 1;
                continue;
            };
            match outcome {
                Outcome::Written(obj, key) => {
                    ok[i] = true;
                    out.written += 1;
                    match obj {
                        Some(o) => {
                            if let Err(e) = world.apply(&o) {
                                tracing::warn!(error = %e, "controller: written object does not parse");
                            }
                        }
                        None => {
                            if let Some(kind) = deleted_kind {
                                world.remove(kind, &key.namespace, &key.name, u64::MAX);
                            }
                        }
                    }
                }
                Outcome::Stale(key) => {
                    tracing::debug!(%key, "controller: stale write; planning again");
                    out.conflicts += 1;
                }
                Outcome::Failed(e) => {
                    tracing::warn!(error = %e, "controller: write failed");
                    out.errors += 1;
                }
            }
        }
    }
    out
}

//! The per-hypervisor agent (IronCore's metalnetlet and metalnet in one):
//! registers its Node, follows the internal objects scheduled to it, makes
//! them real through the dp's gRPC API, announces their routes through the
//! bond and installs what the bond teaches, and reports status back.
//!
//! Level-triggered: every pass computes what the dp should hold from the
//! objects ([`desired`]) and the learned routes ([`routes`]), diffs it
//! against what the dp holds ([`view`]), and runs the difference ([`dp`]).
//! So an agent restart reads the dp back and changes nothing that is still
//! right, and a dp restart (a new identity from `CheckInitialized`) gets
//! everything programmed again. Learned state is only pruned once the bond
//! has had [`AgentConfig::restore_window`] to send its tables after a
//! start or reconnect: an empty table right after a restart is not a
//! withdrawal.
//!
//! Differences from metalnet, on purpose: firewall rules carry content
//! hashes as ids and change when the policy changes; LB-target routes are
//! announced once, not re-announced on every pass; routes the bond no
//! longer has are removed from the dp (metalnet left them); interfaces keep
//! their TAP slot across dp restarts through their status instead of claim
//! files.

pub mod desired;
pub mod dp;
pub mod firewall;
pub mod routes;
pub mod status;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ironnet_bond::client::LinkState;
use ironnet_bond::{BondClient, ClientConfig, State};
use ironnet_core::api::apinet;
use ironnet_core::control::{Change, World};
use ironnet_core::object::Resource;
use ironnet_core::registry::DynObject;
use ironnet_core::store::{Store, StoreError};
use ironnet_overlay::route::{NextHopKind, Route, Vni};
use tokio::sync::mpsc;
use tokio::time::Instant;

use desired::{Desired, Settings};
use dp::{Dp, DpError};
use view::{Device, DpOp, DpView};

/// What an agent is told.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Its node's name.
    pub node: String,
    /// Labels of its Node (e.g. the zone for load-balancer placement).
    pub node_labels: BTreeMap<String, String>,
    /// The public VNI (IronCore: 100).
    pub public_vni: u32,
    /// The router's underlay address when none is announced.
    pub router_address: Option<Ipv6Addr>,
    /// Whether IPv6 overlay addresses are allowed.
    pub enable_ipv6: bool,
    /// The slots guests plug into.
    pub devices: Vec<Device>,
    /// How often the dp is read back in full and checked for a restart.
    pub resync: Duration,
    /// How long after a start or a bond reconnect learned state is only
    /// added to, never pruned.
    pub restore_window: Duration,
}

impl AgentConfig {
    /// Defaults for `node`: VNI 100, four TAP slots, resync every 30 s, a
    /// 5 s restore window.
    pub fn new(node: &str) -> Self {
        AgentConfig {
            node: node.to_owned(),
            node_labels: BTreeMap::new(),
            public_vni: 100,
            router_address: None,
            enable_ipv6: false,
            devices: Device::taps("", 4),
            resync: Duration::from_secs(30),
            restore_window: Duration::from_secs(5),
        }
    }
}

/// The kinds an agent follows.
pub const KINDS: &[ironnet_core::object::KindInfo] = &[
    apinet::Network::INFO,
    apinet::NetworkInterface::INFO,
    apinet::Instance::INFO,
    apinet::LoadBalancer::INFO,
    apinet::LoadBalancerRouting::INFO,
    apinet::NATTable::INFO,
    apinet::NetworkPolicyRule::INFO,
];

/// What the agent is doing, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The dp's identity.
    pub dp_uuid: String,
    /// The dp's state as the agent knows it.
    pub view: DpView,
    /// Routes announced.
    pub announced: BTreeSet<Route>,
    /// VNIs subscribed.
    pub subscribed: BTreeSet<u32>,
    /// Passes run.
    pub passes: u64,
    /// dp calls that failed.
    pub dp_errors: u64,
    /// Times the dp was found restarted and programmed again.
    pub dp_restarts: u64,
}

/// Registers `cfg.node` as an apinet Node (once; labels are set when it
/// is created).
pub async fn register_node<S: Store>(store: &S, cfg: &AgentConfig) -> Result<(), StoreError> {
    let mut node = apinet::Node::new("", &cfg.node, apinet::Empty {});
    node.metadata.namespace.clear();
    node.metadata.labels = cfg.node_labels.clone();
    let obj = DynObject::from_typed(&node)?;
    match store.create(obj).await {
        Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One agent.
#[derive(Debug)]
pub struct Agent<S: Store> {
    store: S,
    dp: Dp,
    bond: Vec<SocketAddr>,
    cfg: AgentConfig,
    snapshot: tokio::sync::watch::Sender<Snapshot>,
}

impl<S: Store> Agent<S> {
    /// An agent of `store` (the controller's API), the dp at `dp`
    /// (`host:port`) and the bond servers `bond`.
    pub fn new(
        store: S,
        dp: &str,
        bond: Vec<SocketAddr>,
        cfg: AgentConfig,
    ) -> Result<Self, DpError> {
        Ok(Agent {
            store,
            dp: Dp::new(dp)?,
            bond,
            cfg,
            snapshot: tokio::sync::watch::Sender::new(Snapshot::default()),
        })
    }

    /// What the agent does, updated after every pass.
    pub fn snapshot(&self) -> tokio::sync::watch::Receiver<Snapshot> {
        self.snapshot.subscribe()
    }

    /// Runs until `shutdown` completes. Announcements go with the bond
    /// connection; the dp keeps what it holds.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut delay = Duration::from_millis(200);
        loop {
            match register_node(&self.store, &self.cfg).await {
                Ok(()) => break,
                Err(e) => tracing::warn!(error = %e, "agent: cannot register the node yet"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        let (bond, mut bond_events) = BondClient::spawn(ClientConfig::default(), self.bond.clone());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut reflectors = ironnet_core::control::world::follow(&self.store, KINDS, tx);
        let mut world = World::default();
        let mut listed = BTreeSet::new();
        while listed.len() < KINDS.len() {
            tokio::select! {
                () = &mut shutdown => return,
                change = rx.recv() => {
                    let Some(change) = change else { return };
                    if let Change::Listed(k, _) = &change {
                        listed.insert((k.group, k.kind));
                    }
                    take(&mut world, change);
                }
            }
        }
        let mut pass = Pass {
            agent: &self,
            bond: &bond,
            uuid: None,
            view: DpView::default(),
            stale: true,
            announced: BTreeSet::new(),
            subscribed: BTreeSet::new(),
            nat_ips: BTreeSet::new(),
            established: 0,
            synced_at: Instant::now(),
            checked_at: Instant::now(),
            snapshot: Snapshot::default(),
        };
        loop {
            while let Ok(change) = rx.try_recv() {
                take(&mut world, change);
            }
            while bond_events.try_recv().is_ok() {}
            let again = pass.run(&world).await;
            let wait = if again {
                Duration::from_millis(200)
            } else {
                self.cfg.resync.min(Duration::from_secs(1))
            };
            tokio::select! {
                () = &mut shutdown => break,
                change = rx.recv() => match change {
                    Some(c) => {
                        take(&mut world, c);
                        // Gather what arrives together.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    None => break,
                },
                Some(_) = bond_events.recv() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
        reflectors.shutdown().await;
        bond.shutdown().await;
    }
}

fn take(world: &mut World, change: Change) {
    if let Err(e) = world.take(change) {
        tracing::warn!(error = %e, "agent: an object does not parse");
    }
}

/// The state kept between passes.
struct Pass<'a, S: Store> {
    agent: &'a Agent<S>,
    bond: &'a BondClient,
    uuid: Option<String>,
    view: DpView,
    /// The view must be read back before it is trusted.
    stale: bool,
    announced: BTreeSet<Route>,
    subscribed: BTreeSet<u32>,
    /// NAT addresses seen (neighbour NAT sections are read back per
    /// address).
    nat_ips: BTreeSet<Ipv4Addr>,
    established: usize,
    synced_at: Instant,
    checked_at: Instant,
    snapshot: Snapshot,
}

impl<S: Store> Pass<'_, S> {
    /// One pass; whether another should follow soon (something failed or
    /// is still under way).
    async fn run(&mut self, world: &World) -> bool {
        let cfg = &self.agent.cfg;
        self.snapshot.passes += 1;
        let settings = Settings {
            node: cfg.node.clone(),
            enable_ipv6: cfg.enable_ipv6,
        };
        let desired = desired::desired(world, &settings);
        if !self.check_dp(&desired).await {
            return true;
        }
        let mut again = false;
        // Objects.
        let (devices, without) = view::place(&desired, &self.view, &cfg.devices);
        for op in view::object_ops(&desired, &self.view, &devices) {
            again |= self.apply(&op).await;
        }
        // Routes out.
        let want = routes::announcements(&desired, &self.view, cfg.public_vni);
        for r in self
            .announced
            .difference(&want)
            .copied()
            .collect::<Vec<_>>()
        {
            if self.bond.withdraw(r).await.is_ok() {
                self.announced.remove(&r);
            }
        }
        for r in want
            .difference(&self.announced)
            .copied()
            .collect::<Vec<_>>()
        {
            if self.bond.announce(r).await.is_ok() {
                self.announced.insert(r);
            }
        }
        let subs = routes::subscriptions(&desired, cfg.public_vni);
        for v in self
            .subscribed
            .difference(&subs)
            .copied()
            .collect::<Vec<_>>()
        {
            if let Some(vni) = Vni::new(v)
                && self.bond.unsubscribe(vni).await.is_ok()
            {
                self.subscribed.remove(&v);
            }
        }
        for v in subs
            .difference(&self.subscribed)
            .copied()
            .collect::<Vec<_>>()
        {
            if let Some(vni) = Vni::new(v)
                && self.bond.subscribe(vni).await.is_ok()
            {
                self.subscribed.insert(v);
            }
        }
        // Routes in.
        let servers = self.bond.servers().await.unwrap_or_default();
        let up = servers
            .iter()
            .filter(|(_, s)| *s == LinkState::Up(State::Established))
            .count();
        if up > self.established {
            self.synced_at = Instant::now();
        }
        self.established = up;
        let prune = up > 0 && self.synced_at.elapsed() >= cfg.restore_window;
        let learned: BTreeSet<Route> = self
            .bond
            .routes()
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        self.nat_ips.extend(learned.iter().filter_map(|r| {
            match (r.next_hop.kind, r.destination.prefix().addr()) {
                (NextHopKind::Nat { .. }, std::net::IpAddr::V4(a)) => Some(a),
                _ => None,
            }
        }));
        let installed = routes::installed(
            &desired,
            &self.view,
            &learned,
            &self.announced,
            cfg.public_vni,
            cfg.router_address,
            cfg.enable_ipv6,
        );
        for op in routes::route_ops(&installed, &self.view, prune) {
            again |= self.apply(&op).await;
        }
        if !prune {
            again = true;
        }
        // Status.
        again |= self.write_status(world, &desired, &without).await;
        self.snapshot.dp_uuid = self.uuid.clone().unwrap_or_default();
        self.snapshot.view = self.view.clone();
        self.snapshot.announced = self.announced.clone();
        self.snapshot.subscribed = self.subscribed.clone();
        self.agent.snapshot.send_replace(self.snapshot.clone());
        again
    }

    /// Makes sure the dp is initialised and the view is current: reads it
    /// back when stale or every resync, and starts over when the dp
    /// restarted. False when the dp cannot be reached.
    async fn check_dp(&mut self, desired: &Desired) -> bool {
        let cfg = &self.agent.cfg;
        let due = self.checked_at.elapsed() >= cfg.resync;
        if self.uuid.is_some() && !self.stale && !due {
            return true;
        }
        let uuid = match self.agent.dp.ensure_initialized().await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e, "agent: dp not reachable");
                return false;
            }
        };
        if self.uuid.as_ref().is_some_and(|u| *u != uuid) {
            tracing::warn!("agent: the dp restarted; programming it again");
            self.snapshot.dp_restarts += 1;
        }
        self.uuid = Some(uuid);
        let mut vnis: BTreeSet<u32> = desired.vnis.keys().copied().collect();
        vnis.extend(self.view.routes.keys().copied());
        self.nat_ips
            .extend(self.view.neighbor_nats.iter().map(|n| n.range.ip));
        self.nat_ips.extend(
            desired
                .interfaces
                .values()
                .filter_map(|i| i.nat.map(|n| n.ip)),
        );
        match self.agent.dp.read(&vnis, &self.nat_ips).await {
            Ok(view) => {
                self.view = view;
                self.stale = false;
                self.checked_at = Instant::now();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent: reading the dp back failed");
                false
            }
        }
    }

    /// Runs one call; true when it failed (the view is reread next pass).
    async fn apply(&mut self, op: &DpOp) -> bool {
        match self.agent.dp.apply(op, &mut self.view).await {
            Ok(()) => false,
            Err(e) if e.is_present() => {
                // The dp has it already (e.g. learned state after an
                // agent restart the view did not cover): read it back.
                tracing::debug!(error = %e, ?op, "agent: dp has it already; rereading");
                self.stale = true;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, ?op, "agent: dp call failed");
                self.snapshot.dp_errors += 1;
                self.stale = true;
                true
            }
        }
    }

    /// Writes the status of every interface scheduled here that changed;
    /// true when a write failed.
    async fn write_status(&self, world: &World, desired: &Desired, without: &[String]) -> bool {
        let mut failed = false;
        for nic in world.a_nics.iter() {
            if nic.spec.node_ref.name != self.agent.cfg.node
                || nic.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let uid = &nic.metadata.uid;
            let status = if without.contains(uid) {
                status::no_device()
            } else if let Some(want) = desired.interfaces.get(uid) {
                status::wanted(want, self.view.interfaces.get(uid), &self.agent.cfg.devices)
            } else if let Some(b) = desired.blocked.get(uid) {
                status::blocked(&b.reason)
            } else {
                continue;
            };
            if nic.status == status {
                continue;
            }
            let mut next = (**nic).clone();
            next.status = status;
            let Ok(obj) = DynObject::from_typed(&next) else {
                continue;
            };
            match self.agent.store.update_status(obj).await {
                Ok(_) => {}
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => failed = true,
                Err(e) => {
                    tracing::warn!(error = %e, nic = %nic.metadata.name, "agent: status not written");
                    failed = true;
                }
            }
        }
        failed
    }
}

//! The bond client on tokio: runs a [`ClientCore`] over TCP to any number
//! of servers and delivers [`RouteEvent`]s as a stream.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ironnet_bond::net_client::ClientGone> {
//! use ironnet_bond::{BondClient, ClientConfig};
//! use ironnet_overlay::route::Vni;
//! let servers = vec!["[::1]:4711".parse().unwrap()];
//! let (client, mut events) = BondClient::spawn(ClientConfig::default(), servers);
//! client.subscribe(Vni::new(100).unwrap()).await?;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ironnet_overlay::route::{Route, Vni};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{ClientAction, ClientConfig, ClientCore, LinkState, RouteEvent, ServerId};
use crate::conn::CloseReason;
use crate::link::Link;

/// The client task has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the bond client has stopped")]
pub struct ClientGone;

/// How long one dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(3);
/// Unwritten bytes to one server before the connection is reset.
const MAX_PENDING: usize = 64 << 20;
const INPUT_QUEUE: usize = 1024;

enum Command {
    Subscribe(Vni, oneshot::Sender<bool>),
    Unsubscribe(Vni, oneshot::Sender<bool>),
    Announce(Route, oneshot::Sender<bool>),
    Withdraw(Route, oneshot::Sender<bool>),
    Routes(oneshot::Sender<Vec<Route>>),
    Servers(oneshot::Sender<Vec<(SocketAddr, LinkState)>>),
}

enum Input {
    Command(Command),
    Connected(ServerId, TcpStream),
    DialFailed(ServerId),
    Bytes(ServerId, u64, Vec<u8>),
    Eof(ServerId, u64),
}

/// A handle to a running client; the client stops when the handle is
/// dropped.
#[derive(Debug)]
pub struct BondClient {
    input: mpsc::Sender<Input>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Input")
    }
}

/// The stream of route changes. Events are produced as routes change; a
/// consumer that stops reading lets them accumulate.
pub type RouteEvents = mpsc::UnboundedReceiver<RouteEvent>;

impl BondClient {
    /// Starts a client of `servers`. Servers that are down are retried with
    /// backoff; nothing waits for them.
    pub fn spawn(config: ClientConfig, servers: Vec<SocketAddr>) -> (BondClient, RouteEvents) {
        let (input, rx) = mpsc::channel(INPUT_QUEUE);
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut config = config;
        if config.seed == 0 {
            config.seed = random_seed();
        }
        let now = Instant::now().into_std();
        let mut core = ClientCore::new(config);
        for _ in &servers {
            core.add_server(now);
        }
        let actor = Actor {
            core,
            addrs: servers,
            links: HashMap::new(),
            generation: 0,
            input: input.clone(),
            events: events_tx,
        };
        let task = tokio::spawn(actor.run(rx));
        (BondClient { input, task }, events)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ClientGone> {
        let (tx, rx) = oneshot::channel();
        self.input
            .send(Input::Command(make(tx)))
            .await
            .map_err(|_| ClientGone)?;
        rx.await.map_err(|_| ClientGone)
    }

    /// Subscribes to `vni`; false if already subscribed.
    pub async fn subscribe(&self, vni: Vni) -> Result<bool, ClientGone> {
        self.ask(|tx| Command::Subscribe(vni, tx)).await
    }

    /// Unsubscribes from `vni` (see [`ClientCore::unsubscribe`]).
    pub async fn unsubscribe(&self, vni: Vni) -> Result<bool, ClientGone> {
        self.ask(|tx| Command::Unsubscribe(vni, tx)).await
    }

    /// Announces `route`; false if already announced.
    pub async fn announce(&self, route: Route) -> Result<bool, ClientGone> {
        self.ask(|tx| Command::Announce(route, tx)).await
    }

    /// Withdraws `route`; false if not announced.
    pub async fn withdraw(&self, route: Route) -> Result<bool, ClientGone> {
        self.ask(|tx| Command::Withdraw(route, tx)).await
    }

    /// The learned routes.
    pub async fn routes(&self) -> Result<Vec<Route>, ClientGone> {
        self.ask(Command::Routes).await
    }

    /// Each server with its link state.
    pub async fn servers(&self) -> Result<Vec<(SocketAddr, LinkState)>, ClientGone> {
        self.ask(Command::Servers).await
    }

    /// Stops the client and closes its connections.
    pub async fn shutdown(self) {
        self.task.abort();
    }
}

impl Drop for BondClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Actor {
    core: ClientCore,
    addrs: Vec<SocketAddr>,
    links: HashMap<ServerId, (u64, Link)>,
    generation: u64,
    input: mpsc::Sender<Input>,
    events: mpsc::UnboundedSender<RouteEvent>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        loop {
            self.core.handle_timeout(Instant::now().into_std());
            self.flush();
            let deadline = self.core.poll_timeout();
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => Some(m),
                    None => return,
                },
                _ = sleep_until(deadline) => None,
            };
            if let Some(m) = first {
                self.handle(m);
                for _ in 1..256 {
                    match rx.try_recv() {
                        Ok(m) => self.handle(m),
                        Err(_) => break,
                    }
                }
            }
        }
    }

    fn handle(&mut self, input: Input) {
        let now = Instant::now().into_std();
        match input {
            Input::Command(cmd) => self.command(cmd),
            Input::Connected(id, stream) => {
                self.generation += 1;
                let generation = self.generation;
                let link = Link::spawn(
                    stream,
                    self.input.clone(),
                    move |b| Input::Bytes(id, generation, b),
                    move || Input::Eof(id, generation),
                );
                self.links.insert(id, (generation, link));
                self.core.connected(id, now);
            }
            Input::DialFailed(id) => self.core.dial_failed(id, now),
            Input::Bytes(id, generation, bytes) => {
                if self.current(id, generation) {
                    self.core.receive(id, now, &bytes);
                }
            }
            Input::Eof(id, generation) => {
                if self.current(id, generation) {
                    self.core.transport_closed(id, now);
                }
            }
        }
    }

    fn current(&self, id: ServerId, generation: u64) -> bool {
        self.links.get(&id).is_some_and(|(g, _)| *g == generation)
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Subscribe(vni, tx) => {
                let _ = tx.send(self.core.subscribe(vni));
            }
            Command::Unsubscribe(vni, tx) => {
                let _ = tx.send(self.core.unsubscribe(vni));
            }
            Command::Announce(route, tx) => {
                let _ = tx.send(self.core.announce(route));
            }
            Command::Withdraw(route, tx) => {
                let _ = tx.send(self.core.withdraw(&route));
            }
            Command::Routes(tx) => {
                let _ = tx.send(self.core.routes().collect());
            }
            Command::Servers(tx) => {
                let states = self
                    .addrs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, a)| self.core.server_state(ServerId(i)).map(|s| (*a, s)))
                    .collect();
                let _ = tx.send(states);
            }
        }
    }

    fn flush(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.core.poll_action() {
                progressed = true;
                match action {
                    ClientAction::Dial(id) => self.dial(id),
                    ClientAction::Close(id, kind) => {
                        if let Some(addr) = self.addrs.get(id.0) {
                            tracing::info!(server = %addr, reason = ?kind, "bond server connection closed");
                        }
                        self.links.remove(&id);
                    }
                }
            }
            while let Some((id, bytes)) = self.core.poll_output() {
                progressed = true;
                let now = Instant::now().into_std();
                let Some((_, link)) = self.links.get(&id) else {
                    continue;
                };
                if let Err(pending) = link.send(bytes, MAX_PENDING) {
                    self.core
                        .close(id, now, CloseReason::SlowConsumer { pending });
                }
            }
            while let Some(ev) = self.core.poll_event() {
                let _ = self.events.send(ev);
            }
            if !progressed {
                break;
            }
        }
    }

    fn dial(&self, id: ServerId) {
        let Some(addr) = self.addrs.get(id.0).copied() else {
            return;
        };
        let input = self.input.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await;
            let msg = match result {
                Ok(Ok(stream)) => Input::Connected(id, stream),
                Ok(Err(e)) => {
                    tracing::debug!(server = %addr, error = %e, "dial failed");
                    Input::DialFailed(id)
                }
                Err(_) => Input::DialFailed(id),
            };
            let _ = input.send(msg).await;
        });
    }
}

/// A seed that differs between processes and between clients of one
/// process, so clients that lost the same server do not redial in step.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish() | 1
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

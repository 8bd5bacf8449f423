//! The bond server on tokio: accepts metalbond connections and runs the
//! [`Reflector`] in one task that owns all route state (no locks, so no
//! lock-order deadlocks), with a reader and a writer task per peer.
//!
//! Back-pressure: readers wait on a bounded channel into the core; the core
//! never waits on a peer. Each peer's unwritten output is counted, and a
//! peer whose backlog has not moved for [`ServerConfig::stall_timeout`], or
//! grows past [`ServerConfig::max_pending_bytes`], is disconnected (and
//! logged), its routes withdrawn, while everyone else carries on. A large
//! subscribe dump to a peer that reads is not a stall.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::CloseReason;
use crate::http::{self, Metrics, Snapshot};
use crate::link::Link;
use crate::reflector::{PeerId, Reflector};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to accept metalbond connections (`[::]:4711` in production).
    pub listen: SocketAddr,
    /// Where to serve the status page, `/routes.json` and `/metrics`.
    pub http: Option<SocketAddr>,
    /// Keepalive interval offered to clients, seconds.
    pub keepalive_secs: u32,
    /// Unwritten bytes a peer may have queued before it is disconnected
    /// (a backstop; stalls are caught by `stall_timeout`).
    pub max_pending_bytes: usize,
    /// How long a peer's backlog may go without any byte written before
    /// the peer is disconnected as a slow consumer.
    pub stall_timeout: Duration,
    /// How long the routes of a peer that went away are kept before they
    /// are withdrawn; a restarted announcer takes them over meanwhile
    /// (zero: withdraw at once, as metalbond).
    pub departed_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0u16; 8], 4711)),
            http: None,
            keepalive_secs: 5,
            max_pending_bytes: 256 << 20,
            stall_timeout: Duration::from_secs(10),
            departed_grace: Duration::from_secs(10),
        }
    }
}

/// Inputs of the core task.
#[derive(Debug)]
pub(crate) enum Input {
    Accepted(tokio::net::TcpStream, SocketAddr),
    Bytes(PeerId, Vec<u8>),
    Eof(PeerId),
    Snapshot(oneshot::Sender<Snapshot>),
}

const INPUT_QUEUE: usize = 1024;
const BATCH: usize = 256;

/// A running server; dropping it (or [`shutdown`](Self::shutdown)) stops
/// it and closes every connection.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    input: mpsc::Sender<Input>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// Binds the listeners and starts the server.
    pub async fn start(config: ServerConfig) -> io::Result<ServerHandle> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let (input, rx) = mpsc::channel(INPUT_QUEUE);
        let metrics = Arc::new(Metrics::new());
        let mut tasks = Vec::new();

        let mut http_addr = None;
        if let Some(addr) = config.http {
            let http_listener = TcpListener::bind(addr).await?;
            let bound = http_listener.local_addr()?;
            http_addr = Some(bound);
            tasks.push(tokio::spawn(http::serve(
                http_listener,
                input.clone(),
                Arc::clone(&metrics),
            )));
            tracing::info!(http_addr = %bound, "bond status page listening");
        }

        let core = Core {
            reflector: Reflector::new(config.keepalive_secs)
                .with_departed_grace(config.departed_grace),
            links: HashMap::new(),
            config: config.clone(),
            metrics,
            input: input.clone(),
        };
        tasks.push(tokio::spawn(core.run(rx)));
        let accept_input = input.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, remote)) => {
                        if accept_input
                            .send(Input::Accepted(stream, remote))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
        tracing::info!(%local_addr, "bond server listening");
        Ok(ServerHandle {
            local_addr,
            http_addr,
            input,
            tasks,
        })
    }

    /// The metalbond listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The HTTP listening address, if configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The current peers and routes.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        let (tx, rx) = oneshot::channel();
        self.input.send(Input::Snapshot(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops the server and closes every connection.
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Core {
    reflector: Reflector,
    links: HashMap<PeerId, Link>,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    input: mpsc::Sender<Input>,
}

impl Core {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        let check_every = (self.config.stall_timeout / 4).max(Duration::from_millis(10));
        let mut next_check = Instant::now() + check_every;
        loop {
            let deadline = self
                .reflector
                .poll_timeout()
                .map_or(next_check, |t| Instant::from_std(t).min(next_check));
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => Some(m),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline) => None,
            };
            if Instant::now() >= next_check {
                self.close_stalled();
                next_check = Instant::now() + check_every;
            }
            match first {
                Some(m) => {
                    self.handle(m);
                    // Take what else is waiting before flushing, so bursts
                    // go out in few writes.
                    for _ in 1..BATCH {
                        match rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                }
                None => self.reflector.handle_timeout(Instant::now().into_std()),
            }
            self.flush();
        }
    }

    fn close_stalled(&mut self) {
        let now = std::time::Instant::now();
        let limit = self.config.stall_timeout;
        let stalled: Vec<(PeerId, usize)> = self
            .links
            .iter()
            .filter(|(_, l)| l.stalled_for(now).is_some_and(|d| d >= limit))
            .map(|(id, l)| (*id, l.backlog()))
            .collect();
        for (id, pending) in stalled {
            tracing::warn!(%id, pending, "disconnecting stalled slow consumer");
            self.metrics.slow_consumers.inc();
            self.reflector
                .close(id, now, CloseReason::SlowConsumer { pending });
        }
        self.flush();
    }

    fn handle(&mut self, input: Input) {
        let now = Instant::now().into_std();
        match input {
            Input::Accepted(stream, remote) => {
                let id = self.reflector.accept(now, remote);
                let link = Link::spawn(
                    stream,
                    self.input.clone(),
                    move |b| Input::Bytes(id, b),
                    move || Input::Eof(id),
                );
                self.links.insert(id, link);
                tracing::debug!(%id, %remote, "peer connected");
            }
            Input::Bytes(id, bytes) => self.reflector.receive(id, now, &bytes),
            Input::Eof(id) => self.reflector.transport_closed(id, now),
            Input::Snapshot(reply) => {
                let _ = reply.send(Snapshot::of(&self.reflector));
            }
        }
    }

    fn flush(&mut self) {
        loop {
            while let Some((id, bytes)) = self.reflector.poll_output() {
                let Some(link) = self.links.get(&id) else {
                    continue;
                };
                if let Err(pending) = link.send(bytes, self.config.max_pending_bytes) {
                    tracing::warn!(%id, pending, "disconnecting slow consumer");
                    self.metrics.slow_consumers.inc();
                    let now = std::time::Instant::now();
                    self.reflector
                        .close(id, now, CloseReason::SlowConsumer { pending });
                }
            }
            let mut closed_any = false;
            while let Some((id, reason)) = self.reflector.poll_closed() {
                closed_any = true;
                self.links.remove(&id);
                match reason {
                    CloseReason::Transport => tracing::debug!(%id, "peer disconnected"),
                    other => tracing::info!(%id, reason = %other, "peer closed"),
                }
            }
            if !closed_any {
                break;
            }
        }
        self.metrics.observe(&self.reflector);
    }
}

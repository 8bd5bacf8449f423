//! Runs the pipeline over real ports: a reader task per port feeds one
//! worker, which takes frames in batches, loads the published snapshot once
//! per batch and transmits what the pipeline decides.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::io::PortIo;
use crate::pipeline::{Counters, Packet, Pipeline, Verdict};
use crate::snapshot::Published;
use crate::state::PortId;

/// Frames per batch.
pub const BATCH: usize = 64;
/// Frames waiting between the readers and the worker.
const QUEUE: usize = 4096;
/// Largest frame read from a port.
const MAX_FRAME: usize = 9216;
/// How often the worker copies its counters out.
const COUNTERS_EVERY: Duration = Duration::from_millis(100);

/// What the worker reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The pipeline's counters.
    pub counters: Counters,
    /// Frames a port refused to send.
    pub tx_errors: u64,
    /// Flows in the flow table.
    pub flows: usize,
}

/// A shared view of the worker's latest [`Stats`].
#[derive(Debug, Clone, Default)]
pub struct StatsHandle(Arc<Mutex<Stats>>);

impl StatsHandle {
    /// The latest stats (at most 100 ms old while traffic flows).
    pub fn get(&self) -> Stats {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The running data plane; dropping it stops the tasks.
#[derive(Debug)]
pub struct Dataplane {
    tasks: Vec<JoinHandle<()>>,
    stats: Arc<Mutex<Stats>>,
}

impl Dataplane {
    /// Starts readers for `ports` (indexed by port id) and the worker,
    /// which runs `pipe` (configure its flow table and preset neighbours
    /// before).
    pub fn spawn(ports: Vec<Arc<dyn PortIo>>, published: Published, pipe: Pipeline) -> Dataplane {
        let (tx, mut rx) = mpsc::channel::<Packet>(QUEUE);
        let mut tasks = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let Ok(id) = PortId::try_from(i) else {
                break;
            };
            let port = Arc::clone(port);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_FRAME];
                loop {
                    let n = match port.recv(&mut buf).await {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::warn!(port = id, error = %e, "port receive failed");
                            return;
                        }
                    };
                    let Ok(pkt) = Packet::new(id, &buf[..n]) else {
                        continue;
                    };
                    if tx.send(pkt).await.is_err() {
                        return;
                    }
                }
            }));
        }
        drop(tx);
        let stats = Arc::new(Mutex::new(Stats::default()));
        let shared = Arc::clone(&stats);
        tasks.push(tokio::spawn(async move {
            let mut pipe = pipe;
            let mut batch: Vec<Packet> = Vec::with_capacity(BATCH);
            let mut verdicts = Vec::with_capacity(BATCH);
            let mut tx_errors = 0u64;
            let mut last_report = Instant::now();
            while let Some(first) = rx.recv().await {
                batch.clear();
                batch.push(first);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let snap = published.load();
                pipe.process_batch(&snap, Instant::now(), &mut batch, &mut verdicts);
                let mut send = |out: PortId, pkt: &Packet| {
                    let sent = ports.get(usize::from(out)).map(|p| p.try_send(pkt.frame()));
                    if !matches!(sent, Some(Ok(()))) {
                        tx_errors += 1;
                    }
                };
                for (pkt, verdict) in batch.iter().zip(&verdicts) {
                    if let Verdict::Tx(out) = verdict {
                        send(*out, pkt);
                    }
                }
                for (out, pkt) in pipe.drain_extra() {
                    send(out, &pkt);
                }
                if last_report.elapsed() >= COUNTERS_EVERY {
                    last_report = Instant::now();
                    if let Ok(mut s) = shared.lock() {
                        s.counters = pipe.counters().clone();
                        s.tx_errors = tx_errors;
                        s.flows = pipe.flows().len();
                    }
                }
            }
        }));
        Dataplane { tasks, stats }
    }

    /// The latest counters (at most 100 ms old while traffic flows).
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// A handle to the stats that outlives borrowing the data plane.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.stats))
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

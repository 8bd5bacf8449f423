//! Runs the pipeline over real ports with one worker, as a DPDK lcore
//! would: it asks every port for the frames waiting (non-blocking reads
//! straight into reused packet buffers, up to [`BATCH`] a pass, ports taken
//! in turn), loads the published snapshot once per batch, transmits what
//! the pipeline decides, and waits for a port to become readable only when
//! no port had anything. No channel and no task hand-off per frame.
//!
//! Ports with a virtio-net header (guest TAPs with offloads) hand over
//! large TSO/USO frames and partial checksums: the worker cuts those into
//! wire-sized segments and completes checksums before the pipeline, so the
//! pipeline only ever sees ordinary frames. Towards such a port it merges
//! in-order TCP segments of a flow into one large frame (GRO), so a guest
//! receives one frame where the wire carried dozens.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use ironnet_overlay::offload::{TcpCoalescer, VNET_HDR_LEN, VnetHdr, complete_checksum, segment};

use crate::io::{BoxFuture, PortIo};
use crate::pipeline::{Counters, DropReason, Packet, Pipeline, Verdict};
use crate::snapshot::Published;
use crate::state::PortId;

/// Frames per batch.
pub const BATCH: usize = 64;
/// Largest frame read from a port.
const MAX_FRAME: usize = 9216;
/// Largest frame read from a port with a virtio-net header (a 64 KiB
/// segmentation-offload frame, its Ethernet header and the vnet header).
const MAX_OFFLOAD_FRAME: usize = 65536 + 14 + VNET_HDR_LEN;
/// How often the worker copies its counters out while busy.
const COUNTERS_EVERY: Duration = Duration::from_millis(100);
/// Batches between voluntary yields to the runtime while busy.
const YIELD_EVERY: u32 = 32;

/// What the worker reports.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The pipeline's counters.
    pub counters: Counters,
    /// Frames a port refused to send.
    pub tx_errors: u64,
    /// Flows in the flow table.
    pub flows: usize,
    /// Segmentation-offload frames from guests cut into segments.
    pub segmented: u64,
    /// Frames of several TCP segments merged for guests.
    pub coalesced: u64,
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
    /// Starts the worker over `ports` (indexed by port id), running `pipe`
    /// (configure its flow table and preset neighbours before).
    pub fn spawn(ports: Vec<Arc<dyn PortIo>>, published: Published, pipe: Pipeline) -> Dataplane {
        let stats = Arc::new(Mutex::new(Stats::default()));
        let worker = Worker {
            live: vec![true; ports.len()],
            vnet: ports.iter().map(|p| p.vnet_hdr()).collect(),
            ports,
            large: None,
            scratch: Vec::new(),
            gro: TcpCoalescer::new(),
            gro_port: None,
            published,
            pipe,
            stats: Arc::clone(&stats),
            tx_errors: 0,
            segmented: 0,
            coalesced: 0,
        };
        Dataplane {
            tasks: vec![tokio::spawn(worker.run())],
            stats,
        }
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

/// The worker's state.
struct Worker {
    ports: Vec<Arc<dyn PortIo>>,
    /// Ports that have not failed.
    live: Vec<bool>,
    /// Ports whose frames carry a virtio-net header.
    vnet: Vec<bool>,
    /// A received segmentation-offload frame being cut up.
    large: Option<Packet>,
    /// Where segments are built.
    scratch: Vec<u8>,
    /// TCP segments being merged for one vnet port.
    gro: TcpCoalescer,
    /// The port `gro` is building for.
    gro_port: Option<PortId>,
    published: Published,
    pipe: Pipeline,
    stats: Arc<Mutex<Stats>>,
    tx_errors: u64,
    segmented: u64,
    coalesced: u64,
}

impl Worker {
    async fn run(mut self) {
        let mut batch: Vec<Packet> = Vec::with_capacity(BATCH);
        let mut verdicts = Vec::with_capacity(BATCH);
        let mut first_port = 0usize;
        let mut busy = 0u32;
        let mut last_report = Instant::now();
        loop {
            let n = self.receive(&mut batch, first_port);
            first_port = (first_port + 1) % self.ports.len().max(1);
            if n == 0 {
                self.report();
                if !self.wait_readable().await {
                    return;
                }
                continue;
            }
            let snap = self.published.load();
            let packets = &mut batch[..n];
            self.pipe
                .process_batch(&snap, Instant::now(), packets, &mut verdicts);
            for (pkt, verdict) in packets.iter_mut().zip(&verdicts) {
                if let Verdict::Tx(out) = verdict {
                    self.transmit(*out, pkt);
                }
            }
            let extra: Vec<(PortId, Packet)> = self.pipe.drain_extra().collect();
            for (out, mut pkt) in extra {
                self.transmit(out, &mut pkt);
            }
            self.flush_gro();
            if last_report.elapsed() >= COUNTERS_EVERY {
                last_report = Instant::now();
                self.report();
            }
            busy += 1;
            if busy.is_multiple_of(YIELD_EVERY) {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Reads what the ports have waiting, up to [`BATCH`] frames, starting
    /// at `first_port`; how many. `batch` keeps its packets as buffers.
    fn receive(&mut self, batch: &mut Vec<Packet>, first_port: usize) -> usize {
        let mut n = 0;
        let count = self.ports.len();
        for k in 0..count {
            let i = (first_port + k) % count;
            let Ok(id) = PortId::try_from(i) else {
                continue;
            };
            while self.live[i] && n < BATCH {
                if n == batch.len() {
                    match Packet::new(id, &[]) {
                        Ok(p) => batch.push(p),
                        Err(_) => return n,
                    }
                }
                let port = &self.ports[i];
                let max = if self.vnet[i] {
                    MAX_OFFLOAD_FRAME
                } else {
                    MAX_FRAME
                };
                match batch[n].receive(id, max, |buf| port.try_recv(buf)) {
                    Ok(()) if self.vnet[i] => n = self.offload_in(batch, n, id),
                    Ok(()) => n += 1,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => self.fail(i, &e),
                }
            }
        }
        n
    }

    /// Handles the virtio-net header of the frame just read into
    /// `batch[n]`: strips it, completes a partial checksum, or replaces a
    /// segmentation-offload frame by its segments in `batch[n..]`. Returns
    /// the new number of frames in the batch.
    fn offload_in(&mut self, batch: &mut Vec<Packet>, n: usize, port: PortId) -> usize {
        let pkt = &mut batch[n];
        let hdr = match VnetHdr::parse(pkt.frame()) {
            Ok(h) if pkt.buf.pull_front(VNET_HDR_LEN).is_ok() => h,
            _ => {
                self.pipe.count_drop(port, DropReason::BadOffload);
                return n;
            }
        };
        if !hdr.is_gso() {
            if hdr.needs_csum() {
                let (start, offset) = (usize::from(hdr.csum_start), usize::from(hdr.csum_offset));
                if complete_checksum(pkt.buf.data_mut(), start, offset).is_err() {
                    self.pipe.count_drop(port, DropReason::BadOffload);
                    return n;
                }
            }
            return n + 1;
        }
        let mut large = match self.large.take() {
            Some(p) => p,
            None => match Packet::new(port, &[]) {
                Ok(p) => p,
                Err(_) => return n,
            },
        };
        std::mem::swap(&mut batch[n], &mut large);
        let mut k = n;
        let cut = segment(large.frame(), &hdr, &mut self.scratch, |seg| {
            if k == batch.len() {
                if let Ok(p) = Packet::new(port, seg) {
                    batch.push(p);
                    k += 1;
                }
            } else if batch[k].refill(seg).is_ok() {
                batch[k].port = port;
                k += 1;
            }
        });
        self.large = Some(large);
        match cut {
            Ok(_) => self.segmented += 1,
            Err(_) => self.pipe.count_drop(port, DropReason::BadOffload),
        }
        k
    }

    /// Sends `pkt` on `out`; towards a vnet port through the coalescer,
    /// or behind an empty virtio-net header.
    fn transmit(&mut self, out: PortId, pkt: &mut Packet) {
        if !self.vnet.get(usize::from(out)).copied().unwrap_or(false) {
            self.send(out, pkt.frame());
            return;
        }
        if self.gro_port != Some(out) {
            self.flush_gro();
        }
        if self.gro.offer(pkt.frame()) {
            self.gro_port = Some(out);
            return;
        }
        self.flush_gro();
        if self.gro.offer(pkt.frame()) {
            self.gro_port = Some(out);
            return;
        }
        match pkt.buf.push_front(VNET_HDR_LEN) {
            Ok(frame) => {
                frame[..VNET_HDR_LEN].fill(0);
                self.send(out, pkt.frame());
            }
            Err(_) => self.tx_errors += 1,
        }
    }

    /// Sends the frame the coalescer built, if any.
    fn flush_gro(&mut self) {
        let Some(out) = self.gro_port.take() else {
            return;
        };
        if let Some(frame) = self.gro.flush() {
            if VnetHdr::parse(frame).is_ok_and(|h| h.is_gso()) {
                self.coalesced += 1;
            }
            send_on(&self.ports, &mut self.tx_errors, out, frame);
        }
    }

    fn send(&mut self, out: PortId, frame: &[u8]) {
        send_on(&self.ports, &mut self.tx_errors, out, frame);
    }

    fn fail(&mut self, port: usize, error: &io::Error) {
        tracing::warn!(port, %error, "port failed; no longer read");
        self.live[port] = false;
    }

    /// Waits until some live port is readable; false once none is live.
    async fn wait_readable(&mut self) -> bool {
        let mut waits: Vec<(usize, BoxFuture<'_, io::Result<()>>)> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(i, _)| self.live[*i])
            .map(|(i, p)| (i, p.readable()))
            .collect();
        if waits.is_empty() {
            return false;
        }
        let (port, result) = std::future::poll_fn(|cx| {
            for (i, wait) in waits.iter_mut() {
                if let Poll::Ready(r) = wait.as_mut().poll(cx) {
                    return Poll::Ready((*i, r));
                }
            }
            Poll::Pending
        })
        .await;
        drop(waits);
        if let Err(e) = result {
            self.fail(port, &e);
        }
        true
    }

    /// Copies the counters out for [`Dataplane::stats`].
    fn report(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.counters = self.pipe.counters().clone();
            s.tx_errors = self.tx_errors;
            s.flows = self.pipe.flows().len();
            s.segmented = self.segmented;
            s.coalesced = self.coalesced;
        }
    }
}

/// Sends `frame` on port `out`, counting a refusal in `tx_errors`.
fn send_on(ports: &[Arc<dyn PortIo>], tx_errors: &mut u64, out: PortId, frame: &[u8]) {
    let sent = ports.get(usize::from(out)).map(|p| p.try_send(frame));
    if !matches!(sent, Some(Ok(()))) {
        *tx_errors += 1;
    }
}

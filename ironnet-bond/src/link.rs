//! One TCP connection's reader and writer tasks, shared by the server and
//! the client edges.
//!
//! The reader forwards what it reads into the owner's bounded input channel
//! (so a fast sender is slowed down by TCP flow control, not by memory). The
//! writer drains a channel whose backlog is counted in bytes, and records
//! when it last made progress: the owner never waits on a peer, and closes
//! one whose backlog has not moved for a while ([`Link::stalled_for`]) or
//! passes a hard byte limit, instead of stalling everyone else.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const READ_CHUNK: usize = 64 * 1024;
/// Queued chunks are merged into writes of up to about this size.
const COALESCE: usize = 256 * 1024;

/// Nanoseconds since a process-wide epoch, for an atomic timestamp.
fn stamp(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// The write side of a connection plus its tasks; dropping it aborts both.
#[derive(Debug)]
pub(crate) struct Link {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    pending: Arc<AtomicUsize>,
    progress: Arc<AtomicU64>,
    reader_task: JoinHandle<()>,
    writer_task: JoinHandle<()>,
}

impl Link {
    /// Starts the reader and writer of `stream`. Bytes read become
    /// `on_bytes(bytes)` inputs; the end of the stream (or a read or write
    /// error) becomes `on_eof()`.
    pub(crate) fn spawn<I, B, E>(
        stream: TcpStream,
        input: mpsc::Sender<I>,
        on_bytes: B,
        on_eof: E,
    ) -> Link
    where
        I: Send + 'static,
        B: Fn(Vec<u8>) -> I + Send + 'static,
        E: Fn() -> I + Send + Clone + 'static,
    {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let pending = Arc::new(AtomicUsize::new(0));
        let progress = Arc::new(AtomicU64::new(stamp(Instant::now())));
        let (writer, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();

        let reader_input = input.clone();
        let reader_eof = on_eof.clone();
        let reader_task = tokio::spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if reader_input
                            .send(on_bytes(buf[..n].to_vec()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            let _ = reader_input.send(reader_eof()).await;
        });

        let counter = Arc::clone(&pending);
        let moved = Arc::clone(&progress);
        let writer_task = tokio::spawn(async move {
            while let Some(mut chunk) = queue.recv().await {
                // Coalesce what else is queued into one write: under load a
                // peer gets few large writes instead of one per message.
                while chunk.len() < COALESCE {
                    match queue.try_recv() {
                        Ok(more) => chunk.extend_from_slice(&more),
                        Err(_) => break,
                    }
                }
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    match wr.write(rest).await {
                        Ok(n) if n > 0 => {
                            rest = &rest[n..];
                            counter.fetch_sub(n, Ordering::Relaxed);
                            moved.store(stamp(Instant::now()), Ordering::Relaxed);
                        }
                        _ => {
                            let _ = input.send(on_eof()).await;
                            return;
                        }
                    }
                }
            }
            let _ = wr.shutdown().await;
        });

        Link {
            writer,
            pending,
            progress,
            reader_task,
            writer_task,
        }
    }

    /// Queues `bytes`; `Err(backlog)` if the backlog would pass `limit`
    /// bytes (nothing is queued then).
    pub(crate) fn send(&self, bytes: Vec<u8>, limit: usize) -> Result<(), usize> {
        let len = bytes.len();
        let before = self.pending.fetch_add(len, Ordering::Relaxed);
        let backlog = before + len;
        if backlog > limit {
            self.pending.fetch_sub(len, Ordering::Relaxed);
            return Err(backlog);
        }
        if before == 0 {
            // An idle link starts its stall clock now.
            self.progress
                .store(stamp(Instant::now()), Ordering::Relaxed);
        }
        if self.writer.send(bytes).is_err() {
            // The writer is gone: the EOF input is on its way.
            self.pending.fetch_sub(len, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Link {
    /// Bytes queued but not yet written.
    pub(crate) fn backlog(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// How long a non-empty backlog has not moved; `None` if it is empty.
    pub(crate) fn stalled_for(&self, now: Instant) -> Option<Duration> {
        if self.backlog() == 0 {
            return None;
        }
        let last = self.progress.load(Ordering::Relaxed);
        Some(Duration::from_nanos(stamp(now).saturating_sub(last)))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader_task.abort();
        self.writer_task.abort();
    }
}

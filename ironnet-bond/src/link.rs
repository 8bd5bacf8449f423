//! One TCP connection's reader and writer tasks, shared by the server and
//! the client edges.
//!
//! The reader forwards what it reads into the owner's bounded input channel
//! (so a fast sender is slowed down by TCP flow control, not by memory). The
//! writer drains a channel whose backlog is counted in bytes: the owner
//! never waits on a peer, and a peer whose backlog passes the limit is
//! closed instead of stalling everyone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const READ_CHUNK: usize = 64 * 1024;

/// The write side of a connection plus its tasks; dropping it aborts both.
#[derive(Debug)]
pub(crate) struct Link {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    pending: Arc<AtomicUsize>,
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
        let writer_task = tokio::spawn(async move {
            while let Some(chunk) = queue.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    let _ = input.send(on_eof()).await;
                    return;
                }
                counter.fetch_sub(chunk.len(), Ordering::Relaxed);
            }
            let _ = wr.shutdown().await;
        });

        Link {
            writer,
            pending,
            reader_task,
            writer_task,
        }
    }

    /// Queues `bytes`; `Err(backlog)` if the backlog would pass `limit`
    /// bytes (nothing is queued then).
    pub(crate) fn send(&self, bytes: Vec<u8>, limit: usize) -> Result<(), usize> {
        let len = bytes.len();
        let backlog = self.pending.fetch_add(len, Ordering::Relaxed) + len;
        if backlog > limit {
            self.pending.fetch_sub(len, Ordering::Relaxed);
            return Err(backlog);
        }
        if self.writer.send(bytes).is_err() {
            // The writer is gone: the EOF input is on its way.
            self.pending.fetch_sub(len, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader_task.abort();
        self.writer_task.abort();
    }
}

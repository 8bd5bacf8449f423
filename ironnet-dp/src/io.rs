//! Packet I/O: the [`PortIo`] trait and its backends, memory (tests,
//! benchmarks) and TAP (Linux).
//!
//! A port receives whole Ethernet frames and sends them. Receiving is
//! async (a reader task per port feeds the worker); sending never waits:
//! a port that cannot take a frame right now drops it, as a NIC queue
//! would, and the worker counts it.

use std::future::Future;
use std::io;
use std::pin::Pin;

use ironnet_overlay::wire::MacAddr;
use tokio::sync::{Mutex, mpsc};

/// A boxed future, for the object-safe trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One port of the dp.
pub trait PortIo: Send + Sync + 'static {
    /// Waits for the next frame and copies it into `buf`; its length.
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>>;
    /// Sends a frame without waiting.
    fn try_send(&self, frame: &[u8]) -> io::Result<()>;
}

/// A port backed by channels: frames pushed with [`MemoryPortHandle::inject`]
/// are received; sent frames come out of [`MemoryPortHandle::sent`].
#[derive(Debug)]
pub struct MemoryPort {
    rx: Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

/// The far end of a [`MemoryPort`].
#[derive(Debug)]
pub struct MemoryPortHandle {
    inject: mpsc::UnboundedSender<Vec<u8>>,
    sent: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl MemoryPort {
    /// A port and its far end.
    pub fn pair() -> (MemoryPort, MemoryPortHandle) {
        let (inject, rx) = mpsc::unbounded_channel();
        let (tx, sent) = mpsc::unbounded_channel();
        (
            MemoryPort {
                rx: Mutex::new(rx),
                tx,
            },
            MemoryPortHandle { inject, sent },
        )
    }
}

impl MemoryPortHandle {
    /// Delivers a frame to the dp on this port.
    pub fn inject(&self, frame: Vec<u8>) {
        let _ = self.inject.send(frame);
    }

    /// The next frame the dp sent on this port.
    pub async fn sent(&mut self) -> Option<Vec<u8>> {
        self.sent.recv().await
    }

    /// A frame the dp sent, if one is waiting.
    pub fn try_sent(&mut self) -> Option<Vec<u8>> {
        self.sent.try_recv().ok()
    }
}

impl PortIo for MemoryPort {
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(async move {
            let frame = self
                .rx
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "port closed"))?;
            let n = frame.len().min(buf.len());
            buf[..n].copy_from_slice(&frame[..n]);
            Ok(n)
        })
    }

    fn try_send(&self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .send(frame.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "port closed"))
    }
}

/// A Linux TAP device the dp creates with the given name and MAC, as
/// dpservice does in TAP mode; a guest network namespace can take it over.
pub struct TapPort {
    dev: tun_rs::AsyncDevice,
    name: String,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort").field("name", &self.name).finish()
    }
}

impl TapPort {
    /// Creates (or fails on an existing) TAP device `name` with `mac`, up,
    /// MTU `mtu`. Needs CAP_NET_ADMIN and a tokio runtime.
    pub fn create(name: &str, mac: MacAddr, mtu: u16) -> io::Result<TapPort> {
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .layer(tun_rs::Layer::L2)
            .mac_addr(mac.octets())
            .mtu(mtu)
            .enable(true)
            .build_async()?;
        Ok(TapPort {
            dev,
            name: name.to_owned(),
        })
    }

    /// The netdev name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PortIo for TapPort {
    fn recv<'a>(&'a self, buf: &'a mut [u8]) -> BoxFuture<'a, io::Result<usize>> {
        Box::pin(self.dev.recv(buf))
    }

    fn try_send(&self, frame: &[u8]) -> io::Result<()> {
        self.dev.try_send(frame).map(|_| ())
    }
}

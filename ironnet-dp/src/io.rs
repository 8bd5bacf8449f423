//! Packet I/O: the [`PortIo`] trait and its backends, memory (tests,
//! benchmarks) and TAP (Linux).
//!
//! A port receives whole Ethernet frames and sends them, never waiting:
//! the worker asks every port for what is there (`try_recv` until
//! [`io::ErrorKind::WouldBlock`]), processes that batch, and only when no
//! port had anything does it wait for one to become readable. Sending never
//! waits either: a port that cannot take a frame right now drops it, as a
//! NIC queue would, and the worker counts it.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;

use ironnet_overlay::wire::MacAddr;
use tokio::sync::{Notify, mpsc};

/// A boxed future, for the object-safe trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One port of the dp.
pub trait PortIo: Send + Sync + 'static {
    /// Waits until a frame may be waiting (a later `try_recv` can still
    /// answer `WouldBlock`).
    fn readable(&self) -> BoxFuture<'_, io::Result<()>>;
    /// Copies the next waiting frame into `buf` and returns its length, or
    /// fails with [`io::ErrorKind::WouldBlock`] if none is waiting.
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends a frame without waiting.
    fn try_send(&self, frame: &[u8]) -> io::Result<()>;
    /// Whether every frame in both directions is preceded by a virtio-net
    /// header (`ironnet_overlay::offload::VnetHdr`): the port hands over
    /// and takes segmentation-offload frames and partial checksums.
    fn vnet_hdr(&self) -> bool {
        false
    }
}

/// A port backed by queues: frames pushed with [`MemoryPortHandle::inject`]
/// are received; sent frames come out of [`MemoryPortHandle::sent`].
#[derive(Debug)]
pub struct MemoryPort {
    inbox: std::sync::Arc<Inbox>,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    vnet_hdr: bool,
}

/// Frames waiting to be received by a [`MemoryPort`].
#[derive(Debug, Default)]
struct Inbox {
    frames: Mutex<VecDeque<Vec<u8>>>,
    ready: Notify,
}

/// The far end of a [`MemoryPort`].
#[derive(Debug)]
pub struct MemoryPortHandle {
    inbox: std::sync::Arc<Inbox>,
    sent: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl MemoryPort {
    /// A port and its far end.
    pub fn pair() -> (MemoryPort, MemoryPortHandle) {
        Self::pair_with(false)
    }

    /// A port whose frames carry a virtio-net header, like a TAP device
    /// with offloads, and its far end.
    pub fn pair_with_vnet_hdr() -> (MemoryPort, MemoryPortHandle) {
        Self::pair_with(true)
    }

    fn pair_with(vnet_hdr: bool) -> (MemoryPort, MemoryPortHandle) {
        let inbox = std::sync::Arc::new(Inbox::default());
        let (tx, sent) = mpsc::unbounded_channel();
        (
            MemoryPort {
                inbox: std::sync::Arc::clone(&inbox),
                tx,
                vnet_hdr,
            },
            MemoryPortHandle { inbox, sent },
        )
    }
}

impl MemoryPortHandle {
    /// Delivers a frame to the dp on this port.
    pub fn inject(&self, frame: Vec<u8>) {
        MemoryInjector {
            inbox: std::sync::Arc::clone(&self.inbox),
        }
        .inject(frame);
    }

    /// The next frame the dp sent on this port.
    pub async fn sent(&mut self) -> Option<Vec<u8>> {
        self.sent.recv().await
    }

    /// A frame the dp sent, if one is waiting.
    pub fn try_sent(&mut self) -> Option<Vec<u8>> {
        self.sent.try_recv().ok()
    }

    /// Splits the far end into a cloneable injector and the stream of
    /// sent frames, so one task can read while others inject.
    pub fn split(self) -> (MemoryInjector, mpsc::UnboundedReceiver<Vec<u8>>) {
        (MemoryInjector { inbox: self.inbox }, self.sent)
    }
}

/// The injecting half of a split [`MemoryPortHandle`].
#[derive(Debug, Clone)]
pub struct MemoryInjector {
    inbox: std::sync::Arc<Inbox>,
}

impl MemoryInjector {
    /// Delivers a frame to the dp on this port.
    pub fn inject(&self, frame: Vec<u8>) {
        if let Ok(mut q) = self.inbox.frames.lock() {
            q.push_back(frame);
        }
        self.inbox.ready.notify_one();
    }
}

impl PortIo for MemoryPort {
    fn readable(&self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            loop {
                let notified = self.inbox.ready.notified();
                if self
                    .inbox
                    .frames
                    .lock()
                    .map(|q| !q.is_empty())
                    .unwrap_or(false)
                {
                    return Ok(());
                }
                notified.await;
            }
        })
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let frame = self
            .inbox
            .frames
            .lock()
            .map_err(|_| io::Error::other("port poisoned"))?
            .pop_front()
            .ok_or(io::ErrorKind::WouldBlock)?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok(n)
    }

    fn try_send(&self, frame: &[u8]) -> io::Result<()> {
        self.tx
            .send(frame.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "port closed"))
    }

    fn vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }
}

/// A Linux TAP device the dp creates with the given name and MAC, as
/// dpservice does in TAP mode; a guest network namespace can take it over.
pub struct TapPort {
    dev: tun_rs::AsyncDevice,
    name: String,
    offload: bool,
}

impl std::fmt::Debug for TapPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapPort").field("name", &self.name).finish()
    }
}

impl TapPort {
    /// Creates (or fails on an existing) TAP device `name` with `mac`, up,
    /// MTU `mtu`. With `offload`, the device is opened with a virtio-net
    /// header (`IFF_VNET_HDR`) and checksum and TCP/UDP segmentation
    /// offloads (`TUNSETOFFLOAD`), so the kernel side may send large frames
    /// with partial checksums and takes them. Needs CAP_NET_ADMIN and a
    /// tokio runtime.
    pub fn create(name: &str, mac: MacAddr, mtu: u16, offload: bool) -> io::Result<TapPort> {
        let dev = tun_rs::DeviceBuilder::new()
            .name(name)
            .layer(tun_rs::Layer::L2)
            .mac_addr(mac.octets())
            .mtu(mtu)
            .offload(offload)
            .enable(true)
            .build_async()?;
        Ok(TapPort {
            dev,
            name: name.to_owned(),
            offload,
        })
    }

    /// The netdev name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PortIo for TapPort {
    fn readable(&self) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(self.dev.readable())
    }

    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.try_recv(buf)
    }

    fn try_send(&self, frame: &[u8]) -> io::Result<()> {
        self.dev.try_send(frame).map(|_| ())
    }

    fn vnet_hdr(&self) -> bool {
        self.offload
    }
}

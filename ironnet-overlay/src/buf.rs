//! A packet buffer with headroom, so headers can be pushed in front of a
//! packet and popped off it without moving the payload (what DPDK's mbuf
//! and the kernel's skb do).

use crate::wire::{Layer, WireError};

/// A window `start..end` of packet bytes inside a larger buffer `B`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketBuf<B> {
    buf: B,
    start: usize,
    end: usize,
}

fn no_room(needed: usize, available: usize) -> WireError {
    WireError::Truncated {
        layer: Layer::Buffer,
        needed,
        available,
    }
}

impl<B: AsRef<[u8]>> PacketBuf<B> {
    /// A packet of `len` bytes starting `headroom` bytes into `buf`.
    pub fn new(buf: B, headroom: usize, len: usize) -> Result<Self, WireError> {
        let total = buf.as_ref().len();
        let end = headroom
            .checked_add(len)
            .ok_or(no_room(usize::MAX, total))?;
        if end > total {
            return Err(no_room(end, total));
        }
        Ok(PacketBuf {
            buf,
            start: headroom,
            end,
        })
    }

    /// The packet bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf.as_ref()[self.start..self.end]
    }

    /// Packet length.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the packet is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free bytes in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    pub fn tailroom(&self) -> usize {
        self.buf.as_ref().len() - self.end
    }

    /// The whole buffer and the packet's window in it.
    pub fn into_parts(self) -> (B, usize, usize) {
        (self.buf, self.start, self.end)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PacketBuf<B> {
    /// The packet bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[self.start..self.end]
    }

    /// Grows the packet by `n` bytes at the front (from the headroom) and
    /// returns the whole packet; the new bytes hold whatever was there.
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        if n > self.start {
            return Err(no_room(n, self.start));
        }
        self.start -= n;
        Ok(self.data_mut())
    }

    /// Removes `n` bytes from the front.
    pub fn pull_front(&mut self, n: usize) -> Result<(), WireError> {
        if n > self.len() {
            return Err(no_room(n, self.len()));
        }
        self.start += n;
        Ok(())
    }

    /// Shortens the packet to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.end = self.start + len;
        }
    }

    /// Grows the packet by `n` bytes at the end (from the tailroom).
    pub fn extend_back(&mut self, n: usize) -> Result<&mut [u8], WireError> {
        if n > self.tailroom() {
            return Err(no_room(n, self.tailroom()));
        }
        self.end += n;
        Ok(self.data_mut())
    }
}

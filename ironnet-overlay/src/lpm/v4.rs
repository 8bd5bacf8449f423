//! IPv4 longest-prefix match: a multibit trie built in one pass by
//! controlled prefix expansion.
//!
//! Each level consumes a fixed number of address bits (its stride). An
//! entry is empty, a route (index + 1) or a pointer to a child chunk in the
//! next level. Routes are inserted shortest first: a route fills every entry
//! its prefix covers at the level where it ends, and a child chunk created
//! later inherits the entry it replaces. Because of that order a fill never
//! meets a child pointer, so building is a single pass.
//!
//! A lookup is one array read per level, at most 2 with strides 24-8, 3 with
//! 16-8-8 and 4 with 8-8-8-8; the cost does not depend on the number of
//! routes. Small tables use 8-bit roots (1 KiB) so that hundreds of per-VNI
//! tables stay cheap; large ones use a 16-bit root (256 KiB) to save a
//! level, and huge ones (internet-sized) a 24-bit root (64 MiB), where
//! nearly every lookup is a single read.

use std::net::Ipv4Addr;

const CHILD: u32 = 1 << 31;

/// Tables with more routes than this use the 16-8-8 layout.
const LARGE_TABLE: usize = 1024;

/// Tables with more routes than this use the 24-8 layout (DPDK's
/// DIR-24-8): a 64 MiB root that answers every prefix up to /24 in one
/// read. Below this size the root would cost more than the routes.
const HUGE_TABLE: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trie4 {
    strides: &'static [u32],
    /// `levels[0]` is the root; deeper levels are arenas of equal chunks.
    levels: Vec<Vec<u32>>,
}

fn index(addr: u32, consumed: u32, stride: u32) -> usize {
    let end = consumed + stride;
    ((u64::from(addr) >> (32 - end)) & ((1u64 << stride) - 1)) as usize
}

impl Trie4 {
    /// Builds the trie from `(prefix, len, value)` routes sorted by `len`
    /// ascending, with distinct canonical prefixes and values below 2^31 - 1.
    pub(crate) fn build(routes: &[(Ipv4Addr, u8, u32)]) -> Self {
        let strides: &'static [u32] = if routes.len() > HUGE_TABLE {
            &[24, 8]
        } else if routes.len() > LARGE_TABLE {
            &[16, 8, 8]
        } else {
            &[8, 8, 8, 8]
        };
        let mut levels: Vec<Vec<u32>> = strides.iter().map(|_| Vec::new()).collect();
        levels[0] = vec![0; 1 << strides[0]];
        for &(prefix, len, value) in routes {
            debug_assert!(value < CHILD - 1);
            let addr = u32::from(prefix);
            let len = u32::from(len.min(32));
            let leaf = value + 1;
            let mut level = 0;
            let mut base = 0usize;
            let mut consumed = 0u32;
            loop {
                let stride = strides[level];
                let end = consumed + stride;
                let idx = index(addr, consumed, stride);
                if len <= end {
                    let span = 1usize << (end - len);
                    let start = base + (idx & !(span - 1));
                    for entry in &mut levels[level][start..start + span] {
                        debug_assert_eq!(*entry & CHILD, 0, "routes must come shortest first");
                        *entry = leaf;
                    }
                    break;
                }
                let slot = levels[level][base + idx];
                let child = if slot & CHILD != 0 {
                    (slot & !CHILD) as usize
                } else {
                    let size = 1usize << strides[level + 1];
                    let next = &mut levels[level + 1];
                    let child = next.len() / size;
                    next.resize(next.len() + size, slot);
                    levels[level][base + idx] = CHILD | child as u32;
                    child
                };
                base = child << strides[level + 1];
                consumed = end;
                level += 1;
            }
        }
        Trie4 { strides, levels }
    }

    /// The value of the longest prefix containing `addr`.
    #[inline]
    pub(crate) fn lookup(&self, addr: Ipv4Addr) -> Option<u32> {
        let addr = u32::from(addr);
        let mut base = 0usize;
        let mut consumed = 0u32;
        for (level, &stride) in self.strides.iter().enumerate() {
            let entry = self.levels[level][base + index(addr, consumed, stride)];
            if entry & CHILD == 0 {
                return entry.checked_sub(1);
            }
            consumed += stride;
            base = ((entry & !CHILD) as usize) << self.strides.get(level + 1).copied().unwrap_or(0);
        }
        None
    }

    /// Looks up a batch level by level, so that the memory reads of
    /// different addresses overlap instead of waiting for each other.
    pub(crate) fn lookup_batch(&self, addrs: &[Ipv4Addr], out: &mut [Option<u32>]) {
        const LANES: usize = 32;
        for (addrs, out) in addrs.chunks(LANES).zip(out.chunks_mut(LANES)) {
            let n = addrs.len().min(out.len());
            let mut raw = [0u32; LANES];
            let mut entry = [0u32; LANES];
            let root = &self.levels[0];
            for i in 0..n {
                raw[i] = u32::from(addrs[i]);
                entry[i] = root[index(raw[i], 0, self.strides[0])];
            }
            let mut consumed = self.strides[0];
            for (level, &stride) in self.strides.iter().enumerate().skip(1) {
                let arena = &self.levels[level];
                let mut pending = false;
                for i in 0..n {
                    if entry[i] & CHILD != 0 {
                        let base = ((entry[i] & !CHILD) as usize) << stride;
                        entry[i] = arena[base + index(raw[i], consumed, stride)];
                        pending = true;
                    }
                }
                if !pending {
                    break;
                }
                consumed += stride;
            }
            for i in 0..n {
                out[i] = entry[i].checked_sub(1);
            }
        }
    }

    /// Heap bytes used by the trie.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 4).sum()
    }
}

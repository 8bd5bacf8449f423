//! Longest-prefix-match tables: a mutable [`LpmBuilder`] on the control
//! side, an immutable [`Lpm`] snapshot for lookups, and per-VNI sets of both
//! ([`VniTablesBuilder`], [`VniTables`]).
//!
//! The data plane never mutates a table it reads: the control side edits a
//! builder, builds a new snapshot and swaps it in whole. Building is bulk
//! and linear in the routes (plus the expanded entries); lookups take no
//! lock and cost the same for 10 or a million routes (see [`v4`] and [`v6`]
//! for the structures).

mod v4;
mod v6;
mod vni;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub use vni::{VniTables, VniTablesBuilder};

/// Routes by canonical prefix, editable; [`build`](Self::build) makes an
/// [`Lpm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LpmBuilder<T> {
    routes: BTreeMap<IpNet, T>,
}

impl<T> Default for LpmBuilder<T> {
    fn default() -> Self {
        LpmBuilder {
            routes: BTreeMap::new(),
        }
    }
}

impl<T: Clone> LpmBuilder<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value of `prefix` (host bits are cleared first) and returns
    /// the previous one.
    pub fn insert(&mut self, prefix: IpNet, value: T) -> Option<T> {
        self.routes.insert(prefix.trunc(), value)
    }

    /// Removes `prefix` and returns its value.
    pub fn remove(&mut self, prefix: IpNet) -> Option<T> {
        self.routes.remove(&prefix.trunc())
    }

    /// The value of exactly `prefix`.
    pub fn get(&self, prefix: IpNet) -> Option<&T> {
        self.routes.get(&prefix.trunc())
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &T)> + '_ {
        self.routes.iter().map(|(p, v)| (*p, v))
    }

    /// Builds the immutable lookup structure.
    pub fn build(&self) -> Lpm<T> {
        let mut entries = Vec::with_capacity(self.routes.len());
        let mut v4: Vec<(Ipv4Addr, u8, u32)> = Vec::new();
        let mut v6: Vec<(Ipv6Addr, u8, u32)> = Vec::new();
        for (prefix, value) in &self.routes {
            let idx = entries.len() as u32;
            match prefix {
                IpNet::V4(n) => v4.push((n.network(), n.prefix_len(), idx)),
                IpNet::V6(n) => v6.push((n.network(), n.prefix_len(), idx)),
            }
            entries.push((*prefix, value.clone()));
        }
        v4.sort_by_key(|r| r.1);
        Lpm {
            v4: v4::Trie4::build(&v4),
            v6: v6::Hash6::build(&v6),
            entries,
        }
    }
}

impl<T: Clone> FromIterator<(IpNet, T)> for LpmBuilder<T> {
    fn from_iter<I: IntoIterator<Item = (IpNet, T)>>(iter: I) -> Self {
        let mut builder = LpmBuilder::new();
        for (prefix, value) in iter {
            builder.insert(prefix, value);
        }
        builder
    }
}

/// An immutable longest-prefix-match table for IPv4 and IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lpm<T> {
    v4: v4::Trie4,
    v6: v6::Hash6,
    /// Route index → (prefix, value).
    entries: Vec<(IpNet, T)>,
}

impl<T> Lpm<T> {
    fn entry(&self, idx: Option<u32>) -> Option<(IpNet, &T)> {
        let (prefix, value) = self.entries.get(idx? as usize)?;
        Some((*prefix, value))
    }

    /// The longest prefix containing `addr` and its value.
    #[inline]
    pub fn lookup_v4(&self, addr: Ipv4Addr) -> Option<(IpNet, &T)> {
        self.entry(self.v4.lookup(addr))
    }

    /// The longest prefix containing `addr` and its value.
    #[inline]
    pub fn lookup_v6(&self, addr: Ipv6Addr) -> Option<(IpNet, &T)> {
        self.entry(self.v6.lookup(addr))
    }

    /// The longest prefix containing `addr` and its value.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNet, &T)> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// Looks up many IPv4 addresses at once (faster than one by one on big
    /// tables: the memory reads overlap). `out[i]` answers `addrs[i]`; extra
    /// slots on either side are left alone.
    pub fn lookup_v4_batch<'a>(&'a self, addrs: &[Ipv4Addr], out: &mut [Option<(IpNet, &'a T)>]) {
        let mut idx = [None; 32];
        for (addrs, out) in addrs.chunks(32).zip(out.chunks_mut(32)) {
            let n = addrs.len().min(out.len());
            self.v4.lookup_batch(&addrs[..n], &mut idx[..n]);
            for (o, i) in out.iter_mut().zip(&idx[..n]) {
                *o = self.entry(*i);
            }
        }
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes of the IPv4 lookup structure.
    pub fn v4_heap_bytes(&self) -> usize {
        self.v4.heap_bytes()
    }
}

#[cfg(test)]
mod tests;

//! IPv6 longest-prefix match: one hash table per distinct prefix length,
//! probed from the longest length down.
//!
//! A lookup costs one hash probe per distinct prefix length in the table,
//! independent of the number of routes. IronCore's tables use few lengths
//! (/128 interface addresses, /64 and similar alias prefixes, the /0
//! default), so this stays at a handful of probes; a table using all 129
//! lengths would pay 129 probes and would want a trie instead.

use std::net::Ipv6Addr;

use rustc_hash::FxHashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Hash6 {
    /// (mask, prefix → value), longest prefix length first.
    by_len: Vec<(u128, FxHashMap<u128, u32>)>,
}

fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len.min(128))),
    }
}

impl Hash6 {
    /// Builds the table from `(prefix, len, value)` routes with distinct
    /// canonical prefixes, in any order.
    pub(crate) fn build(routes: &[(Ipv6Addr, u8, u32)]) -> Self {
        let mut lens: Vec<u8> = routes.iter().map(|r| r.1.min(128)).collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        lens.dedup();
        let mut by_len: Vec<(u128, FxHashMap<u128, u32>)> = lens
            .iter()
            .map(|&l| (mask(l), FxHashMap::default()))
            .collect();
        for &(prefix, len, value) in routes {
            let len = len.min(128);
            if let Ok(pos) = lens.binary_search_by(|probe| len.cmp(probe)) {
                let (m, map) = &mut by_len[pos];
                map.insert(u128::from(prefix) & *m, value);
            }
        }
        Hash6 { by_len }
    }

    /// The value of the longest prefix containing `addr`.
    #[inline]
    pub(crate) fn lookup(&self, addr: Ipv6Addr) -> Option<u32> {
        let addr = u128::from(addr);
        self.by_len
            .iter()
            .find_map(|(m, map)| map.get(&(addr & m)).copied())
    }
}

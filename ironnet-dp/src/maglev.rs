//! Maglev consistent hashing for load balancers (Eisenbud et al., NSDI
//! 2016): every flow of a load balancer hashes to one slot of a lookup
//! table, and the slot names the target.
//!
//! - The table has [`TABLE_SIZE`] = 65 537 slots (a prime); targets are
//!   underlay IPv6 addresses kept sorted by their bytes, at most
//!   [`MAX_TARGETS`].
//! - Each target's preference list is `(offset + j * skip) % M` with
//!   `offset = murmur2(address) % M` (MurmurHash2, seed 0, the 16 address
//!   bytes as little-endian words) and `skip = djb(address) % (M - 1) + 1`,
//!   where `djb` is Bernstein's hash (`h * 33 + byte` from 5381) over all
//!   16 address bytes with bit 31 cleared: dpservice's hash functions.
//! - Targets take turns claiming their next free preferred slot until the
//!   table is full, so each owns M/N slots, rounded up or down.
//! - A flow's slot is [`flow_hash`] modulo M. A flow keeps its target as
//!   long as the target set does not change.
//!
//! Two differences from dpservice, both on purpose:
//! - dpservice's table has 503 slots. With 40 targets, adding one then
//!   moves on average 3.56 times the minimum share of flows (worst 4.81).
//!   The Maglev paper asks for M much larger than N. At 65 537 slots the
//!   mean is 1.17 times the minimum (worst 1.25), and 1.31 at 63 targets.
//!   The cost is 64 KiB per load balancer. Figures from
//!   `cargo bench -p ironnet-dp --bench maglev_survey`, 200 random target
//!   sets per row.
//! - dpservice runs `djb` over the address as a C string, stopping at the
//!   first zero byte. So every `fc00::/16` underlay address (`fc 00 …`)
//!   gets the same skip. Hashing all 16 bytes gives distinct permutations.
//!
//! Which slot a flow uses is not on any wire (dpservice hashes its
//! internal flow key with jhash), so nothing depends on dpservice's exact
//! table.

use std::net::Ipv6Addr;

/// Slots in a lookup table.
pub const TABLE_SIZE: usize = 65537;
/// Targets per load balancer at most (dpservice's limit).
pub const MAX_TARGETS: usize = 64;

/// MurmurHash2 (32-bit, seed 0) of 16 bytes.
pub fn murmur2(bytes: &[u8; 16]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 16;
    for word in bytes.chunks_exact(4) {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// Bernstein's hash (`h * 33 + byte` from 5381) over the 16 bytes, bit 31
/// cleared.
pub fn djb(bytes: &[u8; 16]) -> u32 {
    let h = bytes.iter().fold(5381u32, |h, b| {
        h.wrapping_mul(33).wrapping_add(u32::from(*b))
    });
    h & !(1 << 31)
}

/// The hash that picks a flow's slot: 64-bit FNV-1a over the VNI (4 bytes,
/// big-endian), the protocol (1 byte), the source and destination
/// addresses (16 bytes each, IPv4 as IPv4-mapped IPv6) and the source and
/// destination ports or ICMP identifier (2 bytes each, big-endian), in
/// that order. Every packet of a flow gives the same value.
pub fn flow_hash(
    vni: u32,
    protocol: u8,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    src_port: u16,
    dst_port: u16,
) -> u64 {
    let v6 = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(a) => a.octets(),
    };
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&vni.to_be_bytes());
    eat(&[protocol]);
    eat(&v6(src));
    eat(&v6(dst));
    eat(&src_port.to_be_bytes());
    eat(&dst_port.to_be_bytes());
    h
}

/// A load balancer's targets and lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maglev {
    targets: Vec<Ipv6Addr>,
    /// Slot → index into `targets`.
    table: Vec<u8>,
}

impl Maglev {
    /// The table for `targets` (duplicates ignored; at most
    /// [`MAX_TARGETS`] are used, the lowest addresses).
    pub fn new(targets: impl IntoIterator<Item = Ipv6Addr>) -> Self {
        Self::with_size(targets, TABLE_SIZE)
    }

    /// The same with a table of `size` slots (a prime, at least 2), to
    /// compare sizes; the data plane uses [`Maglev::new`].
    pub fn with_size(targets: impl IntoIterator<Item = Ipv6Addr>, size: usize) -> Self {
        let mut targets: Vec<Ipv6Addr> = targets.into_iter().collect();
        targets.sort_by_key(|a| a.octets());
        targets.dedup();
        targets.truncate(MAX_TARGETS);
        let table = populate(&targets, size.max(2));
        Maglev { targets, table }
    }

    /// The targets, sorted by address bytes.
    pub fn targets(&self) -> &[Ipv6Addr] {
        &self.targets
    }

    /// Slot → target index; empty without targets.
    pub fn table(&self) -> &[u8] {
        &self.table
    }

    /// The target of a flow that hashes to `hash`.
    pub fn target(&self, hash: u64) -> Option<Ipv6Addr> {
        if self.table.is_empty() {
            return None;
        }
        let slot = (hash % self.table.len() as u64) as usize;
        let index = *self.table.get(slot)?;
        self.targets.get(usize::from(index)).copied()
    }
}

fn populate(targets: &[Ipv6Addr], size: usize) -> Vec<u8> {
    if targets.is_empty() {
        return Vec::new();
    }
    let prefs: Vec<(usize, usize)> = targets
        .iter()
        .map(|t| {
            let b = t.octets();
            let offset = murmur2(&b) as usize % size;
            let skip = djb(&b) as usize % (size - 1) + 1;
            (offset, skip)
        })
        .collect();
    const FREE: u8 = u8::MAX;
    let mut table = vec![FREE; size];
    let mut next = vec![0usize; targets.len()];
    let mut filled = 0;
    'fill: loop {
        let mut progressed = false;
        for (i, &(offset, skip)) in prefs.iter().enumerate() {
            while next[i] < size {
                let slot = (offset + next[i] * skip) % size;
                next[i] += 1;
                if table[slot] == FREE {
                    table[slot] = i as u8;
                    filled += 1;
                    progressed = true;
                    if filled == size {
                        break 'fill;
                    }
                    break;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    // Every preference list covers all slots (the size is prime), so this
    // never happens; dpservice fills leftovers the same way.
    for (slot, entry) in table.iter_mut().enumerate() {
        if *entry == FREE {
            *entry = (slot % targets.len()) as u8;
        }
    }
    table
}

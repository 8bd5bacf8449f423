//! Allocate+release throughput and memory of `IpPool` beside a naive
//! `BTreeSet` allocator, measured in the same process.
//!
//! Run: `cargo bench -p ironnet-alloc --bench alloc_bench`
//!
//! Each scenario fills a pool to a given fraction with addresses scattered
//! at random, then repeats: allocate the lowest free address, release a
//! randomly chosen held one (so the fill stays constant). Both allocators
//! answer the same questions (lowest free address); the naive one walks its
//! sorted set for the first gap. For the IPv6 /64, "fill" is the density of
//! the region allocations occupy (the lowest 65,536 addresses), since a /64
//! itself can never be 50 % full.
#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::System;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use cap::Cap;
use ipnet::IpNet;
use ironnet_alloc::IpPool;

/// Counts live heap bytes so memory use can be reported.
#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

trait Allocator {
    fn allocate(&mut self) -> u128;
    fn claim(&mut self, v: u128) -> bool;
    fn release(&mut self, v: u128);
}

struct Ironnet {
    pool: IpPool,
    v6: bool,
}

fn addr(v6: bool, v: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(v.into())
    } else {
        IpAddr::V4((v as u32).into())
    }
}

fn value(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

impl Allocator for Ironnet {
    fn allocate(&mut self) -> u128 {
        value(self.pool.allocate().unwrap())
    }
    fn claim(&mut self, v: u128) -> bool {
        self.pool.claim(addr(self.v6, v)).is_ok()
    }
    fn release(&mut self, v: u128) {
        self.pool.release(addr(self.v6, v)).unwrap();
    }
}

/// The obvious allocator: a sorted set, scanned for the first gap.
struct Naive {
    base: u128,
    taken: BTreeSet<u128>,
}

impl Allocator for Naive {
    fn allocate(&mut self) -> u128 {
        let mut next = self.base;
        for &v in &self.taken {
            if v != next {
                break;
            }
            next += 1;
        }
        self.taken.insert(next);
        next
    }
    fn claim(&mut self, v: u128) -> bool {
        self.taken.insert(v)
    }
    fn release(&mut self, v: u128) {
        assert!(self.taken.remove(&v));
    }
}

struct Figures {
    pairs_per_sec: f64,
    bytes: usize,
}

/// Fills `alloc` to `fill` of `window` addresses from `base`, then runs
/// allocate+release pairs for about `budget`.
fn run(
    mut make: impl FnMut() -> Box<dyn Allocator>,
    base: u128,
    window: u128,
    fill: f64,
    budget: Duration,
) -> Figures {
    let before = HEAP.allocated();
    let mut alloc = make();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let target = (window as f64 * fill) as usize;
    let mut held = Vec::with_capacity(target + 1);
    while held.len() < target {
        let v = base + u128::from(rng.next()) % window;
        if alloc.claim(v) {
            held.push(v);
        }
    }
    let bytes = HEAP.allocated() - before - held.capacity() * 16;
    let mut pairs = 0u64;
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..1000 {
            let v = alloc.allocate();
            held.push(v);
            let i = (rng.next() % held.len() as u64) as usize;
            let gone = held.swap_remove(i);
            alloc.release(gone);
        }
        pairs += 1000;
    }
    let secs = start.elapsed().as_secs_f64();
    Figures {
        pairs_per_sec: pairs as f64 / secs,
        bytes,
    }
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(400),
    );
    println!("allocate+release pairs per second, ironnet IpPool vs naive BTreeSet (same process)");
    println!(
        "{:<10} {:>5} {:>14} {:>14} {:>8} {:>12} {:>12}",
        "pool", "fill", "ironnet/s", "naive/s", "ratio", "ironnet B", "naive B"
    );
    let cases: [(&str, &str, u128); 2] = [
        ("v4 /16", "10.0.0.0/16", 1 << 16),
        ("v6 /64", "fd00::/64", 1 << 16),
    ];
    for (name, prefix, window) in cases {
        let net: IpNet = prefix.parse().unwrap();
        let v6 = matches!(net, IpNet::V6(_));
        let base = value(net.network());
        for fill in [0.0, 0.5, 0.99] {
            let ours = run(
                || {
                    Box::new(Ironnet {
                        pool: IpPool::new([net]).unwrap(),
                        v6,
                    })
                },
                base,
                window,
                fill,
                budget,
            );
            let naive = run(
                || {
                    Box::new(Naive {
                        base,
                        taken: BTreeSet::new(),
                    })
                },
                base,
                window,
                fill,
                budget,
            );
            println!(
                "{:<10} {:>4.0}% {:>14.0} {:>14.0} {:>7.1}x {:>12} {:>12}",
                name,
                fill * 100.0,
                ours.pairs_per_sec,
                naive.pairs_per_sec,
                ours.pairs_per_sec / naive.pairs_per_sec,
                ours.bytes,
                naive.bytes
            );
        }
    }
}

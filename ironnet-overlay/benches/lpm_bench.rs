//! IPv4 longest-prefix-match lookups per second: ironnet's `Lpm` (one by
//! one and batched) beside `prefix_trie::PrefixMap` holding the same
//! routes, measured in the same process.
//!
//! Run: `cargo bench -p ironnet-overlay --bench lpm_bench`
//!
//! Routes are random: half /24, the rest of uniform length 8..=32, plus a
//! default route. Lookup addresses are drawn inside random routes (so deep
//! trie levels are exercised), shuffled, 1M of them.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use ironnet_overlay::LpmBuilder;
use prefix_trie::PrefixMap;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs `f` (which does `per_call` lookups) repeatedly for about `budget`;
/// returns lookups per second.
fn rate(budget: Duration, per_call: usize, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    let mut sink = 0u64;
    while start.elapsed() < budget {
        sink = sink.wrapping_add(f());
        calls += 1;
    }
    black_box(sink);
    (calls * per_call as u64) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = support::budget();
    println!("IPv4 LPM lookups per second, ironnet Lpm vs prefix_trie::PrefixMap (same process)");
    println!(
        "{:>9} {:>10} {:>13} {:>13} {:>13} {:>8} {:>8} {:>11}",
        "routes",
        "build ms",
        "ironnet/s",
        "batch/s",
        "prefix-trie/s",
        "ratio",
        "batch",
        "trie bytes"
    );
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for count in [10usize, 10_000, 1_000_000] {
        let mut routes: Vec<Ipv4Net> = vec!["0.0.0.0/0".parse().unwrap()];
        while routes.len() < count {
            let r = rng.next();
            let len = if r & 1 == 0 {
                24
            } else {
                8 + ((r >> 1) % 25) as u8
            };
            let addr = Ipv4Addr::from((r >> 32) as u32);
            routes.push(Ipv4Net::new(addr, len).unwrap().trunc());
        }
        let mut builder = LpmBuilder::new();
        let mut trie: PrefixMap<Ipv4Net, u32> = PrefixMap::new();
        for (i, r) in routes.iter().enumerate() {
            builder.insert(IpNet::V4(*r), i as u32);
            trie.insert(*r, i as u32);
        }
        let t = Instant::now();
        let lpm = builder.build();
        let build_ms = t.elapsed().as_secs_f64() * 1e3;

        let addrs: Vec<Ipv4Addr> = (0..1_000_000)
            .map(|_| {
                let r = routes[(rng.next() % routes.len() as u64) as usize];
                let host = (rng.next() as u32) & !u32::from(r.netmask());
                Ipv4Addr::from(u32::from(r.network()) | host)
            })
            .collect();
        // Both answer the same question.
        for a in addrs.iter().take(10_000) {
            let ours = lpm.lookup(IpAddr::V4(*a)).map(|(p, v)| (p, *v));
            let theirs = trie
                .get_lpm(&Ipv4Net::new(*a, 32).unwrap())
                .map(|(p, v)| (IpNet::V4(p), *v));
            assert_eq!(ours, theirs);
        }

        let single = rate(budget, addrs.len(), || {
            addrs
                .iter()
                .map(|a| lpm.lookup_v4(*a).map_or(0, |(_, v)| u64::from(*v)))
                .sum()
        });
        let mut out = vec![None; 256];
        let batch = rate(budget, addrs.len(), || {
            let mut sum = 0u64;
            for chunk in addrs.chunks(256) {
                lpm.lookup_v4_batch(chunk, &mut out);
                sum += out[..chunk.len()]
                    .iter()
                    .map(|o| o.map_or(0, |(_, v)| u64::from(*v)))
                    .sum::<u64>();
            }
            sum
        });
        let keys: Vec<Ipv4Net> = addrs
            .iter()
            .map(|a| Ipv4Net::new(*a, 32).unwrap())
            .collect();
        let baseline = rate(budget, keys.len(), || {
            keys.iter()
                .map(|k| trie.get_lpm(k).map_or(0, |(_, v)| u64::from(*v)))
                .sum()
        });
        println!(
            "{:>9} {:>10.1} {:>13.0} {:>13.0} {:>13.0} {:>7.1}x {:>7.1}x {:>11}",
            count,
            build_ms,
            single,
            batch,
            baseline,
            single / baseline,
            batch / baseline,
            lpm.v4_heap_bytes()
        );
    }
}

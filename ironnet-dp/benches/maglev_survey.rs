//! How many flows move when a load balancer gains one target, as a multiple
//! of the minimum (the new target's share), for the table size in use and
//! for dpservice's 503: the figures in `ironnet_dp::maglev`'s
//! documentation. Each table size uses its own Maglev fill with the same
//! hash functions. `cargo bench -p ironnet-dp --bench maglev_survey`
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ironnet_dp::maglev::{Maglev, TABLE_SIZE, djb, murmur2};

fn target(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfc00, 0x1, 0, 0, 0xd000, 0x5a, i >> 8, i & 0xff)
}

/// A Maglev table of `size` slots (the algorithm of `Maglev::new`).
fn table(targets: &[Ipv6Addr], size: usize) -> Vec<Ipv6Addr> {
    let prefs: Vec<(usize, usize)> = targets
        .iter()
        .map(|t| {
            let b = t.octets();
            (
                murmur2(&b) as usize % size,
                djb(&b) as usize % (size - 1) + 1,
            )
        })
        .collect();
    let mut slots: Vec<Option<Ipv6Addr>> = vec![None; size];
    let mut next = vec![0usize; targets.len()];
    let mut filled = 0;
    while filled < size {
        for (i, &(offset, skip)) in prefs.iter().enumerate() {
            loop {
                let s = (offset + next[i] * skip) % size;
                next[i] += 1;
                if slots[s].is_none() {
                    slots[s] = Some(targets[i]);
                    filled += 1;
                    break;
                }
            }
            if filled == size {
                break;
            }
        }
    }
    slots.into_iter().map(|s| s.unwrap()).collect()
}

fn main() {
    let mut rng = 12345u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // The fill here must be Maglev::new's.
    let check: Vec<Ipv6Addr> = (0..7).map(target).collect();
    let m = Maglev::new(check.clone());
    let ours: Vec<Ipv6Addr> = m
        .table()
        .iter()
        .map(|&i| m.targets()[usize::from(i)])
        .collect();
    assert_eq!(ours, table(&check, TABLE_SIZE));

    println!("flows moved when one target is added, as a multiple of the new target's share");
    println!(
        "{:>8} {:>10} {:>8} {:>8}",
        "targets", "table", "mean", "worst"
    );
    for size in [503, TABLE_SIZE] {
        for n in [2usize, 5, 10, 20, 40, 63] {
            let (mut worst, mut sum, mut runs) = (0.0f64, 0.0, 0);
            for _ in 0..200 {
                let ids: BTreeSet<u16> = (0..n).map(|_| next() as u16).collect();
                let extra = next() as u16;
                if ids.contains(&extra) {
                    continue;
                }
                let before: Vec<Ipv6Addr> = ids.iter().map(|&i| target(i)).collect();
                let mut after = before.clone();
                after.push(target(extra));
                after.sort_by_key(|a| a.octets());
                let (a, b) = (table(&before, size), table(&after, size));
                let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
                let r = moved as f64 / (size as f64 / after.len() as f64);
                worst = worst.max(r);
                sum += r;
                runs += 1;
            }
            println!(
                "{:>8} {:>10} {:>8.2} {:>8.2}",
                n,
                size,
                sum / f64::from(runs),
                worst
            );
        }
    }
}

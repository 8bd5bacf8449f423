//! How many flows move when a load balancer gains one target, as a multiple
//! of the minimum (the new target's share), for the table size in use and
//! for dpservice's 503 (`Maglev::with_size`): the figures in
//! `ironnet_dp::maglev`'s documentation.
//! `cargo bench -p ironnet-dp --bench maglev_survey`
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ironnet_dp::maglev::{Maglev, TABLE_SIZE};

fn target(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfc00, 0x1, 0, 0, 0xd000, 0x5a, i >> 8, i & 0xff)
}

/// Slot → target of a table of `size` slots.
fn table(targets: &[Ipv6Addr], size: usize) -> Vec<Ipv6Addr> {
    let m = Maglev::with_size(targets.iter().copied(), size);
    m.table()
        .iter()
        .map(|&i| m.targets()[usize::from(i)])
        .collect()
}

fn main() {
    let mut rng = 12345u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
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

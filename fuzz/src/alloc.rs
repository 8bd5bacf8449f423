//! Harnesses for `ironnet-alloc`: operation sequences checked against
//! `BTreeSet`/`BTreeMap` models.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use ipnet::IpNet;
use ironnet_alloc::{
    AllocError, IpPool, IpPoolBuilder, NatPortAllocator, NatSection, PortsPerInterface, SlotPool,
    UnderlayAllocator, VniAllocator, VniRange,
};

/// One operation on an allocator; values are small indices mapped onto the
/// allocator's domain so that collisions are frequent.
#[derive(Debug, Arbitrary)]
enum Op {
    Allocate,
    AllocateNear(u16),
    AllocateRandom(u128),
    Claim(u16),
    Release(u16),
    Rebuild,
}

fn ops(u: &mut Unstructured<'_>) -> Vec<Op> {
    let mut out = Vec::new();
    while out.len() < 512 && !u.is_empty() {
        match Op::arbitrary(u) {
            Ok(op) => out.push(op),
            Err(_) => break,
        }
    }
    out
}

/// Picks an address near the pool: mostly inside, sometimes just outside.
fn candidate(prefixes: &[IpNet], pick: u16) -> IpAddr {
    let net = prefixes[usize::from(pick) % prefixes.len()];
    let off = u128::from(pick / 4);
    match net.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(off as u32))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(off))),
    }
}

/// A pool description and the addresses it reserves.
fn ip_builder(u: &mut Unstructured<'_>) -> arbitrary::Result<(IpPoolBuilder, BTreeSet<IpAddr>)> {
    let v6: bool = u.arbitrary()?;
    let mut builder = IpPoolBuilder::new();
    let mut reserved = BTreeSet::new();
    let count = u.int_in_range(1..=3)?;
    for i in 0..count {
        let net: IpNet = if v6 {
            // /64 and /100 are sparse (over 2^24 addresses), /104 is the
            // largest dense size, /120 and up are small dense ones.
            let len = *u.choose(&[64u8, 100, 104, 120, 124, 126, 127])?;
            let base = (0xfd00u128 << 112) | (u128::from(i as u8) << 64);
            IpNet::new(IpAddr::V6(Ipv6Addr::from(base)), len)
                .map_err(|_| arbitrary::Error::IncorrectFormat)?
        } else {
            // /8 is the largest dense pool (2^24 addresses).
            let len = *u.choose(&[8u8, 24, 26, 28, 30, 31])?;
            let base = u32::from(10 + 20 * i as u8) << 24;
            IpNet::new(IpAddr::V4(Ipv4Addr::from(base)), len)
                .map_err(|_| arbitrary::Error::IncorrectFormat)?
        };
        builder = builder.prefix(net);
        if u.arbitrary()? {
            // Reserve the first 1, 2 or 4 addresses of the prefix.
            let width = *u.choose(&[0u8, 1, 2])?;
            let max_len = if v6 { 128 } else { 32 };
            let range = IpNet::new(net.network(), max_len - width)
                .map_err(|_| arbitrary::Error::IncorrectFormat)?;
            builder = builder.reserve(range);
            reserved.extend(range.hosts().chain([range.network(), range.broadcast()]));
        }
    }
    Ok((builder, reserved))
}

/// IP pool against a set model.
pub fn ip_pool(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((builder, reserved)) = ip_builder(&mut u) else {
        return;
    };
    let Ok(mut pool) = builder.build() else {
        return;
    };
    let prefixes = pool.prefixes().to_vec();
    let capacity = pool.capacity();
    let mut model: BTreeSet<IpAddr> = BTreeSet::new();
    for op in ops(&mut u) {
        let got = match op {
            Op::Allocate => pool.allocate(),
            Op::AllocateNear(p) => pool.allocate_near(candidate(&prefixes, p)),
            Op::AllocateRandom(r) => pool.allocate_random(r),
            Op::Claim(p) => {
                let addr = candidate(&prefixes, p);
                let expect_ok =
                    pool.contains(addr) && !reserved.contains(&addr) && !model.contains(&addr);
                let res = pool.claim(addr);
                assert_eq!(res.is_ok(), expect_ok, "claim {addr}: {res:?}");
                if expect_ok {
                    model.insert(addr);
                }
                continue;
            }
            Op::Release(p) => {
                let addr = candidate(&prefixes, p);
                let res = pool.release(addr);
                assert_eq!(res.is_ok(), model.remove(&addr), "release {addr}: {res:?}");
                continue;
            }
            Op::Rebuild => {
                let rebuilt =
                    IpPool::rebuild(&builder, model.iter().copied()).expect("config was valid");
                assert!(rebuilt.conflicts.is_empty());
                assert_eq!(rebuilt.allocator, pool);
                continue;
            }
        };
        match got {
            Ok(addr) => {
                assert!(pool.contains(addr) && !reserved.contains(&addr));
                assert!(model.insert(addr), "{addr} handed out twice");
            }
            Err(AllocError::Exhausted(_)) => assert_eq!(model.len() as u128, capacity),
            Err(e) => panic!("unexpected error {e}"),
        }
        assert_eq!(pool.allocated_count(), model.len() as u128);
    }
    if model.len() < 10_000 {
        assert_eq!(pool.allocations(), model.into_iter().collect::<Vec<_>>());
    }
}

/// VNI allocator against a set model, on a small range.
pub fn vni(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(min), Ok(span)) = (u.int_in_range(0u32..=1000), u.int_in_range(1u32..=300)) else {
        return;
    };
    let Ok(range) = VniRange::new(min, min + span) else {
        return;
    };
    let mut alloc = VniAllocator::new(range);
    let mut model = BTreeSet::new();
    let pick = |p: u16| min.saturating_sub(5) + u32::from(p) % (span + 10);
    for op in ops(&mut u) {
        let got = match op {
            Op::Allocate | Op::AllocateNear(_) => alloc.allocate(),
            Op::AllocateRandom(r) => alloc.allocate_random(r),
            Op::Claim(p) => {
                let v = pick(p);
                let ok = range.contains(v) && !model.contains(&v);
                assert_eq!(alloc.claim(v).is_ok(), ok);
                if ok {
                    model.insert(v);
                }
                continue;
            }
            Op::Release(p) => {
                let v = pick(p);
                assert_eq!(alloc.release(v).is_ok(), model.remove(&v));
                continue;
            }
            Op::Rebuild => {
                let rebuilt = VniAllocator::rebuild(range, model.iter().copied());
                assert!(rebuilt.conflicts.is_empty());
                assert_eq!(rebuilt.allocator, alloc);
                continue;
            }
        };
        match got {
            Ok(v) => assert!(range.contains(v) && model.insert(v)),
            Err(AllocError::Exhausted(_)) => assert_eq!(model.len() as u32, span + 1),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(alloc.allocations(), model.into_iter().collect::<Vec<_>>());
}

/// NAT port sections against a map model; holders are small integers.
pub fn nat(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(shift) = u.int_in_range(8u32..=15) else {
        return;
    };
    let Ok(ports) = PortsPerInterface::new(1 << shift) else {
        return;
    };
    let ips: Vec<IpAddr> = (1..=3u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    let mut alloc: NatPortAllocator<u16> = NatPortAllocator::new(ports);
    for ip in &ips[..2] {
        alloc.add_ip(*ip).expect("distinct IPs");
    }
    let mut model: BTreeMap<u16, NatSection> = BTreeMap::new();
    for op in ops(&mut u) {
        match op {
            Op::Allocate | Op::AllocateNear(_) | Op::AllocateRandom(_) => {
                let holder = (model.len() as u16).wrapping_mul(7);
                match alloc.allocate(holder) {
                    Ok(section) => {
                        if let Some(prev) = model.get(&holder) {
                            assert_eq!(*prev, section, "allocate is idempotent");
                        } else {
                            assert!(
                                model.values().all(|s| *s != section),
                                "section handed out twice"
                            );
                            assert_eq!(
                                u32::from(section.last_port - section.first_port) + 1,
                                ports.get()
                            );
                            assert!(section.first_port >= 1024);
                            model.insert(holder, section);
                        }
                    }
                    Err(AllocError::Exhausted(_)) => assert_eq!(model.len(), alloc.capacity()),
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            Op::Claim(p) => {
                let ip = ips[usize::from(p) % 3];
                let first = 1024u32 + u32::from(p / 3) % 70 * ports.get() / 2;
                let Ok(first_port) = u16::try_from(first) else {
                    continue;
                };
                let Ok(last_port) = u16::try_from(first + ports.get() - 1) else {
                    continue;
                };
                let section = NatSection {
                    ip,
                    first_port,
                    last_port,
                };
                let holder = p % 64;
                let on_grid = ips[..2].contains(&ip)
                    && (first - 1024).is_multiple_of(ports.get())
                    && (first - 1024) / ports.get() < ports.sections_per_ip();
                let free = !model.values().any(|s| *s == section);
                let expect = match model.get(&holder) {
                    Some(held) => on_grid && *held == section,
                    None => on_grid && free,
                };
                assert_eq!(
                    alloc.claim(holder, section).is_ok(),
                    expect,
                    "claim {section:?}"
                );
                if expect {
                    model.insert(holder, section);
                }
            }
            Op::Release(p) => {
                let holder = p % 64;
                assert_eq!(alloc.release(&holder).ok(), model.remove(&holder));
            }
            Op::Rebuild => {
                let rebuilt = NatPortAllocator::rebuild(
                    ports,
                    alloc.ips(),
                    model.iter().map(|(h, s)| (*h, *s)),
                )
                .expect("valid config");
                assert!(rebuilt.conflicts.is_empty());
                assert_eq!(rebuilt.allocator, alloc);
            }
        }
        assert_eq!(alloc.used_sections(), model.len());
    }
    let table = alloc.table();
    let listed: usize = table.ips.iter().map(|ip| ip.sections.len()).sum();
    assert_eq!(listed, model.len());
}

/// Underlay addresses against a set model.
pub fn underlay(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(start) = u.arbitrary::<u32>() else {
        return;
    };
    let host: Ipv6Addr = "fc00:1::1".parse().expect("literal");
    let mut alloc = UnderlayAllocator::new(host, start);
    let mut model = BTreeSet::new();
    let pick = |p: u16| {
        let prefix: u128 = if p & 1 == 0 { 0xfc00_0001 } else { 0xfc00_0002 };
        Ipv6Addr::from(
            (prefix << 96) | (0xd000u128 << 48) | (u128::from(p & 0x80) << 40) | u128::from(p >> 2),
        )
    };
    for op in ops(&mut u) {
        match op {
            Op::Allocate | Op::AllocateRandom(_) => {
                let random = (model.len() % 3) as u8;
                let addr = alloc.allocate(random).expect("never exhausted here");
                assert!(model.insert(addr), "{addr} handed out twice");
            }
            Op::AllocateNear(p) => {
                let addr = pick(p);
                let ok = alloc.validate_preferred(addr).is_ok() && !model.contains(&addr);
                assert_eq!(alloc.allocate_preferred(Some(addr), 0).is_ok(), ok);
                if ok {
                    model.insert(addr);
                }
            }
            Op::Claim(p) => {
                let addr = pick(p);
                let ok = alloc.host_net().contains(&addr) && !model.contains(&addr);
                assert_eq!(alloc.claim(addr).is_ok(), ok);
                if ok {
                    model.insert(addr);
                }
            }
            Op::Release(p) => {
                let addr = pick(p);
                assert_eq!(alloc.release(addr).is_ok(), model.remove(&addr));
            }
            Op::Rebuild => {
                let rebuilt =
                    UnderlayAllocator::rebuild(host, alloc.next_counter(), model.iter().copied());
                assert!(rebuilt.conflicts.is_empty());
                assert_eq!(rebuilt.allocator, alloc);
            }
        }
    }
    assert!(alloc.allocations().eq(model.into_iter()));
}

/// Slot pool against a map model.
pub fn slots(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(count) = u.int_in_range(0usize..=8) else {
        return;
    };
    let names = ironnet_alloc::slots::tap_vf_names(count);
    let mut pool: SlotPool<String, u8> = SlotPool::new(names.clone()).expect("distinct names");
    let mut model: BTreeMap<u8, String> = BTreeMap::new();
    for op in ops(&mut u) {
        match op {
            Op::Allocate | Op::AllocateNear(_) | Op::AllocateRandom(_) => {
                let holder = model.len() as u8;
                match pool.allocate(holder) {
                    Ok(slot) => {
                        if let Some(held) = model.get(&holder) {
                            assert_eq!(*held, slot);
                        } else {
                            assert!(!model.values().any(|s| *s == slot));
                            model.insert(holder, slot);
                        }
                    }
                    Err(AllocError::Exhausted(_)) => assert_eq!(model.len(), count),
                    Err(e) => panic!("unexpected error {e}"),
                }
            }
            Op::Claim(p) => {
                let holder = (p % 16) as u8;
                let slot = format!("dtapvf_{}", (p >> 4) % 10);
                let known = names.contains(&slot);
                let expect = match model.get(&holder) {
                    Some(held) => *held == slot,
                    None => known && !model.values().any(|s| *s == slot),
                };
                assert_eq!(pool.claim(holder, &slot).is_ok(), expect);
                if expect {
                    model.insert(holder, slot);
                }
            }
            Op::Release(p) => {
                let holder = (p % 16) as u8;
                assert_eq!(pool.release(&holder).ok(), model.remove(&holder));
            }
            Op::Rebuild => {
                let rebuilt =
                    SlotPool::rebuild(names.clone(), model.iter().map(|(h, s)| (*h, s.clone())))
                        .expect("valid slots");
                assert!(rebuilt.conflicts.is_empty());
                assert_eq!(rebuilt.allocator, pool);
            }
        }
        assert_eq!(pool.allocated_count(), model.len());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn ip_pool_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::ip_pool(&data);
        }

        #[test]
        fn vni_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::vni(&data);
        }

        #[test]
        fn nat_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::nat(&data);
        }

        #[test]
        fn underlay_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::underlay(&data);
        }

        #[test]
        fn slots_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            super::slots(&data);
        }
    }
}

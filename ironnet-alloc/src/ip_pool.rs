//! Pools of IPv4 or IPv6 addresses, as the controller uses for public IPs.
//!
//! A pool is built from one or more prefixes of one family, minus reserved
//! ranges. It tracks which addresses are taken, nothing else: who holds an
//! address is the caller's record (IronCore keeps it in `IPAddress` objects).
//!
//! Unlike IronCore, the network and broadcast addresses of a prefix are
//! *not* excluded implicitly: a routed public prefix can use every address.
//! Reserve them explicitly where they matter.
//!
//! Allocation is deterministic: [`IpPool::allocate`] returns the lowest free
//! address, [`IpPool::allocate_near`] the first free one at or after a hint,
//! and [`IpPool::allocate_random`] starts the search at a random position the
//! caller supplies (this crate has no randomness of its own), which is how
//! IronCore avoids handing out a just-released address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{AllocError, ConfigError, Conflict, Rebuilt, Resource, Value};
use crate::pool::{PoolMiss, RangePool};

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    fn resource(self) -> Resource {
        match self {
            IpFamily::V4 => Resource::Ipv4Address,
            IpFamily::V6 => Resource::Ipv6Address,
        }
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        // Values of an IPv4 pool never exceed u32::MAX.
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

/// Number of addresses in a prefix, if it fits in `u128` (all but `::/0`).
fn net_len(net: &IpNet) -> Option<u128> {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(host_bits)
}

/// Describes an [`IpPool`]: its prefixes and reserved ranges.
///
/// Prefixes are canonicalised (host bits cleared), so `10.0.0.7/24` means
/// `10.0.0.0/24`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpPoolBuilder {
    prefixes: Vec<IpNet>,
    reserved: Vec<IpNet>,
}

impl IpPoolBuilder {
    /// A builder with no prefixes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a prefix to the pool.
    pub fn prefix(mut self, net: IpNet) -> Self {
        self.prefixes.push(net.trunc());
        self
    }

    /// Adds several prefixes to the pool.
    pub fn prefixes(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.prefixes.extend(nets.into_iter().map(|n| n.trunc()));
        self
    }

    /// Excludes a range from allocation; it must lie inside one prefix.
    pub fn reserve(mut self, net: IpNet) -> Self {
        self.reserved.push(net.trunc());
        self
    }

    /// Excludes one address from allocation.
    pub fn reserve_addr(self, addr: IpAddr) -> Self {
        self.reserve(IpNet::from(addr))
    }

    /// Builds the pool, checking families, overlaps and reserved ranges.
    pub fn build(&self) -> Result<IpPool, AllocError> {
        let first = self.prefixes.first().ok_or(ConfigError::NoPrefixes)?;
        let family = IpFamily::of(first.addr());
        let mut prefixes = self.prefixes.clone();
        prefixes.sort_by_key(|n| to_u128(n.network()));
        prefixes.dedup();
        let mut ranges = Vec::with_capacity(prefixes.len());
        let mut total = 0u128;
        for (i, net) in prefixes.iter().enumerate() {
            if IpFamily::of(net.addr()) != family {
                return Err(ConfigError::MixedFamilies(*net).into());
            }
            if let Some(prev) = i.checked_sub(1).map(|p| prefixes[p])
                && (prev.contains(net) || net.contains(&prev))
            {
                return Err(ConfigError::OverlappingPrefixes(prev, *net).into());
            }
            let len = net_len(net).ok_or(ConfigError::PoolTooLarge)?;
            total = total.checked_add(len).ok_or(ConfigError::PoolTooLarge)?;
            ranges.push((to_u128(net.network()), len));
        }
        let mut pool = RangePool::new(&ranges);
        for net in &self.reserved {
            let same_family = IpFamily::of(net.addr()) == family;
            if !same_family || !pool.reserve(to_u128(net.network()), to_u128(net.broadcast())) {
                return Err(ConfigError::ReservedOutsidePool(*net).into());
            }
        }
        Ok(IpPool {
            family,
            prefixes,
            pool,
        })
    }
}

/// A pool of addresses of one family; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPool {
    family: IpFamily,
    prefixes: Vec<IpNet>,
    pool: RangePool,
}

impl IpPool {
    /// A pool over `prefixes` with nothing reserved.
    pub fn new(prefixes: impl IntoIterator<Item = IpNet>) -> Result<Self, AllocError> {
        IpPoolBuilder::new().prefixes(prefixes).build()
    }

    /// Builds the pool described by `builder` and takes back `existing`
    /// allocations (for example what a restarted controller reads from its
    /// store). Entries that are duplicates, reserved or outside the pool are
    /// reported as conflicts; the first holder of an address keeps it.
    pub fn rebuild(
        builder: &IpPoolBuilder,
        existing: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Rebuilt<Self, IpAddr>, AllocError> {
        let mut allocator = builder.build()?;
        let conflicts = existing
            .into_iter()
            .filter_map(|item| {
                let error = allocator.claim(item).err()?;
                Some(Conflict { item, error })
            })
            .collect();
        Ok(Rebuilt {
            allocator,
            conflicts,
        })
    }

    /// The pool's address family.
    pub fn family(&self) -> IpFamily {
        self.family
    }

    /// The pool's prefixes, sorted and canonical.
    pub fn prefixes(&self) -> &[IpNet] {
        &self.prefixes
    }

    /// Addresses that can be allocated in all (reserved ones excluded).
    pub fn capacity(&self) -> u128 {
        self.pool.capacity()
    }

    /// Addresses allocated now.
    pub fn allocated_count(&self) -> u128 {
        self.pool.allocated()
    }

    /// Addresses still free.
    pub fn available(&self) -> u128 {
        self.capacity() - self.allocated_count()
    }

    /// Whether `addr` belongs to one of the pool's prefixes.
    pub fn contains(&self, addr: IpAddr) -> bool {
        IpFamily::of(addr) == self.family && self.pool.contains(to_u128(addr))
    }

    /// Whether `addr` is allocated.
    pub fn is_allocated(&self, addr: IpAddr) -> bool {
        IpFamily::of(addr) == self.family && self.pool.is_allocated(to_u128(addr))
    }

    fn exhausted(&self) -> AllocError {
        AllocError::Exhausted(self.family.resource())
    }

    /// Allocates the lowest free address.
    pub fn allocate(&mut self) -> Result<IpAddr, AllocError> {
        self.allocate_random(0)
    }

    /// Allocates the first free address at or after `hint`, wrapping around.
    /// A hint outside the pool starts at the next prefix above it; a hint of
    /// the other address family starts at the lowest address.
    pub fn allocate_near(&mut self, hint: IpAddr) -> Result<IpAddr, AllocError> {
        if IpFamily::of(hint) != self.family {
            return self.allocate();
        }
        let value = self
            .pool
            .allocate_near(to_u128(hint))
            .ok_or_else(|| self.exhausted())?;
        Ok(from_u128(self.family, value))
    }

    /// Allocates the first free address at or after position
    /// `random % size` of the pool (all prefixes concatenated), wrapping
    /// around. Pass a random number to start at a random place, as IronCore
    /// does; note that the address right after a long taken or reserved run
    /// is picked more often than others.
    pub fn allocate_random(&mut self, random: u128) -> Result<IpAddr, AllocError> {
        let value = self
            .pool
            .allocate_from_position(random)
            .ok_or_else(|| self.exhausted())?;
        Ok(from_u128(self.family, value))
    }

    fn miss(&self, addr: IpAddr, miss: PoolMiss) -> AllocError {
        miss.into_error(self.family.resource(), Value::Ip(addr))
    }

    /// Claims a specific address.
    pub fn claim(&mut self, addr: IpAddr) -> Result<(), AllocError> {
        if IpFamily::of(addr) != self.family {
            return Err(self.miss(addr, PoolMiss::OutOfRange));
        }
        self.pool
            .claim(to_u128(addr))
            .map_err(|m| self.miss(addr, m))
    }

    /// Releases an allocated address.
    pub fn release(&mut self, addr: IpAddr) -> Result<(), AllocError> {
        if IpFamily::of(addr) != self.family {
            return Err(self.miss(addr, PoolMiss::OutOfRange));
        }
        self.pool
            .release(to_u128(addr))
            .map_err(|m| self.miss(addr, m))
    }

    /// Every allocated address, ascending.
    pub fn allocations(&self) -> Vec<IpAddr> {
        self.pool
            .allocations()
            .into_iter()
            .map(|v| from_u128(self.family, v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pool_of_n_yields_n_then_exhausted() {
        let mut pool = IpPool::new([net("10.0.0.0/30"), net("10.0.1.0/31")]).unwrap();
        assert_eq!(pool.capacity(), 6);
        let got: BTreeSet<IpAddr> = (0..6).map(|_| pool.allocate().unwrap()).collect();
        assert_eq!(got.len(), 6);
        assert_eq!(
            pool.allocate(),
            Err(AllocError::Exhausted(Resource::Ipv4Address))
        );
        pool.release(ip("10.0.1.1")).unwrap();
        assert_eq!(pool.allocate().unwrap(), ip("10.0.1.1"));
    }

    #[test]
    fn claims_are_checked_against_pool_and_holders() {
        let mut pool = IpPoolBuilder::new()
            .prefix(net("192.0.2.0/24"))
            .reserve_addr(ip("192.0.2.1"))
            .build()
            .unwrap();
        pool.claim(ip("192.0.2.10")).unwrap();
        assert!(matches!(
            pool.claim(ip("192.0.2.10")),
            Err(AllocError::AlreadyAllocated { .. })
        ));
        assert!(matches!(
            pool.claim(ip("192.0.3.10")),
            Err(AllocError::OutOfRange { .. })
        ));
        assert!(matches!(
            pool.claim(ip("2001:db8::1")),
            Err(AllocError::OutOfRange { .. })
        ));
        assert!(matches!(
            pool.claim(ip("192.0.2.1")),
            Err(AllocError::Reserved { .. })
        ));
        assert!(matches!(
            pool.release(ip("192.0.2.1")),
            Err(AllocError::Reserved { .. })
        ));
        assert!(matches!(
            pool.release(ip("192.0.2.11")),
            Err(AllocError::NotAllocated { .. })
        ));
        assert_eq!(pool.allocated_count(), 1);
        assert_eq!(pool.capacity(), 255);
    }

    #[test]
    fn reserved_addresses_are_never_allocated() {
        let mut pool = IpPoolBuilder::new()
            .prefix(net("10.0.0.0/29"))
            .reserve(net("10.0.0.0/30"))
            .reserve_addr(ip("10.0.0.7"))
            .build()
            .unwrap();
        let got: Vec<IpAddr> = std::iter::from_fn(|| pool.allocate().ok()).collect();
        assert_eq!(got, vec![ip("10.0.0.4"), ip("10.0.0.5"), ip("10.0.0.6")]);
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        let e = |b: IpPoolBuilder| b.build().unwrap_err();
        assert_eq!(e(IpPoolBuilder::new()), ConfigError::NoPrefixes.into());
        assert_eq!(
            e(IpPoolBuilder::new()
                .prefix(net("10.0.0.0/8"))
                .prefix(net("fd00::/64"))),
            ConfigError::MixedFamilies(net("fd00::/64")).into()
        );
        assert_eq!(
            e(IpPoolBuilder::new()
                .prefix(net("10.0.0.0/8"))
                .prefix(net("10.1.0.0/16"))),
            ConfigError::OverlappingPrefixes(net("10.0.0.0/8"), net("10.1.0.0/16")).into()
        );
        assert_eq!(
            e(IpPoolBuilder::new().prefix(net("::/0"))),
            ConfigError::PoolTooLarge.into()
        );
        assert_eq!(
            e(IpPoolBuilder::new()
                .prefix(net("10.0.0.0/24"))
                .reserve(net("10.0.0.0/23"))),
            ConfigError::ReservedOutsidePool(net("10.0.0.0/23")).into()
        );
    }

    #[test]
    fn host_bits_in_prefixes_are_ignored() {
        let pool = IpPool::new([net("10.0.0.7/24")]).unwrap();
        assert_eq!(pool.prefixes(), &[net("10.0.0.0/24")]);
    }

    #[test]
    fn ipv6_slash_64_works_and_allocates_lowest_first() {
        let mut pool = IpPool::new([net("2001:db8:1::/64")]).unwrap();
        assert_eq!(pool.capacity(), 1 << 64);
        assert_eq!(pool.allocate().unwrap(), ip("2001:db8:1::"));
        pool.claim(ip("2001:db8:1::1")).unwrap();
        assert_eq!(pool.allocate().unwrap(), ip("2001:db8:1::2"));
        pool.claim(ip("2001:db8:1:0:ffff:ffff:ffff:ffff")).unwrap();
        assert_eq!(
            pool.allocate_near(ip("2001:db8:1:0:ffff:ffff:ffff:ffff"))
                .unwrap(),
            ip("2001:db8:1::3"),
            "wraps around to the start"
        );
        assert_eq!(pool.allocated_count(), 5);
    }

    #[test]
    fn allocate_random_spreads_over_all_prefixes() {
        let mut pool = IpPool::new([net("10.0.0.0/30"), net("10.0.9.0/30")]).unwrap();
        assert_eq!(pool.allocate_random(5).unwrap(), ip("10.0.9.1"));
        assert_eq!(pool.allocate_random(5).unwrap(), ip("10.0.9.2"));
        assert_eq!(pool.allocate_random(7).unwrap(), ip("10.0.9.3"));
        assert_eq!(pool.allocate_random(7).unwrap(), ip("10.0.0.0"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        Near(u16),
        Random(u128),
        Claim(u16),
        Release(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Allocate),
            any::<u16>().prop_map(Op::Near),
            any::<u128>().prop_map(Op::Random),
            any::<u16>().prop_map(Op::Claim),
            any::<u16>().prop_map(Op::Release),
        ]
    }

    /// Maps a small number onto an address in or near the pool.
    fn pick(prefixes: &[IpNet], p: u16) -> IpAddr {
        let net = prefixes[usize::from(p) % prefixes.len()];
        let off = u128::from(p / 2) % 40;
        match net.network() {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) + off as u32)),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) + off)),
        }
    }

    fn builders() -> impl Strategy<Value = IpPoolBuilder> {
        prop_oneof![
            (26u8..=30, any::<bool>()).prop_map(|(len, reserve)| {
                let b = IpPoolBuilder::new()
                    .prefix(IpNet::new(ip("10.0.0.0"), len).unwrap())
                    .prefix(IpNet::new(ip("10.0.1.0"), len + 1).unwrap());
                if reserve {
                    b.reserve_addr(ip("10.0.0.1"))
                } else {
                    b
                }
            }),
            (120u8..=126).prop_map(|len| {
                IpPoolBuilder::new()
                    .prefix(IpNet::new(ip("fd00::"), len).unwrap())
                    .prefix(net("fd00:0:0:1::/64"))
                    .reserve(net("fd00:0:0:1::/126"))
            }),
        ]
    }

    proptest! {
        #[test]
        fn random_operations_keep_pool_and_model_equal(
            builder in builders(),
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let mut pool = builder.build().unwrap();
            let prefixes = pool.prefixes().to_vec();
            let mut model = BTreeSet::new();
            for op in ops {
                let got = match op {
                    Op::Allocate => pool.allocate(),
                    Op::Near(p) => pool.allocate_near(pick(&prefixes, p)),
                    Op::Random(r) => pool.allocate_random(r),
                    Op::Claim(p) => {
                        let a = pick(&prefixes, p);
                        let before = pool.clone();
                        match pool.claim(a) {
                            Ok(()) => prop_assert!(model.insert(a)),
                            Err(AllocError::AlreadyAllocated { .. }) => prop_assert!(model.contains(&a)),
                            Err(AllocError::OutOfRange { .. }) => prop_assert!(!pool.contains(a)),
                            Err(AllocError::Reserved { .. }) => prop_assert!(!model.contains(&a)),
                            Err(e) => prop_assert!(false, "unexpected {}", e),
                        }
                        if !model.contains(&a) {
                            prop_assert_eq!(&pool, &before, "a refused claim changes nothing");
                        }
                        continue;
                    }
                    Op::Release(p) => {
                        let a = pick(&prefixes, p);
                        prop_assert_eq!(pool.release(a).is_ok(), model.remove(&a));
                        continue;
                    }
                };
                match got {
                    Ok(a) => {
                        prop_assert!(pool.contains(a));
                        prop_assert!(model.insert(a), "{} handed out twice", a);
                    }
                    Err(e) => {
                        prop_assert_eq!(e, AllocError::Exhausted(pool.family.resource()));
                        prop_assert_eq!(model.len() as u128, pool.capacity());
                    }
                }
            }
            prop_assert_eq!(pool.allocated_count(), model.len() as u128);
            prop_assert_eq!(pool.allocations(), model.iter().copied().collect::<Vec<_>>());
            let rebuilt = IpPool::rebuild(&builder, model.iter().copied()).unwrap();
            prop_assert!(rebuilt.conflicts.is_empty());
            prop_assert_eq!(rebuilt.allocator, pool);
        }

        #[test]
        fn dense_pool_yields_exactly_capacity_distinct_addresses(len in 20u8..=30, reserve in 0usize..5) {
            let prefix = IpNet::new(ip("10.0.0.0"), len).unwrap();
            let mut builder = IpPoolBuilder::new().prefix(prefix);
            for i in 0..reserve {
                builder = builder.reserve_addr(pick(&[prefix], i as u16 * 2));
            }
            let mut pool = builder.build().unwrap();
            let cap = pool.capacity();
            let mut seen = BTreeSet::new();
            while let Ok(a) = pool.allocate() {
                prop_assert!(seen.insert(a));
            }
            prop_assert_eq!(seen.len() as u128, cap);
            prop_assert_eq!(pool.available(), 0);
        }

        #[test]
        fn rebuild_reports_duplicates_and_strangers(addrs in proptest::collection::vec(0u8..=40, 0..60)) {
            let builder = IpPoolBuilder::new().prefix(net("10.0.0.0/27"));
            let input: Vec<IpAddr> = addrs.iter().map(|&a| IpAddr::V4(Ipv4Addr::new(10, 0, 0, a))).collect();
            let rebuilt = IpPool::rebuild(&builder, input.clone()).unwrap();
            let mut seen = BTreeSet::new();
            let expected: Vec<IpAddr> = input
                .iter()
                .copied()
                .filter(|a| !(matches!(a, IpAddr::V4(v) if v.octets()[3] < 32) && seen.insert(*a)))
                .collect();
            let conflicts: Vec<IpAddr> = rebuilt.conflicts.iter().map(|c| c.item).collect();
            prop_assert_eq!(conflicts, expected);
            prop_assert_eq!(rebuilt.allocator.allocations(), seen.into_iter().collect::<Vec<_>>());
        }
    }
}

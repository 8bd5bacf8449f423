use super::*;
use crate::route::Vni;
use proptest::prelude::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The obvious answer: scan every route, keep the longest match.
fn naive<T>(routes: &LpmBuilder<T>, addr: IpAddr) -> Option<(IpNet, &T)>
where
    T: Clone,
{
    routes
        .iter()
        .filter(|(p, _)| p.contains(&addr))
        .max_by_key(|(p, _)| p.prefix_len())
}

#[test]
fn longest_prefix_wins_and_default_route_catches_the_rest() {
    let table: LpmBuilder<&str> = [
        (net("0.0.0.0/0"), "default"),
        (net("10.0.0.0/8"), "ten"),
        (net("10.1.2.0/24"), "ten-one-two"),
        (net("10.1.2.3/32"), "host"),
        (net("::/0"), "v6-default"),
        (net("fd00::/64"), "v6-net"),
        (net("fd00::1/128"), "v6-host"),
    ]
    .into_iter()
    .collect();
    let lpm = table.build();
    let hit = |a: &str| lpm.lookup(a.parse().unwrap()).map(|(_, v)| *v);
    assert_eq!(hit("10.1.2.3"), Some("host"));
    assert_eq!(hit("10.1.2.4"), Some("ten-one-two"));
    assert_eq!(hit("10.200.0.1"), Some("ten"));
    assert_eq!(hit("192.0.2.1"), Some("default"));
    assert_eq!(hit("fd00::1"), Some("v6-host"));
    assert_eq!(hit("fd00::2"), Some("v6-net"));
    assert_eq!(hit("2001:db8::1"), Some("v6-default"));
    let (prefix, _) = lpm.lookup("192.0.2.1".parse().unwrap()).unwrap();
    assert_eq!(prefix.prefix_len(), 0, "callers can tell a default route");
}

#[test]
fn empty_and_missing_routes_answer_none() {
    let lpm = LpmBuilder::<u8>::new().build();
    assert_eq!(lpm.lookup("10.0.0.1".parse().unwrap()), None);
    let lpm = LpmBuilder::from_iter([(net("10.0.0.0/8"), 1u8)]).build();
    assert_eq!(lpm.lookup("11.0.0.1".parse().unwrap()), None);
    assert_eq!(lpm.lookup("fd00::1".parse().unwrap()), None);
}

#[test]
fn host_bits_are_masked_on_insert() {
    let mut b = LpmBuilder::new();
    assert_eq!(b.insert(net("1.2.3.4/24"), 1), None);
    assert_eq!(b.insert(net("1.2.3.255/24"), 2), Some(1));
    assert_eq!(b.iter().next().unwrap().0, net("1.2.3.0/24"));
}

#[test]
fn vni_tables_are_separate_and_rebuilt_lazily() {
    let (a, b) = (Vni::new(100).unwrap(), Vni::new(200).unwrap());
    let mut tables = VniTablesBuilder::new();
    tables.insert(a, net("10.0.0.0/24"), "a");
    tables.insert(b, net("10.0.0.0/16"), "b");
    let first = tables.build();
    let addr: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(first.lookup(a, addr).map(|r| *r.1), Some("a"));
    assert_eq!(first.lookup(b, addr).map(|r| *r.1), Some("b"));
    assert_eq!(first.lookup(Vni::new(300).unwrap(), addr), None);

    tables.remove(a, net("10.0.0.0/24"));
    let second = tables.build();
    assert_eq!(second.lookup(a, addr), None);
    assert_eq!(second.vni_count(), 1);
    assert!(
        std::ptr::eq(first.table(b).unwrap(), second.table(b).unwrap()),
        "an untouched VNI is shared, not rebuilt"
    );
    assert_eq!(
        first.lookup(a, addr).map(|r| *r.1),
        Some("a"),
        "old snapshot intact"
    );
}

fn v4_routes() -> impl Strategy<Value = Vec<(u32, u8)>> {
    // Addresses from a narrow space so that prefixes nest often.
    proptest::collection::vec(
        (any::<u32>().prop_map(|a| a & 0xff0f_0f0f), 0u8..=32),
        0..1500,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn v4_lookups_equal_a_linear_scan(
        routes in v4_routes(),
        probes in proptest::collection::vec(any::<u32>(), 1..200),
    ) {
        let table: LpmBuilder<u32> = routes
            .iter()
            .enumerate()
            .map(|(i, &(a, l))| (IpNet::new(IpAddr::V4(a.into()), l).unwrap(), i as u32))
            .collect();
        let lpm = table.build();
        let addrs: Vec<Ipv4Addr> = probes
            .iter()
            .map(|&p| (p & 0xff0f_0f0f).into())
            .chain(table.iter().step_by(8).map(|(p, _)| match p.addr() {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!(),
            }))
            .collect();
        let mut batch = vec![None; addrs.len()];
        lpm.lookup_v4_batch(&addrs, &mut batch);
        for (addr, from_batch) in addrs.iter().zip(batch) {
            let want = naive(&table, IpAddr::V4(*addr));
            prop_assert_eq!(lpm.lookup_v4(*addr), want);
            prop_assert_eq!(from_batch, want);
        }
    }

    #[test]
    fn v6_lookups_equal_a_linear_scan(
        routes in proptest::collection::vec((any::<u128>(), prop_oneof![Just(0u8), Just(48), Just(64), Just(127), Just(128), 0u8..=128]), 0..300),
        probes in proptest::collection::vec(any::<u128>(), 1..200),
    ) {
        let squash = |a: u128| a & 0xffff_0000_0000_0000_0f0f_0000_0000_00ff;
        let table: LpmBuilder<usize> = routes
            .iter()
            .enumerate()
            .map(|(i, &(a, l))| (IpNet::new(IpAddr::V6(squash(a).into()), l).unwrap(), i))
            .collect();
        let lpm = table.build();
        for p in probes {
            let addr = IpAddr::V6(squash(p).into());
            prop_assert_eq!(lpm.lookup(addr), naive(&table, addr));
        }
    }

    #[test]
    fn removing_routes_equals_building_without_them(
        routes in v4_routes(),
        remove in proptest::collection::vec(any::<prop::sample::Index>(), 0..50),
        probes in proptest::collection::vec(any::<u32>(), 1..100),
    ) {
        let all: Vec<IpNet> = routes.iter().map(|&(a, l)| IpNet::new(IpAddr::V4(a.into()), l).unwrap().trunc()).collect();
        let mut table: LpmBuilder<u8> = all.iter().map(|p| (*p, 1)).collect();
        for idx in remove {
            if !all.is_empty() {
                table.remove(all[idx.index(all.len())]);
            }
        }
        let fresh: LpmBuilder<u8> = table.iter().map(|(p, v)| (p, *v)).collect();
        let (a, b) = (table.build(), fresh.build());
        for p in probes {
            let addr: Ipv4Addr = (p & 0xff0f_0f0f).into();
            prop_assert_eq!(a.lookup_v4(addr), b.lookup_v4(addr));
        }
    }
}

/// Tables past the 24-8 threshold (DIR-24-8 layout), checked against an
/// independent implementation (prefix-trie) on nested random routes.
#[test]
fn huge_v4_tables_equal_prefix_trie() {
    use ipnet::Ipv4Net;
    use prefix_trie::PrefixMap;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut table: LpmBuilder<u32> = LpmBuilder::new();
    let mut oracle: PrefixMap<Ipv4Net, u32> = PrefixMap::new();
    let mut i = 0u32;
    while table.len() < 70_000 {
        let r = next();
        // A narrow address space so that prefixes nest; all lengths.
        let addr = Ipv4Addr::from((r as u32) & 0x0f0f_ffff);
        let len = (r >> 40) as u8 % 33;
        let net = Ipv4Net::new(addr, len).unwrap().trunc();
        table.insert(IpNet::V4(net), i);
        oracle.insert(net, i);
        i += 1;
    }
    let lpm = table.build();
    let probes: Vec<Ipv4Addr> = (0..50_000)
        .map(|_| Ipv4Addr::from((next() as u32) & 0x0f0f_ffff))
        .collect();
    let mut batch = vec![None; probes.len()];
    lpm.lookup_v4_batch(&probes, &mut batch);
    for (addr, from_batch) in probes.iter().zip(batch) {
        let want = oracle
            .get_lpm(&Ipv4Net::new(*addr, 32).unwrap())
            .map(|(p, v)| (IpNet::V4(p), v));
        assert_eq!(lpm.lookup_v4(*addr), want, "{addr}");
        assert_eq!(from_batch, want, "{addr}");
    }
}

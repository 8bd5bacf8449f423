//! Firewall decisions against a naive evaluation of the rule list, and the
//! matching details.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_dp::firewall::{
    FirewallRule, PacketInfo, PortRange, ProtocolMatch, RuleAction, RuleDirection, RuleSet,
};
use proptest::prelude::*;

/// The rule that decides, found the slow way: among all matching rules of
/// the direction, the one with the lowest (priority, creation index).
fn naive(rules: &[FirewallRule], dir: RuleDirection, pkt: &PacketInfo) -> RuleAction {
    let of_dir: Vec<(usize, &FirewallRule)> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.direction == dir)
        .collect();
    if of_dir.is_empty() {
        return RuleAction::Accept;
    }
    of_dir
        .into_iter()
        .filter(|(_, r)| r.matches(pkt))
        .min_by_key(|(i, r)| (r.priority, *i))
        .map_or(RuleAction::Drop, |(_, r)| r.action)
}

fn addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, 0, a, b))),
        (0u16..4).prop_map(|a| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a))),
    ]
}

fn net() -> impl Strategy<Value = IpNet> {
    (addr(), 0u8..=2).prop_map(|(a, k)| {
        let len = match (a, k) {
            (IpAddr::V4(_), 0) => 0,
            (IpAddr::V4(_), 1) => 24,
            (IpAddr::V4(_), _) => 32,
            (IpAddr::V6(_), 0) => 0,
            (IpAddr::V6(_), 1) => 64,
            (IpAddr::V6(_), _) => 128,
        };
        IpNet::new(a, len).unwrap().trunc()
    })
}

fn ports() -> impl Strategy<Value = PortRange> {
    prop_oneof![
        Just(PortRange::ANY),
        (0u16..6, 0u16..3).prop_map(|(lo, w)| PortRange { lo, hi: lo + w }),
    ]
}

fn protocol() -> impl Strategy<Value = ProtocolMatch> {
    prop_oneof![
        Just(ProtocolMatch::Any),
        (ports(), ports()).prop_map(|(src, dst)| ProtocolMatch::Tcp { src, dst }),
        (ports(), ports()).prop_map(|(src, dst)| ProtocolMatch::Udp { src, dst }),
        (proptest::option::of(0u8..3), proptest::option::of(0u8..2)).prop_map(
            |(icmp_type, icmp_code)| ProtocolMatch::Icmp {
                icmp_type,
                icmp_code
            }
        ),
    ]
}

fn rule() -> impl Strategy<Value = FirewallRule> {
    (
        any::<bool>(),
        any::<bool>(),
        0u16..4,
        net(),
        net(),
        protocol(),
    )
        .prop_map(
            |(ingress, accept, priority, src, dst, protocol)| FirewallRule {
                id: String::new(),
                direction: if ingress {
                    RuleDirection::Ingress
                } else {
                    RuleDirection::Egress
                },
                action: if accept {
                    RuleAction::Accept
                } else {
                    RuleAction::Drop
                },
                priority,
                src,
                dst,
                protocol,
            },
        )
}

fn packet() -> impl Strategy<Value = PacketInfo> {
    (
        addr(),
        addr(),
        prop_oneof![Just(1u8), Just(6), Just(17), Just(58), Just(47)],
        0u16..8,
        0u16..8,
        0u8..3,
        0u8..2,
    )
        .prop_map(|(src, dst, protocol, sp, dp, t, c)| PacketInfo {
            src,
            dst,
            protocol,
            src_port: if matches!(protocol, 6 | 17) { sp } else { 0 },
            dst_port: if matches!(protocol, 6 | 17) { dp } else { 0 },
            icmp: matches!(protocol, 1 | 58).then_some((t, c)),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn decisions_equal_the_naive_evaluation(
        rules in proptest::collection::vec(rule(), 0..12),
        pkts in proptest::collection::vec(packet(), 1..8),
    ) {
        let set = RuleSet::new(&rules);
        for pkt in &pkts {
            for dir in [RuleDirection::Ingress, RuleDirection::Egress] {
                prop_assert_eq!(set.decide(dir, pkt), naive(&rules, dir, pkt));
            }
        }
    }
}

fn info(src: &str, dst: &str, protocol: u8, sport: u16, dport: u16) -> PacketInfo {
    PacketInfo {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol,
        src_port: sport,
        dst_port: dport,
        icmp: None,
    }
}

fn accept(src: &str, dst: &str, protocol: ProtocolMatch) -> FirewallRule {
    FirewallRule {
        id: "r".into(),
        direction: RuleDirection::Ingress,
        action: RuleAction::Accept,
        priority: 1000,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        protocol,
    }
}

#[test]
fn matching_looks_at_family_prefixes_ports_and_icmp() {
    let web = accept(
        "10.0.0.0/8",
        "0.0.0.0/0",
        ProtocolMatch::Tcp {
            src: PortRange::ANY,
            dst: PortRange { lo: 80, hi: 443 },
        },
    );
    assert!(web.matches(&info("10.1.2.3", "192.0.2.1", 6, 5000, 443)));
    assert!(!web.matches(&info("10.1.2.3", "192.0.2.1", 6, 5000, 444)));
    assert!(!web.matches(&info("11.1.2.3", "192.0.2.1", 6, 5000, 80)));
    assert!(
        !web.matches(&info("10.1.2.3", "192.0.2.1", 17, 5000, 80)),
        "UDP"
    );
    let any4 = accept("0.0.0.0/0", "0.0.0.0/0", ProtocolMatch::Any);
    assert!(
        !any4.matches(&info("2001:db8::1", "2001:db8::2", 6, 1, 2)),
        "IPv6 never matches IPv4 rules"
    );
    let echo = accept(
        "::/0",
        "::/0",
        ProtocolMatch::Icmp {
            icmp_type: Some(128),
            icmp_code: None,
        },
    );
    let mut ping6 = info("2001:db8::1", "2001:db8::2", 58, 0, 0);
    ping6.icmp = Some((128, 0));
    assert!(echo.matches(&ping6));
    ping6.icmp = Some((135, 0));
    assert!(!echo.matches(&ping6));
    // The reply of a ping is seen as the request when decided for the flow.
    let mut reply = info("2001:db8::2", "2001:db8::1", 58, 0, 0);
    reply.icmp = Some((129, 0));
    assert_eq!(reply.reversed().icmp, Some((128, 0)));
}

//! Harness for `ironnet-dp`: arbitrary frames on arbitrary ports through
//! the pipeline of a dp with interfaces, a remote route, a virtual IP, a
//! NAT with a neighbour range, a load balancer and two virtual services.
//! No panic; a transmitted frame is never empty; counters add up.

use std::time::{Duration, Instant};

use ironnet_dp::pipeline::{Packet, Pipeline, Verdict};
use ironnet_dp::state::{ExternalRoute, InterfaceSpec, LbPort, LbSpec, NeighborNat};
use ironnet_dp::virtsvc::{ServiceProtocol, VirtualService, VirtualServices};
use ironnet_dp::{DpConfig, DpState, Snapshot};
use ironnet_overlay::route::Vni;

fn snapshot() -> Option<Snapshot> {
    let vni = Vni::new(100)?;
    let mut config = DpConfig::tap("fc00:1::1".parse().ok()?, 2);
    let service = |p, t| VirtualService::parse(p, t).ok();
    config.virtual_services = std::sync::Arc::new(
        VirtualServices::new(vec![
            service(ServiceProtocol::Tcp, "169.254.169.254,80,fc00:b::5,8080")?,
            service(ServiceProtocol::Udp, "169.254.169.254,53,fc00:b::5,5353")?,
        ])
        .ok()?,
    );
    let mut state = DpState::new(config, 3);
    state.initialize();
    for (id, dev, v4, v6) in [
        ("a", "net_tap2", "10.0.0.1", "2001:db8::1"),
        ("b", "net_tap3", "10.0.0.2", "2001:db8::2"),
    ] {
        state
            .create_interface(InterfaceSpec {
                id: id.into(),
                vni,
                ipv4: v4.parse().ok(),
                ipv6: v6.parse().ok(),
                device: dev.into(),
                preferred_underlay: None,
                pxe: None,
                hostname: None,
            })
            .ok()?;
    }
    state
        .create_route(ExternalRoute {
            vni,
            prefix: "0.0.0.0/0".parse().ok()?,
            nexthop_vni: vni,
            nexthop: "fc00:2::1".parse().ok()?,
        })
        .ok()?;
    // Every network function, so frames can reach their paths.
    state.create_vip("a", "45.0.0.1".parse().ok()?, None).ok()?;
    state
        .create_nat("b", "45.0.0.5".parse().ok()?, 1024, 1030, None)
        .ok()?;
    state
        .create_neighbor_nat(NeighborNat {
            ip: "45.0.0.5".parse().ok()?,
            vni,
            min_port: 2000,
            max_port: 3000,
            underlay: "fc00:3::1".parse().ok()?,
        })
        .ok()?;
    state
        .create_lb(LbSpec {
            id: "lb".into(),
            vni,
            ip: "45.0.1.1".parse().ok()?,
            ports: vec![LbPort {
                protocol: 6,
                port: 80,
            }],
            preferred_underlay: None,
        })
        .ok()?;
    let local = state
        .create_lb_prefix("a", "45.0.1.1/32".parse().ok()?, None)
        .ok()?;
    state.create_lb_target("lb", local).ok()?;
    state
        .create_lb_target("lb", "fc00:3::2".parse().ok()?)
        .ok()?;
    Some(state.snapshot())
}

/// Frames from the input: the first byte picks the port, then 2-byte
/// lengths and frame bytes.
pub fn pipeline(data: &[u8]) {
    let Some(snap) = snapshot() else {
        return;
    };
    let mut pipe = Pipeline::new();
    let now = Instant::now();
    let mut rest = data;
    let mut n = 0u64;
    while rest.len() >= 3 {
        let port = u16::from(rest[0] % 5);
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])) % 1600;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let Ok(mut p) = Packet::new(port, &rest[..take]) else {
            return;
        };
        rest = &rest[take..];
        let t = now + Duration::from_millis(n * 100);
        if let Verdict::Tx(_) = pipe.process(&snap, t, &mut p) {
            assert!(!p.frame().is_empty());
        }
        n += 1;
    }
    let c = pipe.counters();
    let rx: u64 = c.rx.iter().sum();
    let tx: u64 = c.tx.iter().sum();
    let drops: u64 = c.drops.values().sum();
    // ICMP errors count as a drop and as a transmission.
    assert!(tx + drops >= rx && rx == n);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn pipeline_harness_holds(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            super::pipeline(&data);
        }
    }
}

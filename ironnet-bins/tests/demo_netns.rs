//! The all-in-one demo as a test, with real packets: the role binaries,
//! the manifests of `examples/demo/`, guests in network namespaces with
//! DHCP leases. Every cell of the connectivity matrix must come out as the
//! manifests say (same host, across hosts, policy, peering, NAT, virtual
//! IP, load balancer spread, isolation); then the faults:
//!
//! - an agent is killed and restarted during a steady ping across hosts:
//!   the packets lost are reported, and must be none;
//! - one of the two bond servers is stopped: no dp loses a route;
//! - the controller is restarted on its store: no public address, VNI or
//!   route changes;
//! - an interface is deleted: its routes are gone from every host.
//!
//! Needs root and what `scripts/setup.sh` installs (CI has both). Every
//! address lives in the namespaces the demo creates, all removed on drop.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use ironnet_bins::demo::{Binaries, Demo, Mode, checks};
use ironnet_bins::testbed::skip_packet_test;
use ironnet_core::api::networking;
use ironnet_core::object::Resource;
use ironnet_core::store::{ObjectKey, Store};

fn binaries() -> Binaries {
    Binaries::in_dir(
        Path::new(env!("CARGO_BIN_EXE_ironnet-demo"))
            .parent()
            .unwrap(),
    )
    .unwrap()
}

fn has_route_to(
    routes: &std::collections::BTreeMap<
        u32,
        std::collections::BTreeMap<ipnet::IpNet, ironnet_bins::agent::view::Hop>,
    >,
    prefix: &str,
) -> bool {
    let p: ipnet::IpNet = prefix.parse().unwrap();
    routes.values().any(|r| r.contains_key(&p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_moves_packets_as_the_manifests_say_and_survives_faults() {
    if skip_packet_test() {
        return;
    }
    let tag = format!("e{}", std::process::id() % 10000);
    let mut demo = Demo::start(&tag, binaries(), Mode::Netns).await.unwrap();
    let mut applied = Vec::new();
    demo.apply(&mut applied).await.unwrap();
    demo.bring_up_guests().await.unwrap();

    let rows = demo.measure(demo.checks()).await;
    let table = checks::render(&rows);
    println!("{table}");
    assert!(rows.len() >= 20, "{table}");
    assert!(rows.iter().all(|(_, o)| o.ok), "{table}");

    // An agent restart during a steady ping from hv-a to hv-b.
    let ping = demo
        .steady_ping("db-a", "10.0.0.22", Duration::from_secs(8))
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    demo.agent(0).unwrap().restart().unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    demo.agent(0).unwrap().check().unwrap();
    let (sent, received) = ping.finish().await.unwrap();
    println!(
        "agent restart during ping: {sent} sent, {received} received, {} lost",
        sent - received
    );
    assert!(sent > 100, "{sent} pings sent");
    assert_eq!(sent, received, "packets lost across an agent restart");

    // One of two bond servers stops: every dp keeps every route.
    let before = [
        demo.dp_routes(0).await.unwrap(),
        demo.dp_routes(1).await.unwrap(),
    ];
    assert!(has_route_to(&before[0], "10.0.0.22/32"));
    demo.bond(0).unwrap().stop();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = [
        demo.dp_routes(0).await.unwrap(),
        demo.dp_routes(1).await.unwrap(),
    ];
    assert_eq!(before, after, "routes changed after losing one bond server");
    demo.bond(0).unwrap().restart().unwrap();

    // A controller restart re-allocates nothing and changes no route.
    let public = demo.public_addresses().await.unwrap();
    demo.restart_controller().await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(demo.public_addresses().await.unwrap(), public);
    let after = [
        demo.dp_routes(0).await.unwrap(),
        demo.dp_routes(1).await.unwrap(),
    ];
    assert_eq!(before, after, "routes changed after a controller restart");
    let again = demo.measure(demo.checks()).await;
    let table = checks::render(&again);
    assert!(
        again.iter().all(|(_, o)| o.ok),
        "after the faults:\n{table}"
    );

    // Deleting app-b's interface removes its routes from both hosts.
    let key = ObjectKey::new(&networking::NetworkInterface::INFO, "default", "app-b");
    demo.api().delete(&key).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let a = demo.dp_routes(0).await.unwrap();
        let b = demo.dp_routes(1).await.unwrap();
        if !has_route_to(&a, "10.0.0.22/32") && !has_route_to(&b, "10.0.0.22/32") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "10.0.0.22 still routed: A {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

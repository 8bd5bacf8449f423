//! The demo's in-memory variant, which needs no root: the same role
//! processes and manifests, dps inside the test on memory ports, and
//! simulated guests, router and internet. Every guest leases its address
//! with DHCP, and every ICMP cell of the matrix comes out as the manifests
//! say (TCP cells are not measured in this variant).
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ironnet_bins::demo::{Binaries, Demo, Mode, checks};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_demo_measures_every_icmp_cell() {
    let bins = Binaries::in_dir(
        Path::new(env!("CARGO_BIN_EXE_ironnet-demo"))
            .parent()
            .unwrap(),
    )
    .unwrap();
    let tag = format!("m{}", std::process::id() % 10000);
    let mut demo = Demo::start(&tag, bins, Mode::Memory).await.unwrap();
    demo.apply(&mut Vec::new()).await.unwrap();
    demo.bring_up_guests().await.unwrap();
    let rows = demo.measure(demo.checks()).await;
    let table = checks::render(&rows);
    println!("{table}");
    let measured = rows.iter().filter(|(_, o)| o.measured).count();
    assert!(measured >= 14, "{table}");
    assert!(rows.iter().all(|(_, o)| o.ok), "{table}");
    // Both kinds of cell are there: some reach, some are blocked.
    assert!(rows.iter().any(|(_, o)| o.got == "reached"));
    assert!(rows.iter().any(|(_, o)| o.got == "no reply"));
}

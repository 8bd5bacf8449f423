//! Shared plumbing for ironnet's role binaries (`ironnet-controller`,
//! `ironnet-agent`, `ironnet-dp`, `ironnet-bond`) and the `ironnetctl` CLI.
//!
//! This crate stays thin: parse flags, wire the library crates together,
//! run. Binaries: `ironnet-bond` (server and client), `ironnet-dp`,
//! `ironnet-controller` (the API server and the network controller, with
//! its [`controller_metrics`]), `ironnet-agent` ([`agent`], the
//! per-hypervisor agent, usable as a library) and `ironnetctl` ([`ctl`]);
//! [`demo`] is the all-in-one demo (`ironnet-demo`); [`testbed`] builds
//! network-namespace test beds.

pub mod agent;
pub mod controller_metrics;
pub mod ctl;
pub mod demo;
pub mod testbed;

use ironnet_overlay::route::{NextHopKind, Route};

/// Reads a bearer token from `path` (trimmed; empty is an error).
pub fn read_token(path: &std::path::Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = t.trim().to_owned();
    if t.is_empty() {
        return Err(format!("{}: empty token", path.display()));
    }
    Ok(t)
}

/// Logs to stderr; `RUST_LOG` overrides the level (`info`, or `debug` when
/// verbose).
pub fn init_tracing(verbose: bool) {
    let default = if verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// One line for a route: `VNI PREFIX via UNDERLAY (TYPE)`.
pub fn describe_route(r: &Route) -> String {
    let kind = match r.next_hop.kind {
        NextHopKind::Standard => "STD".to_owned(),
        NextHopKind::LoadBalancerTarget => "LB".to_owned(),
        NextHopKind::Nat { port_from, port_to } => format!("NAT {port_from}-{port_to}"),
    };
    format!(
        "{} {} via {} vni {} ({kind})",
        r.vni, r.destination, r.next_hop.underlay, r.next_hop.vni
    )
}

//! Prometheus metrics of `ironnet-controller` (`/metrics`): planning
//! rounds, writes by outcome, pending changes, leadership, and address,
//! VNI and NAT allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ironnet_core::control::Metrics;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Reads the controller's counters on each scrape.
#[derive(Debug)]
pub struct ControllerCollector {
    metrics: Arc<Metrics>,
    leader: Arc<AtomicBool>,
}

impl ControllerCollector {
    /// A collector of `metrics`; `leader` tells whether this replica runs
    /// the controllers now.
    pub fn new(metrics: Arc<Metrics>, leader: Arc<AtomicBool>) -> Self {
        ControllerCollector { metrics, leader }
    }
}

fn gauge(v: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX))
}

impl Collector for ControllerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.metrics;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let rounds = ConstCounter::new(load(&m.rounds));
        rounds.encode(encoder.encode_descriptor(
            "reconcile_rounds",
            "Planning rounds run (each reconciles every object)",
            None,
            rounds.metric_type(),
        )?)?;
        let mut writes = encoder.encode_descriptor(
            "writes",
            "Store writes by outcome: ok, stale (conflict; planned again) or error",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (outcome, v) in [
            ("ok", load(&m.writes)),
            ("stale", load(&m.conflicts)),
            ("error", load(&m.errors)),
        ] {
            let labels = vec![("outcome".to_owned(), outcome.to_owned())];
            ConstCounter::new(v).encode(writes.encode_family(&labels)?)?;
        }
        for (name, help, v) in [
            (
                "queue_depth",
                "Changes received and not yet planned for",
                load(&m.pending),
            ),
            (
                "last_round_writes",
                "Writes of the last round",
                load(&m.last_round_writes),
            ),
            (
                "leader",
                "1 while this replica runs the controllers",
                u64::from(self.leader.load(Ordering::Relaxed)),
            ),
        ] {
            let g = gauge(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let mut alloc = encoder.encode_descriptor(
            "allocations",
            "Allocations per pool: used and free",
            None,
            gauge(0).metric_type(),
        )?;
        for (pool, used, size) in [
            ("public_ipv4", load(&m.ipv4_used), load(&m.ipv4_size)),
            ("public_ipv6", load(&m.ipv6_used), load(&m.ipv6_size)),
            ("vni", load(&m.vni_used), load(&m.vni_size)),
        ] {
            for (state, v) in [("used", used), ("free", size.saturating_sub(used))] {
                let labels = vec![
                    ("pool".to_owned(), pool.to_owned()),
                    ("state".to_owned(), state.to_owned()),
                ];
                gauge(v).encode(alloc.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, collector: ControllerCollector) {
    let mut registry = Registry::with_prefix("ironnet_controller");
    registry.register_collector(Box::new(collector));
    ironnet_dp::metrics::serve_registry(listener, registry).await;
}

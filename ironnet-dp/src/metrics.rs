//! Prometheus metrics of the dp on an HTTP port (`/metrics`): packets per
//! port, drops by reason, transmit errors, offload work, flows and
//! interfaces.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::dataplane::StatsHandle;
use crate::snapshot::Published;

/// Reads the data plane's stats and the published snapshot on each scrape.
#[derive(Debug)]
pub struct DpCollector {
    stats: StatsHandle,
    published: Published,
    port_names: Vec<String>,
}

/// `NoRoute` → `no_route`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

impl DpCollector {
    /// A collector for ports named `port_names` (by port id).
    pub fn new(stats: StatsHandle, published: Published, port_names: Vec<String>) -> Self {
        DpCollector {
            stats,
            published,
            port_names,
        }
    }

    fn port_name(&self, i: usize) -> String {
        self.port_names
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("port{i}"))
    }
}

impl Collector for DpCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.stats.get();
        for (name, help, values) in [
            ("rx_packets", "Frames received per port", &stats.counters.rx),
            ("tx_packets", "Frames sent per port", &stats.counters.tx),
        ] {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                ConstCounter::new(0u64).metric_type(),
            )?;
            for (i, v) in values.iter().enumerate() {
                let labels = vec![("port".to_owned(), self.port_name(i))];
                ConstCounter::new(*v).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut drops = encoder.encode_descriptor(
            "dropped_packets",
            "Frames dropped (or answered with an ICMP error) per reason",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (reason, v) in &stats.counters.drops {
            let labels = vec![("reason".to_owned(), snake(&format!("{reason:?}")))];
            ConstCounter::new(*v).encode(drops.encode_family(&labels)?)?;
        }
        let tx_errors = ConstCounter::new(stats.tx_errors);
        tx_errors.encode(encoder.encode_descriptor(
            "tx_errors",
            "Frames a port refused to send",
            None,
            tx_errors.metric_type(),
        )?)?;
        let mut offload = encoder.encode_descriptor(
            "offload_frames",
            "Large guest frames cut into segments (segmented) and frames merged for guests (coalesced)",
            None,
            ConstCounter::new(0u64).metric_type(),
        )?;
        for (kind, v) in [
            ("segmented", stats.segmented),
            ("coalesced", stats.coalesced),
        ] {
            let labels = vec![("kind".to_owned(), kind.to_owned())];
            ConstCounter::new(v).encode(offload.encode_family(&labels)?)?;
        }
        let flows = ConstGauge::new(i64::try_from(stats.flows).unwrap_or(i64::MAX));
        flows.encode(encoder.encode_descriptor(
            "flows",
            "Flows in the connection-tracking table",
            None,
            flows.metric_type(),
        )?)?;
        let snap = self.published.load();
        let ifaces = snap.ports.iter().filter(|p| p.iface.is_some()).count();
        let interfaces = ConstGauge::new(i64::try_from(ifaces).unwrap_or(i64::MAX));
        interfaces.encode(encoder.encode_descriptor(
            "interfaces",
            "Interfaces plugged into guest ports",
            None,
            interfaces.metric_type(),
        )?)?;
        Ok(())
    }
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, collector: DpCollector) {
    let mut registry = Registry::with_prefix("ironnet_dp");
    registry.register_collector(Box::new(collector));
    serve_registry(listener, registry).await;
}

/// Serves `registry` as `/metrics` on `listener` (OpenMetrics text) until
/// the task is dropped; shared by the role binaries.
pub async fn serve_registry(listener: TcpListener, registry: Registry) {
    let registry = Arc::new(registry);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut out = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    out,
                )
                    .into_response()
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "metrics server stopped");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reasons_become_snake_case() {
        assert_eq!(super::snake("NoRoute"), "no_route");
        assert_eq!(super::snake("FlowTableFull"), "flow_table_full");
    }
}

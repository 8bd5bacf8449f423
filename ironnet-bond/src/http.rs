//! The server's HTTP side: a status page (`/`), `/routes.json` in
//! metalbond's shape, and Prometheus metrics (`/metrics`).
//!
//! `/routes.json` is `{"date", "metalbondVersion", "vnet": {VNI: {prefix:
//! [next hop]}}}` with next hops as metalbond's Go struct marshals them
//! (`TargetAddress`, `TargetVNI`, `Type`, `NATPortRangeFrom`,
//! `NATPortRangeTo`), plus `Announcers`, the number of peers announcing
//! the hop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use ironnet_overlay::route::{NextHopKind, Route};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::conn::State;
use crate::reflector::{PeerStatus, Reflector, ReflectorStats};
use crate::server::Input;

/// A copy of the server's state for the status endpoints.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Connected peers.
    pub peers: Vec<PeerStatus>,
    /// Every route with its number of announcers.
    pub routes: Vec<(Route, usize)>,
    /// Counters.
    pub stats: ReflectorStats,
}

impl Snapshot {
    /// Copies the reflector's state.
    pub fn of(r: &Reflector) -> Self {
        Snapshot {
            peers: r.peers(),
            routes: r.table().iter().map(|(rt, set)| (rt, set.len())).collect(),
            stats: r.stats(),
        }
    }
}

/// The server's Prometheus metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    peers: Gauge,
    established: Gauge,
    routes: Gauge,
    vnis: Gauge,
    updates_in: Counter,
    updates_out: Counter,
    /// Peers disconnected because they did not read fast enough.
    pub slow_consumers: Counter,
    seen: std::sync::Mutex<ReflectorStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ironnet_bond");
        let m = Metrics {
            peers: Gauge::default(),
            established: Gauge::default(),
            routes: Gauge::default(),
            vnis: Gauge::default(),
            updates_in: Counter::default(),
            updates_out: Counter::default(),
            slow_consumers: Counter::default(),
            seen: std::sync::Mutex::new(ReflectorStats::default()),
            registry: Registry::default(),
        };
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "peers_established",
            "Peers in state ESTABLISHED",
            m.established.clone(),
        );
        registry.register(
            "routes",
            "Distinct routes (VNI, destination, next hop)",
            m.routes.clone(),
        );
        registry.register("vnis", "VNIs with at least one route", m.vnis.clone());
        registry.register(
            "updates_received",
            "UPDATE messages received",
            m.updates_in.clone(),
        );
        registry.register(
            "updates_sent",
            "UPDATE messages queued to subscribers",
            m.updates_out.clone(),
        );
        registry.register(
            "slow_consumer_disconnects",
            "Peers disconnected for not reading",
            m.slow_consumers.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Updates the gauges and counters from the reflector.
    pub fn observe(&self, r: &Reflector) {
        self.peers.set(r.peer_count() as i64);
        self.established.set(r.established_count() as i64);
        self.routes.set(r.table().len() as i64);
        self.vnis.set(r.table().vnis().count() as i64);
        let stats = r.stats();
        if let Ok(mut seen) = self.seen.lock() {
            self.updates_in.inc_by(stats.updates_in - seen.updates_in);
            self.updates_out
                .inc_by(stats.updates_out - seen.updates_out);
            *seen = stats;
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[derive(Clone)]
struct HttpState {
    input: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
}

pub(crate) async fn serve(
    listener: TcpListener,
    input: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
) {
    let app = Router::new()
        .route("/", get(status_page))
        .route("/routes.json", get(routes_json))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { input, metrics });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "status page stopped");
    }
}

async fn snapshot(state: &HttpState) -> Option<Snapshot> {
    let (tx, rx) = oneshot::channel();
    state.input.send(Input::Snapshot(tx)).await.ok()?;
    rx.await.ok()
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n").into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoutesJson {
    date: String,
    metalbond_version: String,
    vnet: BTreeMap<u32, BTreeMap<String, Vec<HopJson>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HopJson {
    target_address: String,
    #[serde(rename = "TargetVNI")]
    target_vni: u32,
    #[serde(rename = "Type")]
    kind: u32,
    #[serde(rename = "NATPortRangeFrom")]
    nat_from: u16,
    #[serde(rename = "NATPortRangeTo")]
    nat_to: u16,
    announcers: usize,
}

/// The `/routes.json` document for a snapshot.
pub fn routes_document(snap: &Snapshot, now: SystemTime) -> String {
    let mut vnet: BTreeMap<u32, BTreeMap<String, Vec<HopJson>>> = BTreeMap::new();
    for (route, announcers) in &snap.routes {
        let (nat_from, nat_to) = match route.next_hop.kind {
            NextHopKind::Nat { port_from, port_to } => (port_from, port_to),
            _ => (0, 0),
        };
        vnet.entry(route.vni.get())
            .or_default()
            .entry(route.destination.to_string())
            .or_default()
            .push(HopJson {
                target_address: route.next_hop.underlay.to_string(),
                target_vni: route.next_hop.vni.get(),
                kind: route.next_hop.kind.wire_type(),
                nat_from,
                nat_to,
                announcers: *announcers,
            });
    }
    let doc = RoutesJson {
        date: rfc3339(now),
        metalbond_version: format!("ironnet-bond {}", env!("CARGO_PKG_VERSION")),
        vnet,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_owned())
}

async fn routes_json(AxumState(state): AxumState<HttpState>) -> Response {
    match snapshot(&state).await {
        Some(snap) => (
            [(header::CONTENT_TYPE, "application/json")],
            routes_document(&snap, SystemTime::now()),
        )
            .into_response(),
        None => unavailable(),
    }
}

async fn metrics_text(AxumState(state): AxumState<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn status_page(AxumState(state): AxumState<HttpState>) -> Response {
    match snapshot(&state).await {
        Some(snap) => Html(status_html(&snap, SystemTime::now())).into_response(),
        None => unavailable(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Connecting => "CONNECTING",
        State::HelloSent => "HELLO_SENT",
        State::HelloReceived => "HELLO_RECEIVED",
        State::Established => "ESTABLISHED",
        State::Closed => "CLOSED",
    }
}

fn kind_name(k: NextHopKind) -> String {
    match k {
        NextHopKind::Standard => "STANDARD".to_owned(),
        NextHopKind::Nat { port_from, port_to } => format!("NAT {port_from}–{port_to}"),
        NextHopKind::LoadBalancerTarget => "LOADBALANCER_TARGET".to_owned(),
    }
}

/// The status page for a snapshot: peers with their state, then routes per
/// VNI. Refreshes itself every 5 s.
pub fn status_html(snap: &Snapshot, now: SystemTime) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>ironnet-bond</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}\
         td,th{{border:1px solid #bbb;padding:.2em .6em;text-align:left}}th{{background:#eee}}</style>\
         </head><body><h1>ironnet-bond</h1><p>{} · {} peers · {} routes · {} updates in · {} updates out</p>",
        rfc3339(now),
        snap.peers.len(),
        snap.routes.len(),
        snap.stats.updates_in,
        snap.stats.updates_out
    );
    h.push_str("<h2>Peers</h2><table><tr><th>peer</th><th>address</th><th>state</th><th>subscriptions</th><th>routes announced</th></tr>");
    for p in &snap.peers {
        let subs: Vec<String> = p.subscriptions.iter().map(|v| v.to_string()).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.id,
            escape(&p.remote.to_string()),
            state_name(p.state),
            escape(&subs.join(", ")),
            p.announced
        );
    }
    h.push_str("</table><h2>Routes</h2>");
    let mut current = None;
    for (route, announcers) in &snap.routes {
        if current != Some(route.vni) {
            if current.is_some() {
                h.push_str("</table>");
            }
            current = Some(route.vni);
            let _ = write!(
                h,
                "<h3>VNI {}</h3><table><tr><th>destination</th><th>next hop</th><th>target VNI</th><th>type</th><th>announcers</th></tr>",
                route.vni
            );
        }
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&route.destination.to_string()),
            route.next_hop.underlay,
            route.next_hop.vni,
            escape(&kind_name(route.next_hop.kind)),
            announcers
        );
    }
    if current.is_some() {
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

/// `time` as RFC 3339 in UTC, seconds precision.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}

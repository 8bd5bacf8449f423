//! `ironnet-controller`: the global control plane. It serves the API (the
//! one door to the store) on an embedded, memory or etcd store and runs
//! the network controller: VNIs, public addresses, NAT sections, load
//! balancer placement, policies, peering and the user-API translation.
//! On etcd, replicas elect a leader; only the leader runs the controller,
//! every replica serves the API.
//!
//! ```text
//! ironnet-controller --data-dir /var/lib/ironnet --public-prefix 203.0.113.0/24
//! ironnet-controller --store etcd --etcd-endpoints http://10.0.0.1:2379 --token-file /etc/ironnet/token \
//!     --public-prefix 203.0.113.0/24,2001:db8:100::/64 --metrics-listen 0.0.0.0:9100
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ipnet::IpNet;
use ironnet_alloc::VniRange;
use ironnet_bins::controller_metrics::{self, ControllerCollector};
use ironnet_bins::init_tracing;
use ironnet_core::apiserver::ApiServer;
use ironnet_core::control::{Config, Metrics, NetworkController};
use ironnet_core::etcd::EtcdClient;
use ironnet_core::runtime::leader::LeaderElection;
use ironnet_core::store::Store;
use ironnet_core::store::embedded::EmbeddedStore;
use ironnet_core::store::etcd::EtcdStore;
use ironnet_core::store::memory::MemoryStore;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// One file in the data directory; survives restarts and crashes.
    Embedded,
    /// In memory; gone on exit.
    Memory,
    /// An etcd cluster, shared by replicas.
    Etcd,
}

#[derive(Parser)]
#[command(
    name = "ironnet-controller",
    version,
    about = "The ironnet control plane: API server and controllers"
)]
struct Cli {
    /// Address of the API (loopback by default; beyond loopback, set a
    /// token: the controller warns without one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The store backend.
    #[arg(long, value_enum, default_value = "embedded")]
    store: StoreKind,
    /// Directory of the embedded store.
    #[arg(long, default_value = "ironnet-data")]
    data_dir: PathBuf,
    /// etcd client URLs (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Key prefix of this installation in etcd.
    #[arg(long, default_value = "/ironnet")]
    etcd_prefix: String,
    /// A file holding the bearer token every request must carry.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Public prefixes addresses are allocated from (IPv4 and IPv6;
    /// repeatable or comma-separated). Without one of a family, requests
    /// for that family stay pending with an event saying so.
    #[arg(long, value_delimiter = ',')]
    public_prefix: Vec<IpNet>,
    /// Lowest VNI networks get (below it: infrastructure, public VNI 100).
    #[arg(long, default_value_t = 200)]
    vni_min: u32,
    /// Highest VNI networks get.
    #[arg(long, default_value_t = 16_777_215)]
    vni_max: u32,
    /// Most addresses a NAT gateway grows to when port sections run out.
    #[arg(long, default_value_t = 10)]
    nat_max_ips: u32,
    /// Namespace of the internal objects the user API is translated into.
    #[arg(long, default_value = "ironnet-system")]
    namespace: String,
    /// Serve the API only; run no controller.
    #[arg(long)]
    no_controllers: bool,
    /// Address of the Prometheus metrics (`/metrics`); none by default.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Leader lease time to live in seconds (etcd store).
    #[arg(long, default_value_t = 10)]
    leader_ttl: i64,
    /// This replica's name in the leader election (default: host and pid).
    #[arg(long)]
    identity: Option<String>,
    /// Debug logging.
    #[arg(short, long)]
    verbose: bool,
}

fn config(cli: &Cli) -> Result<Config, String> {
    Ok(Config {
        namespace: cli.namespace.clone(),
        public_prefixes: cli.public_prefix.clone(),
        vni_range: VniRange::new(cli.vni_min, cli.vni_max)
            .map_err(|e| format!("--vni-min/--vni-max: {e}"))?,
        nat_max_ips: cli.nat_max_ips.max(1),
        ..Config::default()
    })
}

/// Runs the controller while `leader` allows: always without an election,
/// during each term with one.
async fn control<S: Store>(
    store: S,
    cfg: Config,
    metrics: Arc<Metrics>,
    leader: Arc<AtomicBool>,
    election: Option<LeaderElection>,
) {
    let Some(election) = election else {
        leader.store(true, Ordering::Relaxed);
        NetworkController::new(store, cfg)
            .with_metrics(metrics)
            .run(std::future::pending())
            .await;
        return;
    };
    loop {
        let mut term = match election.acquire().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "leader election failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(
            revision = term.revision(),
            "leading: the controller runs here"
        );
        leader.store(true, Ordering::Relaxed);
        NetworkController::new(store.clone(), cfg.clone())
            .with_metrics(Arc::clone(&metrics))
            .run(term.lost())
            .await;
        leader.store(false, Ordering::Relaxed);
        tracing::warn!("leadership lost: the controller stopped here");
    }
}

async fn serve<S: Store>(
    store: S,
    cli: &Cli,
    token: Option<String>,
    etcd: Option<EtcdClient>,
) -> Result<(), String> {
    let cfg = config(cli)?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving beyond loopback without a token: anyone who reaches it can change everything");
    }
    let mut server = ApiServer::new(store.clone());
    if let Some(t) = token {
        server = server.with_token(t);
    }
    println!("API on http://{addr}");
    let metrics = Arc::new(Metrics::default());
    let leader = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(m) = cli.metrics_listen {
        let l = tokio::net::TcpListener::bind(m)
            .await
            .map_err(|e| format!("cannot listen on {m}: {e}"))?;
        println!(
            "metrics on http://{}/metrics",
            l.local_addr().map_err(|e| e.to_string())?
        );
        tasks.spawn(controller_metrics::serve(
            l,
            ControllerCollector::new(Arc::clone(&metrics), Arc::clone(&leader)),
        ));
    }
    if !cli.no_controllers {
        let identity = cli.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let election = etcd.map(|c| {
            LeaderElection::new(
                c,
                &format!("{}/leader", cli.etcd_prefix),
                &identity,
                cli.leader_ttl,
            )
        });
        tasks.spawn(control(store, cfg, metrics, leader, election));
    }
    let result = server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string());
    tasks.shutdown().await;
    result
}

async fn run(cli: Cli) -> Result<(), String> {
    let token = cli
        .token_file
        .as_deref()
        .map(ironnet_bins::read_token)
        .transpose()?;
    match cli.store {
        StoreKind::Memory => serve(MemoryStore::new(), &cli, token, None).await,
        StoreKind::Embedded => {
            std::fs::create_dir_all(&cli.data_dir)
                .map_err(|e| format!("{}: {e}", cli.data_dir.display()))?;
            let store = EmbeddedStore::open(&cli.data_dir.join("store.redb"))
                .map_err(|e| format!("{}: {e}", cli.data_dir.display()))?;
            serve(store, &cli, token, None).await
        }
        StoreKind::Etcd => {
            let store = EtcdStore::open(&cli.etcd_endpoints, &cli.etcd_prefix)
                .await
                .map_err(|e| format!("etcd: {e}"))?;
            let client = store.client().clone();
            serve(store, &cli, token, Some(client)).await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironnet-controller: {e}");
            ExitCode::FAILURE
        }
    }
}

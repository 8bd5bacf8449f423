//! `ironnet-controller`: the global control plane. Today it serves the API
//! (the one door to the store) on an embedded, memory or etcd store; the
//! controllers that allocate and translate join it next.
//!
//! ```text
//! ironnet-controller --data-dir /var/lib/ironnet --listen 127.0.0.1:8080
//! ironnet-controller --store etcd --etcd-endpoints http://10.0.0.1:2379 --token-file /etc/ironnet/token
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use ironnet_bins::init_tracing;
use ironnet_core::apiserver::ApiServer;
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
    /// Debug logging.
    #[arg(short, long)]
    verbose: bool,
}

async fn serve<S: Store>(store: S, cli: &Cli, token: Option<String>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if token.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving beyond loopback without a token: anyone who reaches it can change everything");
    }
    let mut server = ApiServer::new(store);
    if let Some(t) = token {
        server = server.with_token(t);
    }
    println!("API on http://{addr}");
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    let token = match &cli.token_file {
        None => None,
        Some(p) => {
            let t = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let t = t.trim().to_owned();
            if t.is_empty() {
                return Err(format!("{}: empty token", p.display()));
            }
            Some(t)
        }
    };
    match cli.store {
        StoreKind::Memory => serve(MemoryStore::new(), &cli, token).await,
        StoreKind::Embedded => {
            std::fs::create_dir_all(&cli.data_dir)
                .map_err(|e| format!("{}: {e}", cli.data_dir.display()))?;
            let store = EmbeddedStore::open(&cli.data_dir.join("store.redb"))
                .map_err(|e| format!("{}: {e}", cli.data_dir.display()))?;
            serve(store, &cli, token).await
        }
        StoreKind::Etcd => {
            let store = EtcdStore::open(&cli.etcd_endpoints, &cli.etcd_prefix)
                .await
                .map_err(|e| format!("etcd: {e}"))?;
            serve(store, &cli, token).await
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

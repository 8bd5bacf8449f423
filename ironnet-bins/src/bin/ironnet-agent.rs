//! `ironnet-agent`: the per-hypervisor agent. Registers its Node with the
//! controller's API, programs the dp over dpservice's gRPC API, and
//! exchanges routes with the bond servers.
//!
//! ```text
//! ironnet-agent --node hv1 --api http://127.0.0.1:8080 --dp 127.0.0.1:1337 \
//!     --bond [::1]:4711 --bond [::1]:4713 --router-address fc00:b::100
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ironnet_bins::agent::view::Device;
use ironnet_bins::agent::{Agent, AgentConfig};
use ironnet_bins::{init_tracing, read_token};
use ironnet_core::client::ApiClient;

#[derive(Parser)]
#[command(
    name = "ironnet-agent",
    version,
    about = "The per-hypervisor ironnet agent"
)]
struct Cli {
    /// This node's name (its apinet Node).
    #[arg(long)]
    node: String,
    /// The controller's API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// A file with a bearer token for the API.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// The dp's gRPC address.
    #[arg(long, default_value = "127.0.0.1:1337")]
    dp: String,
    /// A bond server (repeatable; every one gets every announcement).
    #[arg(long = "bond", required = true)]
    bond: Vec<SocketAddr>,
    /// The public VNI.
    #[arg(long, default_value_t = 100)]
    public_vni: u32,
    /// The router's underlay address, used until a router announces
    /// 0.0.0.0/0 in the public VNI.
    #[arg(long)]
    router_address: Option<Ipv6Addr>,
    /// Allow IPv6 overlay addresses.
    #[arg(long)]
    enable_ipv6: bool,
    /// Guest slots: TAP devices `<tap-prefix>dtapvf_0…` (the dp's
    /// `--vfs` and `--tap-prefix`).
    #[arg(long, default_value_t = 4)]
    vfs: usize,
    /// Prefix of the dp's TAP names.
    #[arg(long, default_value = "")]
    tap_prefix: String,
    /// A label of the Node, `key=value` (repeatable), e.g.
    /// `topology.core.apinet.ironcore.dev/zone=a`.
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Seconds between full read-backs of the dp.
    #[arg(long, default_value_t = 30)]
    resync: u64,
    /// Seconds after a start or bond reconnect during which learned routes
    /// are only added, never removed.
    #[arg(long, default_value_t = 5)]
    restore_window: u64,
    /// Debug logging.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: want key=value"))
}

async fn run(cli: Cli) -> Result<(), String> {
    let token = cli.token_file.as_deref().map(read_token).transpose()?;
    let api = ApiClient::new(&cli.api, token).map_err(|e| e.to_string())?;
    let mut cfg = AgentConfig::new(&cli.node);
    cfg.node_labels = cli.labels.iter().cloned().collect::<BTreeMap<_, _>>();
    cfg.public_vni = cli.public_vni;
    cfg.router_address = cli.router_address;
    cfg.enable_ipv6 = cli.enable_ipv6;
    cfg.devices = Device::taps(&cli.tap_prefix, cli.vfs);
    cfg.resync = Duration::from_secs(cli.resync.max(1));
    cfg.restore_window = Duration::from_secs(cli.restore_window);
    let agent = Agent::new(api, &cli.dp, cli.bond.clone(), cfg).map_err(|e| e.to_string())?;
    println!("agent {} for dp {}", cli.node, cli.dp);
    agent
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironnet-agent: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironnet-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

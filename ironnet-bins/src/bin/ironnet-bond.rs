//! `ironnet-bond`: the route-distribution server (a metalbond-compatible
//! route reflector) and a command-line client.
//!
//! ```text
//! ironnet-bond server --listen [::]:4711 --http [::1]:4712 --keepalive 5
//! ironnet-bond client --server [::1]:4711 --subscribe 100 \
//!     --announce 100#10.0.0.0/24#fd00::1 --announce 100#203.0.113.1/32#fd00::1#NAT#1024#2047
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ironnet_bins::{describe_route, init_tracing};
use ironnet_bond::client::RouteEvent;
use ironnet_bond::spec::parse_announcement;
use ironnet_bond::{BondClient, ClientConfig, ServerConfig, ServerHandle};
use ironnet_overlay::route::{Route, Vni};

#[derive(Parser)]
#[command(
    name = "ironnet-bond",
    version,
    about = "Route distribution compatible with metalbond protocol v1"
)]
struct Cli {
    /// Debug logging.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a route reflector.
    Server {
        /// Address for metalbond connections.
        #[arg(long, default_value = "[::]:4711")]
        listen: SocketAddr,
        /// Address for the status page, /routes.json and /metrics.
        #[arg(long, default_value = "[::1]:4712")]
        http: SocketAddr,
        /// Keepalive interval offered to clients, seconds.
        #[arg(long, default_value_t = 5)]
        keepalive: u32,
        /// Seconds a client may leave its backlog unread before it is
        /// disconnected.
        #[arg(long, default_value_t = 10)]
        stall_timeout: u64,
        /// Seconds to keep the routes of a client that went away; a
        /// restarted client takes them over meanwhile (0: remove at once,
        /// as metalbond).
        #[arg(long, default_value_t = 10)]
        departed_grace: u64,
    },
    /// Connect to servers, subscribe, announce, and print learned routes.
    Client {
        /// A server address (repeatable); servers that are down are retried.
        #[arg(long = "server", required = true)]
        servers: Vec<SocketAddr>,
        /// A VNI to subscribe to (repeatable).
        #[arg(long, value_parser = parse_vni)]
        subscribe: Vec<Vni>,
        /// VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO] (repeatable).
        #[arg(long, value_parser = parse_announcement)]
        announce: Vec<Route>,
        /// Keepalive interval, seconds.
        #[arg(long, default_value_t = 5)]
        keepalive: u32,
        /// Seconds to keep a lost server's routes (0: remove at once).
        #[arg(long, default_value_t = 0)]
        grace: u64,
    },
}

fn parse_vni(s: &str) -> Result<Vni, String> {
    s.parse::<u32>()
        .ok()
        .and_then(Vni::new)
        .ok_or_else(|| format!("invalid VNI {s:?} (0..=16777215)"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match cli.command {
        Command::Server {
            listen,
            http,
            keepalive,
            stall_timeout,
            departed_grace,
        } => {
            let config = ServerConfig {
                listen,
                http: Some(http),
                keepalive_secs: keepalive,
                stall_timeout: Duration::from_secs(stall_timeout.max(1)),
                departed_grace: Duration::from_secs(departed_grace),
                ..ServerConfig::default()
            };
            let server = match ServerHandle::start(config).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ironnet-bond: cannot listen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            println!("listening on {}", server.local_addr());
            if let Some(http) = server.http_addr() {
                println!("status page on http://{http}/");
            }
            let _ = tokio::signal::ctrl_c().await;
            server.shutdown().await;
            ExitCode::SUCCESS
        }
        Command::Client {
            servers,
            subscribe,
            announce,
            keepalive,
            grace,
        } => {
            let config = ClientConfig {
                keepalive_secs: keepalive,
                grace: Duration::from_secs(grace),
                ..ClientConfig::default()
            };
            let (client, mut events) = BondClient::spawn(config, servers);
            for vni in subscribe {
                let _ = client.subscribe(vni).await;
            }
            for route in announce {
                let _ = client.announce(route).await;
            }
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(RouteEvent::Add(r)) => println!("ADD {}", describe_route(&r)),
                        Some(RouteEvent::Remove(r)) => println!("REMOVE {}", describe_route(&r)),
                        None => return ExitCode::FAILURE,
                    },
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            client.shutdown().await;
            ExitCode::SUCCESS
        }
    }
}

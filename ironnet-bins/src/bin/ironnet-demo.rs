//! `ironnet-demo`: the whole system on one machine, moving real packets.
//!
//! ```text
//! sudo ironnet-demo            # run, print status and the measured matrix, wait for Ctrl-C
//! sudo ironnet-demo --once     # the same, then clean up and exit (non-zero if a cell failed)
//! ```
//! The `serve` and `fetch` subcommands are what the demo runs inside its
//! guests: a TCP name server and its client.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ironnet_bins::demo::{Binaries, Demo, Mode, checks};

#[derive(Parser)]
#[command(
    name = "ironnet-demo",
    version,
    about = "The whole ironnet system on one machine, measured"
)]
struct Cli {
    /// Clean up and exit after the matrix instead of waiting for Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Run the in-memory variant even as root.
    #[arg(long)]
    memory: bool,
    /// Prefix of namespace and TAP names (at most 5 characters).
    #[arg(long, default_value = "idm")]
    tag: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Answer every TCP connection with `NAME PEER-ADDRESS` (runs in a guest).
    Serve {
        /// The name to answer with.
        #[arg(long)]
        name: String,
        /// The port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Connect COUNT times and print each answer (runs in a guest).
    Fetch {
        /// Address and port.
        addr: SocketAddr,
        /// Connections.
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
}

fn serve(name: &str, port: u16) -> ExitCode {
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ironnet-demo serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    for mut conn in listener.incoming().flatten() {
        let peer = conn
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let _ = conn.write_all(format!("{name} {peer}\n").as_bytes());
    }
    ExitCode::SUCCESS
}

fn fetch(addr: SocketAddr, count: usize) -> ExitCode {
    for _ in 0..count {
        let Ok(conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            continue;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut line = String::new();
        if BufReader::new(conn).read_line(&mut line).is_ok() && !line.trim().is_empty() {
            println!("{}", line.trim());
        }
    }
    ExitCode::SUCCESS
}

async fn run(cli: &Cli) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no binary directory")?;
    let bins = Binaries::in_dir(dir).map_err(|e| e.to_string())?;
    let mode = match Demo::unsupported() {
        _ if cli.memory => Mode::Memory,
        None => Mode::Netns,
        Some(why) => {
            println!(
                "no network namespaces here ({why}): running the in-memory variant. The dps run \
                 inside this process on memory ports and the guests, router and internet are \
                 simulated (DHCP and ICMP only, so TCP cells are not measured); \
                 run as root for real namespaces and TAP devices."
            );
            Mode::Memory
        }
    };
    println!(
        "starting: controller (embedded store), 2 bond servers, hv-a and hv-b (dp + agent each)"
    );
    let mut demo = Demo::start(&cli.tag, bins, mode)
        .await
        .map_err(|e| e.to_string())?;
    println!("applying examples/demo/*.yaml");
    let mut applied = Vec::new();
    demo.apply(&mut applied).await.map_err(|e| e.to_string())?;
    print!("{}", String::from_utf8_lossy(&applied));
    println!("waiting for interfaces, DHCP leases in the guests and public routes at the router");
    demo.bring_up_guests().await.map_err(|e| e.to_string())?;
    println!();
    print!("{}", demo.status_tables().await);
    println!("connectivity, measured with real packets:");
    let rows = demo.measure(demo.checks()).await;
    print!("{}", checks::render(&rows));
    let failed = rows.iter().filter(|(_, o)| !o.ok).count();
    let measured = rows.iter().filter(|(_, o)| o.measured).count();
    print!(
        "{} of {measured} measured cells as the manifests say",
        measured - failed
    );
    if measured < rows.len() {
        print!(" ({} not measured)", rows.len() - measured);
    }
    println!();
    println!();
    println!("where to look next:");
    print!("{}", demo.pointers());
    if !cli.once {
        println!("\nrunning; Ctrl-C stops everything and cleans up");
        let _ = tokio::signal::ctrl_c().await;
    }
    Ok(failed == 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Serve { name, port }) => return serve(name, *port),
        Some(Command::Fetch { addr, count }) => return fetch(*addr, *count),
        None => {}
    }
    // Warnings only: the demo's own output is the point (RUST_LOG overrides).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironnet-demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C during start-up drops the demo half-built: its destructors
    // still remove what exists.
    let result = rt.block_on(async {
        tokio::select! {
            r = run(&cli) => r,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ironnet-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

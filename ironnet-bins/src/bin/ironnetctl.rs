//! `ironnetctl`: the command line of an ironnet API server.
//!
//! ```text
//! ironnetctl apply -f examples/seeds/network.yaml
//! ironnetctl get networks -o wide
//! ironnetctl describe networkinterface my-nic
//! ironnetctl delete virtualip my-vip
//! ironnetctl watch networkinterfaces -A
//! ```

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ironnet_bins::ctl::{self, CtlError, Output, Target, resolve_kind};
use ironnet_core::client::ApiClient;
use ironnet_core::manifest::parse_manifests;
use ironnet_core::registry::DynObject;

#[derive(Parser)]
#[command(
    name = "ironnetctl",
    version,
    about = "Command line of an ironnet API server"
)]
struct Cli {
    /// The API server.
    #[arg(
        long,
        global = true,
        env = "IRONNET_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// A bearer token, if the server wants one.
    #[arg(long, global = true, env = "IRONNET_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The namespace.
    #[arg(short, long, global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update the objects of manifests (multi-document YAML or
    /// JSON; `-` reads stdin).
    Apply {
        /// Manifest files (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// List objects of a kind, or show some by name.
    Get {
        /// A kind (`networks`, `nic`, `ips.core.apinet.ironcore.dev` …).
        kind: String,
        /// Names (all when none).
        names: Vec<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// Only objects matching this label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Show one object in detail.
    Describe {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
    },
    /// Delete objects by kind and name, or those of manifests.
    Delete {
        /// The kind (or none with `-f`).
        kind: Option<String>,
        /// Names.
        names: Vec<String>,
        /// Manifest files whose objects to delete.
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
    },
    /// Print a kind's objects, then every change, until interrupted.
    Watch {
        /// The kind.
        kind: String,
        /// Output format (table or wide).
        #[arg(short, long, value_enum, default_value = "table")]
        output: Output,
        /// Only objects matching this label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// The kinds the server has.
    Kinds,
}

fn read_manifests(files: &[String], namespace: &str) -> Result<Vec<DynObject>, CtlError> {
    let mut objs = Vec::new();
    for f in files {
        let text = if f == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| CtlError::Usage(format!("stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(f).map_err(|e| CtlError::Usage(format!("{f}: {e}")))?
        };
        objs.extend(
            parse_manifests(&text, namespace).map_err(|e| CtlError::Usage(format!("{f}: {e}")))?,
        );
    }
    Ok(objs)
}

fn target(
    kind: &str,
    namespace: &str,
    all: bool,
    selector: Option<String>,
) -> Result<Target, CtlError> {
    Ok(Target {
        kind: resolve_kind(kind)?,
        namespace: (!all).then(|| namespace.to_owned()),
        selector,
    })
}

async fn dispatch(cli: Cli, out: &mut impl Write) -> Result<(), CtlError> {
    let client = ApiClient::new(&cli.server, cli.token.clone())?;
    let ns = cli.namespace.as_str();
    match cli.command {
        Command::Apply { files } => {
            let objs = read_manifests(&files, ns)?;
            ctl::apply(&client, objs, out, &mut std::io::stderr()).await
        }
        Command::Get {
            kind,
            names,
            output,
            selector,
            all_namespaces,
        } => {
            let t = target(&kind, ns, all_namespaces, selector)?;
            ctl::get(&client, &t, &names, output, out).await
        }
        Command::Describe { kind, name } => {
            ctl::describe(&client, &target(&kind, ns, false, None)?, &name, out).await
        }
        Command::Delete { kind, names, files } => match kind {
            _ if !files.is_empty() => {
                let objs = read_manifests(&files, ns)?;
                ctl::delete_objects(&client, &objs, out).await
            }
            None => Err(CtlError::Usage("delete: give KIND NAME… or -f FILE".into())),
            Some(kind) => ctl::delete(&client, &target(&kind, ns, false, None)?, &names, out).await,
        },
        Command::Watch {
            kind,
            output,
            selector,
            all_namespaces,
        } => {
            let t = target(&kind, ns, all_namespaces, selector)?;
            tokio::select! {
                r = ctl::watch(&client, &t, output, out) => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
        Command::Kinds => ctl::kinds(out),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let result = dispatch(cli, &mut out).await;
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

//! `ironnet-dp`: the packet data plane over TAP devices it creates itself,
//! programmed through dpservice's gRPC API.
//!
//! ```text
//! ironnet-dp --ipv6 fc00:1::1 --vfs 4 --grpc-port 1337 --enable-ipv6-overlay \
//!     --dhcp-mtu 1450 --dhcp-dns 8.8.8.8 --dhcpv6-dns 2001:4860:4860::8888
//! ```
//! creates PFs `dtap0`, `dtap1` and VFs `dtapvf_0`…`dtapvf_3` (device
//! names `net_tap0`… as `CreateInterface.device_name`) with dpservice's
//! TAP-mode MACs, and serves gRPC on 127.0.0.1:1337.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ironnet_bins::init_tracing;
use ironnet_dp::dataplane::Dataplane;
use ironnet_dp::io::{PortIo, TapPort};
use ironnet_dp::metrics::DpCollector;
use ironnet_dp::pipeline::conntrack::Timeouts;
use ironnet_dp::pipeline::{DEFAULT_FLOWS, Pipeline};
use ironnet_dp::service::DpService;
use ironnet_dp::virtsvc::{ServiceProtocol, VirtsvcError, VirtualService, VirtualServices};
use ironnet_dp::{DpConfig, DpState, Published, Snapshot};
use ironnet_overlay::wire::MacAddr;

#[derive(Parser)]
#[command(
    name = "ironnet-dp",
    version,
    about = "ironnet's packet data plane (dpservice-compatible gRPC)"
)]
struct Cli {
    /// The host's underlay address; its /64 prefixes all underlay addresses.
    #[arg(long)]
    ipv6: Ipv6Addr,
    /// Number of VF TAP devices.
    #[arg(long, default_value_t = 4)]
    vfs: usize,
    /// Prefix for every TAP name (to run several dps on one machine).
    #[arg(long, default_value = "")]
    tap_prefix: String,
    /// Byte 4 of every port MAC (dpservice's TAP MACs have 0x22 on PFs and
    /// 0x66 on VFs); dps sharing an underlay segment need distinct PF MACs.
    #[arg(long)]
    mac_index: Option<u8>,
    /// gRPC port.
    #[arg(long, default_value_t = 1337)]
    grpc_port: u16,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1")]
    grpc_address: std::net::IpAddr,
    /// DHCP option 26, 68..=1500.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u16).range(68..=1500))]
    dhcp_mtu: u16,
    /// DHCP DNS server (repeatable).
    #[arg(long)]
    dhcp_dns: Vec<Ipv4Addr>,
    /// DHCPv6 DNS server (repeatable).
    #[arg(long)]
    dhcpv6_dns: Vec<Ipv6Addr>,
    /// Answer neighbour and router solicitations.
    #[arg(long)]
    enable_ipv6_overlay: bool,
    /// Idle timeout of flows other than established TCP, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=300))]
    flow_timeout: u64,
    /// Underlay MTU; larger packets after encapsulation get ICMP errors.
    #[arg(long, default_value_t = 1540)]
    underlay_mtu: u16,
    /// Serve Prometheus metrics on this address (`/metrics`).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Open the VF TAPs without the virtio-net header: no TSO, checksum
    /// offload or receive coalescing towards guests (one frame per packet).
    #[arg(long)]
    no_offload: bool,
    /// The router's MAC behind the PFs (learned from traffic otherwise).
    #[arg(long)]
    pf_router_mac: Option<MacAddr>,
    /// A TCP virtual service, `IPv4,port,IPv6,port`: guests reach the IPv6
    /// service at the IPv4 address and port (repeatable).
    #[arg(long, value_name = "IPv4,PORT,IPv6,PORT")]
    tcp_virtsvc: Vec<String>,
    /// A UDP virtual service, as `--tcp-virtsvc` (repeatable).
    #[arg(long, value_name = "IPv4,PORT,IPv6,PORT")]
    udp_virtsvc: Vec<String>,
    /// Debug logging.
    #[arg(short, long)]
    verbose: bool,
}

/// The virtual services of the command line, validated together.
fn virtual_services(cli: &Cli) -> Result<VirtualServices, VirtsvcError> {
    let tcp = cli
        .tcp_virtsvc
        .iter()
        .map(|t| VirtualService::parse(ServiceProtocol::Tcp, t));
    let udp = cli
        .udp_virtsvc
        .iter()
        .map(|t| VirtualService::parse(ServiceProtocol::Udp, t));
    VirtualServices::new(tcp.chain(udp).collect::<Result<_, _>>()?)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let services = match virtual_services(&cli) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ironnet-dp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut config = DpConfig::tap_named(cli.ipv6, cli.vfs, &cli.tap_prefix);
    config.virtual_services = Arc::new(services);
    if let Some(index) = cli.mac_index {
        for p in &mut config.ports {
            p.mac.0[4] = index;
        }
    }
    config.dhcp_mtu = cli.dhcp_mtu;
    config.dhcp_dns = cli.dhcp_dns;
    config.dhcpv6_dns = cli.dhcpv6_dns;
    config.ipv6_overlay = cli.enable_ipv6_overlay;
    config.flow_timeout = Duration::from_secs(cli.flow_timeout);
    config.underlay_mtu = cli.underlay_mtu;

    let mut ports: Vec<Arc<dyn PortIo>> = Vec::new();
    for p in &config.ports {
        let mtu = match p.kind {
            ironnet_dp::PortKind::Pf => cli.underlay_mtu.saturating_add(14).max(1514) - 14,
            ironnet_dp::PortKind::Vf => 1500,
        };
        // A PF TAP's netdev is the far end of the uplink: it must not carry
        // the dp's own PF MAC, or a bridge on it keeps our frames.
        let netdev_mac = match p.kind {
            ironnet_dp::PortKind::Pf => {
                let mut m = p.mac;
                m.0[5] ^= 0x80;
                m
            }
            ironnet_dp::PortKind::Vf => p.mac,
        };
        let offload = p.kind == ironnet_dp::PortKind::Vf && !cli.no_offload;
        match TapPort::create(&p.name, netdev_mac, mtu, offload) {
            Ok(t) => ports.push(Arc::new(t)),
            Err(e) => {
                eprintln!("ironnet-dp: cannot create TAP {}: {e}", p.name);
                return ExitCode::FAILURE;
            }
        }
    }
    let names: Vec<String> = config.ports.iter().map(|p| p.name.clone()).collect();
    let published = Published::new(Snapshot::empty());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let service = DpService::new(DpState::new(config.clone(), seed), published.clone());
    let neighbors: Vec<(u16, MacAddr)> = cli
        .pf_router_mac
        .map(|mac| {
            config
                .ports
                .iter()
                .enumerate()
                .filter(|(_, p)| p.kind == ironnet_dp::PortKind::Pf)
                .filter_map(|(i, _)| Some((u16::try_from(i).ok()?, mac)))
                .collect()
        })
        .unwrap_or_default();
    let mut pipe = Pipeline::with_flows(
        DEFAULT_FLOWS,
        Timeouts {
            tcp_established: config.tcp_established_timeout,
            other: config.flow_timeout,
        },
    );
    for (port, mac) in neighbors {
        pipe.set_neighbor(port, mac);
    }
    let dataplane = Dataplane::spawn(ports, published.clone(), pipe);
    let _metrics = match cli.http {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let bound = l.local_addr().unwrap_or(addr);
                let collector =
                    DpCollector::new(dataplane.stats_handle(), published, names.clone());
                Some((
                    bound,
                    tokio::spawn(ironnet_dp::metrics::serve(l, collector)),
                ))
            }
            Err(e) => {
                eprintln!("ironnet-dp: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let addr = SocketAddr::new(cli.grpc_address, cli.grpc_port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ironnet-dp: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("ports {}", names.join(" "));
    println!("grpc on {addr}");
    if let Some((bound, _)) = &_metrics {
        println!("metrics on http://{bound}/metrics");
    }
    for (i, s) in config.virtual_services.iter().enumerate() {
        let underlay = u16::try_from(i)
            .map(|i| ironnet_dp::virtsvc::service_underlay(config.host_ipv6, i).to_string())
            .unwrap_or_default();
        // Not on stdout: a parent reading the first lines may have closed it.
        tracing::info!(
            "virtual service {} {}:{} -> [{}]:{} from {underlay}",
            s.protocol,
            s.virtual_addr,
            s.virtual_port,
            s.service_addr,
            s.service_port
        );
    }
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let server = tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        });
    match server.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ironnet-dp: gRPC server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

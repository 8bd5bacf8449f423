//! The dp's configuration: its ports (PFs and VFs, with names and MACs), the
//! host underlay address, DHCP settings and flow timeouts.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use ironnet_overlay::wire::MacAddr;

use crate::virtsvc::VirtualServices;

/// Whether a port faces the underlay or a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortKind {
    /// Uplink (physical function); carries encapsulated traffic.
    Pf,
    /// Guest port (virtual function or TAP).
    Vf,
}

/// One port of the dp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The netdev name the guest or the fabric sees (`dtapvf_0`).
    pub name: String,
    /// The device name `CreateInterface.device_name` refers to (dpservice's
    /// DPDK port name, `net_tap2`); the netdev name is accepted as well.
    pub device: String,
    /// The port's own MAC: the gateway MAC guests see on a VF.
    pub mac: MacAddr,
    /// PF or VF.
    pub kind: PortKind,
}

/// Everything the dp is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpConfig {
    /// The host's underlay address (`--ipv6`); its /64 prefixes every
    /// generated underlay address.
    pub host_ipv6: Ipv6Addr,
    /// Ports in port-id order.
    pub ports: Vec<PortConfig>,
    /// DHCP option 26 (`--dhcp-mtu`, 68..=1500).
    pub dhcp_mtu: u16,
    /// DHCP option 6 (`--dhcp-dns`).
    pub dhcp_dns: Vec<Ipv4Addr>,
    /// DHCPv6 option 23 (`--dhcpv6-dns`).
    pub dhcpv6_dns: Vec<Ipv6Addr>,
    /// Answer neighbour and router solicitations (`--enable-ipv6-overlay`).
    pub ipv6_overlay: bool,
    /// Idle timeout of flows other than established TCP (`--flow-timeout`).
    pub flow_timeout: Duration,
    /// Idle timeout of established TCP flows.
    pub tcp_established_timeout: Duration,
    /// MTU of the underlay links; inner packets that do not fit after
    /// encapsulation get ICMP "packet too big" / "fragmentation needed".
    pub underlay_mtu: u16,
    /// Virtual services (`--tcp-virtsvc`, `--udp-virtsvc`), validated.
    pub virtual_services: Arc<VirtualServices>,
}

/// dpservice's TAP-mode defaults: PF MACs `22:22:22:22:22:0N`, VF MACs
/// `66:66:66:66:66:0N`.
pub const TAP_PF_MAC_PREFIX: [u8; 5] = [0x22; 5];
/// See [`TAP_PF_MAC_PREFIX`].
pub const TAP_VF_MAC_PREFIX: [u8; 5] = [0x66; 5];

impl DpConfig {
    /// The layout dpservice uses in TAP mode: PFs `dtap0`, `dtap1`
    /// (`net_tap0`, `net_tap1`) and `vfs` VFs `dtapvf_0`… (`net_tap2`…).
    pub fn tap(host_ipv6: Ipv6Addr, vfs: usize) -> Self {
        Self::tap_named(host_ipv6, vfs, "")
    }

    /// [`tap`](Self::tap) with a prefix before every netdev name (several
    /// dps on one machine need distinct names, like dpservice's `b_dtap*`).
    pub fn tap_named(host_ipv6: Ipv6Addr, vfs: usize, prefix: &str) -> Self {
        let mac = |p: [u8; 5], i: usize| {
            MacAddr([
                p[0],
                p[1],
                p[2],
                p[3],
                p[4],
                u8::try_from(i).unwrap_or(u8::MAX),
            ])
        };
        let mut ports = Vec::new();
        for i in 0..2 {
            ports.push(PortConfig {
                name: format!("{prefix}dtap{i}"),
                device: format!("net_tap{i}"),
                mac: mac(TAP_PF_MAC_PREFIX, i),
                kind: PortKind::Pf,
            });
        }
        for i in 0..vfs {
            ports.push(PortConfig {
                name: format!("{prefix}dtapvf_{i}"),
                device: format!("net_tap{}", i + 2),
                mac: mac(TAP_VF_MAC_PREFIX, i),
                kind: PortKind::Vf,
            });
        }
        DpConfig {
            host_ipv6,
            ports,
            ..Self::default()
        }
    }
}

impl Default for DpConfig {
    fn default() -> Self {
        DpConfig {
            host_ipv6: Ipv6Addr::UNSPECIFIED,
            ports: Vec::new(),
            dhcp_mtu: 1500,
            dhcp_dns: Vec::new(),
            dhcpv6_dns: Vec::new(),
            ipv6_overlay: true,
            flow_timeout: Duration::from_secs(30),
            tcp_established_timeout: Duration::from_secs(86_400),
            underlay_mtu: 1540,
            virtual_services: Arc::default(),
        }
    }
}

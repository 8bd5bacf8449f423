//! The immutable tables the packet pipeline reads. The control side builds
//! a new [`Snapshot`] after every change and publishes it atomically
//! ([`Published`]); a worker loads it once per batch, so packets never take
//! a lock.

use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ironnet_overlay::lpm::VniTables;
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::MacAddr;

use crate::config::PortKind;
use crate::firewall::RuleSet;
use crate::maglev::Maglev;
use crate::state::{NeighborNat, PortId, Pxe, RouteTarget, Vnf};
use crate::virtsvc::VirtualServices;

/// An interface's NAT as the pipeline needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatView {
    /// The NAT IP.
    pub ip: Ipv4Addr,
    /// First port.
    pub min_port: u16,
    /// One past the last port.
    pub max_port: u16,
}

/// A load balancer as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbView {
    /// VNI.
    pub vni: Vni,
    /// The balanced address.
    pub ip: IpAddr,
    /// Balanced (protocol, port) pairs.
    pub ports: Vec<(u8, u16)>,
    /// Targets and lookup table.
    pub maglev: Maglev,
}

/// Flows to remove because what they depend on went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Every flow of a guest port (its interface was deleted).
    Port(PortId),
    /// Flows an interface's virtual IP translated.
    Vip(PortId),
    /// Flows an interface's NAT translated.
    Nat(PortId),
    /// Flows relayed for a neighbour's NAT range.
    NeighborNat {
        /// VNI.
        vni: Vni,
        /// NAT IP.
        ip: Ipv4Addr,
        /// First port.
        min_port: u16,
        /// One past the last port.
        max_port: u16,
    },
    /// Flows a load balancer balanced (onto `target`, or onto any).
    Balanced {
        /// VNI.
        vni: Vni,
        /// The balanced address.
        ip: IpAddr,
        /// The target, or every target.
        target: Option<Ipv6Addr>,
    },
}

/// The interface on a guest port, as the pipeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceView {
    /// Identifier.
    pub id: String,
    /// VNI.
    pub vni: Vni,
    /// Primary IPv4.
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6.
    pub ipv6: Option<Ipv6Addr>,
    /// Underlay address (outer source of its encapsulated traffic).
    pub underlay: Ipv6Addr,
    /// DHCP hostname.
    pub hostname: Option<String>,
    /// PXE settings.
    pub pxe: Option<Pxe>,
    /// Firewall rules.
    pub firewall: Arc<RuleSet>,
    /// Virtual IP.
    pub vip: Option<Ipv4Addr>,
    /// NAT gateway address and ports.
    pub nat: Option<NatView>,
}

/// One port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortView {
    /// PF or VF.
    pub kind: PortKind,
    /// The port's own MAC.
    pub mac: MacAddr,
    /// The interface plugged into a VF, if any.
    pub iface: Option<IfaceView>,
}

/// Everything the pipeline reads, frozen.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The control-state generation this was built from.
    pub generation: u64,
    /// Per-VNI routes.
    pub routes: VniTables<RouteTarget>,
    /// Underlay address → what it stands for.
    pub vnf: FxHashMap<Ipv6Addr, Vnf>,
    /// Ports by id.
    pub ports: Vec<PortView>,
    /// The host's underlay address.
    pub host_ipv6: Ipv6Addr,
    /// DHCP option 26.
    pub dhcp_mtu: u16,
    /// DHCP option 6.
    pub dhcp_dns: Vec<Ipv4Addr>,
    /// DHCPv6 option 23.
    pub dhcpv6_dns: Vec<Ipv6Addr>,
    /// Answer NS/RS.
    pub ipv6_overlay: bool,
    /// Underlay MTU.
    pub underlay_mtu: u16,
    /// Changes so far to any interface's firewall rules.
    pub firewall_epoch: u64,
    /// Load balancers by underlay address.
    pub lbs: FxHashMap<Ipv6Addr, Arc<LbView>>,
    /// Neighbour NAT entries.
    pub neighbor_nats: Arc<Vec<NeighborNat>>,
    /// Recent purges with the generation that logged them, oldest first.
    pub purges: Arc<Vec<(u64, Purge)>>,
    /// Generation of the newest purge no longer in `purges`: a pipeline
    /// that saw nothing that recent removes every translated flow.
    pub purges_trimmed: u64,
    /// Virtual services (static configuration).
    pub virtual_services: Arc<VirtualServices>,
}

impl Snapshot {
    /// An empty snapshot (no ports).
    pub fn empty() -> Self {
        Snapshot {
            generation: 0,
            routes: VniTables::default(),
            vnf: FxHashMap::default(),
            ports: Vec::new(),
            host_ipv6: Ipv6Addr::UNSPECIFIED,
            dhcp_mtu: 1500,
            dhcp_dns: Vec::new(),
            dhcpv6_dns: Vec::new(),
            ipv6_overlay: true,
            underlay_mtu: 1540,
            firewall_epoch: 0,
            lbs: FxHashMap::default(),
            neighbor_nats: Arc::new(Vec::new()),
            purges: Arc::new(Vec::new()),
            purges_trimmed: 0,
            virtual_services: Arc::default(),
        }
    }
}

/// The current snapshot, swapped atomically by the control side.
#[derive(Debug, Clone)]
pub struct Published(Arc<ArcSwap<Snapshot>>);

impl Published {
    /// Starts with `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Published(Arc::new(ArcSwap::from_pointee(snapshot)))
    }

    /// The current snapshot (one atomic load).
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Replaces the snapshot.
    pub fn store(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }
}

//! The immutable tables the packet pipeline reads. The control side builds
//! a new [`Snapshot`] after every change and publishes it atomically
//! ([`Published`]); a worker loads it once per batch, so packets never take
//! a lock.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ironnet_overlay::lpm::VniTables;
use ironnet_overlay::route::Vni;
use ironnet_overlay::wire::MacAddr;

use crate::config::PortKind;
use crate::firewall::RuleSet;
use crate::state::{Pxe, RouteTarget, Vnf};

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
    pub vnf: HashMap<Ipv6Addr, Vnf>,
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
}

impl Snapshot {
    /// An empty snapshot (no ports).
    pub fn empty() -> Self {
        Snapshot {
            generation: 0,
            routes: VniTables::default(),
            vnf: HashMap::new(),
            ports: Vec::new(),
            host_ipv6: Ipv6Addr::UNSPECIFIED,
            dhcp_mtu: 1500,
            dhcp_dns: Vec::new(),
            dhcpv6_dns: Vec::new(),
            ipv6_overlay: true,
            underlay_mtu: 1540,
            firewall_epoch: 0,
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

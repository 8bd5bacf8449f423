//! The dp's control state: interfaces, alias prefixes, per-VNI routes, the
//! underlay-address table (dpservice's "VNF" table) and VNI references.
//!
//! Every operation checks everything first and changes state only when it
//! succeeds, so a rejected request leaves the tables as they were. The
//! packet pipeline never reads this: it reads [`Snapshot`]s built from it.
//!
//! Where dpservice is weaker, this does better (docs/dp.md lists it):
//! deleting an interface removes its alias prefixes, load-balancer
//! prefixes, virtual IP and NAT with their underlay addresses and flows;
//! `ListRoutes` lists IPv6 routes too; `Initialize` and `ResetVni` drop
//! external routes but keep what interfaces own.
//!
//! Flows live in the pipeline. When something a flow depends on goes away,
//! the state logs a [`Purge`] with its generation; the pipeline applies the
//! purges newer than the last snapshot it saw.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ironnet_alloc::UnderlayAllocator;
use ironnet_overlay::lpm::VniTablesBuilder;
use ironnet_overlay::route::Vni;

mod firewall;
mod lb;
mod nat;

pub use lb::{LbPort, LbSpec, LoadBalancer, MAX_LB_PORTS};
pub use nat::{LocalNat, NatConfig, NeighborNat};

use crate::config::{DpConfig, PortKind};
use crate::error::ServiceError;
use crate::firewall::{FirewallRule, RuleSet};
use crate::snapshot::{IfaceView, NatView, PortView, Purge, Snapshot};

/// Purges kept for pipelines that have not caught up yet; one further
/// behind flushes every translated flow instead.
const PURGE_LOG: usize = 4096;

/// Index of a port in [`DpConfig::ports`].
pub type PortId = u16;

/// Where a route leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTarget {
    /// A local guest port.
    Vf(PortId),
    /// Another host: encapsulate towards `underlay`; `vni` is the next
    /// hop's VNI (stored and listed, not transmitted).
    Remote {
        /// The next hop's VNI.
        vni: Vni,
        /// The next hop's underlay address.
        underlay: Ipv6Addr,
    },
}

/// What an underlay address of this host stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VnfKind {
    /// An interface's own address.
    Interface,
    /// An alias prefix routed to an interface.
    AliasPrefix(IpNet),
    /// An interface's virtual IP (1:1 NAT).
    Vip,
    /// An interface's NAT gateway address and port range.
    Nat,
    /// A load balancer (its `port` is the first uplink).
    Lb,
    /// A load-balancer prefix of an interface: balanced traffic for it is
    /// delivered to the interface, and no route is added.
    LbPrefix(IpNet),
}

/// An entry of the underlay-address table: decapsulated packets to this
/// address go to `port` in `vni`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vnf {
    /// What the address is for.
    pub kind: VnfKind,
    /// The VNI of the inner packet.
    pub vni: Vni,
    /// The guest port.
    pub port: PortId,
}

/// PXE boot settings of an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pxe {
    /// The boot server.
    pub next_server: IpAddr,
    /// The boot file (HTTP mode appends it to the server's URL).
    pub boot_filename: String,
}

/// A request to create an interface, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceSpec {
    /// Identifier (`[A-Za-z0-9_-]`, 1..=63 characters).
    pub id: String,
    /// VNI.
    pub vni: Vni,
    /// Primary IPv4, if any.
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6, if any.
    pub ipv6: Option<Ipv6Addr>,
    /// Device name (`net_tap2`) or netdev name (`dtapvf_0`) of a VF.
    pub device: String,
    /// Preferred underlay address (already checked against the host /64).
    pub preferred_underlay: Option<Ipv6Addr>,
    /// PXE settings.
    pub pxe: Option<Pxe>,
    /// DHCP hostname.
    pub hostname: Option<String>,
}

/// An interface as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Identifier.
    pub id: String,
    /// VNI.
    pub vni: Vni,
    /// Primary IPv4.
    pub ipv4: Option<Ipv4Addr>,
    /// Primary IPv6.
    pub ipv6: Option<Ipv6Addr>,
    /// The interface's underlay address.
    pub underlay: Ipv6Addr,
    /// The guest port.
    pub port: PortId,
    /// PXE settings.
    pub pxe: Option<Pxe>,
    /// DHCP hostname.
    pub hostname: Option<String>,
    /// Alias prefixes with their underlay addresses.
    pub prefixes: BTreeMap<IpNet, Ipv6Addr>,
    /// Firewall rules in creation order.
    pub rules: Vec<FirewallRule>,
    /// Virtual IP and its underlay address.
    pub vip: Option<(Ipv4Addr, Ipv6Addr)>,
    /// NAT gateway address and port range.
    pub nat: Option<NatConfig>,
    /// Load-balancer prefixes with their underlay addresses.
    pub lb_prefixes: BTreeMap<IpNet, Ipv6Addr>,
}

/// A route programmed with CreateRoute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalRoute {
    /// VNI of the table.
    pub vni: Vni,
    /// Destination (canonical).
    pub prefix: IpNet,
    /// The next hop's VNI.
    pub nexthop_vni: Vni,
    /// The next hop's underlay address.
    pub nexthop: Ipv6Addr,
}

/// Which of dpservice's VNI types a VNI call names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VniType {
    /// IPv4 tables.
    V4,
    /// IPv6 tables.
    V6,
    /// Both.
    Both,
}

/// The control state.
#[derive(Debug)]
pub struct DpState {
    config: DpConfig,
    initialized: bool,
    interfaces: BTreeMap<String, Interface>,
    by_port: BTreeMap<PortId, String>,
    vni_refs: BTreeMap<Vni, u32>,
    routes: VniTablesBuilder<RouteTarget>,
    vnf: BTreeMap<Ipv6Addr, Vnf>,
    underlay: UnderlayAllocator,
    rng: u64,
    generation: u64,
    /// Changes of any interface's firewall rules (flows decided under an
    /// older epoch are decided again).
    firewall_epoch: u64,
    /// Who uses an IPv4 address as a translated destination in a VNI.
    dnat: BTreeMap<(Vni, Ipv4Addr), nat::DnatUse>,
    /// Neighbour NAT entries in creation order.
    neighbor_nats: Vec<NeighborNat>,
    /// Load balancers by id.
    lbs: BTreeMap<String, LoadBalancer>,
    /// Recent purges with the generation that logged them.
    purges: VecDeque<(u64, Purge)>,
    /// Generation of the newest purge dropped from the log.
    purges_trimmed: u64,
}

fn host_route(addr: IpAddr) -> IpNet {
    match addr {
        IpAddr::V4(a) => IpNet::V4(Ipv4Net::from(a)),
        IpAddr::V6(a) => IpNet::V6(Ipv6Net::from(a)),
    }
}

impl DpState {
    /// Empty state for `config`. `seed` drives the random parts of
    /// generated underlay addresses (counter start and random byte).
    pub fn new(config: DpConfig, seed: u64) -> Self {
        let mut rng = seed;
        let start = (splitmix(&mut rng) & 0xff) as u32;
        DpState {
            underlay: UnderlayAllocator::new(config.host_ipv6, start),
            config,
            initialized: false,
            interfaces: BTreeMap::new(),
            by_port: BTreeMap::new(),
            vni_refs: BTreeMap::new(),
            routes: VniTablesBuilder::new(),
            vnf: BTreeMap::new(),
            rng,
            generation: 0,
            firewall_epoch: 0,
            dnat: BTreeMap::new(),
            neighbor_nats: Vec::new(),
            lbs: BTreeMap::new(),
            purges: VecDeque::new(),
            purges_trimmed: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DpConfig {
        &self.config
    }

    /// Whether Initialize was called.
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// Changes since start; every successful change increments it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn changed(&mut self) {
        self.generation += 1;
    }

    /// Logs that flows matching `purge` must go; call before `changed`
    /// (the purge belongs to the generation that change creates).
    fn purge(&mut self, purge: Purge) {
        if self.purges.len() >= PURGE_LOG
            && let Some((generation, _)) = self.purges.pop_front()
        {
            self.purges_trimmed = generation;
        }
        self.purges.push_back((self.generation + 1, purge));
    }

    /// Initialize: marks the dp initialized and drops external routes and
    /// neighbour NATs (a (re)starting agent programs them again). Allowed
    /// repeatedly.
    pub fn initialize(&mut self) {
        self.initialized = true;
        let neighbors = std::mem::take(&mut self.neighbor_nats);
        for n in neighbors {
            self.unuse_nat_ip(n.vni, n.ip);
            self.purge(Purge::NeighborNat {
                vni: n.vni,
                ip: n.ip,
                min_port: n.min_port,
                max_port: n.max_port,
            });
        }
        let vnis: Vec<Vni> = self.vni_refs.keys().copied().collect();
        for vni in vnis {
            self.drop_external_routes(vni);
        }
        self.changed();
    }

    fn drop_external_routes(&mut self, vni: Vni) {
        let external: Vec<IpNet> = self
            .routes
            .table(vni)
            .map(|t| {
                t.iter()
                    .filter(|(_, target)| matches!(target, RouteTarget::Remote { .. }))
                    .map(|(p, _)| p)
                    .collect()
            })
            .unwrap_or_default();
        for prefix in external {
            self.routes.remove(vni, prefix);
        }
    }

    fn port_by_device(&self, device: &str) -> Option<PortId> {
        self.config
            .ports
            .iter()
            .position(|p| p.kind == PortKind::Vf && (p.device == device || p.name == device))
            .and_then(|i| PortId::try_from(i).ok())
    }

    fn route_taken(&self, vni: Vni, prefix: IpNet) -> bool {
        self.routes
            .table(vni)
            .is_some_and(|t| t.get(prefix.trunc()).is_some())
    }

    fn next_random(&mut self) -> u8 {
        (splitmix(&mut self.rng) & 0xff) as u8
    }

    /// Picks the underlay address for a new object without claiming it.
    fn pick_underlay(&mut self, preferred: Option<Ipv6Addr>) -> Result<Ipv6Addr, ServiceError> {
        match preferred {
            Some(addr) if !addr.is_unspecified() => {
                if self.underlay.is_allocated(addr) || self.vnf.contains_key(&addr) {
                    Err(ServiceError::VnfInsert)
                } else {
                    Ok(addr)
                }
            }
            _ => {
                // Generating on a clone claims nothing if a later check fails.
                let mut probe = self.underlay.clone();
                let random = self.next_random();
                probe
                    .allocate(random)
                    .map_err(|_| ServiceError::OutOfMemory)
            }
        }
    }

    fn claim_underlay(&mut self, addr: Ipv6Addr) {
        // `pick_underlay` checked that the address is free.
        if self.underlay.claim(addr).is_err() {
            tracing::warn!(%addr, "underlay address claimed twice");
        }
    }

    /// Picks an underlay address (`preferred` if given), claims it and
    /// enters `vnf` for it. The only step that can fail is the pick, so
    /// call it after every other check.
    fn add_vnf(&mut self, preferred: Option<Ipv6Addr>, vnf: Vnf) -> Result<Ipv6Addr, ServiceError> {
        let underlay = self.pick_underlay(preferred)?;
        self.claim_underlay(underlay);
        self.vnf.insert(underlay, vnf);
        Ok(underlay)
    }

    /// CreateInterface: the underlay address and the VF's netdev name.
    pub fn create_interface(
        &mut self,
        spec: InterfaceSpec,
    ) -> Result<(Ipv6Addr, String), ServiceError> {
        let port = self
            .port_by_device(&spec.device)
            .ok_or(ServiceError::NotFound)?;
        if self.by_port.contains_key(&port) {
            return Err(ServiceError::AlreadyExists);
        }
        if self.interfaces.contains_key(&spec.id) {
            return Err(ServiceError::VmHandle);
        }
        let own: Vec<IpNet> = spec
            .ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(spec.ipv6.map(IpAddr::V6))
            .map(host_route)
            .collect();
        if own.iter().any(|p| self.route_taken(spec.vni, *p)) {
            return Err(ServiceError::RouteExists);
        }
        let underlay = self.add_vnf(
            spec.preferred_underlay,
            Vnf {
                kind: VnfKind::Interface,
                vni: spec.vni,
                port,
            },
        )?;
        // Checks done: from here on nothing fails.
        for prefix in own {
            self.routes.insert(spec.vni, prefix, RouteTarget::Vf(port));
        }
        *self.vni_refs.entry(spec.vni).or_default() += 1;
        self.by_port.insert(port, spec.id.clone());
        let name = self
            .config
            .ports
            .get(usize::from(port))
            .map(|p| p.name.clone())
            .unwrap_or_default();
        self.interfaces.insert(
            spec.id.clone(),
            Interface {
                id: spec.id,
                vni: spec.vni,
                ipv4: spec.ipv4,
                ipv6: spec.ipv6,
                underlay,
                port,
                pxe: spec.pxe,
                hostname: spec.hostname,
                prefixes: BTreeMap::new(),
                rules: Vec::new(),
                vip: None,
                nat: None,
                lb_prefixes: BTreeMap::new(),
            },
        );
        self.changed();
        Ok((underlay, name))
    }

    /// DeleteInterface: removes the interface and everything it owns.
    pub fn delete_interface(&mut self, id: &str) -> Result<(), ServiceError> {
        let iface = self.interfaces.remove(id).ok_or(ServiceError::NotFound)?;
        self.by_port.remove(&iface.port);
        for addr in iface
            .ipv4
            .map(IpAddr::V4)
            .into_iter()
            .chain(iface.ipv6.map(IpAddr::V6))
        {
            self.routes.remove(iface.vni, host_route(addr));
        }
        for (prefix, underlay) in &iface.prefixes {
            self.routes.remove(iface.vni, *prefix);
            self.release_underlay(*underlay);
        }
        for underlay in iface.lb_prefixes.values() {
            self.release_underlay(*underlay);
        }
        if let Some((vip, underlay)) = iface.vip {
            self.release_underlay(underlay);
            self.dnat.remove(&(iface.vni, vip));
        }
        if let Some(nat) = iface.nat {
            self.release_underlay(nat.underlay);
            self.unuse_nat_ip(iface.vni, nat.ip);
        }
        self.release_underlay(iface.underlay);
        self.purge(Purge::Port(iface.port));
        self.unref_vni(iface.vni);
        if !iface.rules.is_empty() {
            self.firewall_epoch += 1;
        }
        self.changed();
        Ok(())
    }

    fn release_underlay(&mut self, addr: Ipv6Addr) {
        self.vnf.remove(&addr);
        let _ = self.underlay.release(addr);
    }

    fn unref_vni(&mut self, vni: Vni) {
        if let Some(refs) = self.vni_refs.get_mut(&vni) {
            *refs -= 1;
            if *refs == 0 {
                self.vni_refs.remove(&vni);
                self.routes.remove_vni(vni);
            }
        }
    }

    /// An interface.
    pub fn interface(&self, id: &str) -> Option<&Interface> {
        self.interfaces.get(id)
    }

    /// All interfaces, in port order (as dpservice lists them).
    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> + '_ {
        self.by_port
            .values()
            .filter_map(|id| self.interfaces.get(id))
    }

    /// CreatePrefix: routes `prefix` in the interface's VNI to its port.
    pub fn create_prefix(
        &mut self,
        id: &str,
        prefix: IpNet,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, ServiceError> {
        let prefix = prefix.trunc();
        let (vni, port) = match self.interfaces.get(id) {
            Some(i) => (i.vni, i.port),
            None => return Err(ServiceError::NoVm),
        };
        if self.route_taken(vni, prefix) {
            return Err(ServiceError::RouteExists);
        }
        let underlay = self.add_vnf(
            preferred,
            Vnf {
                kind: VnfKind::AliasPrefix(prefix),
                vni,
                port,
            },
        )?;
        self.routes.insert(vni, prefix, RouteTarget::Vf(port));
        if let Some(i) = self.interfaces.get_mut(id) {
            i.prefixes.insert(prefix, underlay);
        }
        self.changed();
        Ok(underlay)
    }

    /// DeletePrefix.
    pub fn delete_prefix(&mut self, id: &str, prefix: IpNet) -> Result<(), ServiceError> {
        let prefix = prefix.trunc();
        let iface = self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)?;
        let vni = iface.vni;
        let underlay = iface
            .prefixes
            .remove(&prefix)
            .ok_or(ServiceError::RouteNotFound)?;
        self.routes.remove(vni, prefix);
        self.release_underlay(underlay);
        self.changed();
        Ok(())
    }

    /// ListPrefixes: (prefix, underlay) of an interface.
    pub fn prefixes(&self, id: &str) -> Result<Vec<(IpNet, Ipv6Addr)>, ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        Ok(iface.prefixes.iter().map(|(p, u)| (*p, *u)).collect())
    }

    /// CreateRoute: `prefix` in `vni` via another host.
    pub fn create_route(&mut self, route: ExternalRoute) -> Result<(), ServiceError> {
        if !self.vni_refs.contains_key(&route.vni) {
            return Err(ServiceError::NoVni);
        }
        let prefix = route.prefix.trunc();
        if self.route_taken(route.vni, prefix) {
            return Err(ServiceError::RouteExists);
        }
        self.routes.insert(
            route.vni,
            prefix,
            RouteTarget::Remote {
                vni: route.nexthop_vni,
                underlay: route.nexthop,
            },
        );
        self.changed();
        Ok(())
    }

    /// DeleteRoute: only routes created with CreateRoute.
    pub fn delete_route(&mut self, vni: Vni, prefix: IpNet) -> Result<(), ServiceError> {
        if !self.vni_refs.contains_key(&vni) {
            return Err(ServiceError::NoVni);
        }
        let prefix = prefix.trunc();
        match self.routes.table(vni).and_then(|t| t.get(prefix)) {
            None => Err(ServiceError::RouteNotFound),
            Some(RouteTarget::Vf(_)) => Err(ServiceError::RouteBadPort),
            Some(RouteTarget::Remote { .. }) => {
                self.routes.remove(vni, prefix);
                self.changed();
                Ok(())
            }
        }
    }

    /// ListRoutes: routes created with CreateRoute in `vni` (all VNIs for
    /// `None`), IPv4 and IPv6, ordered by VNI and prefix.
    pub fn routes(&self, vni: Option<Vni>) -> Result<Vec<ExternalRoute>, ServiceError> {
        let vnis: Vec<Vni> = match vni {
            Some(v) if !self.vni_refs.contains_key(&v) => return Err(ServiceError::NoVni),
            Some(v) => vec![v],
            None => self.vni_refs.keys().copied().collect(),
        };
        let mut out = Vec::new();
        for v in vnis {
            let Some(table) = self.routes.table(v) else {
                continue;
            };
            let mut list: Vec<ExternalRoute> = table
                .iter()
                .filter_map(|(prefix, target)| match *target {
                    RouteTarget::Remote { vni, underlay } => Some(ExternalRoute {
                        vni: v,
                        prefix,
                        nexthop_vni: vni,
                        nexthop: underlay,
                    }),
                    RouteTarget::Vf(_) => None,
                })
                .collect();
            list.sort_by_key(|r| (r.prefix.addr(), r.prefix.prefix_len()));
            out.extend(list);
        }
        Ok(out)
    }

    /// CheckVniInUse: whether an interface uses `vni`.
    pub fn vni_in_use(&self, vni: Vni, ty: VniType) -> Result<bool, ServiceError> {
        if ty == VniType::Both {
            return Err(ServiceError::WrongType);
        }
        Ok(self.vni_refs.contains_key(&vni))
    }

    /// ResetVni: drops the VNI's external routes.
    pub fn reset_vni(&mut self, vni: Vni, ty: VniType) -> Result<(), ServiceError> {
        if ty != VniType::Both {
            return Err(ServiceError::WrongType);
        }
        self.drop_external_routes(vni);
        self.changed();
        Ok(())
    }

    /// Whether `addr` is acceptable as a preferred underlay address: in the
    /// host's /64 with the "externally generated" flag (dpservice's rule).
    pub fn preferred_is_valid(&self, addr: Ipv6Addr) -> bool {
        self.underlay.validate_preferred(addr).is_ok()
    }

    /// The underlay-address table.
    pub fn vnf(&self, addr: Ipv6Addr) -> Option<&Vnf> {
        self.vnf.get(&addr)
    }

    /// An immutable snapshot for the packet pipeline.
    pub fn snapshot(&mut self) -> Snapshot {
        let ports = self
            .config
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let iface = PortId::try_from(i)
                    .ok()
                    .and_then(|port| self.by_port.get(&port))
                    .and_then(|id| self.interfaces.get(id))
                    .map(|iface| IfaceView {
                        id: iface.id.clone(),
                        vni: iface.vni,
                        ipv4: iface.ipv4,
                        ipv6: iface.ipv6,
                        underlay: iface.underlay,
                        hostname: iface.hostname.clone(),
                        pxe: iface.pxe.clone(),
                        firewall: Arc::new(RuleSet::new(&iface.rules)),
                        vip: iface.vip.map(|(ip, _)| ip),
                        nat: iface.nat.map(|n| NatView {
                            ip: n.ip,
                            min_port: n.min_port,
                            max_port: n.max_port,
                        }),
                    });
                PortView {
                    kind: p.kind,
                    mac: p.mac,
                    iface,
                }
            })
            .collect();
        Snapshot {
            generation: self.generation,
            routes: self.routes.build(),
            vnf: self.vnf.iter().map(|(a, v)| (*a, *v)).collect(),
            ports,
            host_ipv6: self.config.host_ipv6,
            dhcp_mtu: self.config.dhcp_mtu,
            dhcp_dns: self.config.dhcp_dns.clone(),
            dhcpv6_dns: self.config.dhcpv6_dns.clone(),
            ipv6_overlay: self.config.ipv6_overlay,
            underlay_mtu: self.config.underlay_mtu,
            firewall_epoch: self.firewall_epoch,
            lbs: self
                .lbs
                .values()
                .map(|lb| (lb.underlay, Arc::clone(&lb.view)))
                .collect(),
            neighbor_nats: Arc::new(self.neighbor_nats.clone()),
            purges: Arc::new(self.purges.iter().copied().collect()),
            purges_trimmed: self.purges_trimmed,
            virtual_services: Arc::clone(&self.config.virtual_services),
        }
    }
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

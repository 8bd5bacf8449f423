//! The dp's gRPC API (dpservice's `dpdk.proto`) as the agent uses it:
//! reading the dp's state back into a [`DpView`] and running [`DpOp`]s,
//! keeping the view current with each answer. Works against ironnet-dp
//! and dpservice alike.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use ironnet_dp::proto;
use ironnet_dp::proto::dpd_kironcore_client::DpdKironcoreClient;
use thiserror::Error;
use tonic::transport::Channel;

use super::desired::{LbProtocol, NatRange};
use super::view::{DpOp, DpView, HaveInterface, HaveLb, Hop, NeighborNat};

/// A failed dp call.
#[derive(Debug, Error)]
pub enum DpError {
    /// The dp could not be reached or the call broke.
    #[error("dp unreachable: {0}")]
    Transport(String),
    /// The dp refused the call (dpservice's error number and name).
    #[error("dp refused {call}: {code} {message}")]
    Refused {
        /// The call.
        call: &'static str,
        /// dpservice's error number.
        code: u32,
        /// Its name.
        message: String,
    },
    /// The dp answered something this agent cannot read.
    #[error("dp answer unreadable: {0}")]
    Garbled(String),
}

impl DpError {
    /// Whether the dp said the object was not there.
    pub fn is_absent(&self) -> bool {
        // NOT_FOUND, NO_VM, NO_VNI, ROUTE_NOT_FOUND, SNAT_NO_DATA, NO_LB
        matches!(
            self,
            DpError::Refused {
                code: 201 | 205 | 206 | 302 | 341 | 422,
                ..
            }
        )
    }

    /// Whether the dp said the object was there already.
    pub fn is_present(&self) -> bool {
        // ALREADY_EXISTS, ROUTE_EXISTS, SNAT_EXISTS
        matches!(
            self,
            DpError::Refused {
                code: 202 | 301 | 343,
                ..
            }
        )
    }
}

impl From<tonic::Status> for DpError {
    fn from(s: tonic::Status) -> Self {
        DpError::Transport(format!("{}: {}", s.code(), s.message()))
    }
}

/// An address as the API carries it (text).
pub fn ip_address(ip: IpAddr) -> proto::IpAddress {
    let ipver = if ip.is_ipv4() {
        proto::IpVersion::Ipv4
    } else {
        proto::IpVersion::Ipv6
    };
    proto::IpAddress {
        ipver: ipver as i32,
        address: ip.to_string().into_bytes(),
    }
}

fn parse_ip(a: Option<&proto::IpAddress>) -> Result<IpAddr, DpError> {
    let a = a.ok_or_else(|| DpError::Garbled("address missing".into()))?;
    std::str::from_utf8(&a.address)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DpError::Garbled(format!("address {:?}", a.address)))
}

fn parse_underlay(bytes: &[u8]) -> Result<Ipv6Addr, DpError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DpError::Garbled(format!("underlay address {bytes:?}")))
}

fn parse_prefix(p: &proto::Prefix) -> Result<IpNet, DpError> {
    let ip = parse_ip(p.ip.as_ref())?;
    let len = u8::try_from(p.length).map_err(|_| DpError::Garbled("prefix length".into()))?;
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .map_err(|_| DpError::Garbled(format!("prefix {ip}/{len}")))
}

/// A prefix as the API carries it (no underlay address).
pub fn prefix(p: IpNet) -> proto::Prefix {
    proto::Prefix {
        ip: Some(ip_address(p.addr())),
        length: u32::from(p.prefix_len()),
        underlay_route: Vec::new(),
    }
}

fn checked(call: &'static str, status: Option<proto::Status>) -> Result<(), DpError> {
    match status {
        Some(s) if s.code != 0 => Err(DpError::Refused {
            call,
            code: s.code,
            message: s.message,
        }),
        _ => Ok(()),
    }
}

fn port(v: u32) -> Result<u16, DpError> {
    u16::try_from(v).map_err(|_| DpError::Garbled(format!("port {v}")))
}

/// A connection to one dp.
#[derive(Debug, Clone)]
pub struct Dp {
    client: DpdKironcoreClient<Channel>,
}

impl Dp {
    /// A client of the dp at `addr` (`host:port`); connects lazily.
    pub fn new(addr: &str) -> Result<Dp, DpError> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| DpError::Transport(e.to_string()))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(10))
            .connect_lazy();
        Ok(Dp {
            client: DpdKironcoreClient::new(channel),
        })
    }

    /// The dp's identity if it is initialised: a dp that restarted has a
    /// new one (and nothing of what it held).
    pub async fn initialized(&self) -> Result<Option<String>, DpError> {
        let r = match self
            .client
            .clone()
            .check_initialized(proto::CheckInitializedRequest {})
            .await
        {
            Ok(r) => r.into_inner(),
            // dpservice answers ABORTED until it is initialised.
            Err(s) if s.code() == tonic::Code::Aborted => return Ok(None),
            Err(s) => return Err(s.into()),
        };
        match checked("CheckInitialized", r.status) {
            Ok(()) if !r.uuid.is_empty() => Ok(Some(r.uuid)),
            _ => Ok(None),
        }
    }

    /// Initialises the dp unless it already is (initialising again would
    /// wipe it, dpservice #312); its identity.
    pub async fn ensure_initialized(&self) -> Result<String, DpError> {
        if let Some(uuid) = self.initialized().await? {
            return Ok(uuid);
        }
        let r = self
            .client
            .clone()
            .initialize(proto::InitializeRequest {})
            .await?
            .into_inner();
        checked("Initialize", r.status)?;
        self.initialized()
            .await?
            .ok_or_else(|| DpError::Garbled("initialised but no identity".into()))
    }

    /// Reads everything the agent manages back from the dp: interfaces
    /// with their parts, load balancers with their targets, routes of
    /// `vnis` (and of every VNI an interface or load balancer is in), and
    /// neighbour NAT sections of `nat_ips`.
    pub async fn read(
        &self,
        vnis: &BTreeSet<u32>,
        nat_ips: &BTreeSet<Ipv4Addr>,
    ) -> Result<DpView, DpError> {
        let mut c = self.client.clone();
        let mut view = DpView::default();
        let r = c
            .list_interfaces(proto::ListInterfacesRequest {})
            .await?
            .into_inner();
        checked("ListInterfaces", r.status)?;
        for i in r.interfaces {
            let id = String::from_utf8_lossy(&i.id).into_owned();
            let have = self.read_interface(&id, &i).await?;
            view.interfaces.insert(id, have);
        }
        let r = c
            .list_load_balancers(proto::ListLoadBalancersRequest {})
            .await?
            .into_inner();
        checked("ListLoadBalancers", r.status)?;
        for lb in r.loadbalancers {
            let id = String::from_utf8_lossy(&lb.id).into_owned();
            let t = c
                .list_load_balancer_targets(proto::ListLoadBalancerTargetsRequest {
                    loadbalancer_id: lb.id.clone(),
                })
                .await?
                .into_inner();
            checked("ListLoadBalancerTargets", t.status)?;
            let mut targets = BTreeSet::new();
            for a in &t.target_ips {
                if let IpAddr::V6(a) = parse_ip(Some(a))? {
                    targets.insert(a);
                }
            }
            let ports = lb
                .ports
                .iter()
                .map(|p| {
                    let proto_ = if p.protocol == proto::Protocol::Udp as i32 {
                        LbProtocol::Udp
                    } else {
                        LbProtocol::Tcp
                    };
                    Ok((proto_, port(p.port)?))
                })
                .collect::<Result<_, DpError>>()?;
            view.lbs.insert(
                id,
                HaveLb {
                    vni: lb.vni,
                    ip: parse_ip(lb.ip.as_ref())?,
                    ports,
                    underlay: parse_underlay(&lb.underlay_route)?,
                    targets,
                },
            );
        }
        let mut all_vnis = vnis.clone();
        all_vnis.extend(view.interfaces.values().map(|i| i.vni));
        all_vnis.extend(view.lbs.values().map(|l| l.vni));
        for vni in all_vnis {
            let r = c
                .list_routes(proto::ListRoutesRequest { vni })
                .await?
                .into_inner();
            match checked("ListRoutes", r.status) {
                Ok(()) => {}
                Err(e) if e.is_absent() => continue,
                Err(e) => return Err(e),
            }
            let mut routes = BTreeMap::new();
            for rt in r.routes {
                let Some(p) = &rt.prefix else { continue };
                let IpAddr::V6(underlay) = parse_ip(rt.nexthop_address.as_ref())? else {
                    continue;
                };
                routes.insert(
                    parse_prefix(p)?,
                    Hop {
                        vni: rt.nexthop_vni,
                        underlay,
                    },
                );
            }
            if !routes.is_empty() {
                view.routes.insert(vni, routes);
            }
        }
        for ip in nat_ips {
            let r = c
                .list_neighbor_nats(proto::ListNeighborNatsRequest {
                    nat_ip: Some(ip_address((*ip).into())),
                })
                .await?
                .into_inner();
            checked("ListNeighborNats", r.status)?;
            for e in r.nat_entries {
                view.neighbor_nats.insert(NeighborNat {
                    vni: e.vni,
                    range: NatRange {
                        ip: *ip,
                        first: port(e.min_port)?,
                        last: port(e.max_port)?,
                    },
                    underlay: parse_underlay(&e.underlay_route)?,
                });
            }
        }
        Ok(view)
    }

    async fn read_interface(
        &self,
        id: &str,
        i: &proto::Interface,
    ) -> Result<HaveInterface, DpError> {
        let mut c = self.client.clone();
        let key = id.as_bytes().to_vec();
        let v4 = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<Ipv4Addr>().ok())
                .filter(|a| !a.is_unspecified())
        };
        let v6 = |b: &[u8]| {
            std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse::<Ipv6Addr>().ok())
                .filter(|a| !a.is_unspecified())
        };
        let vip = c
            .get_vip(proto::GetVipRequest {
                interface_id: key.clone(),
            })
            .await?
            .into_inner();
        let vip = match checked("GetVip", vip.status) {
            Ok(()) => match parse_ip(vip.vip_ip.as_ref())? {
                IpAddr::V4(a) => Some((a, parse_underlay(&vip.underlay_route)?)),
                IpAddr::V6(_) => None,
            },
            Err(e) if e.is_absent() => None,
            Err(e) => return Err(e),
        };
        let nat = c
            .get_nat(proto::GetNatRequest {
                interface_id: key.clone(),
            })
            .await?
            .into_inner();
        let nat = match checked("GetNat", nat.status) {
            Ok(()) => match parse_ip(nat.nat_ip.as_ref())? {
                IpAddr::V4(ip) => Some((
                    NatRange {
                        ip,
                        first: port(nat.min_port)?,
                        last: port(nat.max_port)?,
                    },
                    parse_underlay(&nat.underlay_route)?,
                )),
                IpAddr::V6(_) => None,
            },
            Err(e) if e.is_absent() => None,
            Err(e) => return Err(e),
        };
        let r = c
            .list_prefixes(proto::ListPrefixesRequest {
                interface_id: key.clone(),
            })
            .await?
            .into_inner();
        checked("ListPrefixes", r.status)?;
        let mut prefixes = BTreeMap::new();
        for p in &r.prefixes {
            prefixes.insert(parse_prefix(p)?, parse_underlay(&p.underlay_route)?);
        }
        let r = c
            .list_load_balancer_prefixes(proto::ListLoadBalancerPrefixesRequest {
                interface_id: key.clone(),
            })
            .await?
            .into_inner();
        checked("ListLoadBalancerPrefixes", r.status)?;
        let mut lb_targets = BTreeMap::new();
        for p in &r.prefixes {
            lb_targets.insert(parse_prefix(p)?, parse_underlay(&p.underlay_route)?);
        }
        let r = c
            .list_firewall_rules(proto::ListFirewallRulesRequest {
                interface_id: key.clone(),
            })
            .await?
            .into_inner();
        checked("ListFirewallRules", r.status)?;
        let firewall = r
            .rules
            .iter()
            .map(|r| String::from_utf8_lossy(&r.id).into_owned())
            .collect();
        Ok(HaveInterface {
            vni: i.vni,
            ipv4: v4(&i.primary_ipv4),
            ipv6: v6(&i.primary_ipv6),
            underlay: parse_underlay(&i.underlay_route)?,
            device: i.pci_name.clone(),
            vip,
            nat,
            prefixes,
            lb_targets,
            firewall,
        })
    }

    /// Runs one call and records its effect in `view`. A create of
    /// something already there and a delete of something already gone
    /// fail with [`DpError::is_present`] / succeed, so the caller rereads.
    pub async fn apply(&self, op: &DpOp, view: &mut DpView) -> Result<(), DpError> {
        let mut c = self.client.clone();
        let iface = |id: &str| id.as_bytes().to_vec();
        let gone = |r: Result<(), DpError>| match r {
            Err(e) if e.is_absent() => Ok(()),
            r => r,
        };
        match op {
            DpOp::CreateInterface {
                id,
                vni,
                ipv4,
                ipv6,
                device,
                hostname,
            } => {
                let r = c
                    .create_interface(proto::CreateInterfaceRequest {
                        interface_type: proto::InterfaceType::Virtual as i32,
                        interface_id: iface(id),
                        vni: *vni,
                        ipv4_config: Some(proto::IpConfig {
                            primary_address: ipv4
                                .unwrap_or(Ipv4Addr::UNSPECIFIED)
                                .to_string()
                                .into_bytes(),
                        }),
                        ipv6_config: Some(proto::IpConfig {
                            primary_address: ipv6
                                .unwrap_or(Ipv6Addr::UNSPECIFIED)
                                .to_string()
                                .into_bytes(),
                        }),
                        device_name: device.clone(),
                        hostname: hostname.clone(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                checked("CreateInterface", r.status)?;
                view.interfaces.insert(
                    id.clone(),
                    HaveInterface {
                        vni: *vni,
                        ipv4: *ipv4,
                        ipv6: *ipv6,
                        underlay: parse_underlay(&r.underlay_route)?,
                        device: device.clone(),
                        vip: None,
                        nat: None,
                        prefixes: BTreeMap::new(),
                        lb_targets: BTreeMap::new(),
                        firewall: BTreeSet::new(),
                    },
                );
            }
            DpOp::DeleteInterface(id) => {
                let r = c
                    .delete_interface(proto::DeleteInterfaceRequest {
                        interface_id: iface(id),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteInterface", r.status))?;
                view.interfaces.remove(id);
            }
            DpOp::CreateVip(id, ip) => {
                let r = c
                    .create_vip(proto::CreateVipRequest {
                        interface_id: iface(id),
                        vip_ip: Some(ip_address((*ip).into())),
                        preferred_underlay_route: Vec::new(),
                    })
                    .await?
                    .into_inner();
                checked("CreateVip", r.status)?;
                let ul = parse_underlay(&r.underlay_route)?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.vip = Some((*ip, ul));
                }
            }
            DpOp::DeleteVip(id) => {
                let r = c
                    .delete_vip(proto::DeleteVipRequest {
                        interface_id: iface(id),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteVip", r.status))?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.vip = None;
                }
            }
            DpOp::CreateNat(id, n) => {
                let r = c
                    .create_nat(proto::CreateNatRequest {
                        interface_id: iface(id),
                        nat_ip: Some(ip_address(n.ip.into())),
                        min_port: u32::from(n.first),
                        max_port: u32::from(n.last),
                        preferred_underlay_route: Vec::new(),
                    })
                    .await?
                    .into_inner();
                checked("CreateNat", r.status)?;
                let ul = parse_underlay(&r.underlay_route)?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.nat = Some((*n, ul));
                }
            }
            DpOp::DeleteNat(id) => {
                let r = c
                    .delete_nat(proto::DeleteNatRequest {
                        interface_id: iface(id),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteNat", r.status))?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.nat = None;
                }
            }
            DpOp::CreatePrefix(id, p) => {
                let r = c
                    .create_prefix(proto::CreatePrefixRequest {
                        interface_id: iface(id),
                        prefix: Some(prefix(*p)),
                        preferred_underlay_route: Vec::new(),
                    })
                    .await?
                    .into_inner();
                checked("CreatePrefix", r.status)?;
                let ul = parse_underlay(&r.underlay_route)?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.prefixes.insert(*p, ul);
                }
            }
            DpOp::DeletePrefix(id, p) => {
                let r = c
                    .delete_prefix(proto::DeletePrefixRequest {
                        interface_id: iface(id),
                        prefix: Some(prefix(*p)),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeletePrefix", r.status))?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.prefixes.remove(p);
                }
            }
            DpOp::CreateLbPrefix(id, p) => {
                let r = c
                    .create_load_balancer_prefix(proto::CreateLoadBalancerPrefixRequest {
                        interface_id: iface(id),
                        prefix: Some(prefix(*p)),
                        preferred_underlay_route: Vec::new(),
                    })
                    .await?
                    .into_inner();
                checked("CreateLoadBalancerPrefix", r.status)?;
                let ul = parse_underlay(&r.underlay_route)?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.lb_targets.insert(*p, ul);
                }
            }
            DpOp::DeleteLbPrefix(id, p) => {
                let r = c
                    .delete_load_balancer_prefix(proto::DeleteLoadBalancerPrefixRequest {
                        interface_id: iface(id),
                        prefix: Some(prefix(*p)),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteLoadBalancerPrefix", r.status))?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.lb_targets.remove(p);
                }
            }
            DpOp::CreateFirewallRule(id, rule) => {
                let r = c
                    .create_firewall_rule(proto::CreateFirewallRuleRequest {
                        interface_id: iface(id),
                        rule: Some(rule.to_proto()),
                    })
                    .await?
                    .into_inner();
                checked("CreateFirewallRule", r.status)?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.firewall.insert(rule.id());
                }
            }
            DpOp::DeleteFirewallRule(id, rule) => {
                let r = c
                    .delete_firewall_rule(proto::DeleteFirewallRuleRequest {
                        interface_id: iface(id),
                        rule_id: rule.as_bytes().to_vec(),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteFirewallRule", r.status))?;
                if let Some(i) = view.interfaces.get_mut(id) {
                    i.firewall.remove(rule);
                }
            }
            DpOp::CreateLb(id, want) => {
                let r = c
                    .create_load_balancer(proto::CreateLoadBalancerRequest {
                        loadbalancer_id: iface(id),
                        loadbalanced_ip: Some(ip_address(want.ip)),
                        vni: want.vni,
                        loadbalanced_ports: want
                            .ports
                            .iter()
                            .map(|(p, n)| proto::LbPort {
                                port: u32::from(*n),
                                protocol: match p {
                                    LbProtocol::Tcp => proto::Protocol::Tcp as i32,
                                    LbProtocol::Udp => proto::Protocol::Udp as i32,
                                },
                            })
                            .collect(),
                        preferred_underlay_route: Vec::new(),
                    })
                    .await?
                    .into_inner();
                checked("CreateLoadBalancer", r.status)?;
                view.lbs.insert(
                    id.clone(),
                    HaveLb {
                        vni: want.vni,
                        ip: want.ip,
                        ports: want.ports.clone(),
                        underlay: parse_underlay(&r.underlay_route)?,
                        targets: BTreeSet::new(),
                    },
                );
            }
            DpOp::DeleteLb(id) => {
                let r = c
                    .delete_load_balancer(proto::DeleteLoadBalancerRequest {
                        loadbalancer_id: iface(id),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteLoadBalancer", r.status))?;
                view.lbs.remove(id);
            }
            DpOp::CreateLbTarget(id, t) => {
                let r = c
                    .create_load_balancer_target(proto::CreateLoadBalancerTargetRequest {
                        loadbalancer_id: iface(id),
                        target_ip: Some(ip_address((*t).into())),
                    })
                    .await?
                    .into_inner();
                checked("CreateLoadBalancerTarget", r.status)?;
                if let Some(lb) = view.lbs.get_mut(id) {
                    lb.targets.insert(*t);
                }
            }
            DpOp::DeleteLbTarget(id, t) => {
                let r = c
                    .delete_load_balancer_target(proto::DeleteLoadBalancerTargetRequest {
                        loadbalancer_id: iface(id),
                        target_ip: Some(ip_address((*t).into())),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteLoadBalancerTarget", r.status))?;
                if let Some(lb) = view.lbs.get_mut(id) {
                    lb.targets.remove(t);
                }
            }
            DpOp::CreateRoute(vni, p, hop) => {
                let r = c
                    .create_route(proto::CreateRouteRequest {
                        vni: *vni,
                        route: Some(route(*p, *hop)),
                    })
                    .await?
                    .into_inner();
                checked("CreateRoute", r.status)?;
                view.routes.entry(*vni).or_default().insert(*p, *hop);
            }
            DpOp::DeleteRoute(vni, p, hop) => {
                let r = c
                    .delete_route(proto::DeleteRouteRequest {
                        vni: *vni,
                        route: Some(route(*p, *hop)),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteRoute", r.status))?;
                if let Some(t) = view.routes.get_mut(vni) {
                    t.remove(p);
                }
            }
            DpOp::CreateNeighborNat(n) => {
                let r = c
                    .create_neighbor_nat(proto::CreateNeighborNatRequest {
                        nat_ip: Some(ip_address(n.range.ip.into())),
                        vni: n.vni,
                        min_port: u32::from(n.range.first),
                        max_port: u32::from(n.range.last),
                        underlay_route: n.underlay.to_string().into_bytes(),
                    })
                    .await?
                    .into_inner();
                checked("CreateNeighborNat", r.status)?;
                view.neighbor_nats.insert(*n);
            }
            DpOp::DeleteNeighborNat(n) => {
                let r = c
                    .delete_neighbor_nat(proto::DeleteNeighborNatRequest {
                        nat_ip: Some(ip_address(n.range.ip.into())),
                        vni: n.vni,
                        min_port: u32::from(n.range.first),
                        max_port: u32::from(n.range.last),
                    })
                    .await?
                    .into_inner();
                gone(checked("DeleteNeighborNat", r.status))?;
                view.neighbor_nats.remove(n);
            }
        }
        Ok(())
    }
}

fn route(p: IpNet, hop: Hop) -> proto::Route {
    proto::Route {
        prefix: Some(prefix(p)),
        nexthop_vni: hop.vni,
        nexthop_address: Some(ip_address(hop.underlay.into())),
        weight: 100,
    }
}

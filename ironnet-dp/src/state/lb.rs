//! Load balancers, their targets and load-balancer prefixes:
//! Create/Get/Delete/ListLoadBalancer(s), Create/Delete/ListLoadBalancerTarget(s)
//! and Create/Delete/ListLoadBalancerPrefix(es).
//!
//! A load balancer owns an underlay address; encapsulated traffic to it
//! for one of its (protocol, port) pairs is spread over the targets by
//! Maglev. Targets are underlay addresses, normally the load-balancer
//! prefix of an interface on some host. Its lookup table is rebuilt only
//! when its targets change, and shared with every snapshot until then.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use ironnet_overlay::route::Vni;

use super::{DpState, PortId, Vnf, VnfKind};
use crate::config::PortKind;
use crate::error::ServiceError;
use crate::maglev::{MAX_TARGETS, Maglev};
use crate::snapshot::{LbView, Purge};

/// Most (protocol, port) pairs of a load balancer (dpservice refuses 16).
pub const MAX_LB_PORTS: usize = 15;

/// A balanced (protocol, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LbPort {
    /// TCP (6) or UDP (17).
    pub protocol: u8,
    /// The port.
    pub port: u16,
}

/// A request to create a load balancer, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbSpec {
    /// Identifier.
    pub id: String,
    /// VNI.
    pub vni: Vni,
    /// The balanced address.
    pub ip: IpAddr,
    /// Balanced (protocol, port) pairs, at most [`MAX_LB_PORTS`], no
    /// duplicates.
    pub ports: Vec<LbPort>,
    /// Preferred underlay address.
    pub preferred_underlay: Option<Ipv6Addr>,
}

/// A load balancer as stored.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    /// Identifier.
    pub id: String,
    /// VNI.
    pub vni: Vni,
    /// The balanced address.
    pub ip: IpAddr,
    /// Balanced (protocol, port) pairs in request order.
    pub ports: Vec<LbPort>,
    /// Its underlay address.
    pub underlay: Ipv6Addr,
    /// What the pipeline reads (targets and table).
    pub(super) view: Arc<LbView>,
}

impl LoadBalancer {
    /// Targets, sorted by address bytes.
    pub fn targets(&self) -> &[Ipv6Addr] {
        self.view.maglev.targets()
    }
}

fn view(lb: &LoadBalancer, targets: Vec<Ipv6Addr>) -> Arc<LbView> {
    Arc::new(LbView {
        vni: lb.vni,
        ip: lb.ip,
        ports: lb.ports.iter().map(|p| (p.protocol, p.port)).collect(),
        maglev: Maglev::new(targets),
    })
}

impl DpState {
    fn first_pf(&self) -> PortId {
        self.config
            .ports
            .iter()
            .position(|p| p.kind == PortKind::Pf)
            .and_then(|i| PortId::try_from(i).ok())
            .unwrap_or(0)
    }

    /// CreateLoadBalancer.
    pub fn create_lb(&mut self, spec: LbSpec) -> Result<Ipv6Addr, ServiceError> {
        if self.lbs.contains_key(&spec.id)
            || self
                .lbs
                .values()
                .any(|lb| lb.vni == spec.vni && lb.ip == spec.ip)
        {
            return Err(ServiceError::AlreadyExists);
        }
        let port = self.first_pf();
        let underlay = self.add_vnf(
            spec.preferred_underlay,
            Vnf {
                kind: VnfKind::Lb,
                vni: spec.vni,
                port,
            },
        )?;
        *self.vni_refs.entry(spec.vni).or_default() += 1;
        let mut lb = LoadBalancer {
            id: spec.id.clone(),
            vni: spec.vni,
            ip: spec.ip,
            ports: spec.ports,
            underlay,
            view: Arc::new(LbView {
                vni: spec.vni,
                ip: spec.ip,
                ports: Vec::new(),
                maglev: Maglev::new([]),
            }),
        };
        lb.view = view(&lb, Vec::new());
        self.lbs.insert(spec.id, lb);
        self.changed();
        Ok(underlay)
    }

    /// GetLoadBalancer.
    pub fn lb(&self, id: &str) -> Result<&LoadBalancer, ServiceError> {
        self.lbs.get(id).ok_or(ServiceError::NotFound)
    }

    /// ListLoadBalancers, by id.
    pub fn lbs(&self) -> impl Iterator<Item = &LoadBalancer> + '_ {
        self.lbs.values()
    }

    /// DeleteLoadBalancer: the load balancer, its flows and its reference
    /// on the VNI.
    pub fn delete_lb(&mut self, id: &str) -> Result<(), ServiceError> {
        let lb = self.lbs.remove(id).ok_or(ServiceError::NotFound)?;
        self.release_underlay(lb.underlay);
        self.unref_vni(lb.vni);
        self.purge(Purge::Balanced {
            vni: lb.vni,
            ip: lb.ip,
            target: None,
        });
        self.changed();
        Ok(())
    }

    /// CreateLoadBalancerTarget.
    pub fn create_lb_target(&mut self, id: &str, target: Ipv6Addr) -> Result<(), ServiceError> {
        let lb = self.lbs.get_mut(id).ok_or(ServiceError::NoLb)?;
        let mut targets = lb.targets().to_vec();
        if targets.contains(&target) {
            return Err(ServiceError::AlreadyExists);
        }
        if targets.len() >= MAX_TARGETS {
            return Err(ServiceError::BackIpAdd);
        }
        targets.push(target);
        lb.view = view(lb, targets);
        self.changed();
        Ok(())
    }

    /// DeleteLoadBalancerTarget: the target and the flows balanced onto it.
    pub fn delete_lb_target(&mut self, id: &str, target: Ipv6Addr) -> Result<(), ServiceError> {
        let lb = self.lbs.get_mut(id).ok_or(ServiceError::NoLb)?;
        let mut targets = lb.targets().to_vec();
        let at = targets
            .iter()
            .position(|t| *t == target)
            .ok_or(ServiceError::NotFound)?;
        targets.remove(at);
        lb.view = view(lb, targets);
        let (vni, ip) = (lb.vni, lb.ip);
        self.purge(Purge::Balanced {
            vni,
            ip,
            target: Some(target),
        });
        self.changed();
        Ok(())
    }

    /// ListLoadBalancerTargets: of one load balancer, or of all for `None`.
    pub fn lb_targets(&self, id: Option<&str>) -> Result<Vec<Ipv6Addr>, ServiceError> {
        match id {
            Some(id) => Ok(self
                .lb(id)
                .map_err(|_| ServiceError::NoLb)?
                .targets()
                .to_vec()),
            None => Ok(self
                .lbs
                .values()
                .flat_map(|lb| lb.targets().iter().copied())
                .collect()),
        }
    }

    /// CreateLoadBalancerPrefix: balanced traffic arriving for `prefix` on
    /// the returned underlay address goes to the interface (no route).
    pub fn create_lb_prefix(
        &mut self,
        id: &str,
        prefix: IpNet,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, ServiceError> {
        let prefix = prefix.trunc();
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        if iface.lb_prefixes.contains_key(&prefix) {
            return Err(ServiceError::AlreadyExists);
        }
        let (vni, port) = (iface.vni, iface.port);
        let underlay = self.add_vnf(
            preferred,
            Vnf {
                kind: VnfKind::LbPrefix(prefix),
                vni,
                port,
            },
        )?;
        if let Some(i) = self.interfaces.get_mut(id) {
            i.lb_prefixes.insert(prefix, underlay);
        }
        self.changed();
        Ok(underlay)
    }

    /// DeleteLoadBalancerPrefix.
    pub fn delete_lb_prefix(&mut self, id: &str, prefix: IpNet) -> Result<(), ServiceError> {
        let prefix = prefix.trunc();
        let iface = self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)?;
        let underlay = iface
            .lb_prefixes
            .remove(&prefix)
            .ok_or(ServiceError::NotFound)?;
        self.release_underlay(underlay);
        self.changed();
        Ok(())
    }

    /// ListLoadBalancerPrefixes: (prefix, underlay) of an interface.
    pub fn lb_prefixes(&self, id: &str) -> Result<Vec<(IpNet, Ipv6Addr)>, ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        Ok(iface.lb_prefixes.iter().map(|(p, u)| (*p, *u)).collect())
    }
}

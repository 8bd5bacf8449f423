//! Virtual IPs, NAT gateways and neighbour NATs: CreateVip/GetVip/DeleteVip,
//! CreateNat/GetNat/DeleteNat/ListLocalNats and
//! CreateNeighborNat/DeleteNeighborNat/ListNeighborNats.
//!
//! An IPv4 address can be a translated destination in a VNI in one way
//! only: as one interface's virtual IP, or as a NAT IP shared by local
//! interfaces and neighbour entries (dpservice's DNAT table, error 323).

use std::net::{Ipv4Addr, Ipv6Addr};

use ironnet_overlay::route::Vni;

use super::{DpState, Vnf, VnfKind};
use crate::error::ServiceError;
use crate::snapshot::Purge;

/// An interface's NAT: address, port range `[min_port, max_port)` and the
/// underlay address answers for it arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatConfig {
    /// The NAT IP.
    pub ip: Ipv4Addr,
    /// First port of the range.
    pub min_port: u16,
    /// One past the last port.
    pub max_port: u16,
    /// Underlay address of this NAT.
    pub underlay: Ipv6Addr,
}

/// A port range of a NAT IP owned by another host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborNat {
    /// The NAT IP.
    pub ip: Ipv4Addr,
    /// VNI.
    pub vni: Vni,
    /// First port.
    pub min_port: u16,
    /// One past the last port.
    pub max_port: u16,
    /// The owning host's underlay address.
    pub underlay: Ipv6Addr,
}

impl NeighborNat {
    /// Whether `port` of `ip` in `vni` belongs to this entry.
    pub fn owns(&self, ip: Ipv4Addr, vni: Vni, port: u16) -> bool {
        self.ip == ip && self.vni == vni && (self.min_port..self.max_port).contains(&port)
    }
}

/// ListLocalNats: one interface's NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalNat {
    /// The interface's own address.
    pub iface_ip: Ipv4Addr,
    /// VNI.
    pub vni: Vni,
    /// The NAT.
    pub nat: NatConfig,
}

/// What uses an address as a translated destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DnatUse {
    /// One interface's virtual IP.
    Vip,
    /// A NAT IP: local interfaces and neighbour entries using it.
    Nat { users: u32 },
}

impl DpState {
    /// The interface a VIP or NAT is for: it must have an IPv4 address.
    fn ipv4_interface(&self, id: &str) -> Result<&super::Interface, ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        iface.ipv4.ok_or(ServiceError::BadIpVersion)?;
        Ok(iface)
    }

    fn is_vip(&self, vni: Vni, ip: Ipv4Addr) -> bool {
        matches!(self.dnat.get(&(vni, ip)), Some(DnatUse::Vip))
    }

    /// CreateVip: outbound traffic of the interface through a default route
    /// leaves from `vip`; traffic to `vip` reaches the interface.
    pub fn create_vip(
        &mut self,
        id: &str,
        vip: Ipv4Addr,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, ServiceError> {
        let iface = self.ipv4_interface(id)?;
        let (vni, port) = (iface.vni, iface.port);
        if iface.vip.is_some() {
            return Err(ServiceError::SnatExists);
        }
        if self.dnat.contains_key(&(vni, vip)) {
            return Err(ServiceError::DnatExists);
        }
        let underlay = self.add_vnf(
            preferred,
            Vnf {
                kind: VnfKind::Vip,
                vni,
                port,
            },
        )?;
        self.dnat.insert((vni, vip), DnatUse::Vip);
        if let Some(i) = self.interfaces.get_mut(id) {
            i.vip = Some((vip, underlay));
        }
        self.changed();
        Ok(underlay)
    }

    /// GetVip: the address and its underlay address.
    pub fn vip(&self, id: &str) -> Result<(Ipv4Addr, Ipv6Addr), ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        iface.vip.ok_or(ServiceError::SnatNoData)
    }

    /// DeleteVip: removes the virtual IP and the flows it translated.
    pub fn delete_vip(&mut self, id: &str) -> Result<(), ServiceError> {
        let iface = self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)?;
        let (vip, underlay) = iface.vip.take().ok_or(ServiceError::SnatNoData)?;
        let (vni, port) = (iface.vni, iface.port);
        self.release_underlay(underlay);
        self.dnat.remove(&(vni, vip));
        self.purge(Purge::Vip(port));
        self.changed();
        Ok(())
    }

    /// Counts one more user of NAT IP `ip`; callers have checked that it
    /// is not a VIP.
    fn use_nat_ip(&mut self, vni: Vni, ip: Ipv4Addr) {
        match self.dnat.get_mut(&(vni, ip)) {
            Some(DnatUse::Nat { users }) => *users += 1,
            Some(DnatUse::Vip) => tracing::warn!(%ip, "a VIP used as NAT IP"),
            None => {
                self.dnat.insert((vni, ip), DnatUse::Nat { users: 1 });
            }
        }
    }

    pub(super) fn unuse_nat_ip(&mut self, vni: Vni, ip: Ipv4Addr) {
        if let Some(DnatUse::Nat { users }) = self.dnat.get_mut(&(vni, ip)) {
            *users = users.saturating_sub(1);
            if *users == 0 {
                self.dnat.remove(&(vni, ip));
            }
        }
    }

    /// CreateNat: outbound traffic of the interface through a default route
    /// leaves from `ip` with a port of `[min_port, max_port)`.
    pub fn create_nat(
        &mut self,
        id: &str,
        ip: Ipv4Addr,
        min_port: u16,
        max_port: u16,
        preferred: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, ServiceError> {
        let iface = self.ipv4_interface(id)?;
        let (vni, port) = (iface.vni, iface.port);
        if iface.nat.is_some() {
            return Err(ServiceError::SnatExists);
        }
        if self.is_vip(vni, ip) {
            return Err(ServiceError::DnatExists);
        }
        let underlay = self.add_vnf(
            preferred,
            Vnf {
                kind: VnfKind::Nat,
                vni,
                port,
            },
        )?;
        self.use_nat_ip(vni, ip);
        if let Some(i) = self.interfaces.get_mut(id) {
            i.nat = Some(NatConfig {
                ip,
                min_port,
                max_port,
                underlay,
            });
        }
        self.changed();
        Ok(underlay)
    }

    /// GetNat.
    pub fn nat(&self, id: &str) -> Result<NatConfig, ServiceError> {
        let iface = self.interfaces.get(id).ok_or(ServiceError::NoVm)?;
        iface.nat.ok_or(ServiceError::SnatNoData)
    }

    /// DeleteNat: removes the NAT and the flows it translated.
    pub fn delete_nat(&mut self, id: &str) -> Result<(), ServiceError> {
        let iface = self.interfaces.get_mut(id).ok_or(ServiceError::NoVm)?;
        let nat = iface.nat.take().ok_or(ServiceError::SnatNoData)?;
        let (vni, port) = (iface.vni, iface.port);
        self.release_underlay(nat.underlay);
        self.unuse_nat_ip(vni, nat.ip);
        self.purge(Purge::Nat(port));
        self.changed();
        Ok(())
    }

    /// ListLocalNats: interfaces using `ip` (every NAT for `None`), in port
    /// order.
    pub fn local_nats(&self, ip: Option<Ipv4Addr>) -> Vec<LocalNat> {
        self.interfaces()
            .filter_map(|i| {
                let nat = i.nat?;
                let iface_ip = i.ipv4?;
                ip.is_none_or(|ip| ip == nat.ip).then_some(LocalNat {
                    iface_ip,
                    vni: i.vni,
                    nat,
                })
            })
            .collect()
    }

    /// CreateNeighborNat: ports `[min_port, max_port)` of `ip` in `vni`
    /// belong to the host at `underlay`. Ranges of one NAT IP must not
    /// overlap, in any VNI.
    pub fn create_neighbor_nat(&mut self, entry: NeighborNat) -> Result<(), ServiceError> {
        let overlaps = self.neighbor_nats.iter().any(|n| {
            n.ip == entry.ip && n.min_port < entry.max_port && entry.min_port < n.max_port
        });
        if overlaps {
            return Err(ServiceError::AlreadyExists);
        }
        if self.is_vip(entry.vni, entry.ip) {
            return Err(ServiceError::DnatExists);
        }
        self.use_nat_ip(entry.vni, entry.ip);
        self.neighbor_nats.push(entry);
        self.changed();
        Ok(())
    }

    /// DeleteNeighborNat: the entry with exactly these values, and the
    /// flows relayed for it.
    pub fn delete_neighbor_nat(
        &mut self,
        ip: Ipv4Addr,
        vni: Vni,
        min_port: u16,
        max_port: u16,
    ) -> Result<(), ServiceError> {
        let at = self
            .neighbor_nats
            .iter()
            .position(|n| {
                n.ip == ip && n.vni == vni && n.min_port == min_port && n.max_port == max_port
            })
            .ok_or(ServiceError::NotFound)?;
        self.neighbor_nats.remove(at);
        self.unuse_nat_ip(vni, ip);
        self.purge(Purge::NeighborNat {
            vni,
            ip,
            min_port,
            max_port,
        });
        self.changed();
        Ok(())
    }

    /// ListNeighborNats: entries of `ip` (all for `None`), in creation
    /// order.
    pub fn neighbor_nats(&self, ip: Option<Ipv4Addr>) -> Vec<NeighborNat> {
        self.neighbor_nats
            .iter()
            .filter(|n| ip.is_none_or(|ip| ip == n.ip))
            .copied()
            .collect()
    }
}

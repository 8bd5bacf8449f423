//! Unique things: network IDs (a `NetworkID` object per VNI) and public
//! addresses (an `IPAddress` object per address, held by an `IP` handle).
//! Uniqueness rests on the store's atomic create: whoever creates the
//! reservation object holds the value, across restarts and replicas. The
//! pools only choose candidates; reservations whose holder is gone are
//! collected.

use std::net::IpAddr;
use std::sync::Arc;

use super::plan::{OpId, Plan, claim_ref, owner_ref};
use super::world::World;
use crate::api::apinet::{
    ClaimRef, IP, IPAddress, IpAddressSpec, IpSpec, Network, NetworkID, NetworkIdSpec, ip_labels,
};
use crate::api::common::IpFamily;
use crate::api::networking::PublicType;
use crate::meta::ObjectMeta;
use crate::object::Resource;

/// The name of the reservation of `ip` (`:` written as `-`).
pub fn address_name(ip: IpAddr) -> String {
    ip.to_string().replace(':', "-")
}

/// The address `ip` holds: its `spec.ip`, if the reservation of that
/// address names it.
pub fn held_address(world: &World, ip: &IP) -> Option<IpAddr> {
    let addr = ip.spec.ip?;
    let res = world.ip_addresses.get("", &address_name(addr))?;
    let c = &res.spec.claim_ref;
    (c.namespace == ip.metadata.namespace
        && c.name == ip.metadata.name
        && (c.uid.is_empty() || c.uid == ip.metadata.uid))
        .then_some(addr)
}

/// The VNI `net` holds: its `spec.id`, if the NetworkID of that value
/// names it.
pub fn held_vni(world: &World, net: &Network) -> Option<u32> {
    let id = world.network_ids.get("", &net.spec.id)?;
    (id.spec.claim_ref.uid == net.metadata.uid)
        .then(|| net.spec.id.parse().ok())
        .flatten()
}

/// Why an address could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressProblem {
    /// No pool of the family is configured.
    NoPool(IpFamily),
    /// The pool is full.
    Exhausted(IpFamily),
    /// The asked-for address is held by someone else.
    InUse(IpAddr),
    /// The asked-for address lies in no pool.
    OutsidePool(IpAddr),
}

impl AddressProblem {
    /// The event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            AddressProblem::NoPool(_) => "NoAddressPool",
            AddressProblem::Exhausted(_) => "AddressPoolExhausted",
            AddressProblem::InUse(_) => "AddressInUse",
            AddressProblem::OutsidePool(_) => "AddressOutsidePool",
        }
    }
}

impl std::fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressProblem::NoPool(fam) => write!(f, "no public {fam:?} pool is configured"),
            AddressProblem::Exhausted(fam) => {
                write!(f, "every public {fam:?} address is allocated")
            }
            AddressProblem::InUse(a) => write!(f, "{a} is already allocated"),
            AddressProblem::OutsidePool(a) => write!(f, "{a} lies in no public pool"),
        }
    }
}

/// Reserves an address for the IP `ip_ns/ip_name` (`want`, or the next
/// free one of `family`): plans the IPAddress create and returns the
/// address with the op later writes must wait for.
pub fn reserve_address(
    plan: &mut Plan<'_>,
    ip_ns: &str,
    ip_name: &str,
    ip_uid: &str,
    family: IpFamily,
    want: Option<IpAddr>,
) -> Result<(IpAddr, OpId), AddressProblem> {
    let v4 = family == IpFamily::IPv4;
    let pool = plan
        .pools
        .for_addr(v4)
        .ok_or(AddressProblem::NoPool(family))?;
    let addr = match want {
        Some(a) => {
            if !pool.contains(a) {
                return Err(AddressProblem::OutsidePool(a));
            }
            if pool.is_allocated(a) {
                return Err(AddressProblem::InUse(a));
            }
            pool.claim(a).map_err(|_| AddressProblem::InUse(a))?;
            a
        }
        None => pool
            .allocate()
            .map_err(|_| AddressProblem::Exhausted(family))?,
    };
    let mut res = IPAddress::new(
        "",
        &address_name(addr),
        IpAddressSpec {
            ip: Some(addr),
            claim_ref: ClaimRef {
                group: IP::INFO.group.to_owned(),
                resource: IP::INFO.plural.to_owned(),
                namespace: ip_ns.to_owned(),
                name: ip_name.to_owned(),
                uid: ip_uid.to_owned(),
            },
        },
    );
    res.metadata.namespace.clear();
    let op = plan
        .create(&res, Vec::new())
        .ok_or(AddressProblem::InUse(addr))?;
    Ok((addr, op))
}

/// A public address for a holder's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderAddress {
    /// Held (the IP exists and holds it).
    Held(IpAddr),
    /// Planned this round; writes using it wait for the op.
    Planned(IpAddr, OpId),
    /// Not yet (the IP object waits for its address).
    Waiting,
}

/// The IP object for entry `entry` of holder `T` `meta` (named
/// `<holder>-<entry>`, owned and claimed by the holder): created with a
/// reserved address when missing.
pub fn holder_address<T: Resource>(
    plan: &mut Plan<'_>,
    meta: &ObjectMeta,
    entry: &str,
    family: IpFamily,
    want: Option<IpAddr>,
) -> Result<HolderAddress, AddressProblem> {
    let name = format!("{}-{}", meta.name, entry);
    if let Some(ip) = plan.world.ips.get(&meta.namespace, &name) {
        let ip = Arc::clone(ip);
        return Ok(match held_address(plan.world, &ip) {
            Some(a) if want.is_none_or(|w| w == a) => HolderAddress::Held(a),
            Some(_) => {
                // The entry now asks for another address: let the old
                // handle go; the next round reserves the new one.
                plan.delete::<IP>(&ip.metadata);
                HolderAddress::Waiting
            }
            None => HolderAddress::Waiting,
        });
    }
    if plan.creates::<IP>(&meta.namespace, &name) {
        return Ok(HolderAddress::Waiting);
    }
    let (addr, op) = reserve_address(plan, &meta.namespace, &name, "", family, want)?;
    let mut ip = IP::new(
        &meta.namespace,
        &name,
        IpSpec {
            ty: Some(PublicType::Public),
            ip_family: Some(family),
            ip: Some(addr),
            claim_ref: Some(claim_ref::<T>(meta)),
        },
    );
    ip.metadata.labels = ip_labels(addr);
    ip.metadata
        .owner_references
        .push(owner_ref::<T>(meta, true));
    match plan.create(&ip, vec![op]) {
        Some(ip_op) => Ok(HolderAddress::Planned(addr, ip_op)),
        None => Err(AddressProblem::InUse(addr)),
    }
}

/// Plans VNIs for networks, addresses for IP objects that have none, and
/// the collection of reservations whose holder is gone.
pub fn reconcile(plan: &mut Plan<'_>) {
    let world = plan.world;
    // Explicit IDs before allocated ones, so an allocation never takes
    // an ID someone asked for in the same round.
    let mut nets: Vec<&Arc<Network>> = world.a_networks.iter().collect();
    nets.sort_by_key(|n| n.spec.id.is_empty());
    for net in nets {
        if net.metadata.deletion_timestamp.is_some() || held_vni(world, net).is_some() {
            continue;
        }
        let want = if net.spec.id.is_empty() {
            None
        } else {
            match net.spec.id.parse::<u32>() {
                Ok(v) => Some(v),
                Err(_) => continue,
            }
        };
        if let Some(v) = want
            && world.network_ids.get("", &v.to_string()).is_some()
        {
            plan.warn(
                &**net,
                "NetworkIDInUse",
                format!("VNI {v} is held by another network"),
            );
            continue;
        }
        let vni = match want {
            Some(v) => match plan.pools.vni.claim(v) {
                Ok(()) => v,
                Err(e) => {
                    plan.warn(&**net, "NetworkIDUnavailable", e.to_string());
                    continue;
                }
            },
            None => match plan.pools.vni.allocate() {
                Ok(v) => v,
                Err(e) => {
                    plan.warn(&**net, "NetworkIDsExhausted", e.to_string());
                    continue;
                }
            },
        };
        let mut id = NetworkID::new(
            "",
            &vni.to_string(),
            NetworkIdSpec {
                claim_ref: claim_ref::<Network>(&net.metadata),
            },
        );
        id.metadata.namespace.clear();
        if let Some(op) = plan.create(&id, Vec::new())
            && want.is_none()
        {
            plan.edit(net).spec.id = vni.to_string();
            plan.edit_requires(net, op);
        }
    }
    for id in world.network_ids.iter() {
        let c = &id.spec.claim_ref;
        let holder = world.a_networks.get(&c.namespace, &c.name);
        if holder.is_none_or(|n| n.metadata.uid != c.uid) {
            plan.delete::<NetworkID>(&id.metadata);
        }
    }

    // IP objects without a held address: explicit ones first.
    let mut ips: Vec<&Arc<IP>> = world
        .ips
        .iter()
        .filter(|ip| ip.metadata.deletion_timestamp.is_none() && held_address(world, ip).is_none())
        .collect();
    ips.sort_by_key(|ip| ip.spec.ip.is_none());
    for ip in ips {
        let Some(family) = ip.spec.ip_family else {
            continue;
        };
        if let Some(a) = ip.spec.ip
            && world.ip_addresses.get("", &address_name(a)).is_some()
        {
            plan.warn(&**ip, "AddressInUse", format!("{a} is held by another IP"));
            continue;
        }
        match reserve_address(
            plan,
            &ip.metadata.namespace,
            &ip.metadata.name,
            &ip.metadata.uid,
            family,
            ip.spec.ip,
        ) {
            Ok((addr, op)) => {
                if ip.spec.ip.is_none() {
                    let e = plan.edit(ip);
                    e.spec.ip = Some(addr);
                    e.metadata.labels.extend(ip_labels(addr));
                    plan.edit_requires(ip, op);
                }
            }
            Err(p) => plan.warn(&**ip, p.reason(), p.to_string()),
        }
    }
    for res in world.ip_addresses.iter() {
        let c = &res.spec.claim_ref;
        let keep = world.ips.get(&c.namespace, &c.name).is_some_and(|ip| {
            ip.spec.ip == res.spec.ip && (c.uid.is_empty() || c.uid == ip.metadata.uid)
        });
        if !keep {
            plan.delete::<IPAddress>(&res.metadata);
        }
    }
}

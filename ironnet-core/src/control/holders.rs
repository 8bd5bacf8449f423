//! Public addresses of their holders: internal network interfaces
//! (`spec.publicIPs`), load balancers (`spec.ips` of Public ones) and NAT
//! gateways (`spec.ips`). An entry without an address gets an IP object
//! of its own (owned, deleted with the holder); an entry with an address
//! claims the IP object holding it in the same namespace, or, if none
//! does, reserves the address in an IP object of its own. Claims of
//! holders that are gone or no longer list the address are released.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::ipam::{HolderAddress, held_address, holder_address};
use super::plan::{Plan, claim_ref, controlled_by};
use crate::api::apinet::{ClaimRef, IP, LoadBalancer, NATGateway, NetworkInterface};
use crate::api::common::IpFamily;
use crate::api::networking::LoadBalancerType;
use crate::meta::ObjectMeta;
use crate::object::Resource;

/// Addresses each holder (by uid) lists, to release the rest.
type Listed = BTreeMap<String, Vec<IpAddr>>;

/// IP objects by namespace and the address they hold.
type ByAddress = BTreeMap<(String, IpAddr), Arc<IP>>;

/// Resolves entry `i` of a holder: `Some(address)` to write into the
/// entry (with the op to wait for), or `None` to leave it as it is.
fn resolve<T: Resource>(
    plan: &mut Plan<'_>,
    holder: &T,
    entry: &str,
    family: Option<IpFamily>,
    ip: Option<IpAddr>,
    listed: &mut Listed,
    by_address: &ByAddress,
) -> Option<(IpAddr, Option<usize>)> {
    let meta = holder.meta();
    let family = family.or(ip.map(IpFamily::of))?;
    // An address of our own IP object, or a literal to claim.
    let own = format!("{}-{}", meta.name, entry);
    let owned = plan
        .world
        .ips
        .get(&meta.namespace, &own)
        .is_some_and(|o| controlled_by(&o.metadata, &meta.uid));
    if let Some(a) = ip
        && !owned
        && claim_literal(plan, holder, a, by_address)
    {
        listed.entry(meta.uid.clone()).or_default().push(a);
        return None;
    }
    match holder_address::<T>(plan, meta, entry, family, ip) {
        Ok(HolderAddress::Held(a)) => {
            listed.entry(meta.uid.clone()).or_default().push(a);
            (ip != Some(a)).then_some((a, None))
        }
        Ok(HolderAddress::Planned(a, op)) => {
            listed.entry(meta.uid.clone()).or_default().push(a);
            (ip != Some(a)).then_some((a, Some(op)))
        }
        Ok(HolderAddress::Waiting) => None,
        Err(p) => {
            plan.warn(holder, p.reason(), format!("{entry}: {p}"));
            None
        }
    }
}

/// Claims the IP object in the holder's namespace holding `addr`; false
/// if there is none (the holder then reserves the address itself).
fn claim_literal<T: Resource>(
    plan: &mut Plan<'_>,
    holder: &T,
    addr: IpAddr,
    by_address: &ByAddress,
) -> bool {
    let meta = holder.meta();
    let Some(ip) = by_address.get(&(meta.namespace.clone(), addr)) else {
        return false;
    };
    match &plan.planned(&**ip).spec.claim_ref {
        Some(c) if c.uid == meta.uid => {}
        Some(c) if holder_exists(plan, c) => plan.warn(
            holder,
            "PublicIPInUse",
            format!("{addr} is claimed by {} {}", c.resource, c.name),
        ),
        _ => plan.edit(ip).spec.claim_ref = Some(claim_ref::<T>(meta)),
    }
    true
}

fn holder_exists(plan: &Plan<'_>, c: &ClaimRef) -> bool {
    let w = plan.world;
    let uid = |m: &ObjectMeta| m.uid == c.uid;
    match c.resource.as_str() {
        "networkinterfaces" => w
            .a_nics
            .get(&c.namespace, &c.name)
            .is_some_and(|o| uid(&o.metadata)),
        "loadbalancers" => w
            .a_lbs
            .get(&c.namespace, &c.name)
            .is_some_and(|o| uid(&o.metadata)),
        "natgateways" => w
            .a_natgws
            .get(&c.namespace, &c.name)
            .is_some_and(|o| uid(&o.metadata)),
        _ => true,
    }
}

/// What the holders of a round share.
struct Holders {
    listed: Listed,
    by_address: ByAddress,
}

/// An address entry of a holder: name, family, address.
type Entry = (String, Option<IpFamily>, Option<IpAddr>);

impl Holders {
    /// Resolves every address entry of `holder` (as planned so far) and
    /// writes the addresses found into it with `set`.
    fn entries<T: Resource>(
        &mut self,
        plan: &mut Plan<'_>,
        holder: &Arc<T>,
        get: impl Fn(&T) -> Vec<Entry>,
        set: impl Fn(&mut T, usize, IpAddr),
    ) {
        if holder.meta().deletion_timestamp.is_some() {
            return;
        }
        let entries = get(plan.planned(&**holder));
        for (i, (name, family, ip)) in entries.into_iter().enumerate() {
            let found = resolve(
                plan,
                &**holder,
                &name,
                family,
                ip,
                &mut self.listed,
                &self.by_address,
            );
            if let Some((a, op)) = found {
                set(plan.edit(holder), i, a);
                if let Some(op) = op {
                    plan.edit_requires(holder, op);
                }
            }
        }
    }
}

/// Runs the holders of the round.
pub fn reconcile(plan: &mut Plan<'_>) {
    let world = plan.world;
    let by_address: ByAddress = world
        .ips
        .iter()
        .filter_map(|ip| {
            let a = held_address(world, ip)?;
            Some(((ip.metadata.namespace.clone(), a), Arc::clone(ip)))
        })
        .collect();
    let mut ctx = Holders {
        listed: Listed::new(),
        by_address,
    };
    for nic in world.a_nics.iter() {
        ctx.entries(
            plan,
            nic,
            |n| {
                n.spec
                    .public_ips
                    .iter()
                    .map(|e| (e.name.clone(), e.ip_family, e.ip))
                    .collect()
            },
            |n, i, a| n.spec.public_ips[i].ip = Some(a),
        );
    }
    for lb in world
        .a_lbs
        .iter()
        .filter(|l| l.spec.ty == Some(LoadBalancerType::Public))
    {
        ctx.entries(
            plan,
            lb,
            |l| {
                l.spec
                    .ips
                    .iter()
                    .map(|e| (e.name.clone(), e.ip_family, e.ip))
                    .collect()
            },
            |l, i, a| l.spec.ips[i].ip = Some(a),
        );
    }
    for gw in world.a_natgws.iter() {
        ctx.entries(
            plan,
            gw,
            |g| {
                g.spec
                    .ips
                    .iter()
                    .map(|e| (e.name.clone(), g.spec.ip_family, e.ip))
                    .collect()
            },
            |g, i, a| g.spec.ips[i].ip = Some(a),
        );
    }
    release(plan, &ctx.listed);
}

/// Releases IP objects whose claimer is gone or no longer lists them:
/// owned ones are deleted, claimed ones set free.
fn release(plan: &mut Plan<'_>, listed: &Listed) {
    let world = plan.world;
    let holders = [
        NetworkInterface::INFO.plural,
        LoadBalancer::INFO.plural,
        NATGateway::INFO.plural,
    ];
    for ip in world.ips.iter() {
        let Some(c) = &plan.planned(&**ip).spec.claim_ref else {
            continue;
        };
        if c.group != NetworkInterface::INFO.group || !holders.contains(&c.resource.as_str()) {
            continue;
        }
        let gone = !holder_exists(plan, c);
        let unlisted = !gone
            && !listed
                .get(&c.uid)
                .is_some_and(|l| ip.spec.ip.is_some_and(|a| l.contains(&a)));
        if !(gone || unlisted) {
            continue;
        }
        if controlled_by(&ip.metadata, &c.uid) {
            plan.delete::<IP>(&ip.metadata);
        } else {
            plan.edit(ip).spec.claim_ref = None;
        }
    }
}

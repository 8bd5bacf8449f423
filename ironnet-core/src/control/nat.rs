//! NAT gateways: every interface of the gateway's network with an
//! internal address of its family and no public address of that family
//! is claimed (`spec.natGateways`) and gets a port section of
//! `portsPerNetworkInterface` ports on one of the gateway's addresses,
//! recorded in the gateway's NATTable. Addresses are added (up to the
//! configured maximum) when sections run out, and surplus ones removed;
//! interfaces left without a section are reported, not dropped silently.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ironnet_alloc::nat::nat_ips_needed;
use ironnet_alloc::{NatPortAllocator, NatSection, PortsPerInterface};

use super::plan::{Plan, owner_ref};
use crate::api::apinet::{
    NATGateway, NATTable, NatGatewayIp, NatSection as TableSection, NatTableIp, NetworkInterface,
    NicNatGateway, NodeTargetRef,
};
use crate::api::common::{IpFamily, LocalUidReference};
use crate::object::Resource;

/// Name of the addresses the controller adds to a gateway.
fn auto_ip_name(i: usize) -> String {
    format!("ip-{i}")
}

fn eligible(nic: &NetworkInterface, family: IpFamily) -> bool {
    nic.metadata.deletion_timestamp.is_none()
        && nic.spec.ips.iter().any(|ip| IpFamily::of(*ip) == family)
        && !nic
            .spec
            .public_ips
            .iter()
            .any(|p| p.ip_family == Some(family))
}

/// Runs every gateway of the round.
pub fn reconcile(plan: &mut Plan<'_>) {
    let world = plan.world;
    // Interfaces by (namespace, network).
    let mut by_net: BTreeMap<(String, String), Vec<&Arc<NetworkInterface>>> = BTreeMap::new();
    for nic in world.a_nics.iter() {
        by_net
            .entry((
                nic.metadata.namespace.clone(),
                nic.spec.network_ref.name.clone(),
            ))
            .or_default()
            .push(nic);
    }
    let gateways: BTreeMap<String, &Arc<NATGateway>> = world
        .a_natgws
        .iter()
        .map(|g| (g.metadata.uid.clone(), g))
        .collect();
    // Claims of gateways that are gone.
    for nic in world.a_nics.iter() {
        let stale = |n: &NicNatGateway| {
            gateways
                .get(&n.claim_ref.uid)
                .is_none_or(|g| g.metadata.name != n.claim_ref.name)
        };
        if plan.planned(&**nic).spec.nat_gateways.iter().any(stale) {
            plan.edit(nic).spec.nat_gateways.retain(|n| !stale(n));
        }
    }
    for gw in world.a_natgws.iter() {
        if gw.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let empty = Vec::new();
        let nics = by_net
            .get(&(
                gw.metadata.namespace.clone(),
                gw.spec.network_ref.name.clone(),
            ))
            .unwrap_or(&empty);
        gateway(plan, gw, nics);
    }
}

fn gateway(plan: &mut Plan<'_>, gw: &Arc<NATGateway>, nics: &[&Arc<NetworkInterface>]) {
    let world = plan.world;
    let Some(family) = gw.spec.ip_family else {
        return;
    };
    let Ok(ppn) = u32::try_from(gw.spec.ports_per_network_interface)
        .map_err(|_| ())
        .and_then(|p| PortsPerInterface::new(p).map_err(|_| ()))
    else {
        plan.warn(
            &**gw,
            "InvalidPortsPerInterface",
            "portsPerNetworkInterface must be a power of two up to 32768",
        );
        return;
    };
    let uid = gw.metadata.uid.clone();
    let mine = |n: &NetworkInterface| {
        n.spec
            .nat_gateways
            .iter()
            .any(|c| c.ip_family == family && c.claim_ref.uid == uid)
    };
    let taken = |n: &NetworkInterface| {
        n.spec
            .nat_gateways
            .iter()
            .any(|c| c.ip_family == family && c.claim_ref.uid != uid)
    };
    let planned: Vec<(Arc<NetworkInterface>, NetworkInterface)> = nics
        .iter()
        .map(|n| (Arc::clone(n), plan.planned(&***n).clone()))
        .collect();
    let wanting: Vec<&(Arc<NetworkInterface>, NetworkInterface)> = planned
        .iter()
        .filter(|(_, p)| eligible(p, family) && !taken(p))
        .collect();
    // Addresses: as many as the wanting interfaces need, within limits.
    let planned_gw = plan.planned(&**gw).clone();
    let need = nat_ips_needed(wanting.len() as u64, ppn).max(1);
    let max = u64::from(plan.cfg.nat_max_ips.max(1));
    let want = need.min(max);
    let used_ips: BTreeSet<IpAddr> = world
        .nat_tables
        .get(&gw.metadata.namespace, &gw.metadata.name)
        .map(|t| {
            t.ips
                .iter()
                .filter(|i| !i.sections.is_empty())
                .map(|i| i.ip)
                .collect()
        })
        .unwrap_or_default();
    let mut ips = planned_gw.spec.ips.clone();
    while (ips.len() as u64) < want {
        let mut i = ips.len() + 1;
        while ips.iter().any(|e| e.name == auto_ip_name(i)) {
            i += 1;
        }
        ips.push(NatGatewayIp {
            name: auto_ip_name(i),
            ip: None,
        });
    }
    // Scale down: drop trailing added addresses no section uses.
    while (ips.len() as u64) > want
        && ips.last().is_some_and(|e| {
            e.name.starts_with("ip-") && e.ip.is_none_or(|a| !used_ips.contains(&a))
        })
    {
        ips.pop();
    }
    if ips != planned_gw.spec.ips {
        plan.edit(gw).spec.ips = ips.clone();
    }
    // Sections over the addresses the gateway holds (as stored: an
    // address planned this round is used from the next one).
    let mut alloc: NatPortAllocator<String> = NatPortAllocator::new(ppn);
    for e in gw
        .spec
        .ips
        .iter()
        .filter(|e| ips.iter().any(|k| k.name == e.name))
    {
        if let Some(a) = e.ip
            && IpFamily::of(a) == family
        {
            let _ = alloc.add_ip(a);
        }
    }
    let uids: BTreeMap<&str, &NetworkInterface> = planned
        .iter()
        .map(|(_, p)| (p.metadata.uid.as_str(), p))
        .collect();
    if let Some(table) = world
        .nat_tables
        .get(&gw.metadata.namespace, &gw.metadata.name)
    {
        for tip in &table.ips {
            for s in &tip.sections {
                let Some(t) = &s.target_ref else { continue };
                let keep = uids
                    .get(t.uid.as_str())
                    .is_some_and(|n| mine(n) && eligible(n, family));
                let (Ok(first), Ok(last)) = (u16::try_from(s.port), u16::try_from(s.end_port))
                else {
                    continue;
                };
                if keep {
                    let _ = alloc.claim(
                        t.uid.clone(),
                        NatSection {
                            ip: tip.ip,
                            first_port: first,
                            last_port: last,
                        },
                    );
                }
            }
        }
    }
    let mut without = 0usize;
    for (cur, p) in &wanting {
        let has = alloc.section_of(&p.metadata.uid).is_some();
        let ok = has || alloc.allocate(p.metadata.uid.clone()).is_ok();
        if ok && !mine(p) && !p.metadata.uid.is_empty() {
            plan.edit(cur).spec.nat_gateways.push(NicNatGateway {
                ip_family: family,
                claim_ref: LocalUidReference {
                    name: gw.metadata.name.clone(),
                    uid: uid.clone(),
                },
            });
        } else if !ok {
            without += 1;
            if mine(p) {
                plan.edit(cur)
                    .spec
                    .nat_gateways
                    .retain(|c| c.claim_ref.uid != uid);
            }
        }
    }
    // Claims of interfaces no longer eligible.
    for (cur, p) in &planned {
        if mine(p) && !eligible(p, family) {
            plan.edit(cur)
                .spec
                .nat_gateways
                .retain(|c| c.claim_ref.uid != uid);
        }
    }
    if without > 0 {
        plan.warn(
            &**gw,
            "NATPortsExhausted",
            format!(
                "{without} of {} interfaces have no NAT port section: {} addresses × {} sections of {} ports are in use and the limit is {} addresses",
                wanting.len(),
                alloc.ips().count(),
                ppn.sections_per_ip(),
                ppn.get(),
                max
            ),
        );
    }
    // The table, as IronCore writes it: addresses sorted, sections by port.
    let table = alloc.table();
    let ips_out: Vec<NatTableIp> = table
        .ips
        .iter()
        .map(|tip| NatTableIp {
            ip: tip.ip,
            sections: tip
                .sections
                .iter()
                .filter_map(|s| {
                    let n = uids.get(s.target.as_str())?;
                    Some(TableSection {
                        ip: n
                            .spec
                            .ips
                            .iter()
                            .copied()
                            .find(|a| IpFamily::of(*a) == family)?,
                        port: i32::from(s.port),
                        end_port: i32::from(s.end_port),
                        target_ref: Some(NodeTargetRef {
                            uid: n.metadata.uid.clone(),
                            name: n.metadata.name.clone(),
                            node_ref: n.spec.node_ref.clone(),
                        }),
                    })
                })
                .collect(),
        })
        .collect();
    match world
        .nat_tables
        .get(&gw.metadata.namespace, &gw.metadata.name)
    {
        Some(t) if t.ips == ips_out => {}
        Some(t) => plan.edit(t).ips = ips_out,
        None if !gw.metadata.uid.is_empty() => {
            let mut t = NATTable {
                api_version: NATTable::INFO.api_version(),
                kind: "NATTable".into(),
                ips: ips_out,
                ..NATTable::default()
            };
            t.metadata.namespace = gw.metadata.namespace.clone();
            t.metadata.name = gw.metadata.name.clone();
            t.metadata.owner_references = vec![owner_ref::<NATGateway>(&gw.metadata, true)];
            plan.create(&t, Vec::new());
        }
        None => {}
    }
    let used = alloc.used_sections() as i64;
    let requested = wanting.len() as i64;
    plan.status(&**gw, |s| {
        s.status.used_nat_ips = Some(used);
        s.status.requested_nat_ips = Some(requested);
    });
}

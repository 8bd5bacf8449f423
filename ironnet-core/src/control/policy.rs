//! Network policies compiled into NetworkPolicyRules: the targets are the
//! interfaces of the policy's network its selector picks (one entry per
//! address); peers are IP blocks plus the addresses of the interfaces and
//! load balancers their object selectors pick. Recomputed every round,
//! written only when it changes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::plan::{Plan, owner_ref};
use crate::api::apinet::{CompiledRule, NetworkPolicy, NetworkPolicyRule, ObjectIp, RuleTarget};
use crate::api::common::{IpFamily, LocalUidReference, NetworkPolicyPeer, NetworkPolicyPort};
use crate::object::Resource;

fn host(ip: IpAddr) -> ObjectIp {
    ObjectIp {
        ip_family: Some(IpFamily::of(ip)),
        prefix: IpNet::from(ip),
    }
}

fn compile(
    plan: &Plan<'_>,
    policy: &NetworkPolicy,
    peers: &[NetworkPolicyPeer],
    ports: &[NetworkPolicyPort],
) -> CompiledRule {
    let world = plan.world;
    let ns = &policy.metadata.namespace;
    let net = &policy.spec.network_ref.name;
    let mut rule = CompiledRule {
        network_policy_ports: ports.to_vec(),
        ..CompiledRule::default()
    };
    for peer in peers {
        if let Some(b) = &peer.ip_block {
            rule.ip_block.push(b.clone());
        }
        let Some(sel) = &peer.object_selector else {
            continue;
        };
        let labels = sel.selector();
        match sel.kind.as_str() {
            "NetworkInterface" => {
                for nic in world.a_nics.in_namespace(ns) {
                    if &nic.spec.network_ref.name == net && labels.matches(&nic.metadata.labels) {
                        rule.ips.extend(nic.spec.ips.iter().copied().map(host));
                    }
                }
            }
            "LoadBalancer" => {
                for lb in world.a_lbs.in_namespace(ns) {
                    if &lb.spec.network_ref.name == net && labels.matches(&lb.metadata.labels) {
                        rule.ips
                            .extend(lb.spec.ips.iter().filter_map(|e| e.ip).map(host));
                    }
                }
            }
            _ => {}
        }
    }
    rule.ips.sort_by_key(|o| o.prefix);
    rule.ips.dedup();
    rule
}

/// Compiles every policy of the round.
pub fn reconcile(plan: &mut Plan<'_>) {
    let world = plan.world;
    for p in world.a_policies.iter() {
        if p.metadata.uid.is_empty() {
            continue;
        }
        let ns = &p.metadata.namespace;
        let Some(net) = world.a_networks.get(ns, &p.spec.network_ref.name) else {
            plan.warn(
                &**p,
                "NetworkNotFound",
                format!("network {} does not exist", p.spec.network_ref.name),
            );
            continue;
        };
        let mut targets = Vec::new();
        for nic in world.a_nics.in_namespace(ns) {
            if nic.spec.network_ref.name == net.metadata.name
                && p.spec
                    .network_interface_selector
                    .matches(&nic.metadata.labels)
            {
                for ip in &nic.spec.ips {
                    targets.push(RuleTarget {
                        ip: *ip,
                        target_ref: Some(LocalUidReference {
                            name: nic.metadata.name.clone(),
                            uid: nic.metadata.uid.clone(),
                        }),
                    });
                }
            }
        }
        let ingress: Vec<CompiledRule> = p
            .spec
            .ingress
            .iter()
            .map(|r| compile(plan, p, &r.from, &r.ports))
            .collect();
        let egress: Vec<CompiledRule> = p
            .spec
            .egress
            .iter()
            .map(|r| compile(plan, p, &r.to, &r.ports))
            .collect();
        let network_ref = LocalUidReference {
            name: net.metadata.name.clone(),
            uid: net.metadata.uid.clone(),
        };
        match world.rules.get(ns, &p.metadata.name) {
            Some(r)
                if r.targets == targets
                    && r.ingress_rule == ingress
                    && r.egress_rule == egress
                    && r.network_ref == network_ref
                    && r.priority == p.spec.priority => {}
            Some(r) => {
                let e = plan.edit(r);
                e.targets = targets;
                e.ingress_rule = ingress;
                e.egress_rule = egress;
                e.network_ref = network_ref;
                e.priority = p.spec.priority;
            }
            None => {
                let mut r = NetworkPolicyRule {
                    api_version: NetworkPolicyRule::INFO.api_version(),
                    kind: "NetworkPolicyRule".into(),
                    network_ref,
                    targets,
                    priority: p.spec.priority,
                    ingress_rule: ingress,
                    egress_rule: egress,
                    ..NetworkPolicyRule::default()
                };
                r.metadata.namespace = ns.clone();
                r.metadata.name = p.metadata.name.clone();
                r.metadata.owner_references = vec![owner_ref::<NetworkPolicy>(&p.metadata, true)];
                plan.create(&r, Vec::new());
            }
        }
    }
}

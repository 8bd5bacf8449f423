//! Load balancers: their instances and where they run. A load balancer
//! wants one instance per topology domain of the nodes its template's
//! node affinity admits (the domain: the values of its anti-affinity
//! topology keys; without anti-affinity every node is one). Unscheduled
//! instances are placed by [`schedule`], honouring node affinity and
//! instance anti-affinity, on the admissible node with the fewest
//! instances. Instances on nodes that went away are deleted and replaced.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::plan::{Plan, controlled_by, owner_ref};
use crate::api::apinet::{
    Instance, InstanceSpec, LoadBalancer, Node, NodeSelectorRequirement, NodeSelectorTerm,
};
use crate::api::common::LocalObjectReference;
use crate::meta::Labels;

fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&String>) -> bool {
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| r.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(|v| num(v)), r.values.first().and_then(|v| num(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(|v| num(v)), r.values.first().and_then(|v| num(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

fn term_holds(t: &NodeSelectorTerm, node: &Node) -> bool {
    t.match_expressions
        .iter()
        .all(|r| requirement_holds(r, node.metadata.labels.get(&r.key)))
        && t.match_fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then(|| node.metadata.name.clone());
            requirement_holds(r, v.as_ref())
        })
}

/// Whether `spec`'s required node affinity admits `node`.
pub fn node_admits(spec: &InstanceSpec, node: &Node) -> bool {
    let Some(sel) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return true;
    };
    sel.node_selector_terms.is_empty()
        || sel.node_selector_terms.iter().any(|t| term_holds(t, node))
}

fn anti_keys(spec: &InstanceSpec) -> Vec<String> {
    spec.affinity
        .as_ref()
        .and_then(|a| a.instance_anti_affinity.as_ref())
        .map(|a| {
            a.required_during_scheduling_ignored_during_execution
                .iter()
                .map(|t| t.topology_key.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The domain of `node` for topology `keys` (a node without a key is a
/// domain of its own).
fn domain(node: &Node, keys: &[String]) -> Vec<String> {
    if keys.is_empty() {
        return vec![node.metadata.name.clone()];
    }
    keys.iter()
        .map(|k| {
            node.metadata.labels.get(k).map_or_else(
                || format!("node:{}", node.metadata.name),
                |v| format!("{k}={v}"),
            )
        })
        .collect()
}

/// Whether nodes `a` and `b` share the domain of `key` (a node without
/// the key shares it with itself only).
fn same_domain(a: &Node, b: &Node, key: &str) -> bool {
    match (a.metadata.labels.get(key), b.metadata.labels.get(key)) {
        (Some(x), Some(y)) => x == y,
        (None, _) => a.metadata.name == b.metadata.name,
        (Some(_), None) => false,
    }
}

/// Instances of every load balancer, then the scheduler.
pub fn reconcile(plan: &mut Plan<'_>) {
    let world = plan.world;
    for lb in world.a_lbs.iter() {
        if lb.metadata.deletion_timestamp.is_none() && !lb.metadata.uid.is_empty() {
            instances(plan, lb);
        }
    }
    schedule(plan);
}

fn instances(plan: &mut Plan<'_>, lb: &Arc<LoadBalancer>) {
    let world = plan.world;
    let ns = &lb.metadata.namespace;
    let mut spec = lb.spec.template.spec.clone();
    spec.ty = spec
        .ty
        .or(Some(crate::api::apinet::InstanceType::LoadBalancer));
    spec.load_balancer_type = lb.spec.ty;
    spec.network_ref = lb.spec.network_ref.clone();
    spec.ips = lb.spec.ips.iter().filter_map(|e| e.ip).collect();
    spec.load_balancer_ports = lb.spec.ports.clone();
    spec.node_ref = None;
    let keys = anti_keys(&spec);
    let eligible: Vec<&Arc<Node>> = world
        .nodes
        .iter()
        .filter(|n| node_admits(&spec, n))
        .collect();
    let domains: BTreeSet<Vec<String>> = eligible.iter().map(|n| domain(n, &keys)).collect();
    let mut mine: Vec<&Arc<Instance>> = world
        .instances
        .in_namespace(ns)
        .filter(|i| {
            controlled_by(&i.metadata, &lb.metadata.uid) && i.metadata.deletion_timestamp.is_none()
        })
        .collect();
    // Instances on nodes that are gone or no longer admitted go.
    mine.retain(|i| match &i.spec.node_ref {
        Some(r) if !eligible.iter().any(|n| n.metadata.name == r.name) => {
            plan.delete::<Instance>(&i.metadata);
            false
        }
        _ => true,
    });
    // One per domain: surplus unscheduled ones first, then a second one
    // in a domain.
    let mut seen = BTreeSet::new();
    mine.sort_by_key(|i| i.spec.node_ref.is_none());
    let mut keep = Vec::new();
    for i in mine {
        let dom = i
            .spec
            .node_ref
            .as_ref()
            .and_then(|r| world.nodes.get("", &r.name))
            .map(|n| domain(n, &keys));
        let dup = dom.as_ref().is_some_and(|d| !seen.insert(d.clone()));
        if dup || keep.len() >= domains.len() {
            plan.delete::<Instance>(&i.metadata);
        } else {
            keep.push(i);
        }
    }
    for i in &keep {
        let p = plan.planned(&***i);
        if p.spec.ips != spec.ips || p.spec.load_balancer_ports != spec.load_balancer_ports {
            let e = plan.edit(i);
            e.spec.ips = spec.ips.clone();
            e.spec.load_balancer_ports = spec.load_balancer_ports.clone();
        }
    }
    let names: BTreeSet<String> = world
        .instances
        .in_namespace(ns)
        .map(|i| i.metadata.name.clone())
        .collect();
    let mut k = 0;
    for _ in keep.len()..domains.len() {
        let name = loop {
            k += 1;
            let n = format!("{}-{k}", lb.metadata.name);
            if !names.contains(&n) && !plan.creates::<Instance>(ns, &n) {
                break n;
            }
        };
        let mut inst = Instance::new(ns, &name, spec.clone());
        inst.metadata.labels = lb.spec.template.metadata.labels.clone();
        inst.metadata.owner_references = vec![owner_ref::<LoadBalancer>(&lb.metadata, true)];
        plan.create(&inst, Vec::new());
    }
    if domains.is_empty() {
        plan.warn(
            &**lb,
            "NoEligibleNode",
            "no registered node is admitted by the template's node affinity",
        );
    }
}

/// Places unscheduled instances.
pub fn schedule(plan: &mut Plan<'_>) {
    let world = plan.world;
    let nodes: Vec<&Arc<Node>> = world.nodes.iter().collect();
    let mut load: BTreeMap<String, usize> =
        nodes.iter().map(|n| (n.metadata.name.clone(), 0)).collect();
    // (namespace, labels, spec, node) of placed instances.
    let mut placed: Vec<(String, Labels, InstanceSpec, String)> = Vec::new();
    for i in world.instances.iter() {
        if let Some(r) = &i.spec.node_ref {
            *load.entry(r.name.clone()).or_default() += 1;
            placed.push((
                i.metadata.namespace.clone(),
                i.metadata.labels.clone(),
                i.spec.clone(),
                r.name.clone(),
            ));
        }
    }
    for i in world.instances.iter() {
        if i.spec.node_ref.is_some() || i.metadata.deletion_timestamp.is_some() {
            if let Some(r) = &i.spec.node_ref
                && world.nodes.get("", &r.name).is_none()
                && i.metadata.controller().is_none()
            {
                plan.warn(
                    &**i,
                    "NodeGone",
                    format!(
                        "node {} is gone; delete the instance to place it again",
                        r.name
                    ),
                );
            }
            continue;
        }
        let ns = &i.metadata.namespace;
        let fits = |n: &Node| -> bool {
            if !node_admits(&i.spec, n) {
                return false;
            }
            let node_of = |name: &str| world.nodes.get("", name);
            // Its terms against instances already placed …
            let own_terms = i
                .spec
                .affinity
                .as_ref()
                .and_then(|a| a.instance_anti_affinity.as_ref());
            let clash_own = own_terms.is_some_and(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .iter()
                    .any(|t| {
                        placed.iter().any(|(pns, plabels, _, pnode)| {
                            pns == ns
                                && t.label_selector.as_ref().is_none_or(|s| s.matches(plabels))
                                && node_of(pnode)
                                    .is_some_and(|pn| same_domain(pn, n, &t.topology_key))
                        })
                    })
            });
            // … and their terms against it.
            let clash_theirs = placed.iter().any(|(pns, _, pspec, pnode)| {
                pns == ns
                    && pspec
                        .affinity
                        .as_ref()
                        .and_then(|a| a.instance_anti_affinity.as_ref())
                        .is_some_and(|a| {
                            a.required_during_scheduling_ignored_during_execution
                                .iter()
                                .any(|t| {
                                    t.label_selector
                                        .as_ref()
                                        .is_none_or(|s| s.matches(&i.metadata.labels))
                                        && node_of(pnode)
                                            .is_some_and(|pn| same_domain(pn, n, &t.topology_key))
                                })
                        })
            });
            !clash_own && !clash_theirs
        };
        let best = nodes.iter().filter(|n| fits(n)).min_by_key(|n| {
            (
                load.get(&n.metadata.name).copied().unwrap_or(0),
                n.metadata.name.clone(),
            )
        });
        match best {
            Some(n) => {
                let name = n.metadata.name.clone();
                *load.entry(name.clone()).or_default() += 1;
                placed.push((
                    ns.clone(),
                    i.metadata.labels.clone(),
                    i.spec.clone(),
                    name.clone(),
                ));
                plan.edit(i).spec.node_ref = Some(LocalObjectReference::new(&name));
            }
            None => plan.warn(
                &**i,
                "OutOfCapacity",
                format!(
                    "none of {} nodes satisfies the instance's node affinity and anti-affinity",
                    nodes.len()
                ),
            ),
        }
    }
}

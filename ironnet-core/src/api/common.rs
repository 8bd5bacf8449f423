//! Types both API groups share: IP families, protocols, references, ports,
//! IP blocks and policy peers.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::meta::{LabelSelector, LabelSelectorRequirement, Labels};
use crate::validation::{FieldErrors, FieldPath, check_name};

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IpFamily {
    /// IPv4.
    IPv4,
    /// IPv6.
    IPv6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> IpFamily {
        match ip {
            IpAddr::V4(_) => IpFamily::IPv4,
            IpAddr::V6(_) => IpFamily::IPv6,
        }
    }
}

/// A transport protocol of ports and policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    TCP,
    /// UDP.
    UDP,
    /// SCTP.
    SCTP,
}

/// `{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// Name in the same namespace.
    #[serde(default)]
    pub name: String,
}

impl LocalObjectReference {
    /// A reference to `name`.
    pub fn new(name: &str) -> Self {
        LocalObjectReference {
            name: name.to_owned(),
        }
    }

    /// Checks that the name is set and valid.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        check_name(errs, &path.child("name"), &self.name);
    }
}

/// `{name, uid}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalUidReference {
    /// Name in the same namespace.
    #[serde(default)]
    pub name: String,
    /// Its uid (may be empty where the seeds leave it out).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl LocalUidReference {
    /// Checks the name.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        check_name(errs, &path.child("name"), &self.name);
    }
}

/// A port or port range of a load balancer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerPort {
    /// Protocol; TCP when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// First port, 1..=65535.
    pub port: i32,
    /// Last port (inclusive), at least `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

impl LoadBalancerPort {
    /// Sets the protocol to TCP if left out.
    pub fn apply_defaults(&mut self) {
        self.protocol.get_or_insert(Protocol::TCP);
    }

    /// The inclusive range.
    pub fn range(&self) -> (i32, i32) {
        (self.port, self.end_port.unwrap_or(self.port))
    }
}

/// Checks load-balancer ports: each in 1..=65535, end ≥ start, and no two
/// ranges of one protocol overlapping.
pub fn validate_lb_ports(ports: &[LoadBalancerPort], errs: &mut FieldErrors, path: &FieldPath) {
    for (i, p) in ports.iter().enumerate() {
        let pp = path.index(i);
        errs.check(
            (1..=65535).contains(&p.port),
            &pp.child("port"),
            "must be between 1 and 65535",
        );
        if let Some(end) = p.end_port {
            errs.check(
                (p.port..=65535).contains(&end),
                &pp.child("endPort"),
                "must be between port and 65535",
            );
        }
        for (j, q) in ports.iter().enumerate().take(i) {
            let proto = |x: &LoadBalancerPort| x.protocol.unwrap_or_default();
            let ((a0, a1), (b0, b1)) = (p.range(), q.range());
            if proto(p) == proto(q) && a0 <= b1 && b0 <= a1 {
                errs.add(&pp, format!("overlaps ports[{j}] of the same protocol"));
            }
        }
    }
}

/// A port or range a network policy rule allows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPort {
    /// Protocol; TCP when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Port; absent or 0 means every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Last port of a range (inclusive); needs `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i32>,
}

impl NetworkPolicyPort {
    /// Sets the protocol to TCP if left out.
    pub fn apply_defaults(&mut self) {
        self.protocol.get_or_insert(Protocol::TCP);
    }

    /// Checks port and range.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        if let Some(p) = self.port {
            errs.check(
                (0..=65535).contains(&p),
                &path.child("port"),
                "must be between 0 (all) and 65535",
            );
        }
        if let Some(end) = self.end_port {
            match self.port {
                Some(p) if p > 0 => errs.check(
                    (p..=65535).contains(&end),
                    &path.child("endPort"),
                    "must be between port and 65535",
                ),
                _ => errs.add(&path.child("endPort"), "needs port"),
            }
        }
    }
}

/// A CIDR with exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    /// The block.
    pub cidr: Option<IpNet>,
    /// Parts of it excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

impl IpBlock {
    /// Checks that `cidr` is set and every exception lies inside it.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        let Some(cidr) = self.cidr else {
            errs.add(&path.child("cidr"), "required");
            return;
        };
        let net = cidr.trunc();
        for (i, e) in self.except.iter().enumerate() {
            errs.check(
                net.contains(&e.trunc()),
                &path.child("except").index(i),
                format!("{e} is not inside {net}"),
            );
        }
    }
}

/// Objects selected by kind and labels (the selector is inlined).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectSelector {
    /// `NetworkInterface` or `LoadBalancer`.
    #[serde(default)]
    pub kind: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub match_labels: Labels,
    /// Requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl ObjectSelector {
    /// The label part.
    pub fn selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: self.match_expressions.clone(),
        }
    }

    /// Checks the kind and the selector.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        errs.check(
            matches!(self.kind.as_str(), "NetworkInterface" | "LoadBalancer"),
            &path.child("kind"),
            format!(
                "{:?} is not supported: NetworkInterface or LoadBalancer",
                self.kind
            ),
        );
        self.selector().validate(errs, path);
    }
}

/// A peer of a network policy rule: exactly one of the two.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicyPeer {
    /// Objects by kind and labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<ObjectSelector>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

impl NetworkPolicyPeer {
    /// Checks that exactly one specifier is set, and it.
    pub fn validate(&self, errs: &mut FieldErrors, path: &FieldPath) {
        match (&self.object_selector, &self.ip_block) {
            (Some(s), None) => s.validate(errs, &path.child("objectSelector")),
            (None, Some(b)) => b.validate(errs, &path.child("ipBlock")),
            (Some(_), Some(_)) => errs.add(path, "objectSelector and ipBlock are exclusive"),
            (None, None) => errs.add(path, "must specify objectSelector or ipBlock"),
        }
    }
}

/// Ingress and egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PolicyType {
    /// Traffic towards the selected interfaces.
    Ingress,
    /// Traffic from them.
    Egress,
}

/// Checks a list of IP families: non-empty where `required`, no duplicates.
pub fn validate_families(
    families: &[IpFamily],
    required: bool,
    errs: &mut FieldErrors,
    path: &FieldPath,
) {
    if required && families.is_empty() {
        errs.add(path, "required");
    }
    for (i, f) in families.iter().enumerate() {
        if families[..i].contains(f) {
            errs.add(&path.index(i), format!("duplicate {f:?}"));
        }
    }
}

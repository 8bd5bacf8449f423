//! NetworkPolicyRules as dp firewall rules.
//!
//! One Accept rule per (peer block or object address × port), in the
//! direction of the rule; each `except` block of an `ipBlock` becomes a
//! Drop rule of the same ports one priority step earlier, so it wins.
//! Unlike metalnetlet:
//! - a rule without ports allows every protocol (metalnetlet made no rule);
//! - ingress ports match the destination port (metalnetlet wrote them as
//!   source ports);
//! - a rule's id is a hash of its content, so an unchanged policy keeps its
//!   rules and a changed one replaces exactly what changed (metalnetlet
//!   minted new ids on every pass, and metalnet never updated a rule whose
//!   id stayed).
//!
//! A direction with at least one rule drops what no rule accepts (the dp's
//! semantics); a direction without rules is open. SCTP ports cannot be
//! expressed in the dp's filters and are left out.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use ironnet_core::api::apinet::NetworkPolicyRule;
use ironnet_core::api::common::{IpFamily, NetworkPolicyPort, Protocol};
use ironnet_dp::proto;
use std::fmt::Write as _;

/// Which way a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Towards the interface.
    Ingress,
    /// From the interface.
    Egress,
}

/// What a rule matches besides addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    /// Every protocol.
    Any,
    /// TCP to destination ports `lo..=hi`.
    Tcp(u16, u16),
    /// UDP to destination ports `lo..=hi`.
    Udp(u16, u16),
}

/// One firewall rule of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FirewallRule {
    /// Direction.
    pub direction: Direction,
    /// Accept (true) or drop.
    pub accept: bool,
    /// Lower values are tried first.
    pub priority: u32,
    /// Source prefix.
    pub source: IpNet,
    /// Destination prefix.
    pub destination: IpNet,
    /// Protocol and ports.
    pub filter: Filter,
}

/// The priority of a policy without one (IronCore's default).
pub const DEFAULT_PRIORITY: u32 = 1000;

fn any(family: IpFamily) -> IpNet {
    match family {
        IpFamily::IPv4 => IpNet::V4(Ipv4Net::default()),
        IpFamily::IPv6 => IpNet::V6(Ipv6Net::default()),
    }
}

impl FirewallRule {
    /// The address family of its prefixes.
    pub fn family(&self) -> IpFamily {
        IpFamily::of(self.source.addr())
    }

    /// Its id: a hash of its content (at most 64 bytes, as the dp allows).
    pub fn id(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{:?}/{}/{}/{}/{}/{:?}",
            self.direction, self.accept, self.priority, self.source, self.destination, self.filter
        );
        let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("np-{h:016x}")
    }

    /// The rule as the dp's API carries it.
    pub fn to_proto(&self) -> proto::FirewallRule {
        let prefix = super::dp::prefix;
        let filter = match self.filter {
            Filter::Any => None,
            Filter::Tcp(lo, hi) => Some(proto::protocol_filter::Filter::Tcp(proto::TcpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: i32::from(lo),
                dst_port_upper: i32::from(hi),
            })),
            Filter::Udp(lo, hi) => Some(proto::protocol_filter::Filter::Udp(proto::UdpFilter {
                src_port_lower: -1,
                src_port_upper: -1,
                dst_port_lower: i32::from(lo),
                dst_port_upper: i32::from(hi),
            })),
        };
        proto::FirewallRule {
            id: self.id().into_bytes(),
            direction: match self.direction {
                Direction::Ingress => proto::TrafficDirection::Ingress as i32,
                Direction::Egress => proto::TrafficDirection::Egress as i32,
            },
            action: if self.accept {
                proto::FirewallAction::Accept as i32
            } else {
                proto::FirewallAction::Drop as i32
            },
            priority: self.priority,
            source_prefix: Some(prefix(self.source)),
            destination_prefix: Some(prefix(self.destination)),
            protocol_filter: filter.map(|f| proto::ProtocolFilter { filter: Some(f) }),
        }
    }
}

fn filters(ports: &[NetworkPolicyPort]) -> Vec<Filter> {
    if ports.is_empty() {
        return vec![Filter::Any];
    }
    ports
        .iter()
        .filter_map(|p| {
            let (lo, hi) = match p.port {
                None => (0, 65535),
                Some(port) => {
                    let lo = u16::try_from(port).ok()?;
                    let hi = p
                        .end_port
                        .map_or(Some(lo), |e| u16::try_from(e).ok())?
                        .max(lo);
                    (lo, hi)
                }
            };
            match p.protocol.unwrap_or(Protocol::TCP) {
                Protocol::TCP => Some(Filter::Tcp(lo, hi)),
                Protocol::UDP => Some(Filter::Udp(lo, hi)),
                Protocol::SCTP => None,
            }
        })
        .collect()
}

/// The firewall rules one compiled policy gives each interface it targets.
pub fn compile(rule: &NetworkPolicyRule) -> Vec<FirewallRule> {
    let priority = rule
        .priority
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(DEFAULT_PRIORITY);
    let mut out = Vec::new();
    for (direction, compiled) in [
        (Direction::Ingress, &rule.ingress_rule),
        (Direction::Egress, &rule.egress_rule),
    ] {
        for c in compiled {
            let filters = filters(&c.network_policy_ports);
            let mut peers: Vec<(IpNet, bool)> = Vec::new();
            for block in &c.ip_block {
                let Some(cidr) = block.cidr else { continue };
                peers.push((cidr.trunc(), true));
                peers.extend(block.except.iter().map(|e| (e.trunc(), false)));
            }
            peers.extend(c.ips.iter().map(|o| (o.prefix.trunc(), true)));
            for (peer, accept) in peers {
                let here = any(IpFamily::of(peer.addr()));
                let (source, destination) = match direction {
                    Direction::Ingress => (peer, here),
                    Direction::Egress => (here, peer),
                };
                for filter in &filters {
                    out.push(FirewallRule {
                        direction,
                        accept,
                        priority: if accept {
                            priority
                        } else {
                            priority.saturating_sub(1)
                        },
                        source,
                        destination,
                        filter: *filter,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironnet_core::api::apinet::{CompiledRule, ObjectIp};
    use ironnet_core::api::common::IpBlock;

    fn rule(ingress: Vec<CompiledRule>) -> NetworkPolicyRule {
        NetworkPolicyRule {
            ingress_rule: ingress,
            priority: Some(500),
            ..Default::default()
        }
    }

    #[test]
    fn blocks_objects_ports_and_excepts() {
        let r = rule(vec![CompiledRule {
            ip_block: vec![IpBlock {
                cidr: Some("10.0.0.0/16".parse().unwrap()),
                except: vec!["10.0.1.0/24".parse().unwrap()],
            }],
            ips: vec![ObjectIp {
                ip_family: Some(IpFamily::IPv4),
                prefix: "10.9.0.5/32".parse().unwrap(),
            }],
            network_policy_ports: vec![NetworkPolicyPort {
                protocol: Some(Protocol::TCP),
                port: Some(80),
                end_port: Some(90),
            }],
        }]);
        let rules = compile(&r);
        assert_eq!(rules.len(), 3);
        assert!(rules.iter().all(|r| r.filter == Filter::Tcp(80, 90)));
        assert!(rules.iter().all(|r| r.direction == Direction::Ingress));
        let deny: Vec<_> = rules.iter().filter(|r| !r.accept).collect();
        assert_eq!(deny.len(), 1);
        assert_eq!(deny[0].source, "10.0.1.0/24".parse::<IpNet>().unwrap());
        assert_eq!(deny[0].priority, 499, "an except wins over its block");
        assert!(
            rules
                .iter()
                .all(|r| r.destination == "0.0.0.0/0".parse::<IpNet>().unwrap())
        );
    }

    #[test]
    fn no_ports_allow_every_protocol_and_ids_follow_content() {
        let r = rule(vec![CompiledRule {
            ip_block: vec![IpBlock {
                cidr: Some("192.168.0.0/24".parse().unwrap()),
                except: Vec::new(),
            }],
            ..Default::default()
        }]);
        let a = compile(&r);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].filter, Filter::Any);
        assert_eq!(a[0].id(), compile(&r)[0].id(), "same content, same id");
        let mut other = a[0];
        other.priority += 1;
        assert_ne!(a[0].id(), other.id());
        assert!(a[0].id().len() <= 64);
    }
}

//! Stateful firewall rules of an interface and the decision for a flow's
//! first packet (the pipeline caches it in the flow, for both directions).
//!
//! Semantics, which dpservice documents but does not enforce:
//! - rules have a direction: ingress (towards the guest) or egress (from
//!   it); an interface without rules of a direction accepts everything in
//!   that direction;
//! - otherwise the rules of that direction are tried in priority order
//!   (lower value first; equal priorities in the order they were created)
//!   and the first that matches decides, accept or drop; if none matches,
//!   the packet is dropped;
//! - a rule matches when the packet's source lies in its source prefix,
//!   its destination in its destination prefix (an IPv4 rule never matches
//!   IPv6 and the other way round) and its protocol filter matches: any
//!   protocol, TCP or UDP with source and destination port ranges, or ICMP
//!   (either version) with type and code, each possibly "any". Unlike
//!   dpservice, prefixes apply to ICMP too.

use std::net::IpAddr;

use ipnet::IpNet;

/// Which way a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleDirection {
    /// Traffic towards the interface.
    Ingress,
    /// Traffic from the interface.
    Egress,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleAction {
    /// Drop the flow.
    Drop,
    /// Let the flow through.
    Accept,
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// Lowest port.
    pub lo: u16,
    /// Highest port.
    pub hi: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// Which packets a rule looks at, besides addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolMatch {
    /// Any protocol.
    Any,
    /// TCP with these ports.
    Tcp {
        /// Source ports.
        src: PortRange,
        /// Destination ports.
        dst: PortRange,
    },
    /// UDP with these ports.
    Udp {
        /// Source ports.
        src: PortRange,
        /// Destination ports.
        dst: PortRange,
    },
    /// ICMP or ICMPv6 with this type and code (`None`: any).
    Icmp {
        /// Message type.
        icmp_type: Option<u8>,
        /// Message code.
        icmp_code: Option<u8>,
    },
}

/// A firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FirewallRule {
    /// Identifier, unique per interface.
    pub id: String,
    /// Ingress or egress.
    pub direction: RuleDirection,
    /// Accept or drop.
    pub action: RuleAction,
    /// Lower values are tried first.
    pub priority: u16,
    /// Source addresses.
    pub src: IpNet,
    /// Destination addresses.
    pub dst: IpNet,
    /// Protocol and ports.
    pub protocol: ProtocolMatch,
}

/// What the firewall looks at in a packet (the flow's first one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketInfo {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// TCP/UDP source port (0 otherwise).
    pub src_port: u16,
    /// TCP/UDP destination port (0 otherwise).
    pub dst_port: u16,
    /// ICMP type and code, for ICMP and ICMPv6.
    pub icmp: Option<(u8, u8)>,
}

impl PacketInfo {
    /// The packet of the other direction: addresses and ports swapped,
    /// an echo reply seen as the request it answers.
    pub fn reversed(&self) -> PacketInfo {
        let icmp = self.icmp.map(|(t, c)| match (self.protocol, t) {
            (ICMP, 0) => (8, c),
            (ICMPV6, 129) => (128, c),
            _ => (t, c),
        });
        PacketInfo {
            src: self.dst,
            dst: self.src,
            protocol: self.protocol,
            src_port: self.dst_port,
            dst_port: self.src_port,
            icmp,
        }
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

impl FirewallRule {
    /// Whether the rule matches `pkt` (direction aside).
    pub fn matches(&self, pkt: &PacketInfo) -> bool {
        if !self.src.contains(&pkt.src) || !self.dst.contains(&pkt.dst) {
            return false;
        }
        match self.protocol {
            ProtocolMatch::Any => true,
            ProtocolMatch::Tcp { src, dst } => {
                pkt.protocol == TCP && src.contains(pkt.src_port) && dst.contains(pkt.dst_port)
            }
            ProtocolMatch::Udp { src, dst } => {
                pkt.protocol == UDP && src.contains(pkt.src_port) && dst.contains(pkt.dst_port)
            }
            ProtocolMatch::Icmp {
                icmp_type,
                icmp_code,
            } => match (pkt.protocol, pkt.icmp) {
                (ICMP | ICMPV6, Some((t, c))) => {
                    icmp_type.is_none_or(|want| want == t) && icmp_code.is_none_or(|want| want == c)
                }
                _ => false,
            },
        }
    }
}

/// The rules of one interface, kept in evaluation order per direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    ingress: Vec<FirewallRule>,
    egress: Vec<FirewallRule>,
}

impl RuleSet {
    /// A rule set from rules in creation order.
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a FirewallRule>) -> Self {
        let mut set = RuleSet::default();
        for r in rules {
            match r.direction {
                RuleDirection::Ingress => set.ingress.push(r.clone()),
                RuleDirection::Egress => set.egress.push(r.clone()),
            }
        }
        // Stable: equal priorities keep creation order.
        set.ingress.sort_by_key(|r| r.priority);
        set.egress.sort_by_key(|r| r.priority);
        set
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }

    /// The decision for a flow whose first packet is `pkt`, travelling in
    /// `direction` as seen from this interface.
    pub fn decide(&self, direction: RuleDirection, pkt: &PacketInfo) -> RuleAction {
        let rules = match direction {
            RuleDirection::Ingress => &self.ingress,
            RuleDirection::Egress => &self.egress,
        };
        if rules.is_empty() {
            return RuleAction::Accept;
        }
        rules
            .iter()
            .find(|r| r.matches(pkt))
            .map_or(RuleAction::Drop, |r| r.action)
    }
}

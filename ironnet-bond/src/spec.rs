//! metalbond's command-line route syntax:
//! `VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO]`.
//!
//! As in metalbond the next hop's target VNI is 0 and NAT needs both
//! ports; unlike metalbond, ports are parsed as unsigned 16-bit numbers, so
//! ranges above 32767 work.

use std::net::Ipv6Addr;
use std::str::FromStr;

use ipnet::IpNet;
use ironnet_overlay::route::{Destination, NextHop, NextHopKind, Route, Vni};
use thiserror::Error;

/// Why an announcement string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RouteSpecError {
    /// Not 3, 4 or 6 `#`-separated parts.
    #[error("expected VNI#PREFIX#NEXTHOP[#STD|LB|NAT][#FROM#TO], got {0} parts")]
    Parts(usize),
    /// The VNI is not a number below 2^24.
    #[error("invalid VNI {0:?}")]
    Vni(String),
    /// The prefix does not parse.
    #[error("invalid prefix {0:?}")]
    Prefix(String),
    /// The next hop is not an IPv6 address.
    #[error("invalid next hop {0:?} (an IPv6 underlay address)")]
    NextHop(String),
    /// The type is not STD, LB or NAT.
    #[error("invalid route type {0:?} (STD, LB or NAT)")]
    Type(String),
    /// NAT without ports, or ports with another type.
    #[error("NAT needs #FROM#TO ports and only NAT takes them")]
    Ports,
    /// A port is not a number in 0..=65535.
    #[error("invalid port {0:?}")]
    Port(String),
}

/// Parses one announcement.
pub fn parse_announcement(s: &str) -> Result<Route, RouteSpecError> {
    let parts: Vec<&str> = s.split('#').collect();
    if !matches!(parts.len(), 3 | 4 | 6) {
        return Err(RouteSpecError::Parts(parts.len()));
    }
    let vni = parts[0]
        .parse::<u32>()
        .ok()
        .and_then(Vni::new)
        .ok_or_else(|| RouteSpecError::Vni(parts[0].to_owned()))?;
    let prefix =
        IpNet::from_str(parts[1]).map_err(|_| RouteSpecError::Prefix(parts[1].to_owned()))?;
    let underlay =
        Ipv6Addr::from_str(parts[2]).map_err(|_| RouteSpecError::NextHop(parts[2].to_owned()))?;
    let ty = parts.get(3).copied().unwrap_or("STD");
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| RouteSpecError::Port(p.to_owned()))
    };
    let kind = match (ty, parts.len()) {
        ("STD", 3 | 4) => NextHopKind::Standard,
        ("LB", 4) => NextHopKind::LoadBalancerTarget,
        ("NAT", 6) => NextHopKind::Nat {
            port_from: port(parts[4])?,
            port_to: port(parts[5])?,
        },
        ("STD" | "LB" | "NAT", _) => return Err(RouteSpecError::Ports),
        (other, _) => return Err(RouteSpecError::Type(other.to_owned())),
    };
    Ok(Route {
        vni,
        destination: Destination::new(prefix),
        next_hop: NextHop {
            underlay,
            vni: Vni::new(0).ok_or_else(|| RouteSpecError::Vni("0".to_owned()))?,
            kind,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metalbond_examples_parse() {
        let r = parse_announcement("100#0.0.0.0/0#fd00::1").unwrap();
        assert_eq!(r.vni.get(), 100);
        assert_eq!(r.destination.to_string(), "0.0.0.0/0");
        assert_eq!(r.next_hop.kind, NextHopKind::Standard);
        let r = parse_announcement("7#10.0.0.1/24#fd00::2#LB").unwrap();
        assert_eq!(r.destination.to_string(), "10.0.0.0/24");
        assert_eq!(r.next_hop.kind, NextHopKind::LoadBalancerTarget);
        let r = parse_announcement("7#203.0.113.1/32#fd00::3#NAT#32768#65535").unwrap();
        assert_eq!(
            r.next_hop.kind,
            NextHopKind::Nat {
                port_from: 32768,
                port_to: 65535
            }
        );
    }

    #[test]
    fn bad_announcements_are_typed() {
        use RouteSpecError as E;
        let cases = [
            ("1#10.0.0.0/8", E::Parts(2)),
            ("16777216#10.0.0.0/8#fd00::1", E::Vni("16777216".into())),
            ("1#10.0.0.0/33#fd00::1", E::Prefix("10.0.0.0/33".into())),
            ("1#10.0.0.0/8#10.0.0.1", E::NextHop("10.0.0.1".into())),
            ("1#10.0.0.0/8#fd00::1#XX", E::Type("XX".into())),
            ("1#10.0.0.0/8#fd00::1#NAT", E::Ports),
            ("1#10.0.0.0/8#fd00::1#STD#1#2", E::Ports),
            ("1#10.0.0.0/8#fd00::1#NAT#1#65536", E::Port("65536".into())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_announcement(input), Err(want), "{input}");
        }
    }
}

//! The route model shared by the data plane and the bond: a destination
//! prefix in a VNI, reachable through a next hop on the underlay.
//!
//! It mirrors metalbond's `Destination` and `NextHop` messages. Prefixes are
//! always canonical (host bits cleared): metalbond keeps `10.0.0.1/24` and
//! `10.0.0.0/24` apart, which lets one destination appear twice.

use std::fmt;
use std::net::Ipv6Addr;

use ipnet::IpNet;

/// A 24-bit virtual network identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: u32 = (1 << 24) - 1;

    /// A VNI; `None` if `id` needs more than 24 bits.
    pub const fn new(id: u32) -> Option<Self> {
        if id <= Self::MAX { Some(Vni(id)) } else { None }
    }

    /// The numeric ID.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A canonical destination prefix, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination(IpNet);

impl Destination {
    /// The destination for `prefix` with host bits cleared.
    pub fn new(prefix: IpNet) -> Self {
        Destination(prefix.trunc())
    }

    /// The canonical prefix.
    pub fn prefix(&self) -> IpNet {
        self.0
    }
}

impl From<IpNet> for Destination {
    fn from(prefix: IpNet) -> Self {
        Destination::new(prefix)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a next hop is for (metalbond `NextHopType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHopKind {
    /// The prefix is reachable at the underlay address (type 0).
    Standard,
    /// The NAT IP (the destination /32) is used by an interface behind the
    /// underlay address for source ports `port_from..port_to` (type 1); the
    /// ports are carried as on the wire.
    Nat {
        /// `natPortRangeFrom`.
        port_from: u16,
        /// `natPortRangeTo`.
        port_to: u16,
    },
    /// An interface behind the underlay address serves the load balancer IP
    /// that is the destination (type 2).
    LoadBalancerTarget,
}

impl NextHopKind {
    /// The metalbond wire value of the type.
    pub fn wire_type(&self) -> u32 {
        match self {
            NextHopKind::Standard => 0,
            NextHopKind::Nat { .. } => 1,
            NextHopKind::LoadBalancerTarget => 2,
        }
    }
}

/// Where a destination is reached: an underlay address, the VNI to use
/// there, and the kind of hop. Two NAT hops that differ only in ports are
/// different next hops, as in metalbond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHop {
    /// The underlay IPv6 address of the target.
    pub underlay: Ipv6Addr,
    /// The VNI at the target.
    pub vni: Vni,
    /// What the hop is for.
    pub kind: NextHopKind,
}

/// A route: in `vni`, `destination` is reached through `next_hop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The VNI whose table holds the route.
    pub vni: Vni,
    /// The destination prefix.
    pub destination: Destination,
    /// How to reach it.
    pub next_hop: NextHop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_canonical() {
        let a = Destination::new("10.0.0.1/24".parse().unwrap());
        let b = Destination::new("10.0.0.0/24".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "10.0.0.0/24");
    }

    #[test]
    fn vnis_are_24_bits() {
        assert_eq!(Vni::new(Vni::MAX).map(Vni::get), Some(16_777_215));
        assert_eq!(Vni::new(1 << 24), None);
    }

    #[test]
    fn next_hop_kinds_map_to_metalbond_types() {
        let nat = NextHopKind::Nat {
            port_from: 1024,
            port_to: 3072,
        };
        assert_eq!(NextHopKind::Standard.wire_type(), 0);
        assert_eq!(nat.wire_type(), 1);
        assert_eq!(NextHopKind::LoadBalancerTarget.wire_type(), 2);
    }
}

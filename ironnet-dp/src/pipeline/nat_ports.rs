//! NAT port bindings of the NAT gateway: which inside endpoint owns which
//! (NAT IP, port, protocol).
//!
//! Mapping is endpoint-independent (RFC 4787 §4.1): every flow of one
//! inside endpoint (VNI, protocol, address, port or ICMP identifier) leaves
//! with the same NAT port, whatever its destination. Unlike dpservice there
//! is no port overloading: a (VNI, NAT IP, port, protocol) belongs to at
//! most one inside endpoint at a time, so an answer always has exactly one
//! place to go. A binding lives as long as a flow uses it.
//!
//! A new binding starts probing at a hash of the inside endpoint within the
//! interface's range `[min, max)` and takes the first free port; a full
//! range refuses the flow.

use std::net::IpAddr;

use rustc_hash::FxHashMap;

/// An inside endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inside {
    /// VNI of the interface.
    pub vni: u32,
    /// IP protocol.
    pub protocol: u8,
    /// The guest's address.
    pub addr: IpAddr,
    /// The guest's port (ICMP: echo identifier).
    pub port: u16,
}

/// A public endpoint: a port of a NAT IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Outside {
    /// VNI of the interface.
    pub vni: u32,
    /// IP protocol.
    pub protocol: u8,
    /// The NAT IP.
    pub addr: IpAddr,
    /// The NAT port (ICMP: echo identifier).
    pub port: u16,
}

#[derive(Debug, Clone, Copy)]
struct Binding {
    inside: Inside,
    flows: u32,
}

/// Why no port could be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NatPortError {
    /// Every port of the range is bound to another inside endpoint.
    #[error("every port of the NAT range is in use")]
    Exhausted,
    /// The range is empty.
    #[error("empty NAT port range")]
    EmptyRange,
}

/// The bindings of one pipeline.
#[derive(Debug, Default)]
pub struct NatPorts {
    by_inside: FxHashMap<Inside, Outside>,
    by_outside: FxHashMap<Outside, Binding>,
}

impl NatPorts {
    /// No bindings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bindings held.
    pub fn len(&self) -> usize {
        self.by_outside.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.by_outside.is_empty()
    }

    /// The inside endpoint that owns `outside`, if any.
    pub fn owner(&self, outside: &Outside) -> Option<Inside> {
        self.by_outside.get(outside).map(|b| b.inside)
    }

    /// Binds a port of `nat_ip` in `[min, max)` for one more flow of
    /// `inside`: the port it already has (if it is still within this NAT
    /// IP and range), else the first free one from `hint`.
    pub fn acquire(
        &mut self,
        inside: Inside,
        nat_ip: IpAddr,
        min: u16,
        max: u16,
        hint: u32,
    ) -> Result<u16, NatPortError> {
        if min >= max {
            return Err(NatPortError::EmptyRange);
        }
        // A binding made under another NAT IP or range (the interface's NAT
        // changed under live flows) stays until its flows go; the new flow
        // gets a new one.
        if let Some(out) = self.by_inside.get(&inside).copied()
            && out.addr == nat_ip
            && (min..max).contains(&out.port)
            && let Some(b) = self.by_outside.get_mut(&out)
        {
            b.flows += 1;
            return Ok(out.port);
        }
        let len = u32::from(max - min);
        let start = hint % len;
        for i in 0..len {
            let offset = (start + i) % len;
            let Ok(offset) = u16::try_from(offset) else {
                continue;
            };
            let out = Outside {
                vni: inside.vni,
                protocol: inside.protocol,
                addr: nat_ip,
                port: min + offset,
            };
            if self.by_outside.contains_key(&out) {
                continue;
            }
            self.by_outside.insert(out, Binding { inside, flows: 1 });
            self.by_inside.insert(inside, out);
            return Ok(out.port);
        }
        Err(NatPortError::Exhausted)
    }

    /// One flow using `outside` is gone; the binding goes with its last.
    pub fn release(&mut self, outside: &Outside) {
        let Some(b) = self.by_outside.get_mut(outside) else {
            return;
        };
        b.flows = b.flows.saturating_sub(1);
        if b.flows == 0 {
            let inside = b.inside;
            self.by_outside.remove(outside);
            if self.by_inside.get(&inside) == Some(outside) {
                self.by_inside.remove(&inside);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inside(port: u16) -> Inside {
        Inside {
            vni: 7,
            protocol: 6,
            addr: "10.0.0.1".parse().unwrap(),
            port,
        }
    }

    const NAT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(45, 0, 0, 1));

    #[test]
    fn one_port_per_endpoint_and_exhaustion() {
        let mut n = NatPorts::new();
        let a = n.acquire(inside(1000), NAT, 100, 103, 0).unwrap();
        assert_eq!(n.acquire(inside(1000), NAT, 100, 103, 55).unwrap(), a);
        let b = n.acquire(inside(1001), NAT, 100, 103, 0).unwrap();
        let c = n.acquire(inside(1002), NAT, 100, 103, 0).unwrap();
        let mut all = [a, b, c];
        all.sort_unstable();
        assert_eq!(all, [100, 101, 102]);
        assert_eq!(
            n.acquire(inside(1003), NAT, 100, 103, 0),
            Err(NatPortError::Exhausted)
        );
        let out = |port| Outside {
            vni: 7,
            protocol: 6,
            addr: NAT,
            port,
        };
        // `a` has two flows: one release keeps it.
        n.release(&out(a));
        assert_eq!(n.owner(&out(a)), Some(inside(1000)));
        n.release(&out(a));
        assert_eq!(n.owner(&out(a)), None);
        assert_eq!(n.acquire(inside(1003), NAT, 100, 103, 0).unwrap(), a);
        assert_eq!(
            n.acquire(inside(1), NAT, 5, 5, 0),
            Err(NatPortError::EmptyRange)
        );
    }
}

//! Allocation of underlay IPv6 addresses in dpservice's format (the format
//! itself, [`UnderlayParts`], lives in `ironnet_overlay::underlay` and is
//! re-exported here).
//!
//! Each address is the host's /64, the type byte `0xD0`, a flags byte, a
//! random byte and a 32-bit counter (see `ironnet_overlay::underlay` for the
//! byte layout).
//!
//! A caller may ask for a *preferred* address (HA pairs, metalnet); dpservice
//! accepts it only inside the host's /64 and with flag `0x80` set, and
//! [`UnderlayAllocator::allocate_preferred`] applies the same rule. The
//! random byte of each address and the counter's start are parameters: this
//! crate has no randomness of its own.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::Ipv6Net;

use crate::error::{AllocError, Conflict, Rebuilt, Resource, UnderlayRejection, Value};

pub use ironnet_overlay::underlay::{
    FLAG_EXTERNAL, FLAG_SECONDARY_POOL, UNDERLAY_TYPE, UnderlayParts,
};

/// Hands out unique underlay addresses inside one host's /64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderlayAllocator {
    host_prefix: u64,
    next_counter: u32,
    in_use: BTreeSet<Ipv6Addr>,
}

fn value(addr: Ipv6Addr) -> Value {
    Value::Ip(IpAddr::V6(addr))
}

impl UnderlayAllocator {
    /// An allocator for the /64 of `host` (the dp's `--ipv6` address) whose
    /// first generated address uses counter `counter_start` (dpservice
    /// starts at a random value below 256).
    pub fn new(host: Ipv6Addr, counter_start: u32) -> Self {
        UnderlayAllocator {
            host_prefix: UnderlayParts::parse(host).host_prefix,
            next_counter: counter_start,
            in_use: BTreeSet::new(),
        }
    }

    /// Like [`new`](Self::new), then takes back `existing` addresses (what a
    /// dp reports after a restart). Addresses outside the /64 or listed twice
    /// are conflicts. Generation continues at `counter_start`, skipping
    /// addresses in use: pass the persisted [`next_counter`](Self::next_counter)
    /// to avoid reusing recently released addresses, or a random value.
    pub fn rebuild(
        host: Ipv6Addr,
        counter_start: u32,
        existing: impl IntoIterator<Item = Ipv6Addr>,
    ) -> Rebuilt<Self, Ipv6Addr> {
        let mut allocator = Self::new(host, counter_start);
        let conflicts = existing
            .into_iter()
            .filter_map(|item| {
                let error = allocator.claim(item).err()?;
                Some(Conflict { item, error })
            })
            .collect();
        Rebuilt {
            allocator,
            conflicts,
        }
    }

    /// The host's /64.
    pub fn host_net(&self) -> Ipv6Net {
        let addr = Ipv6Addr::from(u128::from(self.host_prefix) << 64);
        Ipv6Net::new_assert(addr, 64)
    }

    fn in_host_net(&self, addr: Ipv6Addr) -> bool {
        UnderlayParts::parse(addr).host_prefix == self.host_prefix
    }

    /// The counter the next generated address will try first.
    pub fn next_counter(&self) -> u32 {
        self.next_counter
    }

    /// Addresses in use now.
    pub fn allocated_count(&self) -> usize {
        self.in_use.len()
    }

    /// Whether `addr` is in use.
    pub fn is_allocated(&self, addr: Ipv6Addr) -> bool {
        self.in_use.contains(&addr)
    }

    /// Every address in use, ascending.
    pub fn allocations(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.in_use.iter().copied()
    }

    /// Generates a new address with the given `random` byte (draw a fresh
    /// one per call, as dpservice does) and the next counter value whose
    /// address is not in use.
    pub fn allocate(&mut self, random: u8) -> Result<Ipv6Addr, AllocError> {
        // Every skipped candidate is a distinct address in use, so one of
        // `in_use.len() + 1` candidates is free unless the counter wrapped.
        let tries = (self.in_use.len() as u64 + 1).min(1 << 32);
        for _ in 0..tries {
            let addr = UnderlayParts {
                host_prefix: self.host_prefix,
                kind: UNDERLAY_TYPE,
                subtype: 0,
                flags: 0,
                random,
                counter: self.next_counter,
            }
            .to_addr();
            self.next_counter = self.next_counter.wrapping_add(1);
            if self.in_use.insert(addr) {
                return Ok(addr);
            }
        }
        Err(AllocError::Exhausted(Resource::UnderlayAddress))
    }

    /// Checks a preferred address against dpservice's rule: inside the
    /// host's /64 and flagged as externally generated.
    pub fn validate_preferred(&self, addr: Ipv6Addr) -> Result<(), AllocError> {
        let reason = if !self.in_host_net(addr) {
            UnderlayRejection::ForeignPrefix
        } else if !UnderlayParts::parse(addr).is_external() {
            UnderlayRejection::MissingExternalFlag
        } else {
            return Ok(());
        };
        Err(AllocError::InvalidPreferredUnderlay { addr, reason })
    }

    /// dpservice's `preferred_underlay_route`: `None` or `::` generates an
    /// address (with `random` as byte 11); anything else is validated and
    /// claimed.
    pub fn allocate_preferred(
        &mut self,
        preferred: Option<Ipv6Addr>,
        random: u8,
    ) -> Result<Ipv6Addr, AllocError> {
        match preferred {
            None => self.allocate(random),
            Some(addr) if addr.is_unspecified() => self.allocate(random),
            Some(addr) => {
                self.validate_preferred(addr)?;
                self.claim(addr)?;
                Ok(addr)
            }
        }
    }

    /// Takes a specific address of the host's /64, generated or not.
    pub fn claim(&mut self, addr: Ipv6Addr) -> Result<(), AllocError> {
        let resource = Resource::UnderlayAddress;
        if !self.in_host_net(addr) {
            return Err(AllocError::OutOfRange {
                resource,
                value: value(addr),
            });
        }
        if !self.in_use.insert(addr) {
            return Err(AllocError::AlreadyAllocated {
                resource,
                value: value(addr),
            });
        }
        Ok(())
    }

    /// Gives an address back.
    pub fn release(&mut self, addr: Ipv6Addr) -> Result<(), AllocError> {
        if !self.in_use.remove(&addr) {
            return Err(AllocError::NotAllocated {
                resource: Resource::UnderlayAddress,
                value: value(addr),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn generated_addresses_follow_dpservice_layout() {
        let mut ul = UnderlayAllocator::new(v6("fc00:1::1"), 0xff);
        let a = ul.allocate(0x2a).unwrap();
        assert_eq!(a, v6("fc00:1::d000:2a:0:ff"));
        let b = ul.allocate(0x07).unwrap();
        assert_eq!(b, v6("fc00:1::d000:7:0:100"));
        let parts = UnderlayParts::parse(b);
        assert!(parts.is_dp_format() && !parts.is_external());
        assert_eq!(parts.counter, 0x100);
        assert_eq!(parts.to_addr(), b);
        assert_eq!(ul.host_net().to_string(), "fc00:1::/64");
    }

    #[test]
    fn preferred_addresses_follow_dpservices_rule() {
        let mut ul = UnderlayAllocator::new(v6("fc00:1::1"), 0);
        // dpservice's own test values: flag 0x80 in byte 10, any type byte.
        for ok in [v6("fc00:1::8000:0:1"), v6("fc00:1::c000:0:2")] {
            assert_eq!(ul.allocate_preferred(Some(ok), 0).unwrap(), ok);
            assert!(matches!(
                ul.allocate_preferred(Some(ok), 0),
                Err(AllocError::AlreadyAllocated { .. })
            ));
        }
        assert_eq!(
            ul.allocate_preferred(Some(v6("fc00:1::d000:0:0:1")), 0),
            Err(AllocError::InvalidPreferredUnderlay {
                addr: v6("fc00:1::d000:0:0:1"),
                reason: UnderlayRejection::MissingExternalFlag,
            })
        );
        assert_eq!(
            ul.validate_preferred(v6("fc00:2::d000:8000:0:1")),
            Err(AllocError::InvalidPreferredUnderlay {
                addr: v6("fc00:2::d000:8000:0:1"),
                reason: UnderlayRejection::ForeignPrefix,
            })
        );
        let generated = ul
            .allocate_preferred(Some(Ipv6Addr::UNSPECIFIED), 3)
            .unwrap();
        assert!(UnderlayParts::parse(generated).is_dp_format());
    }

    #[test]
    fn generation_skips_addresses_in_use() {
        let mut ul = UnderlayAllocator::new(v6("fc00:1::1"), u32::MAX);
        ul.claim(v6("fc00:1::d000:0:0:0")).unwrap();
        assert_eq!(ul.allocate(0).unwrap(), v6("fc00:1::d000:0:ffff:ffff"));
        assert_eq!(
            ul.allocate(0).unwrap(),
            v6("fc00:1::d000:0:0:1"),
            "wraps, skips"
        );
        assert_eq!(ul.next_counter(), 2);
    }

    proptest! {
        #[test]
        fn addresses_stay_unique_and_rebuild_continues_the_counter(
            start in any::<u32>(),
            randoms in proptest::collection::vec(0u8..3, 1..100),
            release in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let host = v6("fc00:1::1");
            let n = randoms.len();
            let mut ul = UnderlayAllocator::new(host, start);
            let mut held: Vec<Ipv6Addr> = randoms.iter().map(|&r| ul.allocate(r).unwrap()).collect();
            let unique: std::collections::BTreeSet<_> = held.iter().collect();
            prop_assert_eq!(unique.len(), n);
            for r in release {
                if !held.is_empty() {
                    let a = held.swap_remove(r % held.len());
                    ul.release(a).unwrap();
                    prop_assert!(ul.release(a).is_err());
                }
            }
            let rebuilt = UnderlayAllocator::rebuild(host, ul.next_counter(), held.iter().copied());
            prop_assert!(rebuilt.conflicts.is_empty());
            prop_assert_eq!(&rebuilt.allocator, &ul);
            let mut rebuilt = rebuilt.allocator;
            let next = rebuilt.allocate(1).unwrap();
            prop_assert!(!held.contains(&next));
        }
    }
}

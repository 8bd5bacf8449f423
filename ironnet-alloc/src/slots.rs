//! VF / PCI / TAP slots of one host.
//!
//! A hypervisor has a fixed set of places to plug a guest in: SR-IOV virtual
//! functions (named by PCI address) or, in TAP mode, devices such as
//! `dtapvf_0..3`. Each network interface on the host holds at most one slot,
//! and keeps it across restarts (metalnet persists the claims; a rebuilt
//! [`SlotPool`] takes them back).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::bittree::BitTree;
use crate::error::{AllocError, ConfigError, Conflict, Rebuilt, Resource, Value};

/// A PCI address `domain:bus:device.function`, e.g. `0000:03:00.2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    domain: u16,
    bus: u8,
    device: u8,
    function: u8,
}

impl PciAddress {
    /// An address; `None` if device ≥ 32 or function ≥ 8.
    pub fn new(domain: u16, bus: u8, device: u8, function: u8) -> Option<Self> {
        (device < 32 && function < 8).then_some(PciAddress {
            domain,
            bus,
            device,
            function,
        })
    }

    /// PCI domain (segment).
    pub fn domain(&self) -> u16 {
        self.domain
    }

    /// Bus number.
    pub fn bus(&self) -> u8 {
        self.bus
    }

    /// Device number, `0..32`.
    pub fn device(&self) -> u8 {
        self.device
    }

    /// Function number, `0..8`.
    pub fn function(&self) -> u8 {
        self.function
    }

    /// The 16-bit routing ID `bus << 8 | device << 3 | function`.
    pub fn routing_id(&self) -> u16 {
        u16::from(self.bus) << 8 | u16::from(self.device) << 3 | u16::from(self.function)
    }

    fn from_routing_id(domain: u16, rid: u16) -> Self {
        PciAddress {
            domain,
            bus: (rid >> 8) as u8,
            device: ((rid >> 3) & 0x1f) as u8,
            function: (rid & 7) as u8,
        }
    }

    /// The addresses of `count` virtual functions of the physical function
    /// `pf`, whose first VF sits `first_vf_offset` routing IDs after it
    /// (SR-IOV "First VF Offset", stride 1).
    pub fn vf_range(
        pf: PciAddress,
        first_vf_offset: u16,
        count: u16,
    ) -> Result<Vec<PciAddress>, AllocError> {
        let first = u32::from(pf.routing_id()) + u32::from(first_vf_offset);
        let last = first + u32::from(count);
        if last > u32::from(u16::MAX) + 1 {
            return Err(ConfigError::PciRangeOverflow.into());
        }
        Ok((first..last)
            .map(|rid| Self::from_routing_id(pf.domain, rid as u16))
            .collect())
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddress {
    type Err = AllocError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || AllocError::from(ConfigError::InvalidPciAddress(s.to_owned()));
        let hex = |part: &str, digits: usize| -> Option<u16> {
            (part.len() == digits && part.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u16::from_str_radix(part, 16).ok())
                .flatten()
        };
        let (domain, rest) = s.split_once(':').ok_or_else(bad)?;
        let (bus, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (device, function) = rest.split_once('.').ok_or_else(bad)?;
        let domain = hex(domain, 4).ok_or_else(bad)?;
        let bus = hex(bus, 2).ok_or_else(bad)?;
        let device = hex(device, 2).ok_or_else(bad)?;
        let function = hex(function, 1).ok_or_else(bad)?;
        PciAddress::new(domain, bus as u8, device as u8, function as u8).ok_or_else(bad)
    }
}

/// TAP device names for VFs as dpservice uses them in TAP mode:
/// `dtapvf_0`, `dtapvf_1`, …
pub fn tap_vf_names(count: usize) -> Vec<String> {
    (0..count).map(|k| format!("dtapvf_{k}")).collect()
}

/// A fixed set of slots `S` (PCI addresses, TAP names) held by holders `H`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPool<S: Ord + Clone + fmt::Display, H: Ord + Clone> {
    slots: Vec<S>,
    index: BTreeMap<S, usize>,
    taken: BitTree,
    owners: Vec<Option<H>>,
    holders: BTreeMap<H, usize>,
}

impl<S: Ord + Clone + fmt::Display, H: Ord + Clone> SlotPool<S, H> {
    /// A pool over `slots`, handed out in the order given.
    pub fn new(slots: impl IntoIterator<Item = S>) -> Result<Self, AllocError> {
        let slots: Vec<S> = slots.into_iter().collect();
        let mut index = BTreeMap::new();
        for (i, slot) in slots.iter().enumerate() {
            if index.insert(slot.clone(), i).is_some() {
                return Err(ConfigError::DuplicateSlot(slot.to_string()).into());
            }
        }
        Ok(SlotPool {
            taken: BitTree::new(slots.len() as u64),
            owners: vec![None; slots.len()],
            slots,
            index,
            holders: BTreeMap::new(),
        })
    }

    /// A pool over `slots` holding `existing` claims; unknown slots, slots
    /// claimed twice and second slots for one holder are conflicts.
    pub fn rebuild(
        slots: impl IntoIterator<Item = S>,
        existing: impl IntoIterator<Item = (H, S)>,
    ) -> Result<Rebuilt<Self, (H, S)>, AllocError> {
        let mut allocator = Self::new(slots)?;
        let conflicts = existing
            .into_iter()
            .filter_map(|item| {
                let error = allocator.claim(item.0.clone(), &item.1).err()?;
                Some(Conflict { item, error })
            })
            .collect();
        Ok(Rebuilt {
            allocator,
            conflicts,
        })
    }

    /// All slots in order.
    pub fn slots(&self) -> &[S] {
        &self.slots
    }

    /// Slots held now.
    pub fn allocated_count(&self) -> usize {
        self.holders.len()
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.slots.len() - self.holders.len()
    }

    /// The slot `holder` holds.
    pub fn slot_of(&self, holder: &H) -> Option<&S> {
        self.holders.get(holder).map(|&i| &self.slots[i])
    }

    /// The holder of `slot`.
    pub fn holder_of(&self, slot: &S) -> Option<&H> {
        let &i = self.index.get(slot)?;
        self.owners[i].as_ref()
    }

    fn take(&mut self, holder: H, i: usize) {
        self.taken.take(i as u64);
        self.owners[i] = Some(holder.clone());
        self.holders.insert(holder, i);
    }

    /// Gives `holder` a slot: the one it holds already, or the first free.
    pub fn allocate(&mut self, holder: H) -> Result<S, AllocError> {
        if let Some(&i) = self.holders.get(&holder) {
            return Ok(self.slots[i].clone());
        }
        let i = self
            .taken
            .first_free_from(0)
            .ok_or(AllocError::Exhausted(Resource::Slot))? as usize;
        self.take(holder, i);
        Ok(self.slots[i].clone())
    }

    /// Gives `holder` exactly `slot`.
    pub fn claim(&mut self, holder: H, slot: &S) -> Result<(), AllocError> {
        let resource = Resource::Slot;
        let value = || Value::Slot(slot.to_string());
        let &i = self.index.get(slot).ok_or_else(|| AllocError::OutOfRange {
            resource,
            value: value(),
        })?;
        if let Some(&held) = self.holders.get(&holder) {
            if held == i {
                return Ok(());
            }
            return Err(AllocError::HolderAlreadyAssigned {
                resource,
                held: Value::Slot(self.slots[held].to_string()),
            });
        }
        if self.owners[i].is_some() {
            return Err(AllocError::AlreadyAllocated {
                resource,
                value: value(),
            });
        }
        self.take(holder, i);
        Ok(())
    }

    /// Frees the slot `holder` holds and returns it.
    pub fn release(&mut self, holder: &H) -> Result<S, AllocError> {
        let i = self
            .holders
            .remove(holder)
            .ok_or(AllocError::HolderUnknown(Resource::Slot))?;
        self.taken.free(i as u64);
        self.owners[i] = None;
        Ok(self.slots[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pci_addresses_parse_and_print() {
        let a: PciAddress = "0000:03:00.2".parse().unwrap();
        assert_eq!(a, PciAddress::new(0, 3, 0, 2).unwrap());
        assert_eq!(a.to_string(), "0000:03:00.2");
        for bad in [
            "",
            "0000:03:00",
            "0000:03:20.0",
            "0000:03:00.8",
            "000:03:00.0",
            "0000:3:00.0",
            "zzzz:03:00.0",
            "0000:03:00.+",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vf_ranges_carry_into_device_and_bus() {
        let pf: PciAddress = "0000:03:00.0".parse().unwrap();
        let vfs = PciAddress::vf_range(pf, 3, 126).unwrap();
        assert_eq!(vfs[0].to_string(), "0000:03:00.3");
        assert_eq!(vfs[5].to_string(), "0000:03:01.0");
        assert_eq!(vfs[125].to_string(), "0000:03:10.0");
        let top: PciAddress = "0000:ff:1f.0".parse().unwrap();
        assert!(PciAddress::vf_range(top, 1, 7).is_ok());
        assert_eq!(
            PciAddress::vf_range(top, 1, 8),
            Err(ConfigError::PciRangeOverflow.into())
        );
    }

    #[test]
    fn holders_keep_their_slot_and_slots_are_not_shared() {
        let mut pool: SlotPool<String, &str> = SlotPool::new(tap_vf_names(2)).unwrap();
        assert_eq!(pool.allocate("a").unwrap(), "dtapvf_0");
        assert_eq!(pool.allocate("a").unwrap(), "dtapvf_0");
        assert_eq!(pool.allocate("b").unwrap(), "dtapvf_1");
        assert_eq!(
            pool.allocate("c"),
            Err(AllocError::Exhausted(Resource::Slot))
        );
        assert!(matches!(
            pool.claim("c", &"dtapvf_1".into()),
            Err(AllocError::AlreadyAllocated { .. })
        ));
        assert!(matches!(
            pool.claim("c", &"dtapvf_9".into()),
            Err(AllocError::OutOfRange { .. })
        ));
        assert_eq!(pool.release(&"a").unwrap(), "dtapvf_0");
        assert_eq!(pool.allocate("c").unwrap(), "dtapvf_0");
        assert_eq!(pool.holder_of(&"dtapvf_0".to_string()), Some(&"c"));
        assert_eq!(
            SlotPool::<String, u8>::new(vec!["x".to_string(), "x".to_string()]).unwrap_err(),
            ConfigError::DuplicateSlot("x".into()).into()
        );
    }

    proptest! {
        #[test]
        fn rebuild_keeps_first_claims_and_reports_the_rest(
            claims in proptest::collection::vec((0u8..10, 0u16..140), 0..60),
        ) {
            let pf: PciAddress = "0000:03:00.0".parse().unwrap();
            let vfs = PciAddress::vf_range(pf, 3, 126).unwrap();
            let input: Vec<(u8, PciAddress)> = claims
                .iter()
                .map(|&(h, i)| (h, PciAddress::vf_range(pf, 3 + i, 1).unwrap()[0]))
                .collect();
            let rebuilt = SlotPool::rebuild(vfs.clone(), input.clone()).unwrap();
            let mut pool = SlotPool::new(vfs).unwrap();
            let mut conflicts = 0;
            for (h, s) in &input {
                if pool.claim(*h, s).is_err() {
                    conflicts += 1;
                }
            }
            prop_assert_eq!(rebuilt.conflicts.len(), conflicts);
            prop_assert_eq!(&rebuilt.allocator, &pool);
            // Every slot is held by at most one holder and vice versa.
            let held: Vec<_> = (0u8..10).filter_map(|h| pool.slot_of(&h).copied()).collect();
            let unique: std::collections::BTreeSet<_> = held.iter().collect();
            prop_assert_eq!(unique.len(), held.len());
            prop_assert_eq!(held.len(), pool.allocated_count());
        }
    }
}

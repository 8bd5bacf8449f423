//! NAT port sections for NAT gateways.
//!
//! A NAT gateway shares its NAT IPs between network interfaces by handing
//! each one a section of `portsPerNetworkInterface` consecutive ports out of
//! the 64,512 ports `1024..=65535`. Section `i` of an IP covers ports
//! `1024 + i·ppn ..= 1024 + (i+1)·ppn − 1`; the ports left over at the top
//! (64512 mod ppn) stay unused, exactly as in IronCore, so tables written by
//! IronCore read back unchanged.
//!
//! Sections are kept in inclusive form (`first_port..=last_port`, IronCore's
//! NATTable `port`/`endPort`); [`NatSection::dp_max_port`] gives the
//! exclusive upper bound dpservice's `CreateNat` expects. IronCore's
//! metalnetlet passes the inclusive end as dpservice's exclusive one and so
//! loses one port per section; use `dp_max_port` to avoid that.
//!
//! `portsPerNetworkInterface` is validated like IronCore's API does (a power
//! of two), and additionally bounded by 32,768 so that every IP has at least
//! one section (IronCore would divide 64,512 by 65,536 and get none).
//!
//! Allocation packs sections onto the lowest NAT IP (by address) first, so
//! the highest addresses empty first: scaling a gateway down by removing
//! its highest NAT IPs disturbs the fewest interfaces.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::bittree::BitTree;
use crate::error::{AllocError, ConfigError, Conflict, Rebuilt, Resource, Value};

/// First port of the NAT range.
pub const NAT_FIRST_PORT: u16 = 1024;
/// Number of ports in the NAT range (`1024..=65535`).
pub const NAT_PORT_COUNT: u32 = 65536 - NAT_FIRST_PORT as u32;

/// A validated `portsPerNetworkInterface`: a power of two in `1..=32768`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortsPerInterface(u32);

impl PortsPerInterface {
    /// IronCore's default, 2048 ports (31 sections per NAT IP).
    pub const DEFAULT: PortsPerInterface = PortsPerInterface(2048);

    /// Validates `ports`.
    pub fn new(ports: u32) -> Result<Self, AllocError> {
        if ports.is_power_of_two() && ports <= 32768 {
            Ok(PortsPerInterface(ports))
        } else {
            Err(ConfigError::InvalidPortsPerInterface(ports).into())
        }
    }

    /// The number of ports.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Sections per NAT IP: `64512 / ports`, rounded down.
    pub fn sections_per_ip(self) -> u32 {
        NAT_PORT_COUNT / self.0
    }
}

impl Default for PortsPerInterface {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How many NAT IPs `interfaces` network interfaces need: rounded up, unlike
/// IronCore's autoscaler, which truncates and leaves interfaces without NAT
/// until a whole IP's worth of them is waiting.
pub fn nat_ips_needed(interfaces: u64, ports: PortsPerInterface) -> u64 {
    interfaces.div_ceil(u64::from(ports.sections_per_ip()))
}

/// A range of ports on one NAT IP, held by one network interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatSection {
    /// The NAT IP.
    pub ip: IpAddr,
    /// First port of the section.
    pub first_port: u16,
    /// Last port of the section (inclusive; IronCore's `endPort`).
    pub last_port: u16,
}

impl NatSection {
    /// The exclusive upper port bound, as dpservice's `max_port` expects.
    pub fn dp_max_port(&self) -> u32 {
        u32::from(self.last_port) + 1
    }

    /// Whether `port` lies in the section.
    pub fn contains_port(&self, port: u16) -> bool {
        (self.first_port..=self.last_port).contains(&port)
    }

    fn value(&self) -> Value {
        Value::NatSection {
            ip: self.ip,
            first_port: self.first_port,
        }
    }
}

/// One section of a [`NatTable`] with the interface that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatTableSection<H> {
    /// First port (IronCore `port`).
    pub port: u16,
    /// Last port, inclusive (IronCore `endPort`).
    pub end_port: u16,
    /// The holder (IronCore `targetRef`).
    pub target: H,
}

/// The sections of one NAT IP in a [`NatTable`], sorted by port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatTableIp<H> {
    /// The NAT IP.
    pub ip: IpAddr,
    /// Its sections in use.
    pub sections: Vec<NatTableSection<H>>,
}

/// The allocation in the shape of IronCore's `NATTable`: NAT IPs sorted by
/// address, each with its sections sorted by port. IPs without sections are
/// left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatTable<H> {
    /// One entry per NAT IP in use.
    pub ips: Vec<NatTableIp<H>>,
}

/// Hands out NAT port sections of a gateway's NAT IPs to holders `H`
/// (network interfaces, e.g. by UID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatPortAllocator<H: Ord + Clone> {
    ports: PortsPerInterface,
    /// Per NAT IP, which section indices are taken.
    ips: BTreeMap<IpAddr, BitTree>,
    /// (NAT IP, section index) → holder.
    owners: BTreeMap<(IpAddr, u32), H>,
    /// holder → section.
    holders: BTreeMap<H, NatSection>,
}

impl<H: Ord + Clone> NatPortAllocator<H> {
    /// A gateway with no NAT IPs yet.
    pub fn new(ports: PortsPerInterface) -> Self {
        NatPortAllocator {
            ports,
            ips: BTreeMap::new(),
            owners: BTreeMap::new(),
            holders: BTreeMap::new(),
        }
    }

    /// A gateway with `ips`, holding `existing` sections. Duplicate IPs are
    /// an error; sections on unknown IPs, off the section grid, taken twice,
    /// or a second section for one holder are reported as conflicts (the
    /// first entry wins).
    pub fn rebuild(
        ports: PortsPerInterface,
        ips: impl IntoIterator<Item = IpAddr>,
        existing: impl IntoIterator<Item = (H, NatSection)>,
    ) -> Result<Rebuilt<Self, (H, NatSection)>, AllocError> {
        let mut allocator = Self::new(ports);
        for ip in ips {
            allocator.add_ip(ip)?;
        }
        let conflicts = existing
            .into_iter()
            .filter_map(|item| {
                let error = allocator.claim(item.0.clone(), item.1).err()?;
                Some(Conflict { item, error })
            })
            .collect();
        Ok(Rebuilt {
            allocator,
            conflicts,
        })
    }

    /// The configured ports per interface.
    pub fn ports_per_interface(&self) -> PortsPerInterface {
        self.ports
    }

    /// The gateway's NAT IPs, ascending.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.keys().copied()
    }

    /// Sections in use (IronCore's `usedNATIPs` counts these).
    pub fn used_sections(&self) -> usize {
        self.holders.len()
    }

    /// Sections available in all, over all NAT IPs.
    pub fn capacity(&self) -> usize {
        self.ips.len() * self.ports.sections_per_ip() as usize
    }

    /// Adds a NAT IP with all its sections free.
    pub fn add_ip(&mut self, ip: IpAddr) -> Result<(), AllocError> {
        if self.ips.contains_key(&ip) {
            return Err(ConfigError::DuplicateNatIp(ip).into());
        }
        let sections = u64::from(self.ports.sections_per_ip());
        self.ips.insert(ip, BitTree::new(sections));
        Ok(())
    }

    /// Removes a NAT IP; its sections are released and returned.
    pub fn remove_ip(&mut self, ip: IpAddr) -> Result<Vec<(H, NatSection)>, AllocError> {
        if self.ips.remove(&ip).is_none() {
            return Err(ConfigError::UnknownNatIp(ip).into());
        }
        let keys: Vec<(IpAddr, u32)> = self
            .owners
            .range((ip, 0)..=(ip, u32::MAX))
            .map(|(k, _)| *k)
            .collect();
        let mut released = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(holder) = self.owners.remove(&key)
                && let Some(section) = self.holders.remove(&holder)
            {
                released.push((holder, section));
            }
        }
        Ok(released)
    }

    fn section(&self, ip: IpAddr, index: u32) -> NatSection {
        let ppn = self.ports.get();
        // index < sections_per_ip, so both ports stay within 1024..=65535.
        let first = u32::from(NAT_FIRST_PORT) + index * ppn;
        NatSection {
            ip,
            first_port: first as u16,
            last_port: (first + ppn - 1) as u16,
        }
    }

    /// The section index of `section`, if it lies on this gateway's grid.
    fn index_of(&self, section: &NatSection) -> Option<u32> {
        self.ips.get(&section.ip)?;
        let ppn = self.ports.get();
        let offset = u32::from(section.first_port).checked_sub(u32::from(NAT_FIRST_PORT))?;
        let index = offset / ppn;
        let on_grid = offset.is_multiple_of(ppn)
            && index < self.ports.sections_per_ip()
            && u32::from(section.last_port) == u32::from(section.first_port) + ppn - 1;
        on_grid.then_some(index)
    }

    /// The section `holder` holds, if any.
    pub fn section_of(&self, holder: &H) -> Option<NatSection> {
        self.holders.get(holder).copied()
    }

    /// The holder of `section`, if any.
    pub fn holder_of(&self, section: &NatSection) -> Option<&H> {
        let index = self.index_of(section)?;
        self.owners.get(&(section.ip, index))
    }

    /// Gives `holder` a section: the one it holds already, or the lowest free
    /// section on the lowest NAT IP that has one.
    pub fn allocate(&mut self, holder: H) -> Result<NatSection, AllocError> {
        if let Some(section) = self.holders.get(&holder) {
            return Ok(*section);
        }
        let (ip, index) = self
            .ips
            .iter()
            .find_map(|(ip, taken)| taken.first_free_from(0).map(|i| (*ip, i as u32)))
            .ok_or(AllocError::Exhausted(Resource::NatPortSection))?;
        self.take(holder, ip, index);
        Ok(self.section(ip, index))
    }

    fn take(&mut self, holder: H, ip: IpAddr, index: u32) {
        if let Some(taken) = self.ips.get_mut(&ip) {
            taken.take(u64::from(index));
        }
        let section = self.section(ip, index);
        self.owners.insert((ip, index), holder.clone());
        self.holders.insert(holder, section);
    }

    /// Gives `holder` exactly `section` (e.g. read back from a NATTable).
    pub fn claim(&mut self, holder: H, section: NatSection) -> Result<(), AllocError> {
        let resource = Resource::NatPortSection;
        let index = self
            .index_of(&section)
            .ok_or_else(|| AllocError::OutOfRange {
                resource,
                value: section.value(),
            })?;
        if let Some(held) = self.holders.get(&holder) {
            if *held == section {
                return Ok(());
            }
            return Err(AllocError::HolderAlreadyAssigned {
                resource,
                held: held.value(),
            });
        }
        if self.owners.contains_key(&(section.ip, index)) {
            return Err(AllocError::AlreadyAllocated {
                resource,
                value: section.value(),
            });
        }
        self.take(holder, section.ip, index);
        Ok(())
    }

    /// Releases the section `holder` holds and returns it.
    pub fn release(&mut self, holder: &H) -> Result<NatSection, AllocError> {
        let section = self
            .holders
            .remove(holder)
            .ok_or(AllocError::HolderUnknown(Resource::NatPortSection))?;
        // The holder map only records sections on the grid of a known IP.
        if let Some(index) = self.index_of(&section) {
            self.owners.remove(&(section.ip, index));
            if let Some(taken) = self.ips.get_mut(&section.ip) {
                taken.free(u64::from(index));
            }
        }
        Ok(section)
    }

    /// The allocation in NATTable shape.
    pub fn table(&self) -> NatTable<H> {
        let mut ips: Vec<NatTableIp<H>> = Vec::new();
        for (&(ip, index), holder) in &self.owners {
            let section = self.section(ip, index);
            let entry = NatTableSection {
                port: section.first_port,
                end_port: section.last_port,
                target: holder.clone(),
            };
            match ips.last_mut() {
                Some(last) if last.ip == ip => last.sections.push(entry),
                _ => ips.push(NatTableIp {
                    ip,
                    sections: vec![entry],
                }),
            }
        }
        NatTable { ips }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ports_per_interface_must_be_a_power_of_two_with_a_section() {
        for ok in [1, 64, 1024, 2048, 32768] {
            assert_eq!(PortsPerInterface::new(ok).unwrap().get(), ok);
        }
        for bad in [0, 3, 1000, 65536, u32::MAX] {
            assert_eq!(
                PortsPerInterface::new(bad),
                Err(ConfigError::InvalidPortsPerInterface(bad).into())
            );
        }
        assert_eq!(PortsPerInterface::DEFAULT.sections_per_ip(), 31);
        assert_eq!(PortsPerInterface::new(1024).unwrap().sections_per_ip(), 63);
        assert_eq!(PortsPerInterface::new(1).unwrap().sections_per_ip(), 64512);
    }

    #[test]
    fn sections_follow_ironcores_grid() {
        let mut nat = NatPortAllocator::new(PortsPerInterface::DEFAULT);
        nat.add_ip(ip("192.0.2.1")).unwrap();
        let first = nat.allocate("a").unwrap();
        assert_eq!((first.first_port, first.last_port), (1024, 3071));
        assert_eq!(first.dp_max_port(), 3072);
        let second = nat.allocate("b").unwrap();
        assert_eq!((second.first_port, second.last_port), (3072, 5119));
        assert_eq!(nat.allocate("a").unwrap(), first, "idempotent");
        for i in 2..31 {
            nat.allocate(format!("{i}").leak()).unwrap();
        }
        let last = nat.section_of(&"30").unwrap();
        assert_eq!((last.first_port, last.last_port), (62464, 64511));
        assert_eq!(
            nat.allocate("extra"),
            Err(AllocError::Exhausted(Resource::NatPortSection))
        );
        nat.add_ip(ip("192.0.2.2")).unwrap();
        assert_eq!(nat.allocate("extra").unwrap().ip, ip("192.0.2.2"));
    }

    #[test]
    fn one_port_sections_reach_the_top_port() {
        let mut nat = NatPortAllocator::new(PortsPerInterface::new(1).unwrap());
        nat.add_ip(ip("192.0.2.1")).unwrap();
        let top = NatSection {
            ip: ip("192.0.2.1"),
            first_port: 65535,
            last_port: 65535,
        };
        nat.claim(7u32, top).unwrap();
        assert_eq!(top.dp_max_port(), 65536);
        assert_eq!(nat.holder_of(&top), Some(&7));
    }

    #[test]
    fn table_is_sorted_by_ip_then_port() {
        // 16384 ports: three sections per IP (1024, 17408, 33792).
        let mut nat = NatPortAllocator::new(PortsPerInterface::new(16384).unwrap());
        nat.add_ip(ip("192.0.2.9")).unwrap();
        nat.add_ip(ip("192.0.2.1")).unwrap();
        for h in ["a", "b", "c", "d", "e"] {
            nat.allocate(h).unwrap();
        }
        nat.release(&"b").unwrap();
        let table = nat.table();
        let flat: Vec<(IpAddr, u16, &str)> = table
            .ips
            .iter()
            .flat_map(|e| e.sections.iter().map(move |s| (e.ip, s.port, s.target)))
            .collect();
        assert_eq!(
            flat,
            vec![
                (ip("192.0.2.1"), 1024, "a"),
                (ip("192.0.2.1"), 33792, "c"),
                (ip("192.0.2.9"), 1024, "d"),
                (ip("192.0.2.9"), 17408, "e"),
            ]
        );
    }

    #[test]
    fn removing_an_ip_releases_its_sections() {
        let mut nat = NatPortAllocator::new(PortsPerInterface::new(32768).unwrap());
        nat.add_ip(ip("192.0.2.1")).unwrap();
        nat.add_ip(ip("192.0.2.2")).unwrap();
        nat.allocate(1u8).unwrap();
        nat.allocate(2u8).unwrap();
        let gone = nat.remove_ip(ip("192.0.2.2")).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, 2);
        assert_eq!(nat.section_of(&2), None);
        assert_eq!(
            nat.remove_ip(ip("192.0.2.2")),
            Err(ConfigError::UnknownNatIp(ip("192.0.2.2")).into())
        );
        assert_eq!(
            nat.add_ip(ip("192.0.2.1")),
            Err(ConfigError::DuplicateNatIp(ip("192.0.2.1")).into())
        );
    }

    #[test]
    fn claims_off_grid_or_taken_are_refused() {
        let mut nat = NatPortAllocator::new(PortsPerInterface::DEFAULT);
        nat.add_ip(ip("192.0.2.1")).unwrap();
        let s = |first_port: u16, last_port: u16| NatSection {
            ip: ip("192.0.2.1"),
            first_port,
            last_port,
        };
        assert!(matches!(
            nat.claim(1, s(1025, 3072)),
            Err(AllocError::OutOfRange { .. })
        ));
        assert!(matches!(
            nat.claim(1, s(1024, 3072)),
            Err(AllocError::OutOfRange { .. })
        ));
        assert!(matches!(
            nat.claim(1, s(64512, 65535)),
            Err(AllocError::OutOfRange { .. })
        ));
        nat.claim(1, s(1024, 3071)).unwrap();
        assert!(matches!(
            nat.claim(2, s(1024, 3071)),
            Err(AllocError::AlreadyAllocated { .. })
        ));
        assert!(matches!(
            nat.claim(1, s(3072, 5119)),
            Err(AllocError::HolderAlreadyAssigned { .. })
        ));
        assert_eq!(
            nat.release(&2),
            Err(AllocError::HolderUnknown(Resource::NatPortSection))
        );
        assert_eq!(nat.used_sections(), 1);
    }

    #[test]
    fn ips_needed_rounds_up() {
        let ppn = PortsPerInterface::DEFAULT;
        assert_eq!(nat_ips_needed(0, ppn), 0);
        assert_eq!(nat_ips_needed(31, ppn), 1);
        assert_eq!(nat_ips_needed(32, ppn), 2);
        assert_eq!(nat_ips_needed(40, ppn), 2);
    }

    proptest! {
        #[test]
        fn sections_are_unique_and_fill_every_ip(
            shift in 10u32..=15,
            ips in 1u8..4,
            releases in proptest::collection::vec(any::<u16>(), 0..40),
        ) {
            let ppn = PortsPerInterface::new(1 << shift).unwrap();
            let mut nat = NatPortAllocator::new(ppn);
            for i in 0..ips {
                nat.add_ip(IpAddr::from([10, 0, 0, i])).unwrap();
            }
            let mut model = BTreeMap::new();
            let mut holder = 0u32;
            while let Ok(s) = nat.allocate(holder) {
                prop_assert!(model.values().all(|o: &NatSection| o != &s));
                model.insert(holder, s);
                holder += 1;
            }
            prop_assert_eq!(model.len(), usize::from(ips) * ppn.sections_per_ip() as usize);
            for r in releases {
                let h = u32::from(r) % holder;
                prop_assert_eq!(nat.release(&h).ok(), model.remove(&h));
            }
            let rebuilt = NatPortAllocator::rebuild(ppn, nat.ips(), model.iter().map(|(h, s)| (*h, *s))).unwrap();
            prop_assert!(rebuilt.conflicts.is_empty());
            prop_assert_eq!(&rebuilt.allocator, &nat);
            // Released sections come back.
            let free = nat.capacity() - nat.used_sections();
            for _ in 0..free {
                let s = nat.allocate(holder).unwrap();
                prop_assert!(model.values().all(|o| o != &s));
                model.insert(holder, s);
                holder += 1;
            }
            prop_assert!(nat.allocate(holder).is_err());
        }
    }
}

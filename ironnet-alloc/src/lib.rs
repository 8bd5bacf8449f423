//! Pure allocators for every unique decision ironnet makes.
//!
//! What this crate does:
//! - [`IpPool`]: IPv4/IPv6 address pools from one or more prefixes, with
//!   reserved ranges (public IPs, NAT IPs, load-balancer IPs);
//! - [`VniAllocator`]: 24-bit network IDs from a configurable range;
//! - [`NatPortAllocator`]: NAT port sections per network interface over a
//!   gateway's NAT IPs, readable as a NATTable;
//! - [`UnderlayAllocator`]: underlay IPv6 addresses in dpservice's format;
//! - [`SlotPool`]: VF / PCI / TAP slots of a host.
//!
//! Every allocator can be rebuilt from the allocations that already exist
//! (what a restarted controller reads back): an invalid configuration is an
//! error, while entries that conflict (duplicates, out of range) are
//! reported as [`Conflict`]s and the rest is taken back. A call that returns
//! an error changes nothing.
//!
//! What it does not do: no I/O, no clock, no randomness, no locking. Callers
//! that want random placement pass a random number in; callers that share an
//! allocator between tasks wrap it themselves. Persistence of allocations is
//! the store's job (`ironnet-core`).
//!
//! ```
//! use ironnet_alloc::{IpPoolBuilder, NatPortAllocator, PortsPerInterface, VniAllocator, VniRange};
//!
//! let mut vnis = VniAllocator::new(VniRange::IRONCORE_DEFAULT);
//! assert_eq!(vnis.allocate()?, 200);
//!
//! let mut public = IpPoolBuilder::new()
//!     .prefix("192.0.2.0/30".parse().unwrap())
//!     .reserve_addr("192.0.2.0".parse().unwrap())
//!     .build()?;
//! let nat_ip = public.allocate()?;
//! assert_eq!(nat_ip.to_string(), "192.0.2.1");
//!
//! let mut nat = NatPortAllocator::new(PortsPerInterface::DEFAULT);
//! nat.add_ip(nat_ip)?;
//! let section = nat.allocate("nic-uid-1")?;
//! assert_eq!((section.first_port, section.last_port), (1024, 3071));
//! # Ok::<(), ironnet_alloc::AllocError>(())
//! ```

mod bittree;
mod error;
mod ip_pool;
pub mod nat;
mod pool;
mod runset;
pub mod slots;
pub mod underlay;
mod vni;

pub use error::{AllocError, ConfigError, Conflict, Rebuilt, Resource, UnderlayRejection, Value};
pub use ip_pool::{IpFamily, IpPool, IpPoolBuilder};
pub use nat::{NatPortAllocator, NatSection, NatTable, PortsPerInterface};
pub use slots::{PciAddress, SlotPool};
pub use underlay::{UnderlayAllocator, UnderlayParts};
pub use vni::{MAX_VNI, VniAllocator, VniRange};

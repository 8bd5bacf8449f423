//! The one error type of this crate.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// What kind of value an allocator hands out; names the resource in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// Addresses of an IPv4 pool.
    Ipv4Address,
    /// Addresses of an IPv6 pool.
    Ipv6Address,
    /// Network IDs (24-bit VNIs).
    Vni,
    /// NAT port sections of a NAT gateway.
    NatPortSection,
    /// Underlay IPv6 addresses of a host.
    UnderlayAddress,
    /// VF / PCI / TAP slots of a host.
    Slot,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Ipv4Address => "IPv4 address",
            Resource::Ipv6Address => "IPv6 address",
            Resource::Vni => "network ID (VNI)",
            Resource::NatPortSection => "NAT port section",
            Resource::UnderlayAddress => "underlay address",
            Resource::Slot => "slot",
        })
    }
}

/// A value named in an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Value {
    /// An IP address (pool member, NAT IP).
    Ip(IpAddr),
    /// A network ID.
    Vni(u32),
    /// A NAT port section, by NAT IP and first port.
    NatSection {
        /// The NAT IP the section belongs to.
        ip: IpAddr,
        /// The first port of the section.
        first_port: u16,
    },
    /// A slot, by its display form (PCI address or TAP name).
    Slot(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ip(ip) => write!(f, "{ip}"),
            Value::Vni(vni) => write!(f, "{vni}"),
            Value::NatSection { ip, first_port } => write!(f, "{ip} ports from {first_port}"),
            Value::Slot(name) => f.write_str(name),
        }
    }
}

/// Errors of every allocator in this crate.
///
/// A call that returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// Every value is taken.
    #[error("no free {0} left: the pool is exhausted")]
    Exhausted(Resource),
    /// The value does not belong to the pool or range.
    #[error("{resource} {value} is outside the pool")]
    OutOfRange {
        /// The kind of value.
        resource: Resource,
        /// The offending value.
        value: Value,
    },
    /// The value is held already.
    #[error("{resource} {value} is already allocated")]
    AlreadyAllocated {
        /// The kind of value.
        resource: Resource,
        /// The offending value.
        value: Value,
    },
    /// Release of a value that is not held.
    #[error("{resource} {value} is not allocated")]
    NotAllocated {
        /// The kind of value.
        resource: Resource,
        /// The offending value.
        value: Value,
    },
    /// The value is reserved and can be neither claimed nor released.
    #[error("{resource} {value} is reserved")]
    Reserved {
        /// The kind of value.
        resource: Resource,
        /// The offending value.
        value: Value,
    },
    /// The holder already holds a different value of this kind.
    #[error("the holder already holds {resource} {held}")]
    HolderAlreadyAssigned {
        /// The kind of value.
        resource: Resource,
        /// What the holder holds now.
        held: Value,
    },
    /// The holder holds nothing of this kind.
    #[error("the holder holds no {0}")]
    HolderUnknown(Resource),
    /// A caller-chosen underlay address that dpservice's rules refuse.
    #[error("invalid preferred underlay address {addr}: {reason}")]
    InvalidPreferredUnderlay {
        /// The address given.
        addr: Ipv6Addr,
        /// Why it was refused.
        reason: UnderlayRejection,
    },
    /// The allocator's configuration is invalid.
    #[error("invalid allocator configuration: {0}")]
    Config(#[from] ConfigError),
}

/// Why a preferred underlay address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnderlayRejection {
    /// Not inside the host's /64.
    ForeignPrefix,
    /// Byte 10 lacks the "externally generated" flag 0x80.
    MissingExternalFlag,
}

impl fmt::Display for UnderlayRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnderlayRejection::ForeignPrefix => "not inside the host's /64",
            UnderlayRejection::MissingExternalFlag => {
                "byte 10 lacks the externally-generated flag 0x80"
            }
        })
    }
}

/// Invalid construction parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An IP pool needs at least one prefix.
    #[error("an IP pool needs at least one prefix")]
    NoPrefixes,
    /// An IP pool's prefixes must all be of one address family.
    #[error("prefix {0} is of another address family than the pool")]
    MixedFamilies(IpNet),
    /// Two prefixes of a pool overlap.
    #[error("prefixes {0} and {1} overlap")]
    OverlappingPrefixes(IpNet, IpNet),
    /// The pool holds more addresses than this crate can count (2^128).
    #[error("the pool's prefixes hold more than 2^128 - 1 addresses")]
    PoolTooLarge,
    /// A reserved range is not inside one of the pool's prefixes.
    #[error("reserved range {0} is not inside one prefix of the pool")]
    ReservedOutsidePool(IpNet),
    /// A VNI range must satisfy `min < max <= 2^24 - 1`.
    #[error("invalid VNI range {min}..={max}: need min < max <= 16777215")]
    InvalidVniRange {
        /// Lower bound given.
        min: u32,
        /// Upper bound given.
        max: u32,
    },
    /// `portsPerNetworkInterface` must be a power of two in 1..=32768.
    #[error("portsPerNetworkInterface {0} must be a power of two between 1 and 32768")]
    InvalidPortsPerInterface(u32),
    /// A NAT IP was added twice.
    #[error("NAT IP {0} is already part of the gateway")]
    DuplicateNatIp(IpAddr),
    /// A NAT IP was removed that the gateway does not have.
    #[error("NAT IP {0} is not part of the gateway")]
    UnknownNatIp(IpAddr),
    /// A slot appears twice in a slot list.
    #[error("slot {0} is listed twice")]
    DuplicateSlot(String),
    /// A PCI address string did not parse.
    #[error("invalid PCI address {0:?}: expected DDDD:BB:DD.F")]
    InvalidPciAddress(String),
    /// A range of VF addresses runs past the last PCI bus.
    #[error("VF range runs past PCI bus 0xff")]
    PciRangeOverflow,
}

/// One entry that could not be taken back while rebuilding an allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict<I> {
    /// The entry as it was given.
    pub item: I,
    /// Why it was not taken.
    pub error: AllocError,
}

/// An allocator rebuilt from existing allocations, with what did not fit.
///
/// Entries are taken in the order given: the first holder of a value keeps
/// it, every later claim on it is reported here instead of panicking.
#[derive(Debug)]
pub struct Rebuilt<A, I> {
    /// The allocator holding every entry that was accepted.
    pub allocator: A,
    /// The entries that were refused, in input order.
    pub conflicts: Vec<Conflict<I>>,
}

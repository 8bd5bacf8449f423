//! Packet headers as views over byte buffers, in the manner of smoltcp's
//! `wire` module.
//!
//! Every header has a view type, `Foo<T: AsRef<[u8]>>`, and most have a
//! `FooRepr` for slow paths. The panic contract:
//!
//! - `Foo::new_checked(buffer)` validates every length the accessors rely
//!   on, once. After it returns `Ok`, no getter and no setter panics, on any
//!   bytes. Fields that are only *semantically* wrong (a bad checksum, an
//!   unknown option) are reported by the `Repr` parser or by explicit
//!   `verify_*` calls, never by a panic.
//! - `Foo::new_unchecked` skips the checks; use it only on buffers built by
//!   this module (for example right after `Repr::emit` sized them).
//! - `Repr::parse` turns a checked view into plain values and rejects
//!   anything it cannot represent with a typed [`WireError`];
//!   `Repr::emit` writes a header into a buffer of at least
//!   `Repr::buffer_len()` bytes (it panics only if given a shorter buffer,
//!   which is a programming error, not an input error).
//!
//! Hot paths use the views and the incremental checksums in [`checksum`];
//! they do not allocate. `Repr`s of the DHCP messages own their lists and
//! strings, which is fine on the slow path they serve.

pub mod arp;
pub mod build;
pub mod checksum;
pub mod dhcpv4;
pub mod dhcpv6;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

mod error;
pub(crate) mod field;

#[cfg(test)]
mod tests;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use error::{Layer, WireError};
pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, MacAddr};
pub use icmpv4::{Icmpv4Message, Icmpv4Packet, Icmpv4Repr};
pub use icmpv6::{Icmpv6Message, Icmpv6Packet, Icmpv6Repr, NdpOptions};
pub use ip::{IpPair, IpProtocol};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Packet, Ipv6Repr, UpperLayer};
pub use tcp::{TcpFlags, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

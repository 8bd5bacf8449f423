//! The ironnet packet layer: wire formats, checksums, header transforms,
//! IP-in-IPv6 encapsulation, the underlay address format, the route model
//! and per-VNI longest-prefix routing tables.
//!
//! What this crate does:
//! - [`wire`]: Ethernet, ARP, IPv4, IPv6 (with extension headers), ICMPv4,
//!   ICMPv6 with neighbour discovery, UDP, TCP, DHCPv4 and DHCPv6 as views
//!   over byte buffers that never panic after `new_checked`, with `Repr`s
//!   for parsing and emitting, and full and incremental checksums;
//! - [`buf`]: a packet buffer with headroom;
//! - [`offload`]: the virtio-net header of TAP devices, software
//!   segmentation of TSO/USO frames, checksum completion and TCP receive
//!   coalescing (GRO);
//! - [`encap`]: IPv4/IPv6-in-IPv6 encapsulation as dpservice puts it on the
//!   wire;
//! - [`transform`]: declarative header changes (addresses, ports, TTL,
//!   Ethernet, encap/decap) applied by one function that fixes checksums;
//! - [`translate`]: IPv4 ↔ IPv6 header replacement for TCP and UDP
//!   (dpservice's virtual services);
//! - [`underlay`]: dpservice's underlay IPv6 address layout;
//! - [`route`]: the route model shared by the data plane and the bond
//!   (VNI, canonical destination prefix, next hop on the underlay);
//! - [`lpm`]: longest-prefix-match tables, edited in a builder and built in
//!   bulk into immutable snapshots whose lookup cost does not grow with the
//!   number of routes, per VNI.
//!
//! What it does not do: no I/O, no clock, no locking, no allocation on the
//! per-packet paths (views, checksums, transforms, encap, lookups). Swapping
//! snapshots between threads is the data plane's job.

pub mod buf;
pub mod encap;
pub mod lpm;
pub mod offload;
pub mod route;
pub mod transform;
pub mod translate;
pub mod underlay;
pub mod wire;

pub use buf::PacketBuf;
pub use encap::{Decapsulated, EncapParams, decapsulate, encapsulate};
pub use lpm::{Lpm, LpmBuilder, VniTables, VniTablesBuilder};
pub use route::{Destination, NextHop, NextHopKind, Route, Vni};
pub use transform::{EtherRewrite, HeaderTransform};
pub use underlay::UnderlayParts;

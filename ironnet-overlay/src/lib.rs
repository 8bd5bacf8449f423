//! The ironnet packet layer: routes and per-VNI longest-prefix routing
//! tables today; wire formats as views over byte buffers, checksums and
//! IPv4/IPv6-in-IPv6 encapsulation are still to come.
//!
//! What this crate does:
//! - [`route`]: the route model shared by the data plane and the bond
//!   (VNI, canonical destination prefix, next hop on the underlay);
//! - [`lpm`]: longest-prefix-match tables, edited in a builder and built in
//!   bulk into immutable snapshots whose lookup cost does not grow with the
//!   number of routes, per VNI.
//!
//! What it does not do: no I/O, no clock, no locking. Swapping snapshots
//! between threads is the data plane's job.

pub mod lpm;
pub mod route;

pub use lpm::{Lpm, LpmBuilder, VniTables, VniTablesBuilder};
pub use route::{Destination, NextHop, NextHopKind, Route, Vni};

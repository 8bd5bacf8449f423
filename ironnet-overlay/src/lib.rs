//! The ironnet packet layer: wire formats as views over byte buffers,
//! checksums, IPv4/IPv6-in-IPv6 encapsulation and per-VNI longest-prefix
//! routing tables.
//!
//! Status: not implemented yet; tracked as its own issue. The crate will stay
//! free of I/O and of per-packet heap allocation.

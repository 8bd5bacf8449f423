//! Shared plumbing for ironnet's role binaries (`ironnet-controller`,
//! `ironnet-agent`, `ironnet-dp`, `ironnet-bond`) and the `ironnetctl` CLI.
//!
//! Status: no binaries exist yet; each arrives with the role it runs. This
//! crate stays thin: parse flags, wire the library crates together, run.

//! Fuzz harnesses for ironnet.
//!
//! Each harness turns arbitrary bytes into an operation sequence, runs it
//! against the real code and checks every answer against a simple model; a
//! panic is a finding. The harnesses live in this library so that
//! `cargo test` exercises them on every run; the libFuzzer binaries in
//! `fuzz_targets/` only wrap them (see `docs/fuzzing.md`).

pub mod alloc;
pub mod bond;
pub mod dp;
pub mod overlay;

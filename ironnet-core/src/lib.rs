//! The ironnet control-plane foundation.
//!
//! This crate will hold the resource model of both IronCore API groups
//! (`networking.ironcore.dev` and `core.apinet.ironcore.dev`), the `Store`
//! trait with its memory, embedded-file and etcd backends, and the reconcile
//! runtime the controller and agents are built on.
//!
//! Status: not implemented yet. Nothing in this crate is usable today; the
//! work is tracked as its own issue. Allocation decisions live in
//! [`ironnet_alloc`], which this crate will build on.

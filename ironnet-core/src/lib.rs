//! The ironnet control-plane foundation: the resource model of both
//! IronCore API groups with validation and defaults, manifests, the store
//! with watch, the reconcile runtime, and the API server with its client.
//!
//! - [`api`]: typed objects of `networking.ironcore.dev` and
//!   `core.apinet.ironcore.dev`;
//! - [`meta`]: metadata, owner references, label selectors;
//! - [`validation`]: field paths and errors;
//! - [`object`]: the [`Resource`](object::Resource) trait and kind identity;
//! - [`registry`]: every kind, and the dynamic [`DynObject`](registry::DynObject);
//! - [`manifest`]: multi-document YAML;
//! - [`store`]: the store with watch (memory, embedded file, etcd with
//!   the `etcd` feature);
//! - [`apiserver`]: the HTTP/JSON API in Kubernetes REST shape;
//! - [`client`]: its client, itself a [`Store`](store::Store);
//! - [`control`]: the network controller (allocation, translation,
//!   NAT, load-balancer placement, policies, peering);
//! - [`runtime`]: controllers (work queue, backoff, resync, leader
//!   election);
//! - `etcd` (feature `etcd`): a small etcd v3 client.

pub mod api;
pub mod apiserver;
pub mod client;
pub mod control;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod manifest;
pub mod meta;
pub mod object;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod time;
pub mod validation;

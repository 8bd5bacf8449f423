//! The ironnet data plane: a sans-IO packet pipeline, the `PacketIo` trait
//! with memory and TAP backends, and a gRPC service compatible with
//! dpservice's `dpdk.proto`.
//!
//! - [`config`]: ports (names, MACs), host underlay address, DHCP settings;
//! - [`state`], [`error`]: the control state with dpservice's validation
//!   and error codes;
//! - [`snapshot`]: immutable tables published atomically to the pipeline;
//! - [`pipeline`]: the sans-IO packet pipeline;
//! - [`io`], [`dataplane`]: ports (memory, TAP) and the worker that runs
//!   the pipeline over them;
//! - [`service`]: the gRPC service;
//! - [`metrics`]: Prometheus metrics over HTTP;
//! - [`virtsvc`]: virtual services (IPv4 service addresses served over
//!   IPv6 by header replacement).

pub mod config;
pub mod dataplane;
pub mod error;
pub mod firewall;
pub mod io;
pub mod maglev;
pub mod metrics;
pub mod pipeline;
pub mod proto;
pub mod service;
pub mod snapshot;
pub mod state;
pub mod virtsvc;

pub use config::{DpConfig, PortConfig, PortKind};
pub use error::ServiceError;
pub use snapshot::{Published, Snapshot};
pub use state::DpState;

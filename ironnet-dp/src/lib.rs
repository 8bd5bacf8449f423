//! The ironnet data plane: a sans-IO packet pipeline, the `PacketIo` trait
//! with memory and TAP backends, and a gRPC service compatible with
//! dpservice's `dpdk.proto`.
//!
//! Built so far: the configuration ([`config`]), the control state with
//! dpservice's validation and error codes ([`state`], [`error`]), immutable
//! snapshots for the pipeline ([`snapshot`]) and the gRPC service
//! ([`service`]).

pub mod config;
pub mod error;
pub mod pipeline;
pub mod proto;
pub mod service;
pub mod snapshot;
pub mod state;

pub use config::{DpConfig, PortConfig, PortKind};
pub use error::ServiceError;
pub use snapshot::{Published, Snapshot};
pub use state::DpState;

//! ironnet's route distribution, wire-compatible with metalbond protocol v1.
//!
//! The protocol logic is pure (no I/O, time passed in), so it is tested by
//! deterministic simulation and fuzzed:
//! - [`codec`]: the frame format and every message, with validation and
//!   canonical prefixes; a stream [`codec::Decoder`] that handles frames
//!   split across reads and many frames per read;
//! - [`conn`]: the connection state machine (handshake, keepalive
//!   negotiation and timeouts);
//! - [`table`]: VNI → destination → next hop → announcing peers;
//! - [`reflector`]: the server's route reflection;
//! - [`client`]: a client of several servers with first-provider Add,
//!   last-provider Remove, backoff and a grace period.
//!
//! The tokio edges run them over TCP: [`server`] (with the HTTP status page,
//! `/routes.json` and Prometheus metrics of [`http`]) and [`net_client`].

pub mod backoff;
pub mod client;
pub mod codec;
pub mod conn;
pub mod error;
pub mod http;
mod link;
pub mod net_client;
pub mod pb;
pub mod reflector;
pub mod server;
pub mod spec;
pub mod table;

#[cfg(test)]
mod tests;

pub use client::{ClientConfig, ClientCore, RouteEvent, ServerId};
pub use codec::{Action, Decoder, Message};
pub use conn::{CloseReason, Connection, Event, Role, State};
pub use error::CodecError;
pub use net_client::BondClient;
pub use reflector::{PeerId, Reflector};
pub use server::{ServerConfig, ServerHandle};

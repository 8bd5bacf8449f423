//! ironnet's route distribution, wire-compatible with metalbond protocol v1.
//!
//! What is here so far (pure, no I/O):
//! - [`codec`]: the frame format and every message, with validation and
//!   canonical prefixes; a stream [`codec::Decoder`] that handles frames
//!   split across reads and many frames per read;
//! - [`conn`]: the connection state machine (handshake, keepalive
//!   negotiation and timeouts) driven by messages and time passed in.
//!
//! Not yet here: the route table, the reflector server, the client library,
//! the HTTP status page and metrics (tracked in the bond issue).

pub mod codec;
pub mod conn;
pub mod error;
pub mod pb;

#[cfg(test)]
mod tests;

pub use codec::{Action, Decoder, Message};
pub use conn::{CloseReason, Connection, Event, Role, State};
pub use error::CodecError;

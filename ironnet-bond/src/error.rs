//! Errors of the bond.

use thiserror::Error;

/// Why bytes could not be read as a metalbond frame, or a message could not
/// be written as one. Every variant means the connection is reset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The version byte is not 1.
    #[error("unsupported protocol version {0} (want 1)")]
    BadVersion(u8),
    /// The message type byte is not 1..=5.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// The body is longer than the protocol allows.
    #[error("body of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not a valid protobuf message.
    #[error("undecodable {message} body: {reason}")]
    Decode {
        /// Which message.
        message: &'static str,
        /// prost's description.
        reason: String,
    },
    /// A required field is absent.
    #[error("{message} without {field}")]
    MissingField {
        /// Which message.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field holds a value the protocol does not allow.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

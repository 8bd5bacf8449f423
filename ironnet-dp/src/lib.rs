//! The ironnet data plane: a sans-IO packet pipeline, the `PacketIo` trait
//! with memory and TAP backends, and a gRPC service compatible with
//! dpservice's `dpdk.proto`.
//!
//! Status: not implemented yet; tracked as its own issues (core pipeline,
//! then network functions).

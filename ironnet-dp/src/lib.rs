//! The ironnet data plane: a sans-IO packet pipeline, the `PacketIo` trait
//! with memory and TAP backends, and a gRPC service compatible with
//! dpservice's `dpdk.proto`.

pub mod proto;

//! Generates the gRPC types and service from `proto/dpdk.proto` with
//! protox, a protobuf compiler in Rust, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/dpdk.proto");
    let fds = protox::compile(["proto/dpdk.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}

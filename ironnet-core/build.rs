//! With the `etcd` feature: generates the etcd v3 gRPC client from
//! `proto/etcd.proto` with protox, a protobuf compiler in Rust, so no
//! `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/etcd.proto");
    #[cfg(feature = "etcd")]
    {
        let fds = protox::compile(["proto/etcd.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(false)
            .compile_fds(fds)?;
    }
    Ok(())
}

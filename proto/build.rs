//! Compiles the .proto files with protox (pure Rust, no protoc on the machine) and generates
//! prost types plus the tonic service.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/remote.proto", "proto/ingester.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=proto/types.proto");
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Chunk bytes become zero-copy slices of the received buffer.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}

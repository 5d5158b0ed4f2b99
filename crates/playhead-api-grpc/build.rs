//! Generates the playhead.v1 messages, servers and clients from the committed protos with protox
//! (a protobuf compiler in Rust: no system `protoc`), and writes the descriptor set that server
//! reflection serves.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!: the target dir is shared between checkouts
    // (.ci/run's clean clone and the working tree), and cargo may reuse this script's binary
    // built in another checkout, whose path may no longer exist.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["common", "playback", "catalog", "profile", "recs"]
        .map(|f| root.join(format!("playhead/v1/{f}.proto")));
    let fds = protox::compile(&files, [&root])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("playhead_v1_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        // Our codec answers a malformed message INVALID_ARGUMENT (tonic's says INTERNAL).
        .codec_path("crate::codec::ProtoCodec")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.join("playhead/v1").display());
    Ok(())
}

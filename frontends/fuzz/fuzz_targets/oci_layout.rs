//! An OCI layout whose index, manifest and config come from the input
//! (three parts separated by NUL bytes; the index may name the manifest by
//! its real digest, `{m}` in the input is replaced by it, and the manifest
//! the config by `{c}`), opened for linux/amd64: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let index = parts.next().unwrap_or_default();
    let manifest = parts.next().unwrap_or_default();
    let config = parts.next().unwrap_or_default();
    let config_digest = digest(config);
    let manifest = String::from_utf8_lossy(manifest)
        .replace("{c}", &config_digest)
        .replace("{cs}", &config.len().to_string())
        .into_bytes();
    let manifest_digest = digest(&manifest);
    let index = String::from_utf8_lossy(index)
        .replace("{m}", &manifest_digest)
        .replace("{ms}", &manifest.len().to_string())
        .into_bytes();
    let dir = tempfile::Builder::new()
        .prefix("fuzz-layout-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let blobs = dir.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.path().join("index.json"), &index).unwrap();
    for (d, b) in [(&manifest_digest, &manifest[..]), (&config_digest, config)] {
        std::fs::write(blobs.join(&d["sha256:".len()..]), b).unwrap();
    }
    let platform = engine_ir::Platform::linux_amd64();
    if let Ok(img) = engine_export::open_oci_layout(dir.path(), None, &platform) {
        let _ = img.layer_blobs();
    }
});

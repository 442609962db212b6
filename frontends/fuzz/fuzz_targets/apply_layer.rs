//! Any bytes as a layer (tar, gzip or zstd, autodetected) applied onto an
//! empty root in a temporary directory: nothing may panic or hang, and
//! nothing may appear outside the root (a canary beside it is checked).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::Builder::new()
        .prefix("fuzz-apply-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let canary = dir.path().join("canary");
    std::fs::write(&canary, b"canary").unwrap();
    let _ = engine_layers::apply::apply_layer(&root, data, None);
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["canary", "root"], "something was written outside the root");
    assert_eq!(std::fs::read(&canary).unwrap(), b"canary");
});

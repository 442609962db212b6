//! Where the conformance data lives (`../shared/conformance` beside the
//! workspace, or `$ENGINE_CONFORMANCE_DIR`), for every test that reads it.
//!
//! Included by path (`#[path = …] mod conformance;`) in the test targets of
//! crates below `engine-tests`, so that the rule lives in one file: a
//! missing folder fails the test that needs it, unless
//! `ENGINE_SKIP_CONFORMANCE=1` says to skip (CI never sets it), so a lost
//! folder cannot pass silently.

#![allow(dead_code)]

use std::path::PathBuf;

/// The conformance root: `$ENGINE_CONFORMANCE_DIR`, else
/// `<workspace>/../shared/conformance`, the workspace being the nearest
/// directory above the including crate that holds `Cargo.lock`.
pub fn root() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_CONFORMANCE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let mut ws = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !ws.join("Cargo.lock").is_file() && ws.pop() {}
    ws.join("../shared/conformance")
}

/// `root()/rel` when it exists. When it does not: `None` if
/// `ENGINE_SKIP_CONFORMANCE=1` (after saying so), else a panic naming the
/// path and the variable.
pub fn path(rel: &str) -> Option<PathBuf> {
    let p = root().join(rel);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("ENGINE_SKIP_CONFORMANCE").as_deref() == Ok("1") {
        println!(
            "conformance data not found at {}; skipped (ENGINE_SKIP_CONFORMANCE=1)",
            p.display()
        );
        return None;
    }
    panic!(
        "conformance data not found at {}: put ../shared/conformance beside the workspace, \
         point ENGINE_CONFORMANCE_DIR at it, or set ENGINE_SKIP_CONFORMANCE=1 to skip",
        p.display()
    );
}

//! `.dockerignore` text (first part) and paths to test against it (the
//! lines after a NUL byte): parsing and matching may not panic or hang, and
//! a path excluded by a pattern list without exceptions stays excluded
//! below (directories are pruned whole).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (patterns, paths) = text.split_once('\0').unwrap_or((text, "a/b/c"));
    let Ok(ig) = engine_ir::ignore::IgnorePatterns::parse(patterns) else { return };
    for p in paths.lines().take(64) {
        let excluded = ig.is_excluded(p);
        let _ = ig.may_reinclude_under(p);
        if excluded && !ig.has_exceptions() && !p.is_empty() && !p.contains("..") {
            let child = format!("{}/x", p.trim_end_matches('/'));
            assert!(ig.is_excluded(&child), "{p:?} excluded but not {child:?} ({patterns:?})");
        }
    }
});

//! Shared fixtures of the criterion micro-benchmarks (`benches/*.rs`): a
//! generated file tree, the monorepo Dockerfile of the comparison, and the
//! solver's cache-key computation.
//!
//! The comparison against BuildKit and buildah is `compare.sh` beside this
//! crate's manifest; its results are in `RESULTS.md`.

use std::fs;
use std::io;
use std::path::Path;

use engine_ir::Op;

/// A deterministic tree of `files` regular files under `root`: 50 files per
/// directory, directories nested two levels deep (`d007/d003/f0042.txt`),
/// each file `file_size` bytes of text that differs from file to file.
pub fn make_tree(root: &Path, files: usize, file_size: usize) -> io::Result<()> {
    const PER_DIR: usize = 50;
    const FANOUT: usize = 20;
    for i in 0..files {
        let dir_no = i / PER_DIR;
        let dir = root
            .join(format!("d{:03}", dir_no / FANOUT))
            .join(format!("d{:03}", dir_no % FANOUT));
        if i % PER_DIR == 0 {
            fs::create_dir_all(&dir)?;
        }
        let line = format!("file {i} of the benchmark tree\n");
        let mut body = String::with_capacity(file_size + line.len());
        while body.len() < file_size {
            body.push_str(&line);
        }
        body.truncate(file_size);
        fs::write(dir.join(format!("f{:04}.txt", i % PER_DIR)), body)?;
    }
    Ok(())
}

/// The Dockerfile of the comparison's monorepo workload (a shared base
/// stage, 8 service stages, a final stage collecting them), as `compare.sh`
/// builds it.
pub const MONOREPO_DOCKERFILE: &str = include_str!("../workloads/monorepo.Dockerfile");

/// The solver's cache key of a node (what the scheduler computes per step).
pub fn solver_key(op: &Op, input_keys: &[String], extra: &[&str]) -> String {
    engine_solver::keys::cache_key(op, input_keys, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_has_the_files_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        make_tree(dir.path(), 120, 64).unwrap();
        let mut n = 0;
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    assert_eq!(e.metadata().unwrap().len(), 64);
                    n += 1;
                }
            }
        }
        assert_eq!(n, 120);
    }

    #[test]
    fn the_monorepo_dockerfile_plans_into_one_target() {
        let resolver = engine_ir::NoResolver;
        let opts = engine_dockerfile::lower::PlanOptions::new(&resolver);
        let planned = engine_dockerfile::lower::plan(MONOREPO_DOCKERFILE, &opts).unwrap();
        assert_eq!(planned.graph.targets().len(), 1);
        // base + 8 services, each with several steps.
        assert!(planned.graph.len() > 30, "{} nodes", planned.graph.len());
    }
}

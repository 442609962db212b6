//! Cache keys: what decides that a step's earlier result can be reused.
//! `specs/cache-keys.md` lists every input; this is the encoding.
//!
//! ```text
//! key = blake3(
//!     CACHE_VERSION "\0"
//!     u64le(len(json)) json            the op's canonical JSON (Op::digest_view)
//!     u64le(#inputs)   { u64le(len) input key }*
//!     u64le(#extra)    { u64le(len) extra }*
//! )                                    as 64 lowercase hex characters
//! ```
//!
//! `extra` holds what the op refers to but does not contain: the content
//! hash of each local-context selection a COPY or bind mount reads (in op
//! order, see [`crate::hash`]; a bind mount of a context with ignore
//! patterns adds [`FILTERED_BIND_VIEW`] after its hash), or an OCI
//! layout's manifest digest and platform. Never `std::hash::Hash`, never a
//! path, a time or a machine.

use engine_ir::graph::canonical_json;
use engine_ir::Op;

/// Bumped when what a key covers, how it is encoded, or how a snapshot is
/// laid out changes: every earlier result then misses.
pub const CACHE_VERSION: &str = "engine-cache-v2";

/// The `extra` that follows the selection hash of a bind mount of a local
/// context that has ignore patterns: the mount shows the filtered context
/// (see `crate::context_view`), which engines before it did not, so their
/// results for such a step (which may hold excluded files) never match.
pub const FILTERED_BIND_VIEW: &str = "bind-view:filtered";

fn put(h: &mut blake3::Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The op as its key sees it: its digest view, without the proxy variables
/// of a RUN (BuildKit leaves them out of its cache keys too).
fn key_view(op: &Op) -> serde_json::Value {
    match op {
        Op::Exec(e) if !e.proxy_env.is_empty() => {
            let mut e = e.clone();
            e.proxy_env.clear();
            Op::Exec(e).digest_view()
        }
        _ => op.digest_view(),
    }
}

/// The cache key of a node running `op` over inputs with `input_keys`.
pub fn cache_key<K: AsRef<str>, E: AsRef<str>>(op: &Op, input_keys: &[K], extra: &[E]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(CACHE_VERSION.as_bytes());
    h.update(b"\0");
    put(&mut h, canonical_json(&key_view(op)).as_bytes());
    h.update(&(input_keys.len() as u64).to_le_bytes());
    for k in input_keys {
        put(&mut h, k.as_ref().as_bytes());
    }
    h.update(&(extra.len() as u64).to_le_bytes());
    for e in extra {
        put(&mut h, e.as_ref().as_bytes());
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_ir::{
        CopyAction, Exec, FileAction, FileOp, Mount, MountKind, NetworkMode, Platform, Source,
    };

    const NONE: &[&str] = &[];

    fn exec() -> Exec {
        Exec {
            args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
            env: vec!["PATH=/usr/bin:/bin".into(), "VERSION=1".into()],
            cwd: "/src".into(),
            user: String::new(),
            network: NetworkMode::Default,
            security: Default::default(),
            mounts: Vec::new(),
            platform: Platform::linux_amd64(),
            proxy_env: Vec::new(),
        }
    }

    fn copy() -> FileOp {
        FileOp {
            actions: vec![FileAction::Copy(CopyAction {
                src_input: 1,
                sources: vec!["src/".into()],
                dest: "/app/".into(),
                chown: None,
                chmod: None,
                unpack_archives: false,
                excludes: Vec::new(),
                parents: false,
                link: false,
            })],
        }
    }

    fn k(op: &Op) -> String {
        cache_key(op, &["a".repeat(64)], NONE)
    }

    /// Pinned: a change here means every user's cache misses. Bump
    /// CACHE_VERSION on purpose, then update these.
    #[test]
    fn golden_keys() {
        assert_eq!(
            cache_key(&Op::Source(Source::Scratch), NONE, NONE),
            "b074e88ecba5f834df05e549bc6e6eb5f198c289c8a4c14f5749c89723b8212f"
        );
        assert_eq!(
            k(&Op::Exec(exec())),
            "94ebcf21b03b30490b447e291de74657b481fb7bd4ca1fb08e2b2d5cf4d1052a"
        );
        assert_eq!(
            cache_key(
                &Op::File(copy()),
                &["a".repeat(64), "b".repeat(64)],
                &["c".repeat(64)]
            ),
            "a8faca55876f4178fa7476cd35c25aa636a26f7b47ea9e790ce2f1b2c703e5a1"
        );
    }

    #[test]
    fn every_part_of_a_run_changes_the_key() {
        let base = k(&Op::Exec(exec()));
        type Change = fn(&mut Exec);
        let variants: [Change; 9] = [
            |e| e.args[2] = "make test".into(),
            |e| e.env[1] = "VERSION=2".into(), // an ARG or ENV value
            |e| e.env.push("NEW=1".into()),
            |e| e.env.swap(0, 1),
            |e| e.cwd = "/".into(),
            |e| e.user = "app".into(),
            |e| e.network = NetworkMode::None,
            |e| e.platform = Platform::new("linux", "arm64", None),
            |e| {
                e.mounts.push(Mount {
                    target: "/run/secrets/s".into(),
                    readonly: true,
                    kind: MountKind::Secret {
                        id: "s".into(),
                        required: false,
                        mode: 0o400,
                        uid: 0,
                        gid: 0,
                        env: None,
                    },
                })
            },
        ];
        let mut seen = std::collections::HashSet::from([base.clone()]);
        for (i, f) in variants.iter().enumerate() {
            let mut e = exec();
            f(&mut e);
            let key = k(&Op::Exec(e));
            assert!(seen.insert(key), "variant {i} did not change the key");
        }
    }

    #[test]
    fn proxy_variables_do_not_change_the_key() {
        let base = k(&Op::Exec(exec()));
        let mut e = exec();
        e.proxy_env = vec!["HTTP_PROXY=http://proxy:3128".into()];
        assert_eq!(k(&Op::Exec(e.clone())), base);
        e.proxy_env = vec!["https_proxy=http://other:8080".into()];
        assert_eq!(k(&Op::Exec(e)), base);
        // Declared with ARG, a proxy is an ordinary variable of the step.
        let mut e = exec();
        e.env.push("HTTP_PROXY=http://proxy:3128".into());
        assert_ne!(k(&Op::Exec(e)), base);
    }

    #[test]
    fn inputs_and_extras_change_the_key_and_cannot_be_confused() {
        let op = Op::File(copy());
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let keys = [
            cache_key(&op, &[&a, &b], NONE),
            cache_key(&op, &[&b, &a], NONE),
            cache_key(&op, &[&a], &[&b]),
            cache_key(&op, &[&a, &b], &["x"]),
            cache_key(&op, &[&a, &b], &["y"]),
            cache_key(&op, NONE, &[&a, &b]),
        ];
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), keys.len(), "{keys:#?}");
        // And nothing else: the same inputs give the same key.
        assert_eq!(cache_key(&op, &[&a, &b], NONE), keys[0]);
        let mut c = copy();
        if let FileAction::Copy(ca) = &mut c.actions[0] {
            ca.chmod = Some("755".into());
        }
        assert_ne!(cache_key(&Op::File(c), &[&a, &b], NONE), keys[0]);
    }

    #[test]
    fn keys_are_hex_and_stable_across_calls() {
        let a = k(&Op::Exec(exec()));
        assert_eq!(a, k(&Op::Exec(exec())));
        assert_eq!(a.len(), 64);
        assert!(engine_cache::valid_key(&a));
    }
}

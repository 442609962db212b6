//! A hostile registry: a tiny HTTP server of the test's own (not the local
//! registry of `scripts/setup-host`) whose manifest declares a 104-byte
//! layer and which then streams up to 2 GiB for it. The build must fail
//! quickly with a clear error, keep nothing of the download, and leave a
//! cache dir that later builds use as before.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest as _, Sha256};

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// An image manifest and config for `layers` (media type, digest, size,
/// diff id).
fn image(layers: &[(&str, String, u64, String)]) -> (Vec<u8>, Vec<u8>) {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch(),
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.3.clone()).collect::<Vec<_>>(),
        },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config),
            "size": config.len(),
        },
        "layers": layers.iter().map(|(mt, d, size, _)| serde_json::json!({
            "mediaType": mt, "digest": d, "size": size,
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    (manifest, config)
}

/// What the server answers for one path.
#[derive(Clone)]
enum Answer {
    Document(&'static str, Vec<u8>),
    /// 2 GiB of a 104-byte layer, chunked, generated as it is sent.
    Endless,
}

struct Hostile {
    addr: String,
    evil_layer: String,
    /// Bytes of the endless layer the server managed to send.
    sent: Arc<AtomicU64>,
}

/// `evil:1`: a manifest whose one layer is declared as 104 bytes and
/// streamed endlessly. `good:1`: a normal image whose layer holds
/// `/hello.txt`.
fn hostile_registry() -> Hostile {
    let mut routes: Vec<(String, Answer)> = Vec::new();
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let blob_type = "application/octet-stream";

    let evil_layer = sha256(&[b'x'; 104]);
    let (manifest, config) = image(&[(
        "application/vnd.oci.image.layer.v1.tar+gzip",
        evil_layer.clone(),
        104,
        sha256(b"never seen"),
    )]);
    routes.push((
        format!("/v2/evil/blobs/{}", sha256(&config)),
        Answer::Document(blob_type, config),
    ));
    // By tag while planning, by digest when pulling.
    routes.push((
        format!("/v2/evil/manifests/{}", sha256(&manifest)),
        Answer::Document(manifest_type, manifest.clone()),
    ));
    routes.push((
        "/v2/evil/manifests/1".into(),
        Answer::Document(manifest_type, manifest),
    ));
    routes.push((format!("/v2/evil/blobs/{evil_layer}"), Answer::Endless));

    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(6);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    tar.append_data(&mut header, "hello.txt", &b"hello\n"[..])
        .unwrap();
    let layer = tar.into_inner().unwrap();
    let (manifest, config) = image(&[(
        "application/vnd.oci.image.layer.v1.tar",
        sha256(&layer),
        layer.len() as u64,
        sha256(&layer),
    )]);
    routes.push((
        format!("/v2/good/blobs/{}", sha256(&config)),
        Answer::Document(blob_type, config),
    ));
    routes.push((
        format!("/v2/good/blobs/{}", sha256(&layer)),
        Answer::Document(blob_type, layer),
    ));
    routes.push((
        format!("/v2/good/manifests/{}", sha256(&manifest)),
        Answer::Document(manifest_type, manifest.clone()),
    ));
    routes.push((
        "/v2/good/manifests/1".into(),
        Answer::Document(manifest_type, manifest),
    ));

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let sent = Arc::new(AtomicU64::new(0));
    let routes = Arc::new(routes);
    let counter = sent.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (routes, sent) = (routes.clone(), counter.clone());
            std::thread::spawn(move || serve_one(conn, &routes, &sent));
        }
    });
    Hostile {
        addr,
        evil_layer,
        sent,
    }
}

/// One request per connection (every answer says `Connection: close`).
fn serve_one(conn: TcpStream, routes: &[(String, Answer)], sent: &AtomicU64) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut w = conn;
    let Some((_, answer)) = routes.iter().find(|(p, _)| p == path) else {
        let _ = w
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    match answer {
        Answer::Document(content_type, body) => {
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nDocker-Content-Digest: {}\r\nConnection: close\r\n\r\n",
                body.len(),
                sha256(body),
            );
            if method != "HEAD" {
                let _ = w.write_all(body);
            }
        }
        Answer::Endless => {
            if w
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                .is_err()
            {
                return;
            }
            let chunk = vec![b'x'; 1 << 20];
            let mut total = 0u64;
            while total < 2 << 30 {
                let ok = write!(w, "{:x}\r\n", chunk.len())
                    .and_then(|_| w.write_all(&chunk))
                    .and_then(|_| w.write_all(b"\r\n"));
                if ok.is_err() {
                    return;
                }
                total += chunk.len() as u64;
                sent.store(total, Ordering::SeqCst);
            }
            let _ = w.write_all(b"0\r\n\r\n");
        }
    }
}

/// Bytes of every file under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = e.path().symlink_metadata().unwrap();
        if meta.is_dir() {
            total += dir_size(&e.path());
        } else {
            total += meta.len();
        }
    }
    total
}

fn dockerfile(text: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("Dockerfile"), text).unwrap();
    t
}

#[test]
fn a_layer_streamed_past_its_declared_size_fills_no_disk() {
    let registry = hostile_registry();
    let cache = tempfile::tempdir().unwrap();

    let ctx = dockerfile(&format!("FROM {}/evil:1\nRUN true\n", registry.addr));
    let start = Instant::now();
    let out = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .arg(ctx.path())
        .output()
        .unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // A registry that misbehaves is infrastructure: exit code 3.
    assert_eq!(out.status.code(), Some(3), "the build must fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let want = format!(
        "registry sent more than the 104 bytes its manifest declares for {}; download discarded",
        registry.evil_layer
    );
    assert!(err.contains(&want), "wanted `{want}` in:\n{err}");
    let size = dir_size(cache.path());
    let sent = registry.sent.load(Ordering::SeqCst);
    eprintln!(
        "hostile pull failed in {took:?}; the server got {sent} bytes out before the engine hung up; cache dir: {size} bytes"
    );
    assert!(took < Duration::from_secs(60), "fails quickly: {took:?}");
    // What socket buffers hold, not a download of the 2 GiB.
    assert!(sent < 64 << 20, "the engine hung up: {sent} bytes sent");
    assert!(
        size < 8 << 20,
        "the cache dir did not grow with the download: {size} bytes"
    );
    let blob = cache
        .path()
        .join("blobs/sha256")
        .join(registry.evil_layer.trim_start_matches("sha256:"));
    assert!(!blob.exists(), "nothing kept under the layer's name");
    let ingest: Vec<_> = std::fs::read_dir(cache.path().join("ingest"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(ingest.is_empty(), "no temp file left: {ingest:?}");

    // The same cache dir serves a normal image from a registry afterwards.
    let ctx = dockerfile(&format!(
        "FROM {}/good:1\nCOPY extra.txt /extra.txt\n",
        registry.addr
    ));
    std::fs::write(ctx.path().join("extra.txt"), "extra\n").unwrap();
    let dest = ctx.path().join("rootfs");
    run_ok(
        engine()
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache.path())
            .arg("-o")
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(ctx.path()),
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("hello.txt")).unwrap(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("extra.txt")).unwrap(),
        "extra\n"
    );
}

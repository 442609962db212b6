//! Digest verification while applying.

mod common;

use std::fs;

use common::*;
use engine_layers::{
    apply_layer_verified, apply_layer_with, write_layer, ApplyOptions, Compression, Error,
    LayerOptions,
};

fn layer(compression: Compression) -> (Vec<u8>, engine_layers::LayerDigests) {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    mkdir(&src, 0o755);
    let content: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    write_file(&src.join("data.bin"), &content, 0o644);
    write_file(&src.join("dir/small"), b"small", 0o644);
    let mut blob = Vec::new();
    let d = write_layer(
        &src,
        &mut blob,
        &LayerOptions {
            compression,
            ..LayerOptions::default()
        },
    )
    .unwrap();
    (blob, d)
}

#[test]
fn correct_digests_pass() {
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (blob, d) = layer(c);
        let tmp = tempdir();
        let stats =
            apply_layer_verified(tmp.path(), &blob[..], &d.digest, Some(&d.diff_id)).unwrap();
        assert_eq!(stats.digest, d.digest);
        assert_eq!(stats.diff_id, d.diff_id);
        assert_eq!(stats.size, blob.len() as u64);
        assert_eq!(stats.entries, 3);
        assert_eq!(fs::read(tmp.path().join("dir/small")).unwrap(), b"small");
    }
}

#[test]
fn one_corrupted_byte_fails() {
    for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let (blob, d) = layer(c);
        // Corrupt a byte in the middle and one near the end (trailer /
        // padding for uncompressed tars, which the tar parser skips).
        for pos in [blob.len() / 2, blob.len() - 3] {
            let mut bad = blob.clone();
            bad[pos] ^= 0x01;
            let tmp = tempdir();
            let err = apply_layer_verified(tmp.path(), &bad[..], &d.digest, None).unwrap_err();
            if c == Compression::None {
                // The tar still parses: only the digest can catch it.
                assert!(
                    matches!(err, Error::DigestMismatch { .. } | Error::InvalidArchive(_)),
                    "{c:?} at {pos}: {err}"
                );
            }
            let msg = err.to_string();
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }
    // Flip a content byte in an uncompressed tar: parses fine, digest differs.
    let (blob, d) = layer(Compression::None);
    let mut bad = blob.clone();
    bad[512 + 1000] ^= 0xff;
    let tmp = tempdir();
    match apply_layer_verified(tmp.path(), &bad[..], &d.digest, Some(&d.diff_id)) {
        Err(Error::DigestMismatch { expected, actual }) => {
            assert_eq!(expected, d.digest);
            assert_ne!(actual, d.digest);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_diff_id_fails() {
    let (blob, d) = layer(Compression::Gzip);
    let tmp = tempdir();
    let wrong = format!("sha256:{}", "0".repeat(64));
    match apply_layer_verified(tmp.path(), &blob[..], &d.digest, Some(&wrong)) {
        Err(Error::DiffIdMismatch { expected, actual }) => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, d.diff_id);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trailing_garbage_is_covered_by_the_digest() {
    let (mut blob, d) = layer(Compression::None);
    blob.extend_from_slice(&[0u8; 4096]);
    let tmp = tempdir();
    assert!(matches!(
        apply_layer_verified(tmp.path(), &blob[..], &d.digest, None),
        Err(Error::DigestMismatch { .. })
    ));
}

#[test]
fn malformed_expected_digest_is_rejected_before_applying() {
    let (blob, _) = layer(Compression::Gzip);
    let tmp = tempdir();
    for bad in ["", "sha256:abc", "md5:00", "sha256:ZZZZ"] {
        assert!(matches!(
            apply_layer_verified(tmp.path(), &blob[..], bad, None),
            Err(Error::InvalidDigest(_))
        ));
    }
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn sha512_expected_digest() {
    use sha2::{Digest, Sha512};
    let (blob, _) = layer(Compression::Zstd);
    let want = format!("sha512:{}", hex::encode(Sha512::digest(&blob)));
    let tmp = tempdir();
    let stats = apply_layer_with(
        tmp.path(),
        &blob[..],
        &ApplyOptions {
            expected_digest: Some(want.clone()),
            ..ApplyOptions::default()
        },
    )
    .unwrap();
    assert_eq!(stats.digest, want);
}

//! End-to-end tests live in `tests/`; this library only holds shared helpers.
//!
//! The differential suite (`tests/differential.rs`) builds every case of
//! `differential/` with the engine and with BuildKit (docker 20.10) and
//! compares the flattened images:
//! - [`engine`]: the `engine` binary under test and `engine build` calls;
//! - [`docker`]: the reference builder and `docker load`/`save`;
//! - [`busybox`]: the shared base image, built by the engine from
//!   busybox-static and loaded into dockerd;
//! - [`flatten`]: images as listings of their applied layers, and tree diffs;
//! - [`config`]: image config comparison;
//! - [`case`]: one case, from its directory to the differences found.

pub mod busybox;
pub mod case;
pub mod config;
pub mod conformance;
pub mod docker;
pub mod engine;
pub mod flatten;
pub mod process;

//! Solving a build graph: the scheduler decides when each node runs; the
//! runner decides what running means on disk (snapshots, sandboxed RUN,
//! COPY semantics); `image` turns results into exportable images.

pub mod archive;
pub mod build;
pub mod cache_registry;
pub mod cache_share;
pub mod context_view;
pub mod copy;
pub mod copy_reuse;
pub mod fsutil;
pub mod hash;
pub mod image;
pub mod image_config;
pub mod keys;
pub mod ownership;
pub mod progress;
pub mod run;
pub mod scheduler;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod trace;

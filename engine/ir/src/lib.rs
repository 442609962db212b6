//! The DAG IR shared by every frontend.
//!
//! A build is a [`Graph`] of [`Node`]s. Each node holds one [`Op`] and the
//! nodes it reads from. Every node has a [`NodeDigest`]: a blake3 hash over a
//! canonical encoding of its op and its inputs' digests, so the same build
//! definition yields the same digests on any machine and in any directory,
//! and identical subgraphs collapse into one node when they are added.
//!
//! This crate does no I/O: frontends build graphs, the solver runs them.

pub mod config;
pub mod digest;
pub mod graph;
pub mod ignore;
pub mod op;
pub mod platform;
pub mod render;
pub mod resolve;

pub use config::{ConfigChange, Healthcheck, HistoryEntry, ImageConfig};
pub use digest::NodeDigest;
pub use graph::{Graph, GraphBuilder, GraphError, Node, NodeId, NodeMeta, SourceLocation, Target};
pub use op::{
    CacheSharing, Chown, CopyAction, Exec, FileAction, FileOp, ImageOp, Mount, MountKind,
    NetworkMode, Op, SecurityMode, Source,
};
pub use platform::Platform;
pub use resolve::{ImageResolver, NoResolver, ResolvedImage};

/// Bumped whenever the canonical encoding of any op changes, so that old
/// digests can never be confused with new ones.
pub const IR_VERSION: u32 = 1;

//! Who owns what a COPY or ADD writes: shared by the copy (`copy.rs`) and
//! the archive extraction of ADD (`archive.rs`).

/// How ownership of copied files is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// `--chown`: everything copied (and created) gets this owner.
    Set(u32, u32),
    /// Copies from stages and images keep their owners.
    Preserve,
    /// Files from a local context become root-owned, as in Docker.
    Root,
}

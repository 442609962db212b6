//! The operations a node can perform. Every field that changes what an op
//! produces is part of its definition, and therefore of its digest; fields
//! that only say where to find something (an image's human-readable
//! reference once its digest is pinned) are left out by [`Op::digest_view`].

use serde::{Deserialize, Serialize};

use crate::config::ConfigChange;
use crate::platform::Platform;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A root of the graph: scratch, an image, or a local directory.
    Source(Source),
    /// A command run in a sandbox over input 0 (the root filesystem).
    Exec(Exec),
    /// File operations onto input 0, reading from the other inputs.
    File(FileOp),
    /// Image-config changes onto the config of input 0.
    Config(ConfigOp),
    /// A finished image: input 0 is its filesystem, input 1 its config.
    Image(ImageOp),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// The empty filesystem with an empty config.
    Scratch,
    /// A registry image. `digest` is the manifest digest when known.
    Image {
        reference: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        platform: Platform,
    },
    /// An image from a local OCI layout given as a named build context
    /// (`--build-context NAME=oci-layout://PATH`). The path is looked up by
    /// name at solve time so that it never enters a digest.
    Layout {
        context: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        platform: Platform,
    },
    /// A local directory: the build context (`context`) or a named context.
    /// `excludes` are `.dockerignore` patterns applied to it.
    Local {
        name: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        excludes: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exec {
    pub args: Vec<String>,
    /// `KEY=VALUE`, in the order the process sees them.
    pub env: Vec<String>,
    pub cwd: String,
    /// As written in USER, resolved against the root filesystem at run time.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "NetworkMode::is_default")]
    pub network: NetworkMode,
    #[serde(default, skip_serializing_if = "SecurityMode::is_default")]
    pub security: SecurityMode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    pub platform: Platform,
    /// Proxy variables from build args (`HTTP_PROXY`, …) that no ARG
    /// declares: given to the process after `env`, and, as in BuildKit,
    /// left out of the cache key (a proxy does not change what a step
    /// makes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy_env: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    #[default]
    Default,
    None,
    Host,
}

impl NetworkMode {
    fn is_default(&self) -> bool {
        *self == NetworkMode::Default
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityMode {
    #[default]
    Sandbox,
    Insecure,
}

impl SecurityMode {
    fn is_default(&self) -> bool {
        *self == SecurityMode::Sandbox
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
    #[serde(flatten)]
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MountKind {
    /// A read-only (or throw-away writable) view of another node's output.
    Bind { input: usize, source: String },
    /// A persistent cache directory, shared between builds, never in a key.
    Cache {
        id: String,
        sharing: CacheSharing,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input: Option<usize>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        source: String,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Tmpfs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
    /// A secret's value never enters the graph: only its id.
    Secret {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        env: Option<String>,
    },
    Ssh {
        id: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    pub actions: Vec<FileAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FileAction {
    Copy(CopyAction),
    Mkdir {
        path: String,
        mode: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Chown>,
        parents: bool,
    },
    /// A file with literal content (COPY of a heredoc).
    Mkfile {
        path: String,
        data: String,
        mode: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<Chown>,
    },
    Rm {
        path: String,
        allow_not_found: bool,
    },
}

/// Docker's COPY/ADD semantics, as data. Paths in `sources` are relative to
/// the root of input `src_input` and may hold wildcards; `dest` is absolute
/// (WORKDIR already applied) and keeps a trailing `/` when one was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyAction {
    pub src_input: usize,
    pub sources: Vec<String>,
    pub dest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chown: Option<Chown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chmod: Option<String>,
    /// ADD: local tar archives are extracted at the destination.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpack_archives: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub parents: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub link: bool,
}

/// An owner as written (`user[:group]`), resolved in the destination image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chown {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigOp {
    pub changes: Vec<ConfigChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOp {
    pub platform: Platform,
}

impl Op {
    /// What enters the node digest: the op's canonical JSON, minus locators
    /// that do not change the result.
    pub fn digest_view(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Op::Source(Source::Image {
            digest: Some(_), ..
        }) = self
        {
            if let Some(obj) = v.as_object_mut() {
                obj.remove("reference");
            }
        }
        v
    }

    /// A short kind name for display.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source(Source::Scratch) => "scratch",
            Op::Source(Source::Image { .. }) => "image",
            Op::Source(Source::Layout { .. }) => "layout",
            Op::Source(Source::Local { .. }) => "local",
            Op::Exec(_) => "exec",
            Op::File(_) => "file",
            Op::Config(_) => "config",
            Op::Image(_) => "image-result",
        }
    }
}

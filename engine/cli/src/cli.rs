//! Command-line surface. Flag names follow `docker buildx build` wherever the
//! engine supports the same thing.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "engine",
    version,
    about = "A declarative build-graph engine for container images"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build images from a Dockerfile or a TOML spec
    Build(Box<BuildArgs>),
    /// Print the build graph (DAG IR) without building
    Graph(GraphArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Inspect frontend internals
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Frontend {
    Dockerfile,
    Toml,
}

/// What every planning command shares.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Name of the Dockerfile or TOML spec (default: CONTEXT/Dockerfile or CONTEXT/engine.toml)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Stage (Dockerfile) or targets/groups (TOML) to build
    #[arg(long)]
    pub target: Vec<String>,
    /// Set a build-time variable (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Set a TOML spec variable (NAME=VALUE); like --build-arg for Dockerfiles
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Additional build contexts (NAME=PATH, NAME=oci-layout://PATH[:TAG|@DIGEST], NAME=docker-image://REF)
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Target platform(s) (os/arch[/variant]; several, comma-separated, make an image index)
    #[arg(long)]
    pub platform: Option<String>,
    /// Frontend to use (inferred from the file name when not given)
    #[arg(long, value_enum)]
    pub frontend: Option<Frontend>,
    /// Build context directory
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Name and optionally a tag (name:tag)
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Output: type=docker,dest=FILE[,name=REF] | type=oci,dest=FILE|DIR[,tar=false] |
    /// type=local,dest=DIR | type=tar,dest=FILE | type=registry,name=REF
    /// (= type=image,push=true) | type=docker without dest (loaded into the
    /// Docker daemon, = --load); compression=gzip|zstd|uncompressed;
    /// dest=- (or -o -) writes a tar to standard output
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Push the image to a registry under its -t names (or a TOML target's
    /// tags): shorthand for -o type=registry
    #[arg(long)]
    pub push: bool,
    /// Load the image into the local Docker daemon (its API socket,
    /// /var/run/docker.sock or DOCKER_HOST=unix://PATH), tagged with the -t
    /// names: shorthand for -o type=docker
    #[arg(long)]
    pub load: bool,
    /// Set an image config label (KEY=VALUE), as docker build --label; it wins
    /// over a LABEL of the same key
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Add an annotation (KEY=VALUE) to the image manifest; manifest:KEY=VALUE
    /// and manifest[os/arch]:KEY=VALUE too, index:KEY=VALUE to an image index
    /// (which a single-platform image then gets, as buildx's are)
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Import build cache: type=local,src=DIR | type=registry,ref=REF
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Export build cache: type=local,dest=DIR | type=registry,ref=REF
    /// [,mode=min|max]
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// Do not use cache when building
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always resolve base images from their registry: never fall back to
    /// the image a tag last resolved to when the registry cannot be reached
    /// (tags are resolved from the registry at every build either way)
    #[arg(long)]
    pub pull: bool,
    /// Do not use cache for the named stages (and what is built on them)
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// After the build, collect least recently used cache entries down to
    /// this size (e.g. 20GB; `off` to keep everything; default: 10% of the
    /// cache's file system, at least 2 GiB)
    #[arg(
        long = "cache-max-size",
        env = "ENGINE_CACHE_MAX_SIZE",
        value_name = "SIZE"
    )]
    pub cache_max_size: Option<String>,
    /// Secret to expose to the build (id=ID,src=PATH or id=ID,env=VAR)
    #[arg(long)]
    pub secret: Vec<String>,
    /// Progress output: auto, tty, plain, json
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Print nothing but the image ID on standard output (the config digest,
    /// what docker run and docker tag take), as docker build -q and buildx
    /// do; `TARGET ID` per line for several TOML targets. Warnings and
    /// errors still go to standard error
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Print the TOML spec's resolved targets as JSON (buildx bake --print:
    /// tags, platforms, outputs, contexts, args after templates and vars)
    /// and build nothing
    #[arg(long = "print")]
    pub print: bool,
    /// When a target fails, still build (and export) the targets that do
    /// not depend on the failure; the build still fails in the end
    #[arg(long = "keep-going")]
    pub keep_going: bool,
    /// Cache directory
    #[arg(long = "cache-dir", env = "ENGINE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Maximum number of concurrent RUN steps (default: no limit, every step
    /// whose inputs are ready runs, as in BuildKit)
    #[arg(short = 'j', long = "jobs")]
    pub jobs: Option<usize>,
    /// OCI runtime for RUN steps: the built-in sandbox, runc, crun or a path
    #[arg(long, default_value = "builtin")]
    pub runtime: String,
    /// Write the image ID (its config digest, what `docker images` shows) to
    /// FILE, as docker build and buildx do; one target only
    #[arg(long = "iidfile", value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Write the build's result to FILE as JSON, with buildx's keys
    /// (containerimage.digest, containerimage.config.digest,
    /// containerimage.descriptor, image.name); a TOML build writes one
    /// object per target, keyed by target name, as buildx bake does
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Write a timeline of the build to FILE as Chrome trace-event JSON
    /// (open it in https://ui.perfetto.dev or chrome://tracing)
    #[arg(long = "trace", value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Grant an entitlement to RUN steps: network.host (RUN --network=host),
    /// security.insecure (RUN --security=insecure)
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// Memory limit of each RUN step (e.g. 512m, 4g; default: none)
    #[arg(long = "memory", short = 'm', value_name = "SIZE")]
    pub memory: Option<String>,
    /// Most processes and threads of each RUN step at once (default: 4096; -1: no limit)
    #[arg(long = "pids-limit", value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print a Dockerfile's parse tree as BuildKit's parser dumps it
    Parse {
        /// The Dockerfile to parse
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show disk usage by kind, and what pruning would reclaim
    Du(CacheDuArgs),
    /// Remove unused cache entries
    Prune(CachePruneArgs),
}

#[derive(Debug, Args)]
pub struct CacheDuArgs {
    /// Cache directory
    #[arg(long = "cache-dir", env = "ENGINE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: CacheFormat,
    /// Also list every cache entry
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CachePruneArgs {
    /// Cache directory
    #[arg(long = "cache-dir", env = "ENGINE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Remove all unused cache, cache mounts included
    #[arg(short, long)]
    pub all: bool,
    /// Keep this much cache (least recently used goes first), e.g. 10GB
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Only remove what matches: until=DURATION (unused for longer than, e.g. 24h)
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Do not prompt (accepted for docker compatibility; never prompts)
    #[arg(short, long)]
    pub force: bool,
    /// Output format
    #[arg(long, value_enum, default_value = "table")]
    pub format: CacheFormat,
}

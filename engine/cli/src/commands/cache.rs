//! `engine cache du` and `engine cache prune`.

use std::io::Write;

use engine_cache::units::{format_size, parse_duration, parse_size};
use engine_cache::{CacheStore, GcReport, Policy, Usage};

use crate::cli::{CacheCommand, CacheDuArgs, CacheFormat, CachePruneArgs};
use crate::Failure;

/// `println!` that does not panic when stdout is closed (`| head`).
macro_rules! out {
    () => {{
        let _ = writeln!(std::io::stdout().lock());
    }};
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub fn run(cmd: CacheCommand) -> Result<(), Failure> {
    match cmd {
        CacheCommand::Du(a) => du(a),
        CacheCommand::Prune(a) => prune(a),
    }
}

fn open(flag: &Option<std::path::PathBuf>) -> Result<CacheStore, Failure> {
    let dir = super::build::cache_dir(flag)?;
    CacheStore::open(&dir).map_err(|e| {
        Failure::infra(format!("cannot open cache dir `{}`", dir.display())).caused_by(&e)
    })
}

fn du(args: CacheDuArgs) -> Result<(), Failure> {
    let store = open(&args.cache_dir)?;
    let usage = store
        .du()
        .map_err(|e| Failure::infra("cannot measure the cache").caused_by(&e))?;
    match args.format {
        CacheFormat::Json => print_json(&usage),
        CacheFormat::Table => print_usage(&usage, args.verbose),
    }
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) {
    out!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".into())
    );
}

fn print_usage(u: &Usage, verbose: bool) {
    if verbose && !u.records.is_empty() {
        out!(
            "{:<14} {:<12} {:>10} {:>7}  {:<6} DESCRIPTION",
            "ID",
            "KIND",
            "SIZE",
            "USED",
            "IN USE"
        );
        let now = engine_cache::now_secs();
        for r in &u.records {
            out!(
                "{:<14} {:<12} {:>10} {:>7}  {:<6} {}",
                &r.key[..r.key.len().min(12)],
                r.kind.as_str(),
                format_size(r.size),
                ago(now.saturating_sub(r.last_used)),
                if r.in_use { "yes" } else { "" },
                r.description
            );
        }
        out!();
    }
    out!(
        "{:<18} {:>7} {:>12} {:>12}",
        "KIND",
        "ITEMS",
        "SIZE",
        "RECLAIMABLE"
    );
    for r in &u.rows {
        out!(
            "{:<18} {:>7} {:>12} {:>12}",
            r.kind,
            r.items,
            format_size(r.size),
            format_size(r.reclaimable)
        );
    }
    out!(
        "{:<18} {:>7} {:>12} {:>12}",
        "total",
        "",
        format_size(u.total),
        format_size(u.reclaimable)
    );
    if u.live_builds > 0 {
        out!(
            "{} build(s) running: what they use is not reclaimable",
            u.live_builds
        );
    }
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn prune(args: CachePruneArgs) -> Result<(), Failure> {
    let mut policy = Policy {
        all: args.all,
        wait: true,
        ..Default::default()
    };
    if let Some(k) = &args.keep_storage {
        policy.keep_storage = Some(parse_size(k).map_err(|e| Failure::msg(e.to_string()))?);
    }
    for f in &args.filter {
        match f.split_once('=') {
            Some(("until", d)) => {
                policy.until = Some(parse_duration(d).map_err(|e| Failure::msg(e.to_string()))?)
            }
            _ => {
                return Err(Failure::hint(
                    format!("unsupported filter `{f}`"),
                    "use --filter until=DURATION, e.g. until=24h",
                ))
            }
        }
    }
    let store = open(&args.cache_dir)?;
    let report = store
        .gc(&policy)
        .map_err(|e| Failure::infra("cannot prune the cache").caused_by(&e))?;
    match args.format {
        CacheFormat::Json => print_json(&report),
        CacheFormat::Table => print_report(&report),
    }
    Ok(())
}

fn print_report(r: &GcReport) {
    out!(
        "removed {} cache record(s) and {} blob(s)",
        r.records,
        r.blobs
    );
    out!(
        "total reclaimed space: {} (cache now {})",
        format_size(r.reclaimed),
        format_size(r.size_after)
    );
}

//! Build-argument scoping, as BuildKit does it: ARGs before the first FROM
//! are global and usable only in FROM lines; a stage sees an ARG only from
//! its declaration on; `--build-arg` overrides defaults; the platform ARGs
//! are predefined in the global scope and take their automatic value when a
//! stage redeclares them without one.

use std::collections::BTreeMap;

use engine_ir::Platform;

/// Proxy variables are passed to RUN without being declared, and are kept
/// out of history, as in Docker.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

pub fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// The args a stage has declared so far, in declaration order, with the
/// value each one has (None: declared without value and none was given).
#[derive(Debug, Clone, Default)]
pub struct StageArgs {
    declared: Vec<(String, Option<String>)>,
}

impl StageArgs {
    pub fn declare(&mut self, name: &str, value: Option<String>) {
        self.declared.retain(|(k, _)| k != name);
        self.declared.push((name.to_string(), value));
    }

    /// Declared args that have a value, in declaration order.
    pub fn values(&self) -> impl Iterator<Item = (&str, &str)> {
        self.declared
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
    }
}

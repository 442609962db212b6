//! The part of an OCI image config that Dockerfile instructions change, and
//! the changes themselves. Kept independent of any OCI crate so that the IR
//! stays at the bottom of the crate graph.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The runtime config of an image (the OCI `config` object) plus history.
/// Maps are `BTreeMap` so that serialisation is canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, ()>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, ()>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_build: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// Docker's healthcheck object. Durations are nanoseconds, zero meaning
/// "inherit the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339 time. Frontends never set it (it is no part of a digest):
    /// a base image's entries keep their own, and the exporter gives the
    /// build's entries theirs (`specs/cache-keys.md`, "Image creation
    /// times").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Set by the frontend for instructions that never make a layer. The
    /// exporter also sets it for steps whose diff turns out empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// One change to an image config, in the order the instructions made them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConfigChange {
    Env {
        key: String,
        value: String,
    },
    Label {
        key: String,
        value: String,
    },
    Expose {
        port: String,
    },
    Volume {
        path: String,
    },
    User {
        user: String,
    },
    Workdir {
        path: String,
    },
    Entrypoint {
        args: Vec<String>,
    },
    Cmd {
        args: Option<Vec<String>>,
    },
    StopSignal {
        signal: String,
    },
    Healthcheck {
        check: Option<Healthcheck>,
    },
    Shell {
        args: Vec<String>,
    },
    OnBuild {
        trigger: String,
    },
    /// A trigger list inherited from the base image is consumed by FROM.
    ClearOnBuild,
    /// FROM an image whose config has no `PATH`: BuildKit puts
    /// [`DEFAULT_PATH`] first in `Env` (a no-op when `PATH` is set).
    DefaultPath,
    Maintainer {
        name: String,
    },
    History {
        entry: HistoryEntry,
    },
}

/// BuildKit's `PATH` for images that do not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageConfig {
    /// The config of `FROM scratch`: BuildKit gives it a `PATH` and `/`.
    pub fn scratch() -> Self {
        let mut c = ImageConfig::default();
        c.set_env("PATH", DEFAULT_PATH);
        c.working_dir = Some("/".into());
        c
    }

    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env.iter().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == key).then_some(v)
        })
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == key)
        {
            Some(slot) => *slot = entry,
            None => self.env.push(entry),
        }
    }

    pub fn apply(&mut self, change: &ConfigChange) {
        match change {
            ConfigChange::Env { key, value } => self.set_env(key, value),
            ConfigChange::Label { key, value } => {
                self.labels.insert(key.clone(), value.clone());
            }
            ConfigChange::Expose { port } => {
                self.exposed_ports.insert(port.clone(), ());
            }
            ConfigChange::Volume { path } => {
                self.volumes.insert(path.clone(), ());
            }
            ConfigChange::User { user } => self.user = Some(user.clone()),
            ConfigChange::Workdir { path } => self.working_dir = Some(path.clone()),
            ConfigChange::Entrypoint { args } => self.entrypoint = Some(args.clone()),
            ConfigChange::Cmd { args } => self.cmd = args.clone(),
            ConfigChange::StopSignal { signal } => self.stop_signal = Some(signal.clone()),
            ConfigChange::Healthcheck { check } => self.healthcheck = check.clone(),
            ConfigChange::Shell { args } => self.shell = Some(args.clone()),
            ConfigChange::OnBuild { trigger } => self.on_build.push(trigger.clone()),
            ConfigChange::ClearOnBuild => self.on_build.clear(),
            ConfigChange::DefaultPath => {
                if self.get_env("PATH").is_none() {
                    self.env.insert(0, format!("PATH={DEFAULT_PATH}"));
                }
            }
            ConfigChange::Maintainer { name } => self.author = Some(name.clone()),
            ConfigChange::History { entry } => self.history.push(entry.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_replaces_in_place() {
        let mut c = ImageConfig::default();
        c.set_env("PATH", "/bin");
        c.set_env("A", "1");
        c.set_env("PATH", "/usr/bin:/bin");
        assert_eq!(c.env, vec!["PATH=/usr/bin:/bin", "A=1"]);
        assert_eq!(c.get_env("A"), Some("1"));
        assert_eq!(c.get_env("B"), None);
    }
}

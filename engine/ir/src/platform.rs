use std::fmt;

use serde::{Deserialize, Serialize};

/// An OCI platform. `variant` is normalised so that equal platforms compare
/// equal (`linux/arm64` and `linux/arm64/v8` are the same platform).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform `{0}`: expected os/arch[/variant]")]
pub struct PlatformError(pub String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
        .normalized()
    }

    pub fn linux_amd64() -> Self {
        Platform::new("linux", "amd64", None)
    }

    /// Parse `os/arch[/variant]` (also `arch` alone, meaning linux) and
    /// normalise architecture aliases the way containerd does.
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || PlatformError(s.to_string());
        if parts
            .iter()
            .any(|p| p.is_empty() || p.contains(char::is_whitespace))
        {
            return Err(bad());
        }
        let p = match parts.as_slice() {
            [arch] if !is_os(arch) => Platform::new("linux", arch, None),
            [os] => Platform::new(os, std::env::consts::ARCH, None),
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => return Err(bad()),
        };
        Ok(p)
    }

    /// containerd's normalisation (`platforms.Normalize`): lower case,
    /// `macos` → `darwin`, architecture aliases, and each architecture's
    /// variant spelled one way (`arm64`'s default `v8` as none, `arm`'s
    /// default `v7` written out, `amd64/v1` as plain `amd64`).
    fn normalized(mut self) -> Self {
        self.os = match self.os.to_ascii_lowercase().as_str() {
            "macos" => "darwin".to_string(),
            os => os.to_string(),
        };
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self
            .variant
            .take()
            .map(|v| v.to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("i386", _) => ("386", None),
            ("x86_64" | "x86-64" | "amd64", Some("v1")) => ("amd64", None),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
            ("aarch64" | "arm64", Some("8" | "v8" | "v8.0")) => ("arm64", None),
            ("aarch64" | "arm64", Some("9" | "9.0" | "v9.0")) => ("arm64", Some("v9")),
            ("aarch64" | "arm64", v) => ("arm64", v),
            ("armhf", _) => ("arm", Some("v7")),
            ("armel", _) => ("arm", Some("v6")),
            ("arm", None | Some("7")) => ("arm", Some("v7")),
            ("arm", Some("5")) => ("arm", Some("v5")),
            ("arm", Some("6")) => ("arm", Some("v6")),
            ("arm", Some("8")) => ("arm", Some("v8")),
            (a, v) => (a, v),
        };
        self.architecture = arch.to_string();
        self.variant = variant.map(str::to_string);
        self
    }

    /// The platform of the machine running the engine.
    pub fn host() -> Self {
        Platform::new(std::env::consts::OS, std::env::consts::ARCH, None)
    }
}

fn is_os(s: &str) -> bool {
    matches!(s, "linux" | "windows" | "darwin" | "freebsd")
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_normalise() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap(),
            Platform::linux_amd64()
        );
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap(),
            Platform::parse("linux/aarch64").unwrap()
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(Platform::parse("linux//").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }
}

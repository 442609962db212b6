//! Which image serves a platform: the one platform matcher, for registry
//! pulls and OCI layouts alike.
//!
//! The rules are containerd's (`platforms.Only`), applied to platforms
//! normalised as containerd normalises them ([`Platform::new`]: `aarch64`
//! is `arm64`, `arm64/v8` is `arm64`, `arm` is `arm/v7`, `x86_64` is
//! `amd64`, `amd64/v1` is `amd64`, …):
//!
//! - the platform asked for, exactly, is best;
//! - then older variants of the same architecture that it runs:
//!   `arm/v8` → `v7` → `v6` → `v5`, `amd64/v4` → `v3` → `v2` → `amd64`,
//!   `arm64/v8.N` → … → `v8.1` → `arm64`, `arm64/v9.N` → … → `v9` →
//!   `v8.(N+5)` → … → `arm64`;
//! - nothing else: a newer variant (`arm/v6` never takes `arm/v7`),
//!   another architecture or another OS never matches.
//!
//! One difference from `platforms.Only`, on purpose: containerd also falls
//! back across architectures (`amd64` → `386`, `arm64` → `arm/v8` … `v5`).
//! The engine does not: such a base image would hand a build for one
//! architecture the binaries of another, which its RUN steps would then run
//! as if they were the asked-for platform's.

pub use engine_ir::Platform;

use crate::document::Descriptor;
use crate::media_type;

/// Matches and ranks candidate platforms for one wanted platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMatcher {
    /// The platforms accepted, best first; `[0]` is the wanted one.
    order: Vec<Platform>,
}

impl PlatformMatcher {
    pub fn new(want: &Platform) -> Self {
        let want = normalize(want);
        let mut order = vec![want.clone()];
        let with_variant = |v: Option<String>| Platform {
            os: want.os.clone(),
            architecture: want.architecture.clone(),
            variant: v,
        };
        let level = |v: &str| v.strip_prefix('v')?.parse::<u32>().ok();
        match (want.architecture.as_str(), want.variant.as_deref()) {
            ("arm", Some(v)) => {
                if let Some(n) = level(v) {
                    order.extend((5..n).rev().map(|k| with_variant(Some(format!("v{k}")))));
                }
            }
            ("amd64", Some(v)) => {
                if let Some(n) = level(v) {
                    order.extend((2..n).rev().map(|k| with_variant(Some(format!("v{k}")))));
                    order.push(with_variant(None));
                }
            }
            ("arm64", Some(v)) => {
                for (major, minor) in arm64_fallbacks(v) {
                    let variant = match (major, minor) {
                        (8, 0) => None,
                        (m, 0) => Some(format!("v{m}")),
                        (m, n) => Some(format!("v{m}.{n}")),
                    };
                    order.push(with_variant(variant));
                }
                order.dedup();
            }
            _ => {}
        }
        PlatformMatcher { order }
    }

    /// The platform asked for, normalised.
    pub fn wanted(&self) -> &Platform {
        &self.order[0]
    }

    /// How well `candidate` serves: `Some(0)` it is the platform asked
    /// for, `Some(n)` the n-th fallback, `None` it cannot.
    pub fn rank(&self, candidate: &Platform) -> Option<usize> {
        let c = normalize(candidate);
        self.order.iter().position(|p| *p == c)
    }

    pub fn matches(&self, candidate: &Platform) -> bool {
        self.rank(candidate).is_some()
    }

    /// The best of `candidates` by the platform each has (those with none
    /// are skipped); of equally good ones, the first.
    pub fn best<T>(
        &self,
        candidates: impl IntoIterator<Item = T>,
        platform: impl Fn(&T) -> Option<Platform>,
    ) -> Option<T> {
        candidates
            .into_iter()
            .filter_map(|c| {
                let rank = self.rank(&platform(&c)?)?;
                Some((rank, c))
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, c)| c)
    }

    /// The best entry of an image index for this platform: among the
    /// manifests and indexes that name a platform, as [`best`](Self::best)
    /// chooses.
    pub fn best_descriptor<'a>(
        &self,
        descriptors: impl IntoIterator<Item = &'a Descriptor>,
    ) -> Option<&'a Descriptor> {
        self.best(
            descriptors.into_iter().filter(|d| {
                media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type)
            }),
            |d| d.platform.as_ref().map(|p| p.to_platform()),
        )
    }
}

fn normalize(p: &Platform) -> Platform {
    Platform::new(&p.os, &p.architecture, p.variant.as_deref())
}

/// containerd's arm64 variant ladder (`arm64variantToVersion`): the
/// `(major, minor)` versions after `variant`, best first. `v8.N` runs
/// `v8.(N-1)` … `v8.0`; `v9.N` runs `v9.(N-1)` … `v9.0`, then `v8.(N+5)`
/// … `v8.0` (v9.N has v8.(N+5)'s features, up to v8.9).
fn arm64_fallbacks(variant: &str) -> Vec<(u32, u32)> {
    let Some(v) = variant.strip_prefix('v') else {
        return Vec::new();
    };
    let (major, minor) = match v.split_once('.') {
        Some((m, n)) => (m.parse::<u32>().ok(), n.parse::<u32>().ok()),
        None => (v.parse::<u32>().ok(), Some(0)),
    };
    let mut out = Vec::new();
    match (major, minor) {
        (Some(8), Some(n)) if n <= 9 => out.extend((0..n).rev().map(|k| (8, k))),
        (Some(9), Some(n)) if n <= 7 => {
            out.extend((0..n).rev().map(|k| (9, k)));
            out.extend((0..=(n + 5).min(9)).rev().map(|k| (8, k)));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::document::DescriptorPlatform;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn raw(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        // Not normalised: as an index or a config may spell it.
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// containerd's `Normalize` (platforms/database.go, its tests).
    #[test]
    fn normalises_like_containerd() {
        for (os, arch, variant, want) in [
            ("linux", "x86_64", None, "linux/amd64"),
            ("linux", "x86-64", None, "linux/amd64"),
            ("Linux", "AMD64", None, "linux/amd64"),
            ("linux", "amd64", Some("v1"), "linux/amd64"),
            ("linux", "amd64", Some("v3"), "linux/amd64/v3"),
            ("linux", "amd64", Some(""), "linux/amd64"),
            ("linux", "i386", Some("x"), "linux/386"),
            ("linux", "aarch64", None, "linux/arm64"),
            ("linux", "arm64", Some("v8"), "linux/arm64"),
            ("linux", "arm64", Some("8"), "linux/arm64"),
            ("linux", "arm64", Some("v8.0"), "linux/arm64"),
            ("linux", "arm64", Some("v8.2"), "linux/arm64/v8.2"),
            ("linux", "arm64", Some("9"), "linux/arm64/v9"),
            ("linux", "arm64", Some("v9.0"), "linux/arm64/v9"),
            ("linux", "arm", None, "linux/arm/v7"),
            ("linux", "arm", Some("7"), "linux/arm/v7"),
            ("linux", "arm", Some("5"), "linux/arm/v5"),
            ("linux", "arm", Some("V6"), "linux/arm/v6"),
            ("linux", "armhf", None, "linux/arm/v7"),
            ("linux", "armhf", Some("v6"), "linux/arm/v7"),
            ("linux", "armel", None, "linux/arm/v6"),
            ("macos", "arm64", None, "darwin/arm64"),
            ("windows", "amd64", None, "windows/amd64"),
            ("linux", "riscv64", None, "linux/riscv64"),
            ("linux", "s390x", None, "linux/s390x"),
        ] {
            let got = Platform::new(os, arch, variant);
            assert_eq!(got.to_string(), want, "{os}/{arch}/{variant:?}");
            assert_eq!(
                Platform::new(&got.os, &got.architecture, got.variant.as_deref()),
                got
            );
        }
    }

    /// `platforms.Only(want)` of containerd (compare_test.go), less its
    /// cross-architecture fallbacks (see the module docs): wanted,
    /// candidate, rank or `None`.
    #[test]
    fn matches_like_containerd_only() {
        for (want, candidate, expected) in [
            // Exact, whatever the spelling.
            ("linux/amd64", raw("linux", "amd64", None), Some(0)),
            ("linux/amd64", raw("linux", "x86_64", None), Some(0)),
            ("linux/amd64", raw("linux", "amd64", Some("v1")), Some(0)),
            ("linux/arm64", raw("linux", "arm64", Some("v8")), Some(0)),
            ("linux/arm64/v8", raw("linux", "arm64", None), Some(0)),
            ("linux/arm64", raw("linux", "aarch64", None), Some(0)),
            ("linux/arm", raw("linux", "arm", Some("v7")), Some(0)),
            ("linux/arm/v7", raw("linux", "arm", None), Some(0)),
            ("linux/arm/v7", raw("linux", "armhf", None), Some(0)),
            // Older ARM variants, nearest first.
            ("linux/arm/v7", raw("linux", "arm", Some("v6")), Some(1)),
            ("linux/arm/v7", raw("linux", "armel", None), Some(1)),
            ("linux/arm/v7", raw("linux", "arm", Some("v5")), Some(2)),
            ("linux/arm/v8", raw("linux", "arm", Some("v5")), Some(3)),
            ("linux/arm/v6", raw("linux", "arm", Some("v5")), Some(1)),
            // Never a newer one.
            ("linux/arm/v6", raw("linux", "arm", Some("v7")), None),
            ("linux/arm/v6", raw("linux", "arm", None), None),
            ("linux/arm/v5", raw("linux", "arm", Some("v6")), None),
            // amd64 micro-architecture levels.
            ("linux/amd64/v3", raw("linux", "amd64", Some("v2")), Some(1)),
            ("linux/amd64/v3", raw("linux", "amd64", None), Some(2)),
            ("linux/amd64/v2", raw("linux", "amd64", Some("v1")), Some(1)),
            ("linux/amd64", raw("linux", "amd64", Some("v2")), None),
            // arm64 feature levels.
            (
                "linux/arm64/v8.2",
                raw("linux", "arm64", Some("v8.1")),
                Some(1),
            ),
            (
                "linux/arm64/v8.2",
                raw("linux", "arm64", Some("v8")),
                Some(2),
            ),
            (
                "linux/arm64/v9",
                raw("linux", "arm64", Some("v8.5")),
                Some(1),
            ),
            ("linux/arm64/v9", raw("linux", "arm64", None), Some(6)),
            (
                "linux/arm64/v9.1",
                raw("linux", "arm64", Some("v9")),
                Some(1),
            ),
            (
                "linux/arm64/v9.1",
                raw("linux", "arm64", Some("v8.6")),
                Some(2),
            ),
            ("linux/arm64", raw("linux", "arm64", Some("v8.1")), None),
            ("linux/arm64", raw("linux", "arm64", Some("v9")), None),
            ("linux/arm64/v9", raw("linux", "arm64", Some("v8.6")), None),
            // Other architectures and OSes: never (containerd's own
            // amd64 → 386 and arm64 → arm steps are left out).
            ("linux/amd64", raw("linux", "386", None), None),
            ("linux/arm64", raw("linux", "arm", Some("v7")), None),
            ("linux/arm64", raw("linux", "arm", Some("v8")), None),
            ("linux/arm/v7", raw("linux", "arm64", None), None),
            ("linux/amd64", raw("windows", "amd64", None), None),
            ("linux/amd64", raw("linux", "arm64", None), None),
            ("darwin/arm64", raw("macos", "arm64", None), Some(0)),
        ] {
            let m = PlatformMatcher::new(&p(want));
            assert_eq!(m.rank(&candidate), expected, "{want} ← {candidate}");
            assert_eq!(
                m.matches(&candidate),
                expected.is_some(),
                "{want} ← {candidate}"
            );
        }
    }

    #[test]
    fn the_wanted_platform_is_normalised_too() {
        let m = PlatformMatcher::new(&raw("linux", "aarch64", Some("v8")));
        assert_eq!(m.wanted(), &p("linux/arm64"));
        assert_eq!(m.rank(&raw("linux", "arm64", None)), Some(0));
        let m = PlatformMatcher::new(&raw("linux", "arm", None));
        assert_eq!(m.rank(&raw("linux", "arm", Some("v6"))), Some(1));
    }

    fn entry(n: u8, mt: &str, platform: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(mt, Digest::of(&[n]), u64::from(n));
        d.platform = platform.map(|s| DescriptorPlatform::from(&p(s)));
        d
    }

    #[test]
    fn picks_the_best_entry_of_an_index() {
        let m = media_type::OCI_MANIFEST;
        let index = [
            entry(1, m, Some("linux/amd64")),
            entry(2, m, Some("linux/arm/v5")),
            entry(3, m, Some("linux/arm/v6")),
            entry(4, m, Some("linux/arm64")),
            entry(5, m, None),
            entry(6, media_type::OCI_CONFIG, Some("linux/arm/v7")),
            entry(7, media_type::DOCKER_MANIFEST, Some("linux/arm/v6")),
            entry(8, media_type::OCI_INDEX, Some("linux/s390x")),
        ];
        let pick = |want: &str| {
            PlatformMatcher::new(&p(want))
                .best_descriptor(&index)
                .map(|d| d.size)
        };
        assert_eq!(pick("linux/amd64"), Some(1));
        // The nearest older variant; of two as near, the first listed; a
        // non-manifest entry for the exact platform does not count.
        assert_eq!(pick("linux/arm/v7"), Some(3));
        assert_eq!(pick("linux/arm/v6"), Some(3));
        assert_eq!(pick("linux/arm/v5"), Some(2));
        assert_eq!(pick("linux/arm64/v8"), Some(4));
        assert_eq!(pick("linux/s390x"), Some(8));
        assert_eq!(pick("linux/386"), None);
        assert_eq!(pick("windows/amd64"), None);
    }
}

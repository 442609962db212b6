//! `-o/--output` in buildx's syntax: `type=docker,dest=FILE[,name=REF]`,
//! `type=oci,dest=FILE` or `type=oci,dest=DIR,tar=false`, `type=local,dest=DIR`,
//! `type=tar,dest=FILE`, `type=registry,name=REF` (= `type=image,name=REF,push=true`),
//! `type=docker` without a dest (loaded into the local Docker daemon, as
//! buildx does; `--load`), with `compression=gzip|zstd|uncompressed`. A bare path means
//! `type=local,dest=PATH`, and `-` means `type=tar,dest=-`, as in buildx;
//! `dest=-` writes a tar form (docker, oci, tar) to standard output.

use std::path::PathBuf;

use engine_layers::Compression;

use crate::Failure;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Docker,
    OciTar,
    OciDir,
    Local,
    Tar,
    /// Pushed to the registry of each name.
    Registry,
    /// A docker archive loaded into the local Docker daemon.
    Load,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub kind: Kind,
    pub dest: PathBuf,
    pub names: Vec<String>,
    pub compression: Compression,
}

/// Whether an output goes to standard output (`dest=-`).
pub fn is_stdout(o: &Output) -> bool {
    o.dest.as_os_str() == "-"
}

pub fn parse(spec: &str) -> Result<Output, Failure> {
    if spec.trim() == "-" {
        return Ok(Output {
            kind: Kind::Tar,
            dest: PathBuf::from("-"),
            names: vec![],
            compression: Compression::Gzip,
        });
    }
    if !spec.contains('=') {
        return Ok(Output {
            kind: Kind::Local,
            dest: PathBuf::from(spec),
            names: vec![],
            compression: Compression::Gzip,
        });
    }
    let mut kind = None;
    let mut dest = None;
    let mut names = Vec::new();
    let mut tar = true;
    let mut push = false;
    let mut compression = Compression::Gzip;
    for field in spec.split(',') {
        let (k, v) = field.split_once('=').ok_or_else(|| {
            Failure::hint(
                format!("invalid output field `{field}` in `{spec}`"),
                "write key=value pairs separated by commas",
            )
        })?;
        match k.trim() {
            "type" => kind = Some(v.trim().to_string()),
            "dest" => dest = Some(PathBuf::from(v.trim())),
            "name" => names.extend(
                v.split(';')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            "push" => {
                push = match v.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(Failure::msg(format!(
                            "invalid push value `{other}`: expected true or false"
                        )))
                    }
                }
            }
            "tar" => {
                tar = match v.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(Failure::msg(format!(
                            "invalid tar value `{other}`: expected true or false"
                        )))
                    }
                }
            }
            "compression" => {
                compression = match v.trim() {
                    "gzip" => Compression::Gzip,
                    "zstd" => Compression::Zstd,
                    "uncompressed" => Compression::None,
                    other => {
                        return Err(Failure::hint(
                            format!("unsupported compression `{other}`"),
                            "use gzip, zstd or uncompressed",
                        ))
                    }
                }
            }
            // Accepted for buildx compatibility; our outputs are already what they ask for.
            "oci-mediatypes" | "force-compression" | "compression-level" | "rewrite-timestamp" => {}
            other => {
                return Err(Failure::msg(format!(
                    "unknown output option `{other}` in `{spec}`"
                )))
            }
        }
    }
    let kind = match kind.as_deref() {
        Some("docker") => Kind::Docker,
        Some("oci") if tar => Kind::OciTar,
        Some("oci") => Kind::OciDir,
        Some("local") => Kind::Local,
        Some("tar") => Kind::Tar,
        Some("registry") => Kind::Registry,
        Some("image") if push => Kind::Registry,
        Some("image") => {
            return Err(Failure::hint(
                "type=image without push=true has nowhere to go: there is no image store",
                "push it (type=image,name=REF,push=true or type=registry,name=REF), or write it with type=docker or type=oci",
            ))
        }
        Some(other) => {
            return Err(Failure::hint(
                format!("unsupported output type `{other}`"),
                "use type=docker, type=oci, type=local, type=tar or type=registry",
            ))
        }
        None => return Err(Failure::msg(format!("output `{spec}` has no type"))),
    };
    let kind = match (kind, &dest) {
        (Kind::Docker, None) => Kind::Load,
        (k, _) => k,
    };
    if kind == Kind::Registry || kind == Kind::Load {
        // The names may come from -t: checked when pushing.
        return Ok(Output {
            kind,
            dest: PathBuf::new(),
            names,
            compression,
        });
    }
    let dest = match dest {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => {
            return Err(Failure::hint(
                format!("output `{spec}` has no destination"),
                format!("give it a dest, e.g. {}", dest_example(&kind)),
            ))
        }
    };
    if dest.as_os_str() == "-" && matches!(kind, Kind::OciDir | Kind::Local) {
        return Err(Failure::hint(
            format!("`{spec}`: a directory cannot be written to standard output"),
            "use type=tar,dest=- (or -o -), type=docker,dest=- or type=oci,dest=-",
        ));
    }
    Ok(Output {
        kind,
        dest,
        names,
        compression,
    })
}

/// An `-o` value of `kind` with a destination, for hints.
fn dest_example(kind: &Kind) -> &'static str {
    match kind {
        Kind::Docker | Kind::Load => {
            "-o type=docker,dest=out/image.tar (or type=docker without dest to load it into the Docker daemon)"
        }
        Kind::OciTar => "-o type=oci,dest=out/image.tar",
        Kind::OciDir => "-o type=oci,dest=out/image,tar=false",
        Kind::Local => "-o type=local,dest=out/rootfs (or -o out/rootfs)",
        Kind::Tar => "-o type=tar,dest=out/rootfs.tar (or -o - for standard output)",
        Kind::Registry => "-o type=registry,name=registry.example.com/team/app:1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildx_forms() {
        let o = parse("type=oci,dest=out,tar=false,compression=zstd").unwrap();
        assert_eq!(o.kind, Kind::OciDir);
        assert_eq!(o.compression, Compression::Zstd);
        assert_eq!(
            parse("type=docker,dest=a.tar,name=x:1").unwrap().names,
            vec!["x:1"]
        );
        assert_eq!(parse("./rootfs").unwrap().kind, Kind::Local);
        assert!(parse("type=registry,ref=x").is_err());
        let r = parse("type=registry,name=localhost:5000/a:1").unwrap();
        assert_eq!(r.kind, Kind::Registry);
        assert_eq!(
            parse("type=image,name=localhost:5000/a:1,push=true").unwrap(),
            r
        );
        assert!(parse("type=image,name=x").is_err());
        assert!(parse("type=oci").is_err());
        // a missing or empty dest fails at once, with an example to copy
        let hint_of = |spec: &str| match parse(spec) {
            Err(f) if f.help().is_some() => {
                let message = f.message().unwrap_or_default();
                assert!(message.contains("has no destination"), "{spec}: {message}");
                f.help().unwrap_or_default().to_string()
            }
            other => panic!("{spec}: {other:?}"),
        };
        for spec in [
            "type=oci",
            "type=oci,dest=",
            "type=local",
            "type=tar,dest= ",
            "type=docker,dest=",
        ] {
            assert!(hint_of(spec).contains(",dest="), "{spec}");
        }
        assert!(hint_of("type=oci,dest=,tar=false").contains("tar=false"));
        assert_eq!(parse("type=docker").unwrap().kind, Kind::Load);
        assert_eq!(parse("type=docker,name=a:1").unwrap().names, ["a:1"]);
        assert!(parse("type=oci,dest=x,compression=lz4").is_err());
        let dash = parse("-").unwrap();
        assert_eq!(dash.kind, Kind::Tar);
        assert!(is_stdout(&dash));
        assert!(is_stdout(&parse("type=docker,dest=-").unwrap()));
        assert!(parse("type=local,dest=-").is_err());
        assert!(parse("type=oci,dest=-,tar=false").is_err());
    }
}

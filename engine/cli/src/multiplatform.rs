//! Exporting a target built for several platforms: one image per platform
//! under one OCI image index (OCI layouts, registry pushes), one directory
//! per platform (`type=local`, as BuildKit's local exporter names them:
//! `linux_amd64/`, `linux_arm_v7/`). The docker archive, `--load` and
//! `type=tar` take one platform, as BuildKit's docker exporter does; that
//! is checked before anything is built.

use crate::outputs::{Kind, Output};
use crate::plan::Unit;
use crate::Failure;

/// Refuse, before building, outputs that cannot hold several platforms.
pub fn check_outputs(unit: &Unit, outputs: &[Output], several_units: bool) -> Result<(), Failure> {
    if unit.images.len() < 2 {
        return Ok(());
    }
    for o in outputs {
        let what = match o.kind {
            Kind::Docker => "the docker exporter (type=docker)",
            Kind::Load => "--load (a docker archive)",
            Kind::Tar => "type=tar",
            _ => continue,
        };
        let platforms: Vec<String> = unit.images.iter().map(|(_, p)| p.to_string()).collect();
        let target = if several_units {
            format!("target `{}`: ", unit.name)
        } else {
            String::new()
        };
        return Err(Failure::hint(
            format!(
                "{target}{what} takes one platform, and this build has {} ({})",
                platforms.len(),
                platforms.join(", ")
            ),
            "build one platform for it (--platform linux/arm64), or export all of them as an \
             image index: -o type=oci,dest=out.tar or --push",
        ));
    }
    Ok(())
}

/// The directory a platform's root filesystem goes to under a `type=local`
/// destination: `linux_arm64`, `linux_arm_v7`.
pub fn platform_dir(p: &engine_ir::Platform) -> String {
    p.to_string().replace('/', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_ir::Platform;

    fn unit(platforms: &[&str]) -> Unit {
        Unit {
            name: "app".into(),
            images: platforms
                .iter()
                .map(|p| (format!("app@{p}"), Platform::parse(p).unwrap()))
                .collect(),
        }
    }

    #[test]
    fn archives_of_one_image_refuse_several_platforms() {
        let docker = crate::outputs::parse("type=docker,dest=a.tar").unwrap();
        let oci = crate::outputs::parse("type=oci,dest=a.tar").unwrap();
        let two = unit(&["linux/amd64", "linux/arm64"]);
        let e = check_outputs(&two, &[oci.clone(), docker.clone()], false);
        let Err(f) = e else { panic!("refused") };
        let (message, hint) = (f.message().unwrap_or_default(), f.help());
        assert!(
            message.contains("type=docker) takes one platform"),
            "{message}"
        );
        assert!(message.contains("linux/amd64, linux/arm64"), "{message}");
        assert!(hint.unwrap().contains("--push"));
        assert!(check_outputs(&two, &[oci], false).is_ok());
        assert!(check_outputs(&unit(&["linux/arm64"]), &[docker], false).is_ok());
    }

    #[test]
    fn platform_directories_are_buildkits() {
        assert_eq!(
            platform_dir(&Platform::parse("linux/arm64").unwrap()),
            "linux_arm64"
        );
        assert_eq!(
            platform_dir(&Platform::parse("linux/arm/v7").unwrap()),
            "linux_arm_v7"
        );
    }
}

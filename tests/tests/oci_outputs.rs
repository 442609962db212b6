//! Every document the engine writes validates against the OCI image-spec
//! schemas (read from ../shared/conformance/oci-image-spec), and every blob
//! matches its digest and size: OCI layout dir, OCI layout tar and docker
//! archive, for a real multi-stage build with RUN, COPY and config.

#[path = "../../engine/export/tests/common/mod.rs"]
mod oci;

use std::path::Path;

use engine_tests::{busybox, engine::Build};

const DOCKERFILE: &str = r#"
FROM busybox AS build
RUN echo built > /artifact && rm /bin/vi
FROM busybox
COPY --from=build /artifact /srv/artifact
ENV MODE=prod
EXPOSE 8080/tcp
VOLUME /data
HEALTHCHECK --interval=30s CMD true
USER app
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/artifact"]
"#;

fn unpack(tar: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    tar::Archive::new(std::fs::File::open(tar).unwrap())
        .unpack(into)
        .unwrap();
}

#[test]
fn engine_outputs_validate_against_the_oci_schemas() {
    let work = tempfile::tempdir().unwrap();
    let base =
        busybox::base_image(&work.path().join("base"), &work.path().join("base-cache")).unwrap();
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    let dir = work.path().join("oci-dir");
    let oci_tar = work.path().join("oci.tar");
    let docker_tar = work.path().join("docker.tar");
    let mut b = Build::new(&ctx);
    b.build_contexts.push(base.build_context());
    b.cache_dir = Some(work.path().join("cache"));
    b.outputs = vec![
        format!("type=oci,dest={},tar=false,name=schema:v1", dir.display()),
        format!("type=oci,dest={},name=schema:v1", oci_tar.display()),
        format!("type=docker,dest={},name=schema:v1", docker_tar.display()),
        format!(
            "type=oci,dest={},tar=false,name=schema:zstd,compression=zstd",
            work.path().join("zstd").display()
        ),
    ];
    b.env
        .push(("SOURCE_DATE_EPOCH".into(), "1700000000".into()));
    b.run().unwrap();
    let schemas = oci::conformance();
    let mut validated = 0;
    validated += oci::check_layout(&dir, schemas.as_ref());
    validated += oci::check_layout(&work.path().join("zstd"), schemas.as_ref());
    for (tar, name) in [(&oci_tar, "oci-tar"), (&docker_tar, "docker-tar")] {
        let into = work.path().join(name);
        unpack(tar, &into);
        validated += oci::check_layout(&into, schemas.as_ref());
        oci::assert_blobs_match_names(&into);
    }
    oci::assert_blobs_match_names(&dir);
    if schemas.is_some() {
        // layout + index, manifest and config of each of the four outputs.
        assert_eq!(validated, 16, "every document was validated");
    }
    // The config carries what the Dockerfile set.
    let index = oci::read_json(&dir.join("index.json"));
    let manifest = oci::read_json(&oci::blob(
        &dir,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let config = oci::read_json(&oci::blob(
        &dir,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["config"]["User"], "app");
    assert_eq!(config["config"]["Cmd"][0], "cat /srv/artifact");
    assert_eq!(
        config["created"], "2023-11-14T22:13:20Z",
        "SOURCE_DATE_EPOCH sets created"
    );
    let layers = manifest["layers"].as_array().unwrap().len();
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap().len();
    assert_eq!(layers, diff_ids);
    let non_empty = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["empty_layer"] != true)
        .count();
    assert_eq!(non_empty, layers, "history agrees with the layers");
}

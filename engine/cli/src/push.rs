//! `-o type=registry,name=REF`: upload an assembled image's blobs, then its
//! manifests, then the document the tag points at.

use engine_cache::BlobStore;
use engine_export::RegistryPlan;
use engine_oci::Reference;
use engine_registry::Client;

use crate::Failure;

pub fn push(
    client: &Client,
    store: &BlobStore,
    plan: &RegistryPlan,
    name: &str,
) -> Result<(), Failure> {
    let r = Reference::parse(name).map_err(|e| Failure::msg(e.to_string()))?;
    if r.digest().is_some() {
        return Err(Failure::hint(
            format!("cannot push to `{name}`: a pushed image is named by tag"),
            "write name=REGISTRY/REPOSITORY:TAG",
        ));
    }
    let fail =
        |e: engine_registry::Error| Failure::infra(format!("cannot push `{name}`")).caused_by(&e);
    for (digest, size, bytes) in &plan.blobs {
        match bytes {
            Some(b) => client.push_blob(&r, digest, *size, &mut b.as_slice()),
            None => {
                let mut f = store
                    .open_blob(digest)
                    .map_err(|e| Failure::infra(format!("cannot push `{name}`")).caused_by(&e))?;
                client.push_blob(&r, digest, *size, &mut f)
            }
        }
        .map_err(fail)?;
    }
    for (media_type, digest, bytes) in &plan.manifests {
        client
            .push_manifest(&r.with_digest(*digest), media_type, bytes)
            .map_err(fail)?;
    }
    let (media_type, _, bytes) = &plan.root;
    client.push_manifest(&r, media_type, bytes).map_err(fail)?;
    Ok(())
}

//! The exporters: OCI layout directory, OCI layout tar, docker archive.
//!
//! All three first make a [`Plan`]: the config, manifest (and, for several
//! images, index) documents as bytes, and the list of blobs to emit. Layer
//! blobs are then streamed from the [`BlobStore`] with `io::copy`, hashed on
//! the way and checked against their digest and size; nothing reads a whole
//! layer into memory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use engine_cache::BlobStore;
use engine_ir::Platform;
use engine_oci::reference::DEFAULT_TAG;
use engine_oci::{
    annotation, layout, media_type, Descriptor, DescriptorPlatform, Digest, Index, LayerMediaType,
    Manifest, Reference,
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::error::{io_err, Error, Result};
use crate::model::{ExportOptions, ExportResult, ExportedImage, ImageToExport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaTypes {
    Oci,
    Docker,
}

enum BlobSource {
    Inline(Vec<u8>),
    Store { size: u64 },
}

struct Plan {
    blobs: BTreeMap<Digest, BlobSource>,
    root: Descriptor,
    images: Vec<ExportedImage>,
    /// Layer digests per image, in order (for docker's `manifest.json`).
    layers: Vec<Vec<Digest>>,
}

impl Plan {
    fn result(&self) -> ExportResult {
        ExportResult {
            root: self.root.clone(),
            images: self.images.clone(),
        }
    }
}

/// `index_annotations`: annotations of an image index; when there are any,
/// even one image is exported under an index (an OCI one), which carries
/// them.
fn plan(
    images: &[ImageToExport],
    store: &BlobStore,
    mt: MediaTypes,
    index_annotations: &BTreeMap<String, String>,
) -> Result<Plan> {
    if images.is_empty() {
        return Err(Error::InvalidImage("no image to export".into()));
    }
    let mut blobs = BTreeMap::new();
    let mut exported = Vec::new();
    let mut all_layers = Vec::new();
    for (i, image) in images.iter().enumerate() {
        let (manifest_desc, config_desc, layers) = plan_image(image, store, mt, &mut blobs)
            .map_err(|e| match e {
                Error::InvalidImage(m) if images.len() > 1 => {
                    Error::InvalidImage(format!("image {i} ({}): {m}", image.platform))
                }
                e => e,
            })?;
        exported.push(ExportedImage {
            manifest: manifest_desc,
            config: config_desc,
        });
        all_layers.push(layers);
    }
    let root = if let ([one], true) = (exported.as_slice(), index_annotations.is_empty()) {
        one.manifest.clone()
    } else {
        let index_mt = match mt {
            _ if !index_annotations.is_empty() => media_type::OCI_INDEX,
            MediaTypes::Oci => media_type::OCI_INDEX,
            MediaTypes::Docker => media_type::DOCKER_LIST,
        };
        let mut index = Index::new(
            Some(index_mt),
            exported.iter().map(|e| e.manifest.clone()).collect(),
        );
        index.annotations = index_annotations.clone();
        let bytes = to_json(&index)?;
        let desc = Descriptor::new(index_mt, Digest::of(&bytes), bytes.len() as u64);
        blobs.insert(desc.digest, BlobSource::Inline(bytes));
        desc
    };
    Ok(Plan {
        blobs,
        root,
        images: exported,
        layers: all_layers,
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    // Our document types hold no HashMaps: field order is declaration order
    // and maps are BTreeMaps, so this is deterministic.
    serde_json::to_vec(v).map_err(|e| Error::InvalidImage(format!("serialising: {e}")))
}

fn plan_image(
    image: &ImageToExport,
    store: &BlobStore,
    mt: MediaTypes,
    blobs: &mut BTreeMap<Digest, BlobSource>,
) -> Result<(Descriptor, Descriptor, Vec<Digest>)> {
    let config_bytes = image.config_bytes()?;
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::InvalidImage(format!("config is not valid json: {e}")))?;
    let desc_platform = check_config(&config, image)?;

    // BuildKit: zstd layers need OCI media types; switch unless forced.
    let has_zstd = image
        .layers
        .iter()
        .any(|l| l.media_type == LayerMediaType::TarZstd);
    let mt = if mt == MediaTypes::Docker && has_zstd {
        MediaTypes::Oci
    } else {
        mt
    };

    let mut layer_descs = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        let actual = store.size(&layer.digest)?;
        if actual != layer.size {
            return Err(Error::SizeMismatch {
                digest: layer.digest,
                path: store.path(&layer.digest),
                expected: layer.size,
                actual,
            });
        }
        let media_type = match mt {
            MediaTypes::Oci => layer.media_type.oci(),
            MediaTypes::Docker => layer.media_type.docker(),
        };
        layer_descs.push(Descriptor::new(media_type, layer.digest, layer.size));
        blobs.insert(layer.digest, BlobSource::Store { size: layer.size });
    }

    let (config_mt, manifest_mt) = match mt {
        MediaTypes::Oci => (media_type::OCI_CONFIG, media_type::OCI_MANIFEST),
        MediaTypes::Docker => (media_type::DOCKER_CONFIG, media_type::DOCKER_MANIFEST),
    };
    let config_desc = Descriptor::new(
        config_mt,
        Digest::of(&config_bytes),
        config_bytes.len() as u64,
    );
    blobs.insert(config_desc.digest, BlobSource::Inline(config_bytes));

    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(manifest_mt.to_string()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: layer_descs,
        subject: None,
        annotations: image.annotations.clone(),
    };
    let manifest_bytes = to_json(&manifest)?;
    let mut manifest_desc = Descriptor::new(
        manifest_mt,
        Digest::of(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    manifest_desc.platform = Some(desc_platform);
    blobs.insert(manifest_desc.digest, BlobSource::Inline(manifest_bytes));
    let layers = image.layers.iter().map(|l| l.digest).collect();
    Ok((manifest_desc, config_desc, layers))
}

/// Check that the config agrees with the layers (`rootfs.diff_ids`) and with
/// the image's platform; return the platform for the manifest descriptor.
fn check_config(config: &Value, image: &ImageToExport) -> Result<DescriptorPlatform> {
    let invalid = |m: String| Error::InvalidImage(m);
    let obj = config
        .as_object()
        .ok_or_else(|| invalid("config is not a json object".into()))?;
    let str_field = |k: &str| obj.get(k).and_then(Value::as_str);
    let os = str_field("os").ok_or_else(|| invalid("config has no `os`".into()))?;
    let arch =
        str_field("architecture").ok_or_else(|| invalid("config has no `architecture`".into()))?;
    let variant = str_field("variant");

    let diff_ids: Vec<&str> = obj
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("config has no `rootfs.diff_ids`".into()))?
        .iter()
        .map(|v| v.as_str().unwrap_or(""))
        .collect();
    let want: Vec<String> = image.layers.iter().map(|l| l.diff_id.to_string()).collect();
    if diff_ids != want {
        return Err(invalid(format!(
            "config rootfs.diff_ids [{}] do not match the layers' diff ids [{}]",
            diff_ids.join(", "),
            want.join(", ")
        )));
    }

    let p = &image.platform;
    let wanted = Platform::new(&p.os, &p.architecture, p.variant.as_deref());
    let found = Platform::new(os, arch, variant);
    let variant_ok = variant.is_none() || found.variant == wanted.variant;
    if found.os != wanted.os || found.architecture != wanted.architecture || !variant_ok {
        return Err(invalid(format!(
            "config is for platform {found}, but the image's platform is {wanted}"
        )));
    }
    let mut dp = DescriptorPlatform::from(&wanted);
    dp.os_version = str_field("os.version").map(str::to_string);
    dp.os_features = obj
        .get("os.features")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(dp)
}

/// The `index.json` entries for `root`: one per name, annotated as BuildKit
/// does, or `root` alone when there are no names.
fn index_entries(root: &Descriptor, opts: &ExportOptions) -> Result<Vec<Descriptor>> {
    let created = opts.source_date_epoch.map(rfc3339);
    let with_created = |mut d: Descriptor| {
        if let Some(c) = &created {
            d.annotations
                .insert(annotation::CREATED.to_string(), c.clone());
        }
        d
    };
    let names = parse_names(&opts.names)?;
    if names.is_empty() {
        return Ok(vec![with_created(root.clone())]);
    }
    Ok(names
        .iter()
        .map(|n| {
            let mut d = root.clone();
            d.annotations
                .insert(annotation::IMAGE_NAME.to_string(), n.to_string());
            d.annotations
                .insert(annotation::REF_NAME.to_string(), tag_of(n).to_string());
            with_created(d)
        })
        .collect())
}

/// Parse, normalise and de-duplicate (keeping the first occurrence). An
/// exported image is named by tag: a name with a digest is refused.
fn parse_names(names: &[String]) -> Result<Vec<Reference>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for n in names {
        let parsed = Reference::parse(n).map_err(|e| Error::InvalidName {
            name: e.reference,
            reason: e.reason,
        })?;
        if parsed.digest().is_some() {
            return Err(Error::InvalidName {
                name: n.chars().take(300).collect(),
                reason: "an exported image is named by tag, not by digest",
            });
        }
        if seen.insert(parsed.to_string()) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// The tag of a parsed name (every name without a digest has one).
fn tag_of(name: &Reference) -> &str {
    name.tag().unwrap_or(DEFAULT_TAG)
}

fn index_json(
    manifests: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut index = Index::new(Some(media_type::OCI_INDEX), manifests);
    index.annotations = annotations;
    to_json(&index)
}

/// `SOURCE_DATE_EPOCH` seconds as RFC 3339 UTC.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// A reader that hashes and counts what passes through.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Open a store blob for streaming, checking its size first. The flag says
/// whether the store knows the file intact (it committed or verified it in
/// this process, and the file has not changed since): such a blob is
/// copied without rehashing it; any other is hashed on the way.
fn open_store_blob(store: &BlobStore, digest: &Digest, size: u64) -> Result<(File, bool)> {
    let f = store.open_blob(digest)?;
    let path = store.path(digest);
    let meta = f.metadata().map_err(io_err("reading metadata of", &path))?;
    let actual = meta.len();
    if actual != size {
        return Err(Error::SizeMismatch {
            digest: *digest,
            path,
            expected: size,
            actual,
        });
    }
    let intact = store.known_intact(digest, &meta);
    Ok((f, intact))
}

/// Copy a blob known intact (see [`open_store_blob`]) to `out`: by the
/// kernel where both ends are files (`io::copy` uses copy_file_range), and
/// checked for its size only.
fn copy_intact<W: Write>(
    store: &BlobStore,
    f: File,
    digest: &Digest,
    size: u64,
    out: &mut W,
) -> io::Result<std::result::Result<(), Error>> {
    let n = io::copy(&mut f.take(size), out)?;
    if n != size {
        return Ok(Err(Error::SizeMismatch {
            digest: *digest,
            path: store.path(digest),
            expected: size,
            actual: n,
        }));
    }
    Ok(Ok(()))
}

fn check_streamed(store: &BlobStore, digest: &Digest, size: u64, got: (Digest, u64)) -> Result<()> {
    let (actual_digest, actual_size) = got;
    if actual_size != size {
        return Err(Error::SizeMismatch {
            digest: *digest,
            path: store.path(digest),
            expected: size,
            actual: actual_size,
        });
    }
    if actual_digest != *digest {
        return Err(Error::DigestMismatch {
            digest: *digest,
            path: store.path(digest),
            actual: actual_digest,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// OCI layout directory

/// Write `images` as an OCI image layout in `dir` (created if needed):
/// `oci-layout`, `blobs/sha256/…` and `index.json`, which gets one entry per
/// name in `opts.names` (see [`ExportOptions::names`]) pointing at the
/// manifest (one image) or at an image index (several images, one per
/// platform). If `dir` already is a layout, its other entries are kept,
/// except those with the same `org.opencontainers.image.ref.name`.
///
/// Blobs are written to temp files and renamed into place, and `index.json`
/// is replaced last, so a reader never sees an index naming missing blobs.
pub fn write_oci_layout_dir(
    images: &[ImageToExport],
    store: &BlobStore,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportResult> {
    let plan = plan(images, store, MediaTypes::Oci, &opts.index_annotations)?;
    let entries = index_entries(&plan.root, opts)?;

    fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
    let layout_file = dir.join(layout::LAYOUT_FILE);
    let index_path = dir.join(layout::INDEX_FILE);
    if !layout_file.exists() {
        let non_empty = fs::read_dir(dir)
            .map_err(io_err("reading directory", dir))?
            .next()
            .is_some();
        if non_empty {
            return Err(Error::NotALayout {
                path: dir.to_path_buf(),
                reason: "refusing to write into a non-empty directory without an oci-layout file"
                    .into(),
            });
        }
    }
    let existing = if index_path.exists() {
        let bytes = fs::read(&index_path).map_err(io_err("reading", &index_path))?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::InvalidDocument {
            what: "index.json".into(),
            path: index_path.clone(),
            reason: e.to_string(),
        })?;
        Some(index)
    } else {
        None
    };

    let blobs_dir = layout::blobs_dir(dir);
    fs::create_dir_all(&blobs_dir).map_err(io_err("creating directory", &blobs_dir))?;
    sweep_stale_temp_files(dir);
    sweep_stale_temp_files(&blobs_dir);
    for (digest, src) in &plan.blobs {
        write_layout_blob(&blobs_dir, digest, src, store)?;
    }
    sync_dir(&blobs_dir)?;

    let layout_json = layout::LayoutFile::current_json();
    if fs::read(&layout_file).ok().as_deref() != Some(&layout_json[..]) {
        write_file_atomic(dir, layout::LAYOUT_FILE, &layout_json)?;
    }

    let new_refs: BTreeSet<&str> = entries.iter().filter_map(Descriptor::ref_name).collect();
    let (mut manifests, annotations) = match existing {
        Some(index) => {
            let kept = index
                .manifests
                .into_iter()
                .filter(|d| match d.ref_name() {
                    Some(r) => !new_refs.contains(r),
                    // An unnamed entry for the very same content is replaced.
                    None => !entries.iter().any(|n| n.digest == d.digest),
                })
                .collect();
            (kept, index.annotations)
        }
        None => (Vec::new(), BTreeMap::new()),
    };
    manifests.extend(entries);
    write_file_atomic(
        dir,
        layout::INDEX_FILE,
        &index_json(manifests, annotations)?,
    )?;
    sync_dir(dir)?;
    Ok(plan.result())
}

fn write_layout_blob(
    blobs_dir: &Path,
    digest: &Digest,
    src: &BlobSource,
    store: &BlobStore,
) -> Result<()> {
    let dest = blobs_dir.join(digest.hex());
    let size = match src {
        BlobSource::Inline(b) => b.len() as u64,
        BlobSource::Store { size } => *size,
    };
    if file_matches(&dest, digest, size) {
        return Ok(());
    }
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(blobs_dir)
        .map_err(io_err("creating temp file in", blobs_dir))?;
    match src {
        BlobSource::Inline(bytes) => temp
            .write_all(bytes)
            .map_err(io_err("writing", temp.path()))?,
        BlobSource::Store { size } => {
            let (f, intact) = open_store_blob(store, digest, *size)?;
            if intact {
                copy_intact(store, f, digest, *size, temp.as_file_mut())
                    .map_err(io_err("copying into", &dest))??;
            } else {
                let mut reader = HashingReader::new(f.take(*size));
                io::copy(&mut reader, &mut temp).map_err(io_err("copying into", &dest))?;
                check_streamed(store, digest, *size, reader.finish())?;
            }
        }
    }
    persist(temp, &dest)
}

/// Does `path` hold exactly this content?
fn file_matches(path: &Path, digest: &Digest, size: u64) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    if !f.metadata().is_ok_and(|m| m.is_file() && m.len() == size) {
        return false;
    }
    let mut r = HashingReader::new(f);
    io::copy(&mut r, &mut io::sink()).is_ok() && r.finish() == (*digest, size)
}

/// Remove `.tmp-*` files older than an hour: left by an export that crashed.
fn sweep_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    for e in entries.flatten() {
        let stale = e.file_name().to_string_lossy().starts_with(".tmp-")
            && e.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .ok()
                        .and_then(|t| now.duration_since(t).ok())
                        .is_some_and(|age| age > engine_cache::INGEST_MAX_AGE)
            });
        if stale {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn write_file_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("creating temp file in", dir))?;
    temp.write_all(data)
        .map_err(io_err("writing", temp.path()))?;
    persist(temp, &dir.join(name))
}

fn persist(temp: tempfile::NamedTempFile, dest: &Path) -> Result<()> {
    temp.as_file()
        .sync_all()
        .map_err(io_err("syncing", temp.path()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_err("setting permissions of", temp.path()))?;
    }
    temp.persist(dest).map_err(|e| Error::Io {
        op: "renaming into place",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    engine_cache::durable::sync_dir(dir).map_err(io_err("syncing directory", dir))
}

// ---------------------------------------------------------------------------
// Tar archives

enum TarEntry<'a> {
    Dir,
    Bytes(&'a [u8]),
    Blob { digest: Digest, size: u64 },
}

/// Write entries sorted by name, with uid/gid 0, no user/group names,
/// mtime `SOURCE_DATE_EPOCH` or 0: the same input gives the same bytes.
fn write_tar<W: Write>(
    out: W,
    entries: &BTreeMap<String, TarEntry<'_>>,
    store: &BlobStore,
    mtime: u64,
) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let werr = |entry: &str| {
        let entry = entry.to_string();
        move |source| Error::Write { entry, source }
    };
    for (name, entry) in entries {
        let mut h = tar::Header::new_ustar();
        set_name(&mut h, name).map_err(werr(name))?;
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        match entry {
            TarEntry::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, io::empty()).map_err(werr(name))?;
            }
            TarEntry::Bytes(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, *data).map_err(werr(name))?;
            }
            TarEntry::Blob { digest, size } => {
                let (f, intact) = open_store_blob(store, digest, *size)?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(*size);
                h.set_cksum();
                if intact {
                    // Header, data and padding written past the builder
                    // (which keeps no position), so that io::copy sees the
                    // concrete writer and can copy in the kernel.
                    let out = b.get_mut();
                    out.write_all(h.as_bytes()).map_err(werr(name))?;
                    copy_intact(store, f, digest, *size, out).map_err(werr(name))??;
                    let pad = (512 - (*size % 512) as usize) % 512;
                    out.write_all(&[0; 512][..pad]).map_err(werr(name))?;
                } else {
                    let mut reader = HashingReader::new(f.take(*size));
                    b.append(&h, &mut reader).map_err(werr(name))?;
                    check_streamed(store, digest, *size, reader.finish())?;
                }
            }
        }
    }
    b.into_inner().map_err(werr("the end-of-archive marker"))
}

/// Set a ustar name verbatim (keeping a directory's trailing slash, which
/// `Header::set_path` drops).
fn set_name(h: &mut tar::Header, name: &str) -> io::Result<()> {
    let bytes = name.as_bytes();
    let slot = &mut h.as_old_mut().name;
    if bytes.len() > slot.len() || bytes.contains(&0) || name.split('/').any(|c| c == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad tar entry name {name}"),
        ));
    }
    slot.fill(0);
    slot[..bytes.len()].copy_from_slice(bytes);
    Ok(())
}

fn blob_entries<'a>(plan: &'a Plan, entries: &mut BTreeMap<String, TarEntry<'a>>) {
    entries.insert("blobs/".into(), TarEntry::Dir);
    entries.insert("blobs/sha256/".into(), TarEntry::Dir);
    for (digest, src) in &plan.blobs {
        let entry = match src {
            BlobSource::Inline(b) => TarEntry::Bytes(b),
            BlobSource::Store { size } => TarEntry::Blob {
                digest: *digest,
                size: *size,
            },
        };
        entries.insert(blob_path(digest), entry);
    }
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Write `images` as an OCI image layout in a tar stream (what
/// `--output type=oci` writes): the same files as [`write_oci_layout_dir`]
/// into an empty directory, sorted, with fixed ownership and timestamps.
pub fn write_oci_layout_tar<W: Write>(
    images: &[ImageToExport],
    store: &BlobStore,
    out: W,
    opts: &ExportOptions,
) -> Result<ExportResult> {
    let plan = plan(images, store, MediaTypes::Oci, &opts.index_annotations)?;
    let index = index_json(index_entries(&plan.root, opts)?, BTreeMap::new())?;
    let layout = layout::LayoutFile::current_json();
    let mut entries = BTreeMap::new();
    blob_entries(&plan, &mut entries);
    entries.insert(layout::INDEX_FILE.into(), TarEntry::Bytes(&index));
    entries.insert(layout::LAYOUT_FILE.into(), TarEntry::Bytes(&layout));
    let mut out = write_tar(out, &entries, store, opts.source_date_epoch.unwrap_or(0))?;
    out.flush().map_err(|source| Error::Write {
        entry: "the archive".into(),
        source,
    })?;
    Ok(plan.result())
}

#[derive(Serialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Write `image` as a `docker load`-able tar, in the combined form BuildKit's
/// `type=docker` exporter (via containerd's archive exporter) and
/// `docker save` since v25 emit: an OCI layout (`oci-layout`, `index.json`,
/// `blobs/sha256/…`) plus Docker's `manifest.json` (`Config`, `RepoTags`,
/// `Layers`, pointing at `blobs/sha256/<hex>`) and `repositories`.
///
/// Media types are Docker's (`application/vnd.docker.distribution.manifest.v2+json`
/// etc.), as BuildKit's docker exporter uses by default, unless a layer is
/// zstd or `opts.oci_mediatypes` says otherwise. Layers stay compressed:
/// `docker load` and skopeo decompress gzip layer files.
pub fn write_docker_archive<W: Write>(
    image: &ImageToExport,
    store: &BlobStore,
    out: W,
    opts: &ExportOptions,
) -> Result<ExportResult> {
    let mt = match opts.oci_mediatypes {
        Some(true) => MediaTypes::Oci,
        _ => MediaTypes::Docker,
    };
    let plan = plan(
        std::slice::from_ref(image),
        store,
        mt,
        &opts.index_annotations,
    )?;
    let names = parse_names(&opts.names)?;
    let index = index_json(index_entries(&plan.root, opts)?, BTreeMap::new())?;
    let layout = layout::LayoutFile::current_json();

    let exported = &plan.images[0];
    let layers = &plan.layers[0];
    let manifest_json = to_json(&vec![DockerManifestEntry {
        config: blob_path(&exported.config.digest),
        repo_tags: names.iter().map(Reference::familiar).collect(),
        layers: layers.iter().map(blob_path).collect(),
    }])?;
    // `docker save` maps repo -> tag -> top layer id; only legacy loaders
    // without manifest.json read it.
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(top) = layers.last() {
        for n in &names {
            repositories
                .entry(n.familiar_name())
                .or_default()
                .insert(tag_of(n).to_string(), top.hex());
        }
    }
    let repositories_json = to_json(&repositories)?;

    let mut entries = BTreeMap::new();
    blob_entries(&plan, &mut entries);
    entries.insert(layout::INDEX_FILE.into(), TarEntry::Bytes(&index));
    entries.insert(layout::LAYOUT_FILE.into(), TarEntry::Bytes(&layout));
    entries.insert("manifest.json".into(), TarEntry::Bytes(&manifest_json));
    if !repositories.is_empty() {
        entries.insert("repositories".into(), TarEntry::Bytes(&repositories_json));
    }
    let mut out = write_tar(out, &entries, store, opts.source_date_epoch.unwrap_or(0))?;
    out.flush().map_err(|source| Error::Write {
        entry: "the archive".into(),
        source,
    })?;
    Ok(plan.result())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}

/// What pushing images to a registry takes, in upload order: blobs (layers
/// from the store, configs inline), then the manifests of an index, then
/// the root document, which goes under the tag.
#[derive(Debug)]
pub struct RegistryPlan {
    /// `(digest, size, bytes)`: `bytes` is `None` for a blob of the store.
    pub blobs: Vec<(Digest, u64, Option<Vec<u8>>)>,
    /// Manifests an index names: `(media type, digest, bytes)`.
    pub manifests: Vec<(String, Digest, Vec<u8>)>,
    /// The document the tag points at (a manifest, or an index).
    pub root: (String, Digest, Vec<u8>),
    pub result: ExportResult,
}

/// Plan pushing `images` (one, or several platforms under an index) with
/// OCI media types, as BuildKit's image exporter does by default with
/// `oci-mediatypes=true`. Of `opts`, only `index_annotations` applies.
pub fn plan_registry_push(
    images: &[ImageToExport],
    store: &BlobStore,
    opts: &ExportOptions,
) -> Result<RegistryPlan> {
    let plan = plan(images, store, MediaTypes::Oci, &opts.index_annotations)?;
    let manifest_digests: std::collections::BTreeSet<Digest> =
        plan.images.iter().map(|i| i.manifest.digest).collect();
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut root = None;
    for (digest, source) in &plan.blobs {
        match source {
            BlobSource::Store { size } => blobs.push((*digest, *size, None)),
            BlobSource::Inline(bytes) if *digest == plan.root.digest => {
                root = Some((plan.root.media_type.clone(), *digest, bytes.clone()));
            }
            BlobSource::Inline(bytes) if manifest_digests.contains(digest) => {
                let mt = plan
                    .images
                    .iter()
                    .find(|i| i.manifest.digest == *digest)
                    .map(|i| i.manifest.media_type.clone())
                    .unwrap_or_default();
                manifests.push((mt, *digest, bytes.clone()));
            }
            BlobSource::Inline(bytes) => {
                blobs.push((*digest, bytes.len() as u64, Some(bytes.clone())))
            }
        }
    }
    let root = root.ok_or_else(|| Error::InvalidImage("no root document".into()))?;
    Ok(RegistryPlan {
        blobs,
        manifests,
        root,
        result: plan.result(),
    })
}

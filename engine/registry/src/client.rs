//! Requests to one or more registries, with the auth handshake done once
//! per registry and scope.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use engine_cache::BlobStore;
use engine_oci::media_type::MANIFEST_ACCEPT;
use engine_oci::{Digest, Reference};
use ureq::http::Response;
use ureq::Body;

use crate::auth::{basic_credentials, parse_challenge, Challenge};
use crate::endpoint::{api_host, object, scheme};
use crate::limit::{self, copy_limited, Cap, CopyError, Limit, MANIFEST_CAP, TOKEN_CAP};
use crate::{Error, Result};

/// A manifest or index as fetched.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Put,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// `host scope` → the Authorization header value that works for it.
    auth: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .user_agent(concat!("engine/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Client {
            agent,
            auth: Mutex::new(HashMap::new()),
        }
    }

    fn base(r: &Reference) -> String {
        format!("{}://{}/v2/{}", scheme(r), api_host(r), r.path())
    }

    fn scope(r: &Reference, push: bool) -> String {
        let actions = if push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", r.path())
    }

    fn auth_key(r: &Reference, push: bool) -> String {
        format!("{} {}", r.domain(), Self::scope(r, push))
    }

    fn cached_auth(&self, r: &Reference, push: bool) -> Option<String> {
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&Self::auth_key(r, push))
            .cloned()
    }

    fn raw(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        auth: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<Response<Body>> {
        let http = |e: ureq::Error| Error::Http {
            method: method.name(),
            url: url.to_string(),
            source: transport(e),
        };
        macro_rules! with_headers {
            ($req:expr) => {{
                let mut req = $req;
                for (k, v) in headers {
                    req = req.header(*k, v.as_str());
                }
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                req
            }};
        }
        match method {
            Method::Get => with_headers!(self.agent.get(url)).call().map_err(http),
            Method::Head => with_headers!(self.agent.head(url)).call().map_err(http),
            Method::Post => with_headers!(self.agent.post(url))
                .send(body.unwrap_or_default())
                .map_err(http),
            Method::Put => with_headers!(self.agent.put(url))
                .send(body.unwrap_or_default())
                .map_err(http),
        }
    }

    /// A request that may need credentials: tried with what worked before,
    /// and on a 401 once more after the handshake the challenge asks for.
    fn request(
        &self,
        method: Method,
        url: &str,
        r: &Reference,
        push: bool,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response<Body>> {
        let auth = self.cached_auth(r, push);
        let resp = self.raw(method, url, headers, auth.as_deref(), body)?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        let header = match challenge {
            Some(Challenge::Basic) => match basic_credentials(r.domain()) {
                Some(b) => format!("Basic {b}"),
                None => return Err(self.status_error(method, url, resp)),
            },
            Some(Challenge::Bearer { params }) => {
                format!("Bearer {}", self.token(r, push, &params)?)
            }
            None => return Err(self.status_error(method, url, resp)),
        };
        self.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::auth_key(r, push), header.clone());
        self.raw(method, url, headers, Some(&header), body)
    }

    fn token(
        &self,
        r: &Reference,
        push: bool,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Result<String> {
        let realm = params.get("realm").ok_or_else(|| {
            Error::Other(format!("{}: bearer challenge without a realm", r.domain()))
        })?;
        let mut url = format!("{realm}?scope={}", Self::scope(r, push));
        if let Some(s) = params.get("service") {
            url.push_str(&format!("&service={s}"));
        }
        let basic = basic_credentials(r.domain()).map(|b| format!("Basic {b}"));
        let resp = self.raw(Method::Get, &url, &[], basic.as_deref(), None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(Method::Get, &url, resp));
        }
        let limit = Limit::Cap(Cap {
            size: TOKEN_CAP,
            of: "a token answer",
        });
        limit::check_announced(&url, resp.body().content_length(), limit)?;
        let v: serde_json::Value = serde_json::from_slice(&read_body(resp, &url, &url, limit)?)
            .map_err(|e| Error::Other(format!("{url}: token answer: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::Other(format!("{url}: no token in the answer")))
    }

    fn status_error(&self, method: Method, url: &str, mut resp: Response<Body>) -> Error {
        let status = resp.status().as_u16();
        let detail = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .ok()
            .and_then(|b| {
                let v: serde_json::Value = serde_json::from_str(&b).ok()?;
                let e = v.get("errors")?.get(0)?;
                Some(format!(
                    ": {} {}",
                    e.get("code")?.as_str().unwrap_or(""),
                    e.get("message").and_then(|m| m.as_str()).unwrap_or("")
                ))
            })
            .unwrap_or_default();
        Error::Status {
            method: method.name(),
            url: url.to_string(),
            status,
            detail: detail.to_lowercase(),
        }
    }

    /// GET `url` for a download held to `limit`: the response, once its
    /// status is a success and its Content-Length (when it has one) is
    /// within the limit.
    fn get_limited(
        &self,
        r: &Reference,
        url: &str,
        headers: &[(&str, String)],
        subject: &str,
        limit: Limit,
    ) -> Result<Response<Body>> {
        let resp = self.request(Method::Get, url, r, false, headers, None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(Method::Get, url, resp));
        }
        limit::check_announced(subject, resp.body().content_length(), limit)?;
        Ok(resp)
    }

    /// The manifest or index `r` names (by tag, or by a digest nothing
    /// declared a size for): at most [`MANIFEST_CAP`] bytes. Checked
    /// against the reference's digest when it has one.
    pub fn manifest(&self, r: &Reference) -> Result<Fetched> {
        self.fetch_manifest(r, &format!("`{r}`"), Limit::Cap(MANIFEST_CAP))
    }

    /// The manifest an index lists as `size` bytes under `r`'s digest:
    /// exactly that many bytes, and at most [`MANIFEST_CAP`].
    pub fn manifest_in_index(&self, r: &Reference, size: u64) -> Result<Fetched> {
        let subject = r
            .digest()
            .map_or_else(|| format!("`{r}`"), ToString::to_string);
        let limit = limit::check_declared(&subject, size, "its index", MANIFEST_CAP)?;
        self.fetch_manifest(r, &subject, limit)
    }

    fn fetch_manifest(&self, r: &Reference, subject: &str, limit: Limit) -> Result<Fetched> {
        let url = format!("{}/manifests/{}", Self::base(r), object(r));
        let accept = vec![("Accept", MANIFEST_ACCEPT.join(", "))];
        let resp = self.get_limited(r, &url, &accept, subject, limit)?;
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .unwrap_or_default();
        let bytes = read_body(resp, &url, subject, limit)?;
        let digest = Digest::of(&bytes);
        if let Some(want) = r.digest() {
            if digest != *want {
                return Err(Error::Digest {
                    what: "manifest",
                    url,
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        // Documents carry their own media type; trust it over the header.
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
            .unwrap_or(media_type);
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// A small blob (a config) that a manifest declares as `size` bytes,
    /// read into memory (so refused when `size` is over `cap`) and checked
    /// against its digest.
    pub fn blob_bytes(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        cap: Cap,
    ) -> Result<Vec<u8>> {
        let subject = digest.to_string();
        let limit = limit::check_declared(&subject, size, "its manifest", cap)?;
        let url = format!("{}/blobs/{digest}", Self::base(r));
        let resp = self.get_limited(r, &url, &[], &subject, limit)?;
        let bytes = read_body(resp, &url, &subject, limit)?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::Digest {
                what: "blob",
                url,
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Stream a blob that a manifest declares as `size` bytes into the
    /// store. Reading stops one byte past `size`; a longer or shorter body
    /// is discarded, and the store checks the digest before the blob gets
    /// its name.
    pub fn blob_into_store(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        store: &BlobStore,
    ) -> Result<u64> {
        let subject = digest.to_string();
        let limit = Limit::Declared {
            size,
            by: "its manifest",
        };
        let url = format!("{}/blobs/{digest}", Self::base(r));
        let resp = self.get_limited(r, &url, &[], &subject, limit)?;
        let mut reader = resp.into_body().into_reader();
        let mut writer = store.writer()?;
        // On an error the writer is dropped, and its temp file with it.
        copy_limited(&mut reader, &mut writer, &subject, limit).map_err(|e| match e {
            CopyError::Write(e) => {
                Error::Other(format!("writing blob {digest} into the store: {e}"))
            }
            other => copy_error(other, &url),
        })?;
        let (_, size) = writer.commit(Some(digest)).map_err(|e| match e {
            engine_cache::BlobError::DigestMismatch {
                expected, actual, ..
            } => Error::Digest {
                what: "blob",
                url: url.clone(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            },
            other => Error::Blob(other),
        })?;
        Ok(size)
    }

    /// Whether the repository already has the blob.
    pub fn has_blob(&self, r: &Reference, digest: &Digest) -> Result<bool> {
        let url = format!("{}/blobs/{digest}", Self::base(r));
        let resp = self.request(Method::Head, &url, r, true, &[], None)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.status_error(Method::Head, &url, resp)),
        }
    }

    /// Upload `size` bytes read from `data` as the blob `digest` (one
    /// monolithic PUT after the upload is opened), unless it is there.
    pub fn push_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        if self.has_blob(r, digest)? {
            return Ok(());
        }
        let url = format!("{}/blobs/uploads/", Self::base(r));
        let resp = self.request(Method::Post, &url, r, true, &[], None)?;
        if resp.status().as_u16() != 202 {
            return Err(self.status_error(Method::Post, &url, resp));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Other(format!("POST {url}: no upload location")))?
            .to_string();
        let mut put_url = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            format!("{}://{}{location}", scheme(r), api_host(r))
        };
        put_url.push(if put_url.contains('?') { '&' } else { '?' });
        put_url.push_str(&format!("digest={digest}"));
        let auth = self.cached_auth(r, true);
        let mut req = self
            .agent
            .put(&put_url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", size.to_string());
        if let Some(a) = &auth {
            req = req.header("Authorization", a.as_str());
        }
        let mut limited = data.take(size);
        let resp = req
            .send(ureq::SendBody::from_reader(&mut limited))
            .map_err(|e| Error::Http {
                method: "PUT",
                url: put_url.clone(),
                source: transport(e),
            })?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(Method::Put, &put_url, resp));
        }
        Ok(())
    }

    /// Put a manifest or index under `r`'s tag (or digest).
    pub fn push_manifest(&self, r: &Reference, media_type: &str, bytes: &[u8]) -> Result<()> {
        let url = format!("{}/manifests/{}", Self::base(r), object(r));
        let headers = [("Content-Type", media_type.to_string())];
        let resp = self.request(Method::Put, &url, r, true, &headers, Some(bytes))?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(Method::Put, &url, resp));
        }
        Ok(())
    }
}

/// A response body read into memory, held to `limit`.
fn read_body(resp: Response<Body>, url: &str, subject: &str, limit: Limit) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut reader = resp.into_body().into_reader();
    copy_limited(&mut reader, &mut out, subject, limit).map_err(|e| copy_error(e, url))?;
    Ok(out)
}

fn copy_error(e: CopyError, url: &str) -> Error {
    match e {
        CopyError::Size(e) => Error::Size(e),
        CopyError::Read(e) | CopyError::Write(e) => Error::Http {
            method: "GET",
            url: url.to_string(),
            source: Box::new(e),
        },
    }
}

/// What ureq failed with, as its cause: the I/O error itself when it is
/// one (`connection refused`, not `io: Connection refused`).
fn transport(e: ureq::Error) -> Box<dyn std::error::Error + Send + Sync> {
    match e {
        ureq::Error::Io(io) => Box::new(io),
        other => Box::new(other),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::SizeError;

    /// How the hostile server answers every request.
    #[derive(Clone, Copy)]
    enum Answer {
        /// An endless body (2 GiB at most), close-delimited or chunked.
        Endless { chunked: bool },
        /// A Content-Length of this many bytes (then an endless body).
        Announce(u64),
        /// This body, close-delimited.
        Body(&'static [u8]),
    }

    /// A registry on 127.0.0.1 that answers `answer` to everything.
    fn serve(answer: Answer) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                std::thread::spawn(move || answer_one(conn, answer));
            }
        });
        addr
    }

    fn answer_one(conn: std::net::TcpStream, answer: Answer) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let mut w = conn;
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n";
        let chunk = vec![b'x'; 64 * 1024];
        let endless = |w: &mut std::net::TcpStream, chunked: bool| {
            let mut sent = 0u64;
            while sent < 2 << 30 {
                let ok = if chunked {
                    write!(w, "{:x}\r\n", chunk.len())
                        .and_then(|_| w.write_all(&chunk))
                        .and_then(|_| w.write_all(b"\r\n"))
                } else {
                    w.write_all(&chunk)
                };
                if ok.is_err() {
                    return;
                }
                sent += chunk.len() as u64;
            }
        };
        match answer {
            Answer::Endless { chunked } => {
                let te = if chunked {
                    "Transfer-Encoding: chunked\r\n"
                } else {
                    ""
                };
                if write!(w, "{head}{te}\r\n").is_ok() {
                    endless(&mut w, chunked);
                }
            }
            Answer::Announce(n) => {
                if write!(w, "{head}Content-Length: {n}\r\n\r\n").is_ok() {
                    endless(&mut w, false);
                }
            }
            Answer::Body(b) => {
                let _ = write!(w, "{head}\r\n").and_then(|_| w.write_all(b));
            }
        }
    }

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn assert_nothing_kept(store: &BlobStore) {
        assert!(store.list().unwrap().is_empty(), "no blob kept");
        let ingest: Vec<_> = std::fs::read_dir(store.root().join("ingest"))
            .unwrap()
            .collect();
        assert!(ingest.is_empty(), "no temp file left: {ingest:?}");
    }

    fn reference(addr: &str) -> Reference {
        Reference::parse(&format!("{addr}/evil:1")).unwrap()
    }

    #[test]
    fn a_blob_streamed_past_its_declared_size_is_discarded() {
        for chunked in [false, true] {
            let r = reference(&serve(Answer::Endless { chunked }));
            let (_d, store) = store();
            let digest = Digest::of(b"what the manifest names");
            let start = Instant::now();
            let e = Client::new()
                .blob_into_store(&r, &digest, 104, &store)
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("registry sent more than the 104 bytes its manifest declares for {digest}; download discarded")
            );
            assert!(start.elapsed() < Duration::from_secs(10), "fails fast");
            assert_nothing_kept(&store);
        }
    }

    #[test]
    fn a_content_length_over_the_declared_size_is_refused_up_front() {
        let r = reference(&serve(Answer::Announce(2 << 30)));
        let (_d, store) = store();
        let digest = Digest::of(b"x");
        let e = Client::new()
            .blob_into_store(&r, &digest, 104, &store)
            .unwrap_err();
        assert!(
            matches!(e, Error::Size(SizeError::Announced { announced, .. }) if announced == 2 << 30),
            "{e}"
        );
        assert!(e.to_string().ends_with("download refused"), "{e}");
        assert_nothing_kept(&store);
    }

    #[test]
    fn a_blob_shorter_than_declared_is_discarded() {
        let r = reference(&serve(Answer::Body(&[b'x'; 50])));
        let (_d, store) = store();
        let digest = Digest::of(&[b'x'; 104]);
        let e = Client::new()
            .blob_into_store(&r, &digest, 104, &store)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("registry sent only 50 of the 104 bytes its manifest declares for {digest}; download discarded")
        );
        assert_nothing_kept(&store);
    }

    #[test]
    fn a_blob_of_its_declared_size_is_stored() {
        let r = reference(&serve(Answer::Body(b"good layer bytes")));
        let (_d, store) = store();
        let digest = Digest::of(b"good layer bytes");
        let size = Client::new()
            .blob_into_store(&r, &digest, 16, &store)
            .unwrap();
        assert_eq!(size, 16);
        assert_eq!(store.list().unwrap(), vec![digest]);
    }

    #[test]
    fn documents_are_capped() {
        // A manifest by tag: nothing declares its size, the cap holds it.
        let r = reference(&serve(Answer::Endless { chunked: true }));
        let e = Client::new().manifest(&r).unwrap_err();
        assert!(
            matches!(e, Error::Size(SizeError::TooLong { limit: Limit::Cap(c), .. }) if c == MANIFEST_CAP),
            "{e}"
        );
        // A config declared bigger than a config may be: refused before
        // anything is asked (nothing listens on port 1).
        let r = reference("127.0.0.1:1");
        let e = Client::new()
            .blob_bytes(&r, &Digest::of(b"c"), 2 << 30, crate::CONFIG_CAP)
            .unwrap_err();
        assert!(
            matches!(e, Error::Size(SizeError::DeclaredOverCap { .. })),
            "{e}"
        );
    }
}

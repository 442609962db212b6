//! Requests to one or more registries, with the auth handshake done once
//! per registry and scope.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;

use engine_cache::{BlobStore, Digest};
use ureq::http::Response;
use ureq::Body;

use crate::auth::{basic_credentials, parse_challenge, Challenge};
use crate::reference::Reference;
use crate::{Error, Result, MANIFEST_ACCEPT};

/// Manifests and configs are small; anything bigger is refused.
const MAX_DOCUMENT: u64 = 32 << 20;

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
        format!("{}://{}/v2/{}", r.scheme(), r.api_host(), r.repository)
    }

    fn scope(r: &Reference, push: bool) -> String {
        let actions = if push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", r.repository)
    }

    fn auth_key(r: &Reference, push: bool) -> String {
        format!("{} {}", r.registry, Self::scope(r, push))
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
            message: e.to_string(),
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
            Some(Challenge::Basic) => match basic_credentials(&r.registry) {
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
            Error::Other(format!("{}: bearer challenge without a realm", r.registry))
        })?;
        let mut url = format!("{realm}?scope={}", Self::scope(r, push));
        if let Some(s) = params.get("service") {
            url.push_str(&format!("&service={s}"));
        }
        let basic = basic_credentials(&r.registry).map(|b| format!("Basic {b}"));
        let mut resp = self.raw(Method::Get, &url, &[], basic.as_deref(), None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(Method::Get, &url, resp));
        }
        let v: serde_json::Value = serde_json::from_slice(&read_limited(&mut resp, &url)?)
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

    /// The manifest or index `r` names. Checked against the reference's
    /// digest when it has one.
    pub fn manifest(&self, r: &Reference) -> Result<Fetched> {
        let url = format!("{}/manifests/{}", Self::base(r), r.object());
        let accept = vec![("Accept", MANIFEST_ACCEPT.join(", "))];
        let mut resp = self.request(Method::Get, &url, r, false, &accept, None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(Method::Get, &url, resp));
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .unwrap_or_default();
        let bytes = read_limited(&mut resp, &url)?;
        let digest = Digest::of(&bytes);
        if let Some(want) = &r.digest {
            if digest.to_string() != *want {
                return Err(Error::Digest {
                    what: "manifest",
                    url,
                    expected: want.clone(),
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

    /// A small blob (a config), checked against its digest.
    pub fn blob_bytes(&self, r: &Reference, digest: &Digest) -> Result<Vec<u8>> {
        let url = format!("{}/blobs/{digest}", Self::base(r));
        let mut resp = self.request(Method::Get, &url, r, false, &[], None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(Method::Get, &url, resp));
        }
        let bytes = read_limited(&mut resp, &url)?;
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

    /// Stream a blob into the store; the store checks the digest before
    /// the blob gets its name.
    pub fn blob_into_store(
        &self,
        r: &Reference,
        digest: &Digest,
        store: &BlobStore,
    ) -> Result<u64> {
        let url = format!("{}/blobs/{digest}", Self::base(r));
        let resp = self.request(Method::Get, &url, r, false, &[], None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(Method::Get, &url, resp));
        }
        let mut reader = resp.into_body().into_reader();
        let (_, size) = store
            .put_reader(&mut reader, Some(digest))
            .map_err(|e| match e {
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
            format!("{}://{}{location}", r.scheme(), r.api_host())
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
                message: e.to_string(),
            })?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(Method::Put, &put_url, resp));
        }
        Ok(())
    }

    /// Put a manifest or index under `r`'s tag (or digest).
    pub fn push_manifest(&self, r: &Reference, media_type: &str, bytes: &[u8]) -> Result<()> {
        let url = format!("{}/manifests/{}", Self::base(r), r.object());
        let headers = [("Content-Type", media_type.to_string())];
        let resp = self.request(Method::Put, &url, r, true, &headers, Some(bytes))?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(Method::Put, &url, resp));
        }
        Ok(())
    }
}

fn read_limited(resp: &mut Response<Body>, url: &str) -> Result<Vec<u8>> {
    resp.body_mut()
        .with_config()
        .limit(MAX_DOCUMENT)
        .read_to_vec()
        .map_err(|e| Error::Http {
            method: "GET",
            url: url.to_string(),
            message: e.to_string(),
        })
}

//! The tenant of a request, and optional tenant authentication.
//!
//! Without `--auth.tenants-file` a request names its tenant (`X-Scope-OrgID`, else the
//! basic-auth user) and is believed, as in Cortex and Mimir. With it, the file lists each
//! tenant's password as a SHA-256 digest:
//!
//! ```yaml
//! tenants:
//!   team-a: {password_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
//! admin: {password_sha256: ...}          # user `admin` unless `user:` says otherwise
//! ```
//!
//! and the basic-auth user is the tenant only if its password matches; a bare `X-Scope-OrgID`
//! is believed only with `--auth.trust-org-id-header` (behind an authenticating proxy).
//! Processes call each other over gRPC with a cluster token derived from the admin credential
//! (`x-muninn-cluster-token`); an ingester refuses calls without it (`UNAUTHENTICATED`).
//! Digests are compared in constant time; passwords and digests are never logged. The file is
//! re-read with the runtime config; one that fails to load keeps the last good one.

use std::collections::HashMap;
use std::path::PathBuf;

use http::HeaderMap;
use muninn_proto::tenant::{TenantError, TenantId};
use parking_lot::{Mutex, RwLock};
use subtle::ConstantTimeEq;

use crate::Error;

/// Why a request is not let in (always 401 / `UNAUTHENTICATED`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("{0}")]
    Tenant(#[from] TenantError),
    #[error("authentication required: basic auth with the tenant as user and its password")]
    Missing,
    #[error("invalid credentials for user {0:?}")]
    BadCredentials(String),
    #[error(
        "X-Scope-OrgID alone is not trusted here (--auth.trust-org-id-header is off): use basic auth"
    )]
    UntrustedHeader,
    #[error("admin credentials required")]
    NotAdmin,
    #[error(
        "internal gRPC calls need the cluster token (x-muninn-cluster-token) of this cluster's tenants file"
    )]
    ClusterToken,
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default)]
    tenants: HashMap<String, Credential>,
    #[serde(default)]
    admin: Option<AdminCredential>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Credential {
    password_sha256: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminCredential {
    #[serde(default)]
    user: Option<String>,
    password_sha256: String,
}

/// Loaded credentials: digests by user.
#[derive(Default)]
struct Credentials {
    tenants: HashMap<String, [u8; 32]>,
    admin: Option<(String, [u8; 32])>,
    /// The token Muninn processes present to each other over gRPC (hex), derived from the
    /// admin credential's digest, which every process reads from the same file.
    cluster_token: Option<String>,
}

/// Resolves and authenticates the tenant of requests.
pub struct Authenticator {
    multitenancy: bool,
    path: Option<PathBuf>,
    trust_org_id_header: bool,
    creds: RwLock<Credentials>,
    last_text: Mutex<Option<String>>,
    /// Loads of the tenants file that failed (the last good one stays).
    pub failures: prometheus_client::metrics::counter::Counter,
}

impl Authenticator {
    pub fn new(multitenancy: bool, path: Option<PathBuf>, trust_org_id_header: bool) -> Self {
        Self {
            multitenancy,
            path,
            trust_org_id_header,
            creds: RwLock::new(Credentials::default()),
            last_text: Mutex::new(None),
            failures: Default::default(),
        }
    }

    /// The tenants file, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Whether requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.path.is_some()
    }

    /// Re-reads the tenants file if it changed.
    pub fn reload(&self) -> Result<bool, Error> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let text = std::fs::read_to_string(path).map_err(|source| {
            *self.last_text.lock() = None;
            self.failures.inc();
            let e = Error::Read {
                path: path.clone(),
                source,
            };
            tracing::error!(error = %e, "tenants file not loaded; the last good one stays in force");
            e
        })?;
        let mut last = self.last_text.lock();
        if last.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        *last = Some(text.clone());
        drop(last);
        match parse(&text) {
            Ok(c) => {
                let n = c.tenants.len();
                *self.creds.write() = c;
                tracing::info!(path = %path.display(), tenants = n, "tenants file loaded");
                Ok(true)
            }
            Err(message) => {
                self.failures.inc();
                let e = Error::Parse {
                    path: path.clone(),
                    message,
                };
                tracing::error!(error = %e, "tenants file not loaded; the last good one stays in force");
                Err(e)
            }
        }
    }

    /// The tenant of a request with these headers.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<TenantId, AuthError> {
        if self.path.is_none() {
            return Ok(TenantId::from_headers(headers, self.multitenancy)?);
        }
        if self.trust_org_id_header && headers.contains_key("x-scope-orgid") {
            return Ok(TenantId::from_headers(headers, true)?);
        }
        match basic_auth(headers)? {
            Some((user, password)) => {
                let tenant = TenantId::new(&user)?;
                let creds = self.creds.read();
                match creds.tenants.get(&user) {
                    Some(digest) if verify(&password, digest) => Ok(tenant),
                    _ => Err(AuthError::BadCredentials(user)),
                }
            }
            None if headers.contains_key("x-scope-orgid") => Err(AuthError::UntrustedHeader),
            None => Err(AuthError::Missing),
        }
    }

    /// The token this process presents on internal gRPC calls: with authentication on and an
    /// admin credential in the tenants file, a digest derived from it (every process reads
    /// the same file, so they agree without another secret).
    pub fn cluster_token(&self) -> Option<String> {
        self.path.as_ref()?;
        self.creds.read().cluster_token.clone()
    }

    /// Checks the cluster token of an internal gRPC call (`UNAUTHENTICATED` when wrong or
    /// missing). Open when authentication is off or the file has no admin credential.
    pub fn check_cluster_token(&self, presented: Option<&[u8]>) -> Result<(), AuthError> {
        let Some(want) = self.cluster_token() else {
            return Ok(());
        };
        match presented {
            Some(got) if bool::from(got.ct_eq(want.as_bytes())) => Ok(()),
            _ => Err(AuthError::ClusterToken),
        }
    }

    /// Checks the admin credential (admin endpoints). Open when authentication is off.
    pub fn admin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        if self.path.is_none() {
            return Ok(());
        }
        let Some((user, password)) = basic_auth(headers)? else {
            return Err(AuthError::NotAdmin);
        };
        let creds = self.creds.read();
        match &creds.admin {
            Some((admin_user, digest)) if *admin_user == user && verify(&password, digest) => {
                Ok(())
            }
            _ => Err(AuthError::NotAdmin),
        }
    }
}

fn parse(text: &str) -> Result<Credentials, String> {
    let file: TenantsFile = if text.trim().is_empty() {
        TenantsFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    let mut out = Credentials::default();
    for (tenant, c) in file.tenants {
        TenantId::new(&tenant).map_err(|e| format!("tenants: {tenant:?}: {e}"))?;
        let d = hex_digest(&c.password_sha256)
            .ok_or_else(|| format!("tenants: {tenant:?}: password_sha256 is not 64 hex digits"))?;
        out.tenants.insert(tenant, d);
    }
    if let Some(a) = file.admin {
        let d =
            hex_digest(&a.password_sha256).ok_or("admin: password_sha256 is not 64 hex digits")?;
        let mut seed = b"muninn cluster token\0".to_vec();
        seed.extend_from_slice(&d);
        out.cluster_token = Some(hex(
            ring::digest::digest(&ring::digest::SHA256, &seed).as_ref()
        ));
        out.admin = Some((a.user.unwrap_or_else(|| "admin".into()), d));
    }
    Ok(out)
}

/// SHA-256 of `password` compared with `digest` in constant time.
fn verify(password: &[u8], digest: &[u8; 32]) -> bool {
    let got = ring::digest::digest(&ring::digest::SHA256, password);
    got.as_ref().ct_eq(digest.as_slice()).into()
}

/// The lowercase hex SHA-256 of `password` (what the tenants file holds).
pub fn sha256_hex(password: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, password.as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_digest(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// User and password of a `Basic` Authorization header; `None` without one.
fn basic_auth(headers: &HeaderMap) -> Result<Option<(String, Vec<u8>)>, AuthError> {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let s = v.to_str().map_err(|_| TenantError::BadAuthorization)?;
    let Some((scheme, rest)) = s.split_once(' ') else {
        return Err(TenantError::BadAuthorization.into());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded =
        muninn_proto::tenant::base64_decode(rest.trim()).ok_or(TenantError::BadAuthorization)?;
    let pos = decoded.iter().position(|&b| b == b':');
    let (user, password) = match pos {
        Some(p) => (&decoded[..p], decoded[p + 1..].to_vec()),
        None => (&decoded[..], Vec::new()),
    };
    let user = String::from_utf8(user.to_vec()).map_err(|_| TenantError::BadAuthorization)?;
    Ok(Some((user, password)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderMap {
        let raw = format!("{user}:{password}");
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            format!(
                "Basic {}",
                muninn_proto::tenant::base64_encode(raw.as_bytes())
            )
            .parse()
            .unwrap(),
        );
        h
    }

    #[test]
    fn passwords_and_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.yaml");
        std::fs::write(
            &path,
            format!(
                "tenants:\n  team-a: {{password_sha256: {}}}\nadmin: {{password_sha256: {}}}\n",
                sha256_hex("secret-a"),
                sha256_hex("root")
            ),
        )
        .unwrap();
        let a = Authenticator::new(true, Some(path.clone()), false);
        assert!(a.reload().unwrap());
        assert_eq!(
            a.tenant(&basic("team-a", "secret-a")).unwrap().as_str(),
            "team-a"
        );
        assert_eq!(
            a.tenant(&basic("team-a", "wrong")),
            Err(AuthError::BadCredentials("team-a".into()))
        );
        assert!(a.tenant(&basic("team-a", "")).is_err());
        assert!(a.tenant(&basic("team-b", "secret-a")).is_err());
        assert_eq!(a.tenant(&HeaderMap::new()), Err(AuthError::Missing));
        let mut bare = HeaderMap::new();
        bare.insert("x-scope-orgid", "team-a".parse().unwrap());
        assert_eq!(a.tenant(&bare), Err(AuthError::UntrustedHeader));
        // Basic auth wins over an untrusted header.
        let mut both = basic("team-a", "secret-a");
        both.insert("x-scope-orgid", "team-b".parse().unwrap());
        assert_eq!(a.tenant(&both).unwrap().as_str(), "team-a");
        assert!(a.admin(&basic("admin", "root")).is_ok());
        assert!(a.admin(&basic("admin", "nope")).is_err());
        assert!(a.admin(&basic("team-a", "secret-a")).is_err());
        let token = a.cluster_token().unwrap();
        assert!(a.check_cluster_token(Some(token.as_bytes())).is_ok());
        assert_eq!(
            a.check_cluster_token(Some(b"guess")),
            Err(AuthError::ClusterToken)
        );
        assert_eq!(a.check_cluster_token(None), Err(AuthError::ClusterToken));
        assert!(
            !token.contains(&sha256_hex("root")),
            "not the digest itself"
        );
        let trusting = Authenticator::new(true, Some(path.clone()), true);
        trusting.reload().unwrap();
        assert_eq!(trusting.tenant(&bare).unwrap().as_str(), "team-a");
        // A broken file keeps the last good credentials.
        std::fs::write(&path, "tenants: {team-a: {password: x}}").unwrap();
        assert!(a.reload().is_err());
        assert!(a.tenant(&basic("team-a", "secret-a")).is_ok());
        // Without a file: the header or user is believed, as before.
        let open = Authenticator::new(true, None, false);
        assert_eq!(open.tenant(&bare).unwrap().as_str(), "team-a");
        assert!(open.admin(&HeaderMap::new()).is_ok());
        assert!(open.check_cluster_token(None).is_ok());
    }
}

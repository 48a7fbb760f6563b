//! Tenant ids: validated once, at the edge, before they touch a path, a map or a log line.
//!
//! A request names its tenant with the `X-Scope-OrgID` header or, because Prometheus 2.42 cannot
//! send custom headers, with the user name of HTTP basic auth.

use std::fmt;

use http::HeaderMap;

/// Longest tenant id accepted (as Cortex/Mimir).
pub const MAX_TENANT_ID_LEN: usize = 150;

/// Tenant every request belongs to when multi-tenancy is disabled.
pub const ANONYMOUS: &str = "anonymous";

/// A tenant id that passed [`TenantId::new`]: at most 150 characters of `[A-Za-z0-9!_.*'()-]`,
/// never `.` or `..`, so it is safe as a path component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

/// Why a request has no usable tenant.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TenantError {
    #[error("no org id: set the X-Scope-OrgID header or a basic-auth user name")]
    Missing,
    #[error("tenant id is empty")]
    Empty,
    #[error("tenant id is longer than {MAX_TENANT_ID_LEN} characters")]
    TooLong,
    #[error("tenant id contains an unsupported character {0:?}")]
    BadChar(char),
    #[error("tenant id cannot be '.' or '..'")]
    Dots,
    #[error("malformed Authorization header")]
    BadAuthorization,
}

impl TenantId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, TenantError> {
        if id.is_empty() {
            return Err(TenantError::Empty);
        }
        if id.len() > MAX_TENANT_ID_LEN {
            return Err(TenantError::TooLong);
        }
        if let Some(c) = id.chars().find(|c| !is_tenant_char(*c)) {
            return Err(TenantError::BadChar(c));
        }
        if id == "." || id == ".." {
            return Err(TenantError::Dots);
        }
        Ok(Self(id.to_owned()))
    }

    /// The tenant of single-tenant installs.
    pub fn anonymous() -> Self {
        Self(ANONYMOUS.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Resolves the tenant of an HTTP request. With multi-tenancy disabled every request is
    /// [`ANONYMOUS`]; otherwise `X-Scope-OrgID`, else the basic-auth user name.
    pub fn from_headers(headers: &HeaderMap, multitenancy: bool) -> Result<Self, TenantError> {
        if !multitenancy {
            return Ok(Self::anonymous());
        }
        if let Some(v) = headers.get("x-scope-orgid") {
            let s = v.to_str().map_err(|_| TenantError::BadChar('\u{fffd}'))?;
            return Self::new(s.trim());
        }
        if let Some(v) = headers.get(http::header::AUTHORIZATION) {
            let s = v.to_str().map_err(|_| TenantError::BadAuthorization)?;
            if let Some(user) = basic_auth_user(s)? {
                return Self::new(&user);
            }
        }
        Err(TenantError::Missing)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '!' | '-' | '_' | '.' | '*' | '\'' | '(' | ')')
}

/// The user name of a `Basic` Authorization value; `None` for other schemes.
fn basic_auth_user(value: &str) -> Result<Option<String>, TenantError> {
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64_decode(rest.trim()).ok_or(TenantError::BadAuthorization)?;
    let decoded = String::from_utf8(decoded).map_err(|_| TenantError::BadAuthorization)?;
    let user = decoded.split_once(':').map_or(decoded.as_str(), |(u, _)| u);
    Ok(Some(user.to_owned()))
}

/// Standard base64 (RFC 4648, with or without padding). Small enough not to need a crate.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Standard base64 with padding (RFC 4648).
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(TenantId::new("team-a_1.prod").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantError::Empty));
        assert_eq!(TenantId::new(".."), Err(TenantError::Dots));
        assert_eq!(TenantId::new("."), Err(TenantError::Dots));
        assert_eq!(TenantId::new("a/b"), Err(TenantError::BadChar('/')));
        assert_eq!(TenantId::new(&"a".repeat(151)), Err(TenantError::TooLong));
        assert!(TenantId::new(&"a".repeat(150)).is_ok());
    }

    #[test]
    fn from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(TenantId::from_headers(&h, true), Err(TenantError::Missing));
        assert_eq!(
            TenantId::from_headers(&h, false).unwrap().as_str(),
            "anonymous"
        );
        // "tenant-b:secret"
        h.insert(
            "authorization",
            "Basic dGVuYW50LWI6c2VjcmV0".parse().unwrap(),
        );
        assert_eq!(
            TenantId::from_headers(&h, true).unwrap().as_str(),
            "tenant-b"
        );
        h.insert("X-Scope-Orgid", "tenant-a".parse().unwrap());
        assert_eq!(
            TenantId::from_headers(&h, true).unwrap().as_str(),
            "tenant-a"
        );
        h.remove("x-scope-orgid");
        h.insert("authorization", "Basic !!!".parse().unwrap());
        assert_eq!(
            TenantId::from_headers(&h, true),
            Err(TenantError::BadAuthorization)
        );
    }

    #[test]
    fn base64() {
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        for s in ["", "a", "ab", "abc", "team-a:secret"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(base64_encode(b"ab"), "YWI=");
    }
}

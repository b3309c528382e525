//! Who is calling. Tokens are compared in constant time and never logged.
//!
//! * Worker token (`Authorization: Bearer <worker token>`) for `/api/workers/*`.
//! * Admin token (`Authorization: Bearer <admin token>`): everything, any user's jobs.
//! * A user is named by a trusted header set by the reverse proxy (default
//!   `X-Forwarded-User`, filled by nginx basic auth); a user sees and changes only their jobs.
//!
//! With no token configured, auth is off and every caller is treated as an admin (the
//! embedded demo); the server logs a warning at startup.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// Why a caller may not do what it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Credentials missing or wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
}

/// Auth settings.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Token for workers.
    pub worker_token: Option<String>,
    /// Token for admins.
    pub admin_token: Option<String>,
    /// Header carrying the user name set by the trusted proxy.
    pub user_header: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("worker_token", &self.worker_token.as_ref().map(|_| "<set>"))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field("user_header", &self.user_header)
            .finish()
    }
}

impl AuthConfig {
    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        self.worker_token.is_some() || self.admin_token.is_some()
    }

    /// Identify the caller from request headers (and, for browsers' WebSockets, a
    /// `token` query parameter).
    pub fn identify(&self, headers: &HeaderMap, query_token: Option<&str>) -> Caller {
        if !self.enabled() {
            return Caller::Admin;
        }
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .or(query_token);
        if let Some(token) = bearer {
            if matches(self.admin_token.as_deref(), token) {
                return Caller::Admin;
            }
            if matches(self.worker_token.as_deref(), token) {
                return Caller::Worker;
            }
            return Caller::BadToken;
        }
        let user = headers
            .get(self.user_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|u| {
                !u.is_empty()
                    && u.len() <= 100
                    && u.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        match user {
            Some(u) => Caller::User(u.to_owned()),
            None => Caller::Anonymous,
        }
    }
}

fn matches(expected: Option<&str>, given: &str) -> bool {
    match expected {
        Some(e) => bool::from(e.as_bytes().ct_eq(given.as_bytes())),
        None => false,
    }
}

/// The identified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Admin token, or auth is off.
    Admin,
    /// Worker token.
    Worker,
    /// A user named by the trusted header.
    User(String),
    /// A bearer token that matches nothing.
    BadToken,
    /// Nothing presented.
    Anonymous,
}

impl Caller {
    /// Require a worker (or admin).
    pub fn require_worker(&self) -> Result<(), AuthError> {
        match self {
            Caller::Admin | Caller::Worker => Ok(()),
            Caller::User(_) => Err(AuthError::Forbidden("worker token required")),
            Caller::BadToken => Err(AuthError::Unauthorized("invalid token")),
            Caller::Anonymous => Err(AuthError::Unauthorized("worker token required")),
        }
    }

    /// Require an admin.
    pub fn require_admin(&self) -> Result<(), AuthError> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Worker | Caller::User(_) => Err(AuthError::Forbidden("admin token required")),
            Caller::BadToken => Err(AuthError::Unauthorized("invalid token")),
            Caller::Anonymous => Err(AuthError::Unauthorized("admin token required")),
        }
    }

    /// Require a user or an admin. Returns the user to scope to (`None` = everyone).
    pub fn require_user(&self) -> Result<Option<&str>, AuthError> {
        match self {
            Caller::Admin => Ok(None),
            Caller::User(u) => Ok(Some(u)),
            Caller::Worker => Err(AuthError::Forbidden(
                "user identity or admin token required",
            )),
            Caller::BadToken => Err(AuthError::Unauthorized("invalid token")),
            Caller::Anonymous => Err(AuthError::Unauthorized(
                "no user identity: log in through the proxy",
            )),
        }
    }

    /// Whether this caller may act on a job owned by `owner`.
    pub fn may_touch(&self, owner: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::User(u) => u == owner,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AuthConfig {
        AuthConfig {
            worker_token: Some("wtok".into()),
            admin_token: Some("atok".into()),
            user_header: "X-Forwarded-User".into(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn identifies_callers() {
        let c = cfg();
        assert_eq!(
            c.identify(&headers(&[("authorization", "Bearer atok")]), None),
            Caller::Admin
        );
        assert_eq!(
            c.identify(&headers(&[("authorization", "Bearer wtok")]), None),
            Caller::Worker
        );
        assert_eq!(
            c.identify(&headers(&[("authorization", "Bearer nope")]), None),
            Caller::BadToken
        );
        assert_eq!(
            c.identify(&headers(&[("x-forwarded-user", "user001")]), None),
            Caller::User("user001".into())
        );
        assert_eq!(c.identify(&HeaderMap::new(), None), Caller::Anonymous);
        assert_eq!(c.identify(&HeaderMap::new(), Some("atok")), Caller::Admin);
    }

    #[test]
    fn auth_off_means_admin() {
        let c = AuthConfig::default();
        assert!(!c.enabled());
        assert_eq!(c.identify(&HeaderMap::new(), None), Caller::Admin);
    }

    #[test]
    fn debug_never_shows_tokens() {
        let s = format!("{:?}", cfg());
        assert!(!s.contains("atok") && !s.contains("wtok"));
    }
}

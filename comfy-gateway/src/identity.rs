//! Who is calling. In order:
//!
//! 1. the identity header (default `X-Forwarded-User`) that the platform's
//!    nginx sets after its basic auth — accepted only from a trusted proxy
//!    address, refused (403) from anywhere else, so it cannot be forged;
//! 2. the gateway's own basic auth against an htpasswd file of bcrypt
//!    entries (`htpasswd -B`; the platform's existing file works), when
//!    configured — a verified password is remembered (as a SHA-256 of the
//!    header) so bcrypt runs once per user and password, not per request;
//! 3. `anonymous_user`, for a local demo only (the binary refuses it on an
//!    address other than loopback).

use crate::config::{ConfigError, Identity, User};
use crate::error::GatewayError;
use axum::http::{HeaderMap, header};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// The users and bcrypt hashes of an htpasswd file.
#[derive(Debug, Default)]
pub struct Htpasswd {
    hashes: HashMap<String, String>,
    /// SHA-256 of an `Authorization` value → the user it was verified as.
    verified: Mutex<HashMap<[u8; 32], String>>,
}

const VERIFIED_CACHE: usize = 4096;

impl Htpasswd {
    /// Reads `user:hash` lines; every hash must be bcrypt (`$2y$`, `$2b$`, `$2a$`).
    pub fn load(path: &Path) -> Result<Htpasswd, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|m| ConfigError::Invalid(format!("{}: {m}", path.display())))
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut hashes = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("line {}: not user:hash", n + 1));
            };
            if !["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
                return Err(format!(
                    "line {}: {user}'s hash is not bcrypt (create it with `htpasswd -B`)",
                    n + 1
                ));
            }
            hashes.insert(user.to_owned(), hash.to_owned());
        }
        Ok(Htpasswd {
            hashes,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The user an `Authorization: Basic` value proves, if it does.
    pub async fn verify(&self, authorization: &str) -> Option<String> {
        let key: [u8; 32] = Sha256::digest(authorization.as_bytes()).into();
        if let Some(u) = self
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return Some(u.clone());
        }
        let encoded = authorization
            .strip_prefix("Basic ")
            .or_else(|| authorization.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.hashes.get(user)?.clone();
        let password = password.to_owned();
        // bcrypt is slow on purpose: off the async threads.
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !ok {
            return None;
        }
        let mut v = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if v.len() >= VERIFIED_CACHE {
            v.clear();
        }
        v.insert(key, user.to_owned());
        Some(user.to_owned())
    }
}

/// The user a request comes from.
pub async fn identify<'a>(
    identity: &Identity,
    htpasswd: Option<&Htpasswd>,
    users: &'a [User],
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Result<&'a User, GatewayError> {
    let named = |name: &str| {
        users
            .iter()
            .find(|u| u.id == name)
            .ok_or_else(|| GatewayError::UnknownUser(name.to_owned()))
    };
    if let Some(value) = headers.get(identity.header.as_str()) {
        match peer {
            Some(p) if identity.trusts(p) => {}
            Some(p) => return Err(GatewayError::ForgedIdentity(p)),
            None => return Err(GatewayError::Unauthenticated),
        }
        let name = value.to_str().map(str::trim).unwrap_or_default();
        if name.is_empty() {
            return Err(GatewayError::Unauthenticated);
        }
        return named(name);
    }
    if let (Some(h), Some(auth)) = (
        htpasswd,
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) {
        return match h.verify(auth).await {
            Some(user) => named(&user),
            None => Err(GatewayError::Unauthenticated),
        };
    }
    match &identity.anonymous_user {
        Some(name) => named(name),
        None => Err(GatewayError::Unauthenticated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_entries_verify_once_and_others_are_refused() {
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        let h = Htpasswd::parse(&format!("# users\nalice:{hash}\n")).expect("parse");
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:s3cret")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:wrong")
        );
        assert_eq!(h.verify(&good).await.as_deref(), Some("alice"));
        assert_eq!(
            h.verify(&good).await.as_deref(),
            Some("alice"),
            "from the cache"
        );
        assert_eq!(h.verify(&bad).await, None);
        assert_eq!(h.verify("Bearer x").await, None);
        let apr1 = Htpasswd::parse("bob:$apr1$abc$def").expect_err("not bcrypt");
        assert!(apr1.contains("htpasswd -B"), "{apr1}");
    }
}

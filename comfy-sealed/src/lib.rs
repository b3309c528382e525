//! The Comfy account secrets a job carries from the gateway to the worker
//! that runs it, sealed so the queue never holds them in clear.
//!
//! A frontend signed in to a Comfy account sends `api_key_comfy_org` (and
//! `auth_token_comfy_org`) in the `extra_data` of its `POST /prompt`; API
//! nodes on the GPU ComfyUI need them. The gateway takes them out of
//! `extra_data` and, when it has the platform's sealing key, puts them back
//! as one sealed value under [`SEALED_FIELD`]: XChaCha20-Poly1305 with a
//! random nonce, bound to the job's user (a sealed value copied into
//! another user's job does not open). The worker, holding the same key,
//! opens it into `extra_data` just before it submits the prompt to ComfyUI.
//! The queue stores, lists and logs only the sealed form.
//!
//! The key is 32 bytes, written as 64 hex digits in a file readable by the
//! gateway and the workers only (`openssl rand -hex 32 > sealing.key`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde_json::{Map, Value, json};
use std::path::Path;

/// Keys of `extra_data` that carry the user's Comfy account credentials.
pub const SECRET_KEYS: [&str; 2] = ["api_key_comfy_org", "auth_token_comfy_org"];

/// The `extra_data` key of the sealed secrets.
pub const SEALED_FIELD: &str = "comfy_queue_sealed";

/// The sealed format's version (`v`).
const VERSION: u64 = 1;

/// What goes into the tag besides the secrets: the format and the user.
fn associated_data(user: &str) -> Vec<u8> {
    let mut aad = b"comfy-queue-sealed/v1\0".to_vec();
    aad.extend_from_slice(user.as_bytes());
    aad
}

/// Why secrets could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read.
    #[error("sealing key {path}: {source}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits.
    #[error(
        "sealing key {path}: expected 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`"
    )]
    KeyFormat {
        /// The file.
        path: String,
    },
    /// The sealed value is not in this format.
    #[error("the sealed secrets are malformed: {0}")]
    Malformed(&'static str),
    /// The tag did not verify: another key, another user, or altered bytes.
    #[error("the sealed secrets do not open with this key for this user")]
    WrongKey,
    /// Sealed secrets arrived and no key is configured to open them.
    #[error("the job carries sealed secrets and no sealing key is configured")]
    NoKey,
    /// Sealing failed (the cipher refused: never for valid input).
    #[error("sealing failed")]
    Seal,
}

/// The platform's sealing key.
#[derive(Clone)]
pub struct SealKey(Key);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SealKey {
        SealKey(Key::from(bytes))
    }

    /// A key from its hex form (64 digits, surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Option<SealKey> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).ok()?;
        Some(SealKey::from_bytes(bytes))
    }

    /// Reads a key file (64 hex digits).
    pub fn from_file(path: &Path) -> Result<SealKey, SealError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SealError::KeyFile {
            path: shown.clone(),
            source,
        })?;
        SealKey::from_hex(&text).ok_or(SealError::KeyFormat { path: shown })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0)
    }
}

/// What [`seal`] did with the secrets it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// There were none.
    Nothing,
    /// They were sealed under [`SEALED_FIELD`].
    Sealed(usize),
    /// There was no key: they were removed.
    Removed(usize),
}

/// Takes the Comfy account secrets out of `extra_data` and, with a key,
/// puts them back sealed for `user`. A [`SEALED_FIELD`] the client sent is
/// dropped (only the gateway seals).
pub fn seal(
    extra_data: &mut Map<String, Value>,
    key: Option<&SealKey>,
    user: &str,
) -> Result<Sealed, SealError> {
    extra_data.remove(SEALED_FIELD);
    let mut secrets = Map::new();
    for k in SECRET_KEYS {
        if let Some(v) = extra_data.remove(k) {
            secrets.insert(k.to_owned(), v);
        }
    }
    if secrets.is_empty() {
        return Ok(Sealed::Nothing);
    }
    let n = secrets.len();
    let Some(key) = key else {
        return Ok(Sealed::Removed(n));
    };
    let plain = serde_json::to_vec(&secrets).map_err(|_| SealError::Seal)?;
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = associated_data(user);
    let data = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Seal)?;
    extra_data.insert(
        SEALED_FIELD.to_owned(),
        json!({"v": VERSION, "nonce": B64.encode(nonce), "data": B64.encode(data)}),
    );
    Ok(Sealed::Sealed(n))
}

/// Opens the sealed secrets of `user`'s job back into `extra_data` (and
/// removes [`SEALED_FIELD`] whatever happens). `Ok(0)` when there were none.
pub fn open(
    extra_data: &mut Map<String, Value>,
    key: Option<&SealKey>,
    user: &str,
) -> Result<usize, SealError> {
    let Some(sealed) = extra_data.remove(SEALED_FIELD) else {
        return Ok(0);
    };
    let key = key.ok_or(SealError::NoKey)?;
    if sealed.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return Err(SealError::Malformed("unknown version"));
    }
    let field = |name: &'static str| -> Result<Vec<u8>, SealError> {
        let text = sealed
            .get(name)
            .and_then(Value::as_str)
            .ok_or(SealError::Malformed(name))?;
        B64.decode(text).map_err(|_| SealError::Malformed(name))
    };
    let nonce = field("nonce")?;
    if nonce.len() != 24 {
        return Err(SealError::Malformed("nonce"));
    }
    let data = field("data")?;
    let aad = associated_data(user);
    let plain = key
        .cipher()
        .decrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &data,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::WrongKey)?;
    let secrets: Map<String, Value> =
        serde_json::from_slice(&plain).map_err(|_| SealError::Malformed("contents"))?;
    let mut n = 0;
    for (k, v) in secrets {
        if SECRET_KEYS.contains(&k.as_str()) {
            extra_data.insert(k, v);
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes([b; 32])
    }

    fn extra() -> Map<String, Value> {
        json!({"api_key_comfy_org": "comfyui-abc123", "extra_pnginfo": {"workflow": {"id": "w"}}})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn sealed_secrets_are_not_in_clear_and_open_for_the_same_user() {
        let mut e = extra();
        assert_eq!(
            seal(&mut e, Some(&key(7)), "alice").ok(),
            Some(Sealed::Sealed(1))
        );
        let text = serde_json::to_string(&e).unwrap_or_default();
        assert!(!text.contains("comfyui-abc123"), "{text}");
        assert!(!text.contains("api_key_comfy_org"), "{text}");
        assert!(e.contains_key("extra_pnginfo"));
        let mut opened = e.clone();
        assert_eq!(open(&mut opened, Some(&key(7)), "alice").ok(), Some(1));
        assert_eq!(opened, extra());
    }

    #[test]
    fn another_user_or_key_or_altered_bytes_do_not_open() {
        let mut e = extra();
        seal(&mut e, Some(&key(7)), "alice").ok();
        assert!(matches!(
            open(&mut e.clone(), Some(&key(7)), "bob"),
            Err(SealError::WrongKey)
        ));
        assert!(matches!(
            open(&mut e.clone(), Some(&key(8)), "alice"),
            Err(SealError::WrongKey)
        ));
        assert!(matches!(
            open(&mut e.clone(), None, "alice"),
            Err(SealError::NoKey)
        ));
        let mut altered = e.clone();
        if let Some(d) = altered
            .get_mut(SEALED_FIELD)
            .and_then(|s| s.get_mut("data"))
        {
            let mut bytes = B64
                .decode(d.as_str().unwrap_or_default())
                .unwrap_or_default();
            if let Some(b) = bytes.first_mut() {
                *b ^= 1;
            }
            *d = json!(B64.encode(bytes));
        }
        assert!(matches!(
            open(&mut altered, Some(&key(7)), "alice"),
            Err(SealError::WrongKey)
        ));
        // Whatever happened, the sealed field is gone from what runs.
        assert!(!altered.contains_key(SEALED_FIELD));
    }

    #[test]
    fn without_a_key_secrets_are_removed_and_a_forged_seal_is_dropped() {
        let mut e = extra();
        e.insert(
            SEALED_FIELD.into(),
            json!({"v": 1, "nonce": "x", "data": "y"}),
        );
        assert_eq!(seal(&mut e, None, "alice").ok(), Some(Sealed::Removed(1)));
        assert!(!e.contains_key("api_key_comfy_org"));
        assert!(!e.contains_key(SEALED_FIELD));
        let mut nothing = Map::new();
        assert_eq!(
            seal(&mut nothing, Some(&key(1)), "a").ok(),
            Some(Sealed::Nothing)
        );
        assert!(nothing.is_empty());
    }

    #[test]
    fn two_seals_of_the_same_secrets_differ() {
        let (mut a, mut b) = (extra(), extra());
        seal(&mut a, Some(&key(7)), "alice").ok();
        seal(&mut b, Some(&key(7)), "alice").ok();
        assert_ne!(a[SEALED_FIELD], b[SEALED_FIELD]);
    }

    #[test]
    fn key_files_hold_64_hex_digits() {
        assert!(SealKey::from_hex(&format!("{}\n", "ab".repeat(32))).is_some());
        assert!(SealKey::from_hex("abcd").is_none());
        assert!(SealKey::from_hex(&"zz".repeat(32)).is_none());
    }
}

//! The gateway's configuration file (TOML): the queue, how users are
//! identified, and which ComfyUI each user's frontend runs on.
//!
//! ```toml
//! queue_url = "http://queue:3000"
//!
//! [identity]
//! header = "X-Forwarded-User"          # set by nginx after basic auth
//! trusted_proxies = ["127.0.0.1/32"]   # only these may set it
//!
//! # one CPU ComfyUI per user ...
//! [[users]]
//! id = "user001"
//! upstream = "http://user001:8188"
//!
//! # ... or one shared ComfyUI for everybody (`--multi-user`):
//! # multi_user_upstream = "http://comfy-frontend:8188"
//! # [[users]]
//! # id = "user001"
//! ```

use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use url::Url;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why (with line and column).
        source: Box<toml::de::Error>,
    },
    /// A value is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The queue manager's base URL.
    pub queue_url: Url,
    /// The header the queue trusts for the user name (its `--user-header`).
    #[serde(default = "default_user_header")]
    pub queue_user_header: String,
    /// How a request's user is known.
    #[serde(default)]
    pub identity: Identity,
    /// One shared ComfyUI for every user: the gateway sets ComfyUI's
    /// `comfy-user` header to the user's id (ComfyUI started with
    /// `--multi-user`). Users then need no `upstream`.
    #[serde(default)]
    pub multi_user_upstream: Option<Url>,
    /// The users.
    #[serde(default)]
    pub users: Vec<User>,
    /// Template workflows provisioned into every user's
    /// `workflows/` userdata folder (a directory of `.json` files).
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// The template `/api/default_workflow` answers (a file name in
    /// `templates_dir`), as the seed's `default_workflow_loader` did.
    #[serde(default)]
    pub default_workflow: Option<String>,
    /// Where the gateway keeps what it must remember across restarts
    /// (history entries a user deleted). `None`: memory only.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Largest request body accepted on an intercepted route (a submit).
    #[serde(default = "default_max_submit")]
    pub max_submit_bytes: usize,
    /// How long `/view` of a remote output waits for a running job to store it.
    #[serde(default = "default_view_wait")]
    pub view_wait_secs: u64,
    /// How often the gateway pings a browser's socket. A browser answers by
    /// itself; a socket that has said nothing for three periods (a vanished
    /// client, a half-open connection) is closed with its ComfyUI and queue
    /// sockets.
    #[serde(default = "default_ws_ping")]
    pub ws_ping_secs: u64,
    /// The platform's sealing key (a file of 64 hex digits, shared with the
    /// GPU workers' `--sealing-key-file`): the Comfy account secrets of a
    /// submit travel sealed with it, so the queue never holds them in clear.
    /// `None`: they are removed, and API nodes on the pool run signed out.
    #[serde(default)]
    pub sealing_key_file: Option<PathBuf>,
}

/// How the gateway learns who is calling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The header naming the user, set by the reverse proxy after its
    /// basic auth (nginx: `proxy_set_header X-Forwarded-User $remote_user;`).
    #[serde(default = "default_user_header")]
    pub header: String,
    /// Peer addresses allowed to set that header. A request from anywhere
    /// else that carries it is refused (403): the header is forged.
    #[serde(default = "default_trusted")]
    pub trusted_proxies: Vec<IpNet>,
    /// The gateway's own basic auth: an htpasswd file of bcrypt entries
    /// (`htpasswd -B`), used when a request carries no identity header.
    #[serde(default)]
    pub htpasswd: Option<PathBuf>,
    /// Who a request with no identity at all is: for a local demo only
    /// (the `comfy-gateway` binary refuses it unless it listens on loopback).
    #[serde(default)]
    pub anonymous_user: Option<String>,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            header: default_user_header(),
            trusted_proxies: default_trusted(),
            htpasswd: None,
            anonymous_user: None,
        }
    }
}

impl Identity {
    /// Whether `peer` may name the user.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            v4 => v4,
        };
        self.trusted_proxies.iter().any(|n| n.contains(&peer))
    }
}

/// One user of the platform.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user's id: the name the proxy's basic auth gives, the queue's
    /// `user_id`, and ComfyUI's `comfy-user` in multi-user mode.
    pub id: String,
    /// This user's own ComfyUI (per-user mode).
    #[serde(default)]
    pub upstream: Option<Url>,
    /// The path prefix the user's frontend is served under; default `/<id>`.
    #[serde(default)]
    pub prefix: Option<String>,
}

impl User {
    /// The path prefix, starting with `/` and without a trailing `/`.
    pub fn prefix(&self) -> String {
        let p = self.prefix.clone().unwrap_or_else(|| self.id.clone());
        format!("/{}", p.trim_matches('/'))
    }
}

fn default_user_header() -> String {
    "X-Forwarded-User".to_owned()
}

fn default_trusted() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn default_max_submit() -> usize {
    12 * 1024 * 1024
}

fn default_view_wait() -> u64 {
    120
}

fn default_ws_ping() -> u64 {
    30
}

/// The pattern the queue accepts for user ids.
fn valid_user_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: ids, prefixes, upstreams.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.ws_ping_secs == 0 {
            return bad("ws_ping_secs must be at least 1".into());
        }
        if self.users.is_empty() {
            return bad("no [[users]]: the gateway would serve nobody".into());
        }
        let mut ids = std::collections::HashSet::new();
        let mut prefixes = std::collections::HashSet::new();
        for u in &self.users {
            if !valid_user_id(&u.id) {
                return bad(format!(
                    "user id {:?} must match ^[A-Za-z0-9_-]{{1,100}}$ (the queue's user ids)",
                    u.id
                ));
            }
            if !ids.insert(u.id.as_str()) {
                return bad(format!("user {:?} is listed twice", u.id));
            }
            let prefix = u.prefix();
            if prefix == "/" || prefix.contains("//") || prefix.contains('%') {
                return bad(format!(
                    "user {:?}: prefix {prefix:?} is not a path segment",
                    u.id
                ));
            }
            if !prefixes.insert(prefix.clone()) {
                return bad(format!("prefix {prefix:?} is given to two users"));
            }
            match (&u.upstream, &self.multi_user_upstream) {
                (None, None) => {
                    return bad(format!(
                        "user {:?} has no upstream and there is no multi_user_upstream",
                        u.id
                    ));
                }
                (Some(_), Some(_)) => {
                    return bad(format!(
                        "user {:?} has an upstream, but multi_user_upstream is set: choose one mode",
                        u.id
                    ));
                }
                _ => {}
            }
        }
        if let Some(a) = &self.identity.anonymous_user
            && self.user(a).is_none()
        {
            return bad(format!("anonymous_user {a:?} is not one of the [[users]]"));
        }
        if let Some(name) = &self.default_workflow
            && self.templates_dir.is_none()
        {
            return bad(format!(
                "default_workflow {name:?} needs templates_dir to be set"
            ));
        }
        Ok(())
    }

    /// The user whose frontend is served under the first segment of `path`.
    pub fn user_by_prefix(&self, path: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            let p = u.prefix();
            path == p || path.starts_with(&format!("{p}/"))
        })
    }

    /// The user named `id`.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The ComfyUI that serves `user`'s frontend.
    pub fn upstream_of<'a>(&'a self, user: &'a User) -> Option<&'a Url> {
        user.upstream.as_ref().or(self.multi_user_upstream.as_ref())
    }

    /// Whether one shared ComfyUI serves everybody.
    pub fn multi_user(&self) -> bool {
        self.multi_user_upstream.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t.toml".into(),
            source: Box::new(e),
        })?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn per_user_upstreams_and_default_prefixes() {
        let c = parse(
            r#"queue_url = "http://q:3000"
               [[users]]
               id = "user001"
               upstream = "http://a:8188"
               [[users]]
               id = "user002"
               upstream = "http://b:8188"
               prefix = "/u2/""#,
        )
        .expect("valid");
        assert_eq!(
            c.user_by_prefix("/user001/api/prompt")
                .map(|u| u.id.as_str()),
            Some("user001")
        );
        assert_eq!(
            c.user_by_prefix("/u2").map(|u| u.id.as_str()),
            Some("user002")
        );
        assert!(c.user_by_prefix("/user0011/x").is_none());
        assert!(c.user_by_prefix("/user002/").is_none());
        assert!(!c.multi_user());
        assert!(c.identity.trusts("127.0.0.1".parse().expect("ip")));
        assert!(c.identity.trusts("::ffff:127.0.0.1".parse().expect("ip")));
        assert!(!c.identity.trusts("10.0.0.9".parse().expect("ip")));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (r#"queue_url = "http://q""#, "no [[users]]"),
            (
                "queue_url = \"http://q\"\n[[users]]\nid = \"a b\"\nupstream = \"http://a\"",
                "must match",
            ),
            (
                "queue_url = \"http://q\"\n[[users]]\nid = \"a\"",
                "no upstream",
            ),
            (
                "queue_url = \"http://q\"\nmulti_user_upstream = \"http://m\"\n[[users]]\nid = \"a\"\nupstream = \"http://a\"",
                "choose one mode",
            ),
            (
                "queue_url = \"http://q\"\nmulti_user_upstream = \"http://m\"\n[[users]]\nid = \"a\"\n[[users]]\nid = \"a\"",
                "twice",
            ),
            ("queue_url = \"http://q\"\nbogus = 1", "unknown field"),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}

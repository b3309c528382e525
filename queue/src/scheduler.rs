//! Scheduling rules shared by every store backend.
//!
//! Order of claims:
//! 1. lowest `priority` first;
//! 2. within a priority, fair share across users: the user served least recently (a global
//!    claim counter recorded per user; never served counts as 0) goes first, ties broken by
//!    `user_id`;
//! 3. within a user, FIFO by submission sequence (a requeued job keeps its place).
//!
//! A job is only offered to a worker that satisfies its [`Requirements`] (what the job
//! needs) with its [`WorkerInfo`] (what the worker registered); jobs a worker cannot run
//! are skipped, so the next eligible job in the order above is given instead.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::input::{InputError, Problem};

/// A worker as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerInfo {
    /// Worker id.
    pub worker_id: String,
    /// ComfyUI version the worker drives, e.g. `0.9.2`.
    pub comfyui_version: Option<String>,
    /// The ComfyUI line or flavour (free text, e.g. `stable`).
    pub line: Option<String>,
    /// Capabilities, e.g. `jobs_api`.
    pub capabilities: Vec<String>,
    /// SHA-256 (64 lowercase hex digits) of the node catalogue (`/object_info`) the worker
    /// published with this registration; a blob of the file store that the sweep keeps.
    #[serde(default)]
    pub catalogue: Option<String>,
}

/// What a job needs from a worker, read from `metadata.requires`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Requirements {
    /// A semver requirement on the worker's ComfyUI version, e.g. `>=0.9`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comfyui: Option<String>,
    /// Capabilities the worker must all have (sorted, deduplicated).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub capabilities: Vec<String>,
}

impl Requirements {
    /// Read `metadata.requires = {comfyui: "<semver req>", capabilities: ["..."]}`.
    pub fn from_metadata(metadata: &Value) -> Result<Requirements, InputError> {
        let Some(req) = metadata.get("requires") else {
            return Ok(Requirements::default());
        };
        let obj = match req {
            Value::Null => return Ok(Requirements::default()),
            Value::Object(o) => o,
            _ => {
                return Err(InputError::new(
                    "metadata.requires",
                    Problem::Type,
                    "`metadata.requires` must be an object",
                ));
            }
        };
        let comfyui = match obj.get("comfyui") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                if semver::VersionReq::parse(s.trim()).is_err() {
                    return Err(InputError::new(
                        "metadata.requires.comfyui",
                        Problem::VersionRequirement,
                        format!("`metadata.requires.comfyui` is not a semver requirement: {s:?}"),
                    ));
                }
                Some(s.trim().to_owned())
            }
            Some(_) => {
                return Err(InputError::new(
                    "metadata.requires.comfyui",
                    Problem::Type,
                    "`metadata.requires.comfyui` must be a string",
                ));
            }
        };
        let mut capabilities = Vec::new();
        match obj.get("capabilities") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) if !s.is_empty() && s.len() <= 100 => {
                            capabilities.push(s.clone());
                        }
                        _ => {
                            return Err(InputError::new(
                                "metadata.requires.capabilities",
                                Problem::Type,
                                "`metadata.requires.capabilities` must be an array of non-empty strings",
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(InputError::new(
                    "metadata.requires.capabilities",
                    Problem::Type,
                    "`metadata.requires.capabilities` must be an array of strings",
                ));
            }
        }
        capabilities.sort();
        capabilities.dedup();
        Ok(Requirements {
            comfyui,
            capabilities,
        })
    }

    /// True when the job can run anywhere.
    pub fn is_empty(&self) -> bool {
        self.comfyui.is_none() && self.capabilities.is_empty()
    }

    /// A canonical string naming this requirement set; `""` for no requirements.
    /// Jobs with the same class are interchangeable for routing.
    pub fn class_key(&self) -> String {
        if self.is_empty() {
            String::new()
        } else {
            serde_json::to_string(self).unwrap_or_default()
        }
    }

    /// Parse a class key back (unknown or garbled keys mean "nobody can run it").
    pub fn from_class_key(key: &str) -> Option<Requirements> {
        if key.is_empty() {
            return Some(Requirements::default());
        }
        serde_json::from_str(key).ok()
    }

    /// Whether `worker` satisfies these requirements.
    pub fn satisfied_by(&self, worker: &WorkerInfo) -> bool {
        if let Some(req) = &self.comfyui {
            let Ok(req) = semver::VersionReq::parse(req) else {
                return false;
            };
            let Some(version) = worker.comfyui_version.as_deref().and_then(parse_version) else {
                return false;
            };
            if !req.matches(&version) {
                return false;
            }
        }
        self.capabilities
            .iter()
            .all(|c| worker.capabilities.iter().any(|w| w == c))
    }
}

/// Whether the job class named by `key` can run on `worker`.
pub fn class_runs_on(key: &str, worker: &WorkerInfo) -> bool {
    Requirements::from_class_key(key).is_some_and(|r| r.satisfied_by(worker))
}

/// Lenient version parse: accepts `v0.9.2`, `0.9`, `0.11.1-rc1`.
pub fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.trim().trim_start_matches('v');
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    let (core, rest) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let padded = match parts.len() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn worker(version: Option<&str>, caps: &[&str]) -> WorkerInfo {
        WorkerInfo {
            worker_id: "w".into(),
            comfyui_version: version.map(str::to_owned),
            line: None,
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
            catalogue: None,
        }
    }

    #[test]
    fn version_and_capabilities_match() {
        let r = Requirements::from_metadata(
            &json!({"requires": {"comfyui": ">=0.9", "capabilities": ["jobs_api"]}}),
        )
        .unwrap();
        assert!(r.satisfied_by(&worker(Some("0.11.1"), &["jobs_api", "x"])));
        assert!(r.satisfied_by(&worker(Some("v0.9"), &["jobs_api"])));
        assert!(!r.satisfied_by(&worker(Some("0.3.40"), &["jobs_api"])));
        assert!(!r.satisfied_by(&worker(Some("0.11.1"), &[])));
        assert!(!r.satisfied_by(&worker(None, &["jobs_api"])));
    }

    #[test]
    fn no_requirements_run_anywhere() {
        let r = Requirements::from_metadata(&json!({"batch_index": 1})).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.class_key(), "");
        assert!(class_runs_on("", &worker(None, &[])));
    }

    #[test]
    fn class_key_round_trips_and_is_canonical() {
        let a =
            Requirements::from_metadata(&json!({"requires": {"capabilities": ["b", "a", "b"]}}))
                .unwrap();
        let b = Requirements::from_metadata(&json!({"requires": {"capabilities": ["a", "b"]}}))
            .unwrap();
        assert_eq!(a.class_key(), b.class_key());
        assert_eq!(Requirements::from_class_key(&a.class_key()), Some(a));
    }

    #[test]
    fn bad_requirements_name_the_field() {
        let e = Requirements::from_metadata(&json!({"requires": {"comfyui": "not a req"}}))
            .unwrap_err();
        assert_eq!(e.field, "metadata.requires.comfyui");
        let e =
            Requirements::from_metadata(&json!({"requires": {"capabilities": "x"}})).unwrap_err();
        assert_eq!(e.field, "metadata.requires.capabilities");
    }
}

//! `metadata.requires`: what a job asks of a worker's registration.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a job needs from a worker, read from `metadata.requires`, plus the node catalogues
/// of workers that handed it back because their ComfyUI could not run its prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Requirements {
    /// A semver requirement on the worker's ComfyUI version, e.g. `>=0.9`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comfyui: Option<String>,
    /// Capabilities the worker must all have (sorted, deduplicated).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub capabilities: Vec<String>,
    /// SHA-256s of node catalogues the job may not run on (sorted, deduplicated): a worker
    /// publishing one of them handed the job back unrun. Never set by a client.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub not_on: Vec<String>,
}

/// What a worker offers, as it registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Server<'a> {
    /// Its ComfyUI version, e.g. `0.9.2`.
    pub version: Option<&'a str>,
    /// Its capabilities.
    pub capabilities: &'a [String],
    /// SHA-256 of the node catalogue it published.
    pub catalogue: Option<&'a str>,
}

/// What is wrong with a `metadata.requires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiresProblem {
    /// A field has the wrong JSON type.
    Type,
    /// `comfyui` is not a semver requirement.
    VersionRequirement,
}

/// A `metadata.requires` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequiresError {
    /// The offending field, e.g. `metadata.requires.comfyui`.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: RequiresProblem,
    /// A sentence for the client.
    pub message: String,
}

fn error(field: &'static str, problem: RequiresProblem, message: String) -> RequiresError {
    RequiresError {
        field,
        problem,
        message,
    }
}

impl Requirements {
    /// Read `metadata.requires = {comfyui: "<semver req>", capabilities: ["..."]}`; no
    /// `requires` (or `null`) is no requirement.
    pub fn from_metadata(metadata: &Value) -> Result<Requirements, RequiresError> {
        let Some(req) = metadata.get("requires") else {
            return Ok(Requirements::default());
        };
        let obj = match req {
            Value::Null => return Ok(Requirements::default()),
            Value::Object(o) => o,
            _ => {
                return Err(error(
                    "metadata.requires",
                    RequiresProblem::Type,
                    "`metadata.requires` must be an object".into(),
                ));
            }
        };
        let comfyui = match obj.get("comfyui") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                if semver::VersionReq::parse(s.trim()).is_err() {
                    return Err(error(
                        "metadata.requires.comfyui",
                        RequiresProblem::VersionRequirement,
                        format!("`metadata.requires.comfyui` is not a semver requirement: {s:?}"),
                    ));
                }
                Some(s.trim().to_owned())
            }
            Some(_) => {
                return Err(error(
                    "metadata.requires.comfyui",
                    RequiresProblem::Type,
                    "`metadata.requires.comfyui` must be a string".into(),
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
                            return Err(error(
                                "metadata.requires.capabilities",
                                RequiresProblem::Type,
                                "`metadata.requires.capabilities` must be an array of non-empty strings".into(),
                            ));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(error(
                    "metadata.requires.capabilities",
                    RequiresProblem::Type,
                    "`metadata.requires.capabilities` must be an array of strings".into(),
                ));
            }
        }
        capabilities.sort();
        capabilities.dedup();
        Ok(Requirements {
            comfyui,
            capabilities,
            not_on: Vec::new(),
        })
    }

    /// True when the job can run anywhere.
    pub fn is_empty(&self) -> bool {
        self.comfyui.is_none() && self.capabilities.is_empty() && self.not_on.is_empty()
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

    /// The same requirements, refusing catalogue `sha256` too.
    pub fn not_on(mut self, sha256: &str) -> Requirements {
        if let Err(at) = self.not_on.binary_search_by(|c| c.as_str().cmp(sha256)) {
            self.not_on.insert(at, sha256.to_owned());
        }
        self
    }

    /// Whether `server` satisfies these requirements.
    pub fn satisfied_by(&self, server: &Server<'_>) -> bool {
        self.unmet(server).is_none()
    }

    /// Why `server` does not satisfy these requirements (one sentence), `None` when it does.
    pub fn unmet(&self, server: &Server<'_>) -> Option<String> {
        if let Some(text) = &self.comfyui {
            let Ok(req) = semver::VersionReq::parse(text) else {
                return Some(format!("`{text}` is not a version requirement"));
            };
            let Some(version) = server.version.and_then(parse_version) else {
                return Some(format!(
                    "needs ComfyUI {text}; the worker did not say its version"
                ));
            };
            if !req.matches(&version) {
                return Some(format!("needs ComfyUI {text}, not {version}"));
            }
        }
        let missing: Vec<&str> = self
            .capabilities
            .iter()
            .filter(|c| !server.capabilities.contains(c))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Some(format!("lacks the capabilities {}", missing.join(", ")));
        }
        if let Some(c) = server.catalogue
            && self.not_on.iter().any(|n| n == c)
        {
            return Some("its ComfyUI handed the job back: the prompt does not fit it".into());
        }
        None
    }
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
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn server<'a>(version: Option<&'a str>, caps: &'a [String]) -> Server<'a> {
        Server {
            version,
            capabilities: caps,
            catalogue: None,
        }
    }

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn version_and_capabilities_match() {
        let r = Requirements::from_metadata(
            &json!({"requires": {"comfyui": ">=0.9", "capabilities": ["jobs_api"]}}),
        )
        .unwrap();
        let (jobs, none) = (caps(&["jobs_api", "x"]), caps(&[]));
        assert!(r.satisfied_by(&server(Some("0.11.1"), &jobs)));
        assert!(r.satisfied_by(&server(Some("v0.9"), &jobs)));
        assert_eq!(
            r.unmet(&server(Some("0.3.40"), &jobs)).as_deref(),
            Some("needs ComfyUI >=0.9, not 0.3.40")
        );
        assert_eq!(
            r.unmet(&server(Some("0.11.1"), &none)).as_deref(),
            Some("lacks the capabilities jobs_api")
        );
        assert!(!r.satisfied_by(&server(None, &jobs)));
    }

    #[test]
    fn no_requirements_run_anywhere() {
        let r = Requirements::from_metadata(&json!({"batch_index": 1})).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.class_key(), "");
        assert!(
            Requirements::from_class_key("")
                .unwrap()
                .satisfied_by(&Server::default())
        );
    }

    #[test]
    fn class_key_round_trips_and_is_canonical() {
        let a =
            Requirements::from_metadata(&json!({"requires": {"capabilities": ["b", "a", "b"]}}))
                .unwrap();
        let b = Requirements::from_metadata(&json!({"requires": {"capabilities": ["a", "b"]}}))
            .unwrap();
        assert_eq!(a.class_key(), b.class_key());
        assert_eq!(
            Requirements::from_class_key(&a.class_key()),
            Some(a.clone())
        );
        // Keys written before `not_on` existed read the same.
        assert_eq!(a.class_key(), r#"{"capabilities":["a","b"]}"#);
        let refused = a.clone().not_on("ff").not_on("aa").not_on("ff");
        assert_eq!(refused.not_on, ["aa", "ff"]);
        assert_eq!(
            Requirements::from_class_key(&refused.class_key()),
            Some(refused)
        );
    }

    #[test]
    fn a_catalogue_that_handed_the_job_back_is_refused() {
        let r = Requirements::default().not_on("abc");
        let none = caps(&[]);
        let on = |c| Server {
            catalogue: Some(c),
            ..server(Some("0.9.2"), &none)
        };
        assert!(!r.satisfied_by(&on("abc")));
        assert!(r.satisfied_by(&on("def")));
        assert!(r.satisfied_by(&server(Some("0.9.2"), &none)));
    }

    #[test]
    fn bad_requirements_name_the_field() {
        let e = Requirements::from_metadata(&json!({"requires": {"comfyui": "not a req"}}))
            .unwrap_err();
        assert_eq!(e.field, "metadata.requires.comfyui");
        assert_eq!(e.problem, RequiresProblem::VersionRequirement);
        let e =
            Requirements::from_metadata(&json!({"requires": {"capabilities": "x"}})).unwrap_err();
        assert_eq!(e.field, "metadata.requires.capabilities");
        assert_eq!(e.problem, RequiresProblem::Type);
    }

    #[test]
    fn versions_parse_leniently() {
        assert_eq!(parse_version("v0.9").unwrap().to_string(), "0.9.0");
        assert_eq!(
            parse_version("0.11.1-rc1").unwrap().to_string(),
            "0.11.1-rc1"
        );
        assert!(parse_version("0.1.2.3").is_none());
    }
}

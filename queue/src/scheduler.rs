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

pub use comfy_routing::{Requirements, parse_version};

impl WorkerInfo {
    /// What the worker offers, as routing judges it.
    pub fn server(&self) -> comfy_routing::Server<'_> {
        comfy_routing::Server {
            version: self.comfyui_version.as_deref(),
            capabilities: &self.capabilities,
            catalogue: self.catalogue.as_deref(),
        }
    }
}

/// Read a submit's `metadata.requires` (see [`Requirements::from_metadata`]).
pub fn requirements_of(metadata: &Value) -> Result<Requirements, InputError> {
    Requirements::from_metadata(metadata).map_err(|e| {
        let problem = match e.problem {
            comfy_routing::RequiresProblem::Type => Problem::Type,
            comfy_routing::RequiresProblem::VersionRequirement => Problem::VersionRequirement,
        };
        InputError::new(e.field, problem, e.message)
    })
}

/// Whether the job class named by `key` can run on `worker`.
pub fn class_runs_on(key: &str, worker: &WorkerInfo) -> bool {
    Requirements::from_class_key(key).is_some_and(|r| r.satisfied_by(&worker.server()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
    fn classes_run_on_the_workers_that_satisfy_them() {
        let r = requirements_of(
            &json!({"requires": {"comfyui": ">=0.9", "capabilities": ["jobs_api"]}}),
        )
        .unwrap();
        assert!(class_runs_on(
            &r.class_key(),
            &worker(Some("0.11.1"), &["jobs_api"])
        ));
        assert!(!class_runs_on(
            &r.class_key(),
            &worker(Some("0.3.40"), &["jobs_api"])
        ));
        assert!(class_runs_on("", &worker(None, &[])));
        assert!(!class_runs_on("{garbled", &worker(None, &[])));
    }

    #[test]
    fn bad_requirements_are_input_errors_naming_the_field() {
        let e = requirements_of(&json!({"requires": {"comfyui": "not a req"}})).unwrap_err();
        assert_eq!(e.field, "metadata.requires.comfyui");
        assert_eq!(e.problem, Problem::VersionRequirement);
    }
}

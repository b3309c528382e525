//! Error classification: what went wrong with a job, and whether another
//! attempt (on this or another worker) can succeed.
//!
//! | class | examples | retry |
//! |---|---|---|
//! | `validation_error` | bad workflow, unknown node, missing model | no |
//! | `execution_error` | a node raised | no |
//! | `out_of_memory` | `torch.OutOfMemoryError` | yes |
//! | `comfy_unavailable` | refused, timeout, 5xx, restarted (prompt lost) | yes |
//! | `interrupted` | someone else interrupted ComfyUI | yes |
//! | `timeout` | the job ran longer than allowed | yes |
//! | `cancelled` | cancel requested through the queue | no (ends `cancelled`) |
//! | `shutdown` | the worker was stopped | yes (handed back) |
//! | `missing_input` | the prompt names an input file that is neither given with the job nor on ComfyUI | no |
//! | `file_transfer` | an input or output file could not be moved between the queue and ComfyUI | yes |

use comfy_adapter::ComfyError;
use comfy_adapter::model::job::{Failure, Interruption};
use serde::Serialize;
use serde_json::{Value, json};

/// The class of a job error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// ComfyUI refused the prompt: never retried.
    ValidationError,
    /// A node raised: never retried.
    ExecutionError,
    /// Out of memory: retried elsewhere.
    OutOfMemory,
    /// ComfyUI unreachable, crashed or restarted: retried elsewhere.
    ComfyUnavailable,
    /// Interrupted by someone other than this worker: retried.
    Interrupted,
    /// Ran past the job timeout: retried.
    Timeout,
    /// Cancelled through the queue.
    Cancelled,
    /// The worker is shutting down: handed back.
    Shutdown,
    /// The prompt names a file of ComfyUI's input folder that is neither an
    /// input of the job nor on the server: never retried.
    MissingInput,
    /// A job's file could not be downloaded, uploaded or stored (after
    /// retries): retried (a re-run moves it again).
    FileTransfer,
}

impl ErrorClass {
    /// Whether the queue should put the job back.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::OutOfMemory
                | ErrorClass::ComfyUnavailable
                | ErrorClass::Interrupted
                | ErrorClass::Timeout
                | ErrorClass::Shutdown
                | ErrorClass::FileTransfer
        )
    }

    /// Whether this says something about the worker's health (it should
    /// back off and re-detect before claiming again).
    pub fn worker_unhealthy(self) -> bool {
        matches!(self, ErrorClass::ComfyUnavailable | ErrorClass::OutOfMemory)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ValidationError => "validation_error",
            ErrorClass::ExecutionError => "execution_error",
            ErrorClass::OutOfMemory => "out_of_memory",
            ErrorClass::ComfyUnavailable => "comfy_unavailable",
            ErrorClass::Interrupted => "interrupted",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Shutdown => "shutdown",
            ErrorClass::MissingInput => "missing_input",
            ErrorClass::FileTransfer => "file_transfer",
        }
    }
}

/// A classified job error, reported to the queue as JSON text.
#[derive(Debug, Clone, Serialize)]
pub struct JobError {
    /// The class.
    pub class: ErrorClass,
    /// Whether the queue should retry.
    pub retryable: bool,
    /// One line for people.
    pub message: String,
    /// Node, class, exception, traceback, validation errors ... as known.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl JobError {
    /// An error of `class` with a message.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        JobError {
            class,
            retryable: class.retryable(),
            message: message.into(),
            detail: Value::Null,
        }
    }

    /// From an adapter error (submission or polling).
    pub fn from_comfy(e: &ComfyError) -> Self {
        if let Some(r) = e.as_rejection() {
            let node_errors: Vec<Value> = r
                .node_errors
                .iter()
                .map(|n| {
                    json!({
                        "node_id": n.node_id,
                        "class_type": n.class_type,
                        "errors": n.errors.iter().map(|e| json!({
                            "type": e.server_type, "message": e.message, "details": e.details,
                            "input_name": e.input_name, "received_value": e.received_value,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let mut err = JobError::new(ErrorClass::ValidationError, r.to_string());
            err.detail = json!({
                "kind": r.kind, "server_type": r.server_type, "node_id": r.node_id,
                "class_type": r.class_type, "node_errors": node_errors,
            });
            return err;
        }
        match e {
            ComfyError::InvalidInput { .. } => {
                JobError::new(ErrorClass::ValidationError, e.to_string())
            }
            _ => JobError::new(ErrorClass::ComfyUnavailable, e.to_string()),
        }
    }

    /// From an execution failure in a node.
    pub fn from_failure(f: &Failure) -> Self {
        let class = if f.is_out_of_memory() {
            ErrorClass::OutOfMemory
        } else {
            ErrorClass::ExecutionError
        };
        let message = format!(
            "node {} ({}) raised {}: {}",
            f.node_id.as_deref().unwrap_or("?"),
            f.node_type.as_deref().unwrap_or("?"),
            f.exception_type.as_deref().unwrap_or("an exception"),
            f.exception_message
                .as_deref()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
        );
        let mut err = JobError::new(class, message);
        // Keep the report under the queue's 10,000-character limit: the last
        // frames of the traceback matter most.
        let mut traceback: Vec<&String> = f.traceback.iter().rev().take(8).collect();
        traceback.reverse();
        err.detail = json!({
            "node_id": f.node_id, "node_type": f.node_type,
            "exception_type": f.exception_type,
            "exception_message": f.exception_message.as_deref().map(|m| m.chars().take(2000).collect::<String>()),
            "traceback": traceback.iter().map(|t| t.chars().take(600).collect::<String>()).collect::<Vec<_>>(),
            "executed": f.executed,
        });
        err
    }

    /// Interrupted by someone else.
    pub fn from_interruption(i: Option<&Interruption>) -> Self {
        let mut err = JobError::new(
            ErrorClass::Interrupted,
            "the prompt was interrupted in ComfyUI",
        );
        if let Some(i) = i {
            err.detail = json!({"node_id": i.node_id, "node_type": i.node_type});
        }
        err
    }

    /// The text sent as `error` to the queue: this error as JSON.
    pub fn report_text(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_else(|_| self.message.clone());
        if text.chars().count() <= 10_000 {
            return text;
        }
        let short = JobError {
            detail: Value::Null,
            ..self.clone()
        };
        let mut text = serde_json::to_string(&short).unwrap_or_else(|_| self.message.clone());
        if text.chars().count() > 10_000 {
            text = text.chars().take(10_000).collect();
        }
        text
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: &str, msg: &str) -> Failure {
        Failure {
            node_id: Some("2".into()),
            node_type: Some("SaveImage".into()),
            exception_type: Some(kind.into()),
            exception_message: Some(msg.into()),
            traceback: vec!["  File x\n".into(); 40],
            executed: vec!["1".into()],
            current_inputs: Value::Null,
            timestamp_ms: None,
        }
    }

    #[test]
    fn a_dependency_cycle_found_while_running_is_permanent() {
        // The `execution_error` ComfyUI's ExecutionList sends when nothing
        // is ready to run (a cycle made by nodes expanded while running).
        let e = JobError::from_failure(&failure(
            "graph.DependencyCycleError",
            "Dependency cycle detected",
        ));
        assert_eq!(e.class, ErrorClass::ExecutionError);
        assert!(!e.retryable);
    }

    #[test]
    fn execution_errors_are_permanent_and_oom_is_retryable() {
        let e = JobError::from_failure(&failure(
            "Exception",
            "Saving image outside the output folder",
        ));
        assert_eq!(e.class, ErrorClass::ExecutionError);
        assert!(!e.retryable);
        let v: Value = serde_json::from_str(&e.report_text()).unwrap_or_default();
        assert_eq!(v["class"], "execution_error");
        assert_eq!(v["detail"]["node_type"], "SaveImage");
        assert_eq!(v["detail"]["traceback"].as_array().map(Vec::len), Some(8));
        let oom = JobError::from_failure(&failure("torch.OutOfMemoryError", "x"));
        assert_eq!(oom.class, ErrorClass::OutOfMemory);
        assert!(oom.retryable && oom.class.worker_unhealthy());
    }

    #[test]
    fn report_text_stays_under_the_queue_limit() {
        let mut e = JobError::new(ErrorClass::ExecutionError, "x".repeat(20_000));
        e.detail = json!({"big": "y".repeat(20_000)});
        assert!(e.report_text().chars().count() <= 10_000);
    }
}

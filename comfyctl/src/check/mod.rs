//! Will a prompt run on a given server? Checks an API prompt (or a UI
//! workflow, converted first) against that server's node catalogue, the way
//! ComfyUI's own `validate_prompt` would, before anything is queued:
//! unknown node types, missing required inputs, inputs the class does not
//! declare (often renamed ones), numbers outside min/max, values not in a
//! combo's list (model files included: an empty list rejects every file,
//! as the server does), links to nothing, and V3 dynamic combos left out
//! (the server lets those through and the run then fails with a TypeError).
//! Model files the prompt names are listed as information.

//!
//! [`findings`] holds what a check reports, [`validate`] the per-node rules,
//! [`values`] the value helpers they share.

mod findings;
mod validate;
mod values;

pub use findings::{CheckReport, Finding, FindingKind, Severity};
pub use validate::check_prompt;
pub use values::is_model_file;

use crate::convert::{self, ConvertError, ConvertOptions};
use comfy_adapter::model::catalogue::NodeCatalogue;
use serde_json::Value;

/// Choices for a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// The catalogue comes from a machine without the models (a CPU
    /// frontend): a model file missing from a list that holds no model
    /// files at all is a warning, not an error.
    pub models_elsewhere: bool,
}

/// Why a document could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Neither a UI workflow nor an API prompt.
    #[error(
        "not a workflow: expected a UI workflow (with \"nodes\") or an API prompt (node id → {{class_type, inputs}})"
    )]
    NotAWorkflow,
    /// The UI workflow could not be converted.
    #[error(transparent)]
    Convert(#[from] ConvertError),
}

/// Checks a UI workflow or an API prompt (bare, or a `{"prompt": ...}`
/// request body). A UI node type missing from the catalogue is reported as
/// a finding, like any other.
pub fn check_document(
    doc: &Value,
    catalogue: &NodeCatalogue,
    convert_options: &ConvertOptions,
    options: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    if convert::is_ui_workflow(doc) {
        return match convert::convert(doc, catalogue, convert_options) {
            Ok(prompt) => Ok(check_prompt(&prompt, catalogue, options)),
            Err(ConvertError::MissingNodeType { .. }) => Ok(CheckReport {
                findings: convert::unknown_node_types(doc, catalogue, convert_options)?
                    .into_iter()
                    .map(|(node_id, class_type)| Finding {
                        severity: Severity::Error,
                        kind: FindingKind::MissingNodeType {
                            node_id,
                            class_type: Some(class_type),
                        },
                        feeds_no_output: false,
                    })
                    .collect(),
            }),
            Err(e) => Err(e.into()),
        };
    }
    let prompt = match doc.get("prompt") {
        Some(Value::Object(p)) => p,
        _ => doc.as_object().ok_or(CheckError::NotAWorkflow)?,
    };
    if !prompt.values().all(Value::is_object) {
        return Err(CheckError::NotAWorkflow);
    }
    Ok(check_prompt(prompt, catalogue, options))
}

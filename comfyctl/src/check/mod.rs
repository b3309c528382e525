//! Will a prompt run on a given server? Checks an API prompt (or a UI
//! workflow, converted first) against that server's node catalogue, the way
//! ComfyUI's own `validate_prompt` would, before anything is queued:
//! unknown node types, missing required inputs, inputs the class does not
//! declare (often renamed ones), numbers outside min/max, values not in a
//! combo's list (model files included: an empty list rejects every file,
//! as the server does), links to nothing, and V3 dynamic combos left out
//! (the server lets those through and the run then fails with a TypeError).
//! Model files the prompt names are listed as information.

use crate::convert::widgets::{
    DYNAMIC_COMBO, InputDecl, combo_values, declared_inputs, dynamic_options, spec_options,
    spec_type, widget_type,
};
use crate::convert::{self, ConvertError, ConvertOptions};
use comfy_adapter::model::catalogue::NodeCatalogue;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;

/// File endings that mark a combo value as a model file.
const MODEL_EXTENSIONS: [&str; 9] = [
    ".safetensors",
    ".ckpt",
    ".pt",
    ".pth",
    ".bin",
    ".gguf",
    ".sft",
    ".onnx",
    ".pt2",
];

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The server refuses the prompt, or the run fails.
    Error,
    /// Probably wrong, but the server accepts it.
    Warning,
    /// For planning (model files the prompt needs).
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// What was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingKind {
    /// The node's class is not in the catalogue (or it has no class_type).
    MissingNodeType {
        /// Prompt id.
        node_id: String,
        /// The class asked for; `None` when the node has no `class_type`.
        class_type: Option<String>,
    },
    /// A required input is absent.
    MissingInput {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
    },
    /// An input the class does not declare (the server ignores it).
    UnknownInput {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
        /// A missing required input it was probably renamed to.
        renamed_to: Option<String>,
    },
    /// A number below `min` or above `max`.
    ValueOutOfRange {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
        /// The value sent.
        value: Value,
        /// Declared minimum.
        min: Option<Value>,
        /// Declared maximum.
        max: Option<Value>,
    },
    /// A value that is not one of the combo's options.
    NotInList {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
        /// The value sent.
        value: Value,
        /// What the server offers (empty: nothing installed).
        allowed: Vec<Value>,
    },
    /// A value of the wrong kind (text where a number is expected).
    WrongValueType {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
        /// The value sent.
        value: Value,
        /// The declared type.
        expected: String,
    },
    /// A link to a node that is not there, a slot it lacks, or a type
    /// the input does not take.
    BadLink {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
        /// The link as sent.
        link: Value,
        /// What is wrong with it.
        reason: String,
    },
    /// A V3 dynamic combo (or an input its chosen option requires) left out.
    MissingDynamicComboInput {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name (`codec`, or nested `codec.crf`).
        input: String,
    },
    /// A model file the prompt uses.
    ModelReference {
        /// Prompt id.
        node_id: String,
        /// Node class.
        class_type: String,
        /// Input name.
        input: String,
        /// File name.
        file: String,
        /// Whether the server lists it.
        installed: bool,
    },
    /// Nothing in the prompt is an output node: the server refuses it.
    NoOutputNode,
}

/// One finding with its severity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What it is.
    #[serde(flatten)]
    pub kind: FindingKind,
    /// The node feeds no output node, so the server neither validates nor
    /// runs it: its problems are warnings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feeds_no_output: bool,
}

impl Finding {
    /// The prompt node it is about, if any.
    pub fn node_id(&self) -> Option<&str> {
        use FindingKind::*;
        match &self.kind {
            MissingNodeType { node_id, .. }
            | MissingInput { node_id, .. }
            | UnknownInput { node_id, .. }
            | ValueOutOfRange { node_id, .. }
            | NotInList { node_id, .. }
            | WrongValueType { node_id, .. }
            | BadLink { node_id, .. }
            | MissingDynamicComboInput { node_id, .. }
            | ModelReference { node_id, .. } => Some(node_id),
            NoOutputNode => None,
        }
    }

    /// The input it is about, if any.
    pub fn input(&self) -> Option<&str> {
        use FindingKind::*;
        match &self.kind {
            MissingInput { input, .. }
            | UnknownInput { input, .. }
            | ValueOutOfRange { input, .. }
            | NotInList { input, .. }
            | WrongValueType { input, .. }
            | BadLink { input, .. }
            | MissingDynamicComboInput { input, .. }
            | ModelReference { input, .. } => Some(input),
            MissingNodeType { .. } | NoOutputNode => None,
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FindingKind::*;
        write!(f, "{:<7} ", self.severity)?;
        match &self.kind {
            MissingNodeType {
                node_id,
                class_type: Some(c),
            } => write!(f, "node {node_id}: node type {c:?} is not on this server"),
            MissingNodeType {
                node_id,
                class_type: None,
            } => write!(f, "node {node_id}: no class_type"),
            MissingInput {
                node_id,
                class_type,
                input,
            } => write!(
                f,
                "node {node_id} ({class_type}): required input {input:?} is missing"
            ),
            UnknownInput {
                node_id,
                class_type,
                input,
                renamed_to,
            } => {
                write!(
                    f,
                    "node {node_id} ({class_type}): input {input:?} is not declared (ignored)"
                )?;
                match renamed_to {
                    Some(to) => write!(f, "; renamed to {to:?}?"),
                    None => Ok(()),
                }
            }
            ValueOutOfRange {
                node_id,
                class_type,
                input,
                value,
                min,
                max,
            } => {
                let bound = |b: &Option<Value>| b.as_ref().map_or("-".to_owned(), Value::to_string);
                write!(
                    f,
                    "node {node_id} ({class_type}): {input} = {value} is outside [{}, {}]",
                    bound(min),
                    bound(max)
                )
            }
            NotInList {
                node_id,
                class_type,
                input,
                value,
                allowed,
            } => {
                write!(
                    f,
                    "node {node_id} ({class_type}): {input} = {} is not in the list",
                    short(value)
                )?;
                if allowed.is_empty() {
                    write!(f, " (the list is empty: nothing installed)")
                } else {
                    write!(f, " ({} options)", allowed.len())
                }
            }
            WrongValueType {
                node_id,
                class_type,
                input,
                value,
                expected,
            } => write!(
                f,
                "node {node_id} ({class_type}): {input} = {} is not a {expected}",
                short(value)
            ),
            BadLink {
                node_id,
                class_type,
                input,
                link,
                reason,
            } => write!(
                f,
                "node {node_id} ({class_type}): {input} links to {link}: {reason}"
            ),
            MissingDynamicComboInput {
                node_id,
                class_type,
                input,
            } => write!(
                f,
                "node {node_id} ({class_type}): dynamic input {input:?} is missing (passes validation, fails when run)"
            ),
            ModelReference {
                node_id,
                class_type,
                input,
                file,
                installed,
            } => write!(
                f,
                "node {node_id} ({class_type}): {input} uses model {file} ({})",
                if *installed {
                    "installed"
                } else {
                    "not installed"
                }
            ),
            NoOutputNode => write!(f, "the prompt has no output node"),
        }?;
        if self.feeds_no_output {
            write!(f, " [feeds no output: not run]")?;
        }
        Ok(())
    }
}

/// Everything found in one prompt.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CheckReport {
    /// Findings, in prompt order.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Findings of one severity.
    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// Whether nothing would stop the prompt.
    pub fn is_ok(&self) -> bool {
        self.count(Severity::Error) == 0
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// Model files the prompt names, as `(file, installed)`, once each.
    pub fn models(&self) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = Vec::new();
        for f in &self.findings {
            if let FindingKind::ModelReference {
                file, installed, ..
            } = &f.kind
                && !out.iter().any(|(x, _)| x == file)
            {
                out.push((file.clone(), *installed));
            }
        }
        out
    }
}

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

/// Checks an API prompt.
pub fn check_prompt(
    prompt: &Map<String, Value>,
    catalogue: &NodeCatalogue,
    options: &CheckOptions,
) -> CheckReport {
    let mut c = Checker {
        prompt,
        catalogue,
        options,
        idle: std::collections::HashSet::new(),
        out: Vec::new(),
    };
    c.idle = c.idle_nodes();
    let mut any_output = false;
    for (id, node) in prompt {
        any_output |= c.node(id, node);
    }
    // A node of an unknown class may be the output; the server stops at
    // the unknown class anyway.
    let unknown_class = c
        .out
        .iter()
        .any(|f| matches!(f.kind, FindingKind::MissingNodeType { .. }));
    if !any_output && !unknown_class {
        c.push(Severity::Error, FindingKind::NoOutputNode);
    }
    CheckReport { findings: c.out }
}

struct Checker<'a> {
    prompt: &'a Map<String, Value>,
    catalogue: &'a NodeCatalogue,
    options: &'a CheckOptions,
    /// Nodes no output node depends on (empty when there is no output).
    idle: std::collections::HashSet<String>,
    out: Vec<Finding>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, kind: FindingKind) {
        let mut f = Finding {
            severity,
            kind,
            feeds_no_output: false,
        };
        // The server checks every class exists, but validates only what
        // the output nodes depend on.
        if !matches!(f.kind, FindingKind::MissingNodeType { .. })
            && f.node_id().is_some_and(|id| self.idle.contains(id))
        {
            f.feeds_no_output = true;
            if f.severity == Severity::Error {
                f.severity = Severity::Warning;
            }
        }
        self.out.push(f);
    }

    /// Nodes that no output node reaches through links.
    fn idle_nodes(&self) -> std::collections::HashSet<String> {
        let is_output = |node: &Value| {
            node.get("class_type")
                .and_then(Value::as_str)
                .and_then(|c| self.class(c))
                .and_then(|c| c.get("output_node").and_then(Value::as_bool))
                .unwrap_or(false)
        };
        let mut stack: Vec<&str> = self
            .prompt
            .iter()
            .filter(|(_, n)| is_output(n))
            .map(|(id, _)| id.as_str())
            .collect();
        if stack.is_empty() {
            return std::collections::HashSet::new();
        }
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let inputs = self
                .prompt
                .get(id)
                .and_then(|n| n.get("inputs"))
                .and_then(Value::as_object);
            for v in inputs.into_iter().flat_map(|i| i.values()) {
                if let Some(from) = convert::link_target(v)
                    && let Some((key, _)) = self.prompt.get_key_value(from)
                {
                    stack.push(key.as_str());
                }
            }
        }
        self.prompt
            .keys()
            .filter(|k| !seen.contains(k.as_str()))
            .cloned()
            .collect()
    }

    fn class(&self, name: &str) -> Option<Map<String, Value>> {
        self.catalogue.node(name).and_then(Result::ok)
    }

    /// Checks one node; returns whether it is an output node.
    fn node(&mut self, id: &str, node: &Value) -> bool {
        let Some(class_type) = node.get("class_type").and_then(Value::as_str) else {
            self.push(
                Severity::Error,
                FindingKind::MissingNodeType {
                    node_id: id.to_owned(),
                    class_type: None,
                },
            );
            return false;
        };
        let Some(class) = self.class(class_type) else {
            self.push(
                Severity::Error,
                FindingKind::MissingNodeType {
                    node_id: id.to_owned(),
                    class_type: Some(class_type.to_owned()),
                },
            );
            return false;
        };
        let empty = Map::new();
        let inputs = node
            .get("inputs")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let decls = declared_inputs(&class);
        let at = At { id, class_type };
        let mut missing_required = Vec::new();
        let mut known: Vec<String> = Vec::new();
        self.inputs(&at, &decls, inputs, "", &mut missing_required, &mut known);
        let hidden = class
            .get("input")
            .and_then(|i| i.get("hidden"))
            .and_then(Value::as_object);
        for name in inputs.keys() {
            if known.contains(name) || hidden.is_some_and(|h| h.contains_key(name)) {
                continue;
            }
            let renamed_to = likely_rename(name, &missing_required);
            self.push(
                Severity::Warning,
                FindingKind::UnknownInput {
                    node_id: id.to_owned(),
                    class_type: class_type.to_owned(),
                    input: name.clone(),
                    renamed_to,
                },
            );
        }
        class
            .get("output_node")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn inputs(
        &mut self,
        at: &At<'_>,
        decls: &[InputDecl],
        inputs: &Map<String, Value>,
        prefix: &str,
        missing_required: &mut Vec<String>,
        known: &mut Vec<String>,
    ) {
        for decl in decls {
            let name = format!("{prefix}{}", decl.name);
            known.push(name.clone());
            let dynamic = spec_type(&decl.spec) == DYNAMIC_COMBO;
            let Some(value) = inputs.get(&name) else {
                if decl.required {
                    let (node_id, class_type) = (at.id.to_owned(), at.class_type.to_owned());
                    let kind = if dynamic || !prefix.is_empty() {
                        FindingKind::MissingDynamicComboInput {
                            node_id,
                            class_type,
                            input: name.clone(),
                        }
                    } else {
                        missing_required.push(name.clone());
                        FindingKind::MissingInput {
                            node_id,
                            class_type,
                            input: name.clone(),
                        }
                    };
                    self.push(Severity::Error, kind);
                }
                continue;
            };
            // The server takes every list as a link (list values travel
            // wrapped as {"__value__": [...]}).
            if value.is_array() {
                self.link(at, &name, &decl.spec, value);
                continue;
            }
            self.value(at, &name, &decl.spec, value);
            if dynamic {
                let key = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some((_, nested)) = dynamic_options(&decl.spec)
                    .into_iter()
                    .find(|(k, _)| *k == key)
                {
                    let mut inner = Map::new();
                    inner.insert("input".to_owned(), Value::Object(nested));
                    let nested_decls = declared_inputs(&inner);
                    self.inputs(
                        at,
                        &nested_decls,
                        inputs,
                        &format!("{name}."),
                        missing_required,
                        known,
                    );
                }
            }
        }
    }

    fn value(&mut self, at: &At<'_>, name: &str, spec: &Value, value: &Value) {
        let here = |kind_fn: &dyn Fn(String, String, String) -> FindingKind| {
            kind_fn(at.id.to_owned(), at.class_type.to_owned(), name.to_owned())
        };
        if let Some(allowed) = combo_values(spec) {
            let multiselect = spec_options(spec)
                .and_then(|o| o.get("multiselect"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let listed = |v: &Value| allowed.iter().any(|a| same_value(a, v));
            let ok = listed(value)
                || multiselect && value.as_array().is_some_and(|vs| vs.iter().all(listed));
            let model = value.as_str().filter(|s| is_model_file(s));
            if let Some(file) = model {
                self.push(
                    Severity::Info,
                    here(&|node_id, class_type, input| FindingKind::ModelReference {
                        node_id,
                        class_type,
                        input,
                        file: file.to_owned(),
                        installed: ok,
                    }),
                );
            }
            if !ok {
                // A list without a single model file: nothing is installed
                // on the machine the catalogue came from.
                let no_models_here = !allowed
                    .iter()
                    .any(|a| a.as_str().is_some_and(is_model_file));
                let severity = if model.is_some() && no_models_here && self.options.models_elsewhere
                {
                    Severity::Warning
                } else {
                    Severity::Error
                };
                self.push(
                    severity,
                    here(&|node_id, class_type, input| FindingKind::NotInList {
                        node_id,
                        class_type,
                        input,
                        value: value.clone(),
                        allowed: allowed.clone(),
                    }),
                );
            }
            return;
        }
        let wtype = widget_type(spec);
        if !matches!(wtype, "INT" | "FLOAT") {
            if wtype == "BOOLEAN" && !value.is_boolean()
                || wtype == "STRING" && !(value.is_string() || value.is_number())
            {
                self.push(
                    Severity::Error,
                    here(&|node_id, class_type, input| FindingKind::WrongValueType {
                        node_id,
                        class_type,
                        input,
                        value: value.clone(),
                        expected: wtype.to_owned(),
                    }),
                );
            }
            return;
        }
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let Some(x) = number else {
            self.push(
                Severity::Error,
                here(&|node_id, class_type, input| FindingKind::WrongValueType {
                    node_id,
                    class_type,
                    input,
                    value: value.clone(),
                    expected: wtype.to_owned(),
                }),
            );
            return;
        };
        let opts = spec_options(spec);
        let min = opts.and_then(|o| o.get("min")).cloned();
        let max = opts.and_then(|o| o.get("max")).cloned();
        let below = min.as_ref().and_then(Value::as_f64).is_some_and(|m| x < m);
        let above = max.as_ref().and_then(Value::as_f64).is_some_and(|m| x > m);
        if below || above {
            self.push(
                Severity::Error,
                here(&|node_id, class_type, input| FindingKind::ValueOutOfRange {
                    node_id,
                    class_type,
                    input,
                    value: value.clone(),
                    min: min.clone(),
                    max: max.clone(),
                }),
            );
        }
    }

    fn link(&mut self, at: &At<'_>, name: &str, spec: &Value, link: &Value) {
        let bad = |reason: String| FindingKind::BadLink {
            node_id: at.id.to_owned(),
            class_type: at.class_type.to_owned(),
            input: name.to_owned(),
            link: link.clone(),
            reason,
        };
        let (from, slot) = match link.as_array().map(Vec::as_slice) {
            Some([Value::String(id), s]) => (id.clone(), s.as_i64()),
            Some([Value::Number(id), s]) => (id.to_string(), s.as_i64()),
            _ => {
                self.push(
                    Severity::Error,
                    bad("a link is [node id, output slot]".to_owned()),
                );
                return;
            }
        };
        let Some(source) = self.prompt.get(&from) else {
            self.push(
                Severity::Error,
                bad(format!("there is no node {from} in the prompt")),
            );
            return;
        };
        let Some(source_class) = source
            .get("class_type")
            .and_then(Value::as_str)
            .and_then(|c| self.class(c))
        else {
            return; // reported on the source node itself
        };
        let outputs: Vec<String> = source_class
            .get("output")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| match t {
                        Value::String(s) => s.clone(),
                        _ => "COMBO".to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Some(out_type) = slot
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| outputs.get(s))
        else {
            self.push(
                Severity::Error,
                bad(format!(
                    "node {from} has {} output(s), no slot {}",
                    outputs.len(),
                    slot.map_or("?".to_owned(), |s| s.to_string())
                )),
            );
            return;
        };
        let in_type = spec_type(spec);
        if in_type == "COMBO" || out_type == "COMBO" || in_type == DYNAMIC_COMBO {
            return;
        }
        if !convert::graph::types_compatible(in_type, out_type) {
            self.push(
                Severity::Error,
                bad(format!(
                    "node {from} slot gives {out_type}, the input takes {in_type}"
                )),
            );
        }
    }
}

struct At<'a> {
    id: &'a str,
    class_type: &'a str,
}

/// Which missing required input an undeclared one was probably renamed to:
/// the only one missing, else the one sharing the most `_`-separated words
/// with it (when that is unambiguous).
fn likely_rename(unknown: &str, missing: &[String]) -> Option<String> {
    if let [only] = missing {
        return Some(only.clone());
    }
    let words = |s: &str| -> Vec<String> {
        s.to_ascii_lowercase()
            .split(['_', '.', ' '])
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mine = words(unknown);
    let mut scored: Vec<(usize, &String)> = missing
        .iter()
        .map(|m| (words(m).iter().filter(|w| mine.contains(w)).count(), m))
        .filter(|(n, _)| *n > 0)
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    match scored.as_slice() {
        [(best, m), rest @ ..] if rest.first().is_none_or(|(n, _)| n < best) => Some((*m).clone()),
        _ => None,
    }
}

/// Equality the way the server compares combo values (`1` equals `1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether a value names a model file.
pub fn is_model_file(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    MODEL_EXTENSIONS.iter().any(|e| lower.ends_with(e))
}

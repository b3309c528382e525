//! What a check finds: the severities, the kinds of finding with the node
//! and input they are about, their one-line text, and the report that holds
//! them.

use serde::Serialize;
use serde_json::Value;
use std::fmt;

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
    /// Nodes whose links lead back to themselves: ComfyUI refuses the
    /// prompt (a cycle can never run).
    DependencyCycle {
        /// The nodes on the cycle, in link order, starting at the smallest id.
        nodes: Vec<String>,
    },
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
            DependencyCycle { nodes } => nodes.first().map(String::as_str),
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
            MissingNodeType { .. } | NoOutputNode | DependencyCycle { .. } => None,
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
            DependencyCycle { nodes } => write!(
                f,
                "nodes {} depend on each other in a cycle; ComfyUI refuses the prompt",
                nodes.join(" → ")
            ),
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

//! The per-node validation of an API prompt, in the order ComfyUI's
//! `validate_prompt` applies it: class known, required inputs present,
//! undeclared inputs, combo lists, numbers in range, links to real slots of
//! a fitting type, V3 dynamic combos; nodes that feed no output only warn.

use super::CheckOptions;
use super::findings::{CheckReport, Finding, FindingKind, Severity};
use super::values::{is_model_file, likely_rename, same_value};
use crate::convert;
use crate::convert::widgets::{
    DYNAMIC_COMBO, InputDecl, combo_values, declared_inputs, dynamic_options, spec_options,
    spec_type, widget_type,
};
use comfy_adapter::model::catalogue::NodeCatalogue;
use serde_json::{Map, Value};

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
    if let Some(nodes) = dependency_cycle(prompt) {
        c.push(Severity::Error, FindingKind::DependencyCycle { nodes });
    }
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

/// The nodes an input of `node` links to (`["id", slot]` values).
fn linked_nodes(node: &Value) -> impl Iterator<Item = &str> {
    node.get("inputs")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|inputs| inputs.values())
        .filter_map(|v| match v.as_array().map(Vec::as_slice) {
            Some([Value::String(id), slot]) if slot.is_number() => Some(id.as_str()),
            _ => None,
        })
}

/// One cycle of links in the prompt, if there is one: the nodes on it in
/// link order, starting at the smallest id. Iterative, so a long chain
/// cannot overflow the stack.
fn dependency_cycle(prompt: &Map<String, Value>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark: std::collections::HashMap<&str, Mark> =
        prompt.keys().map(|k| (k.as_str(), Mark::New)).collect();
    let mut roots: Vec<&str> = prompt.keys().map(String::as_str).collect();
    roots.sort_unstable();
    for root in roots {
        if mark.get(root) != Some(&Mark::New) {
            continue;
        }
        // (node, its remaining links)
        let mut path: Vec<(&str, Vec<&str>)> = Vec::new();
        let links = |id: &str| -> Vec<&str> {
            prompt
                .get(id)
                .map(|n| {
                    linked_nodes(n)
                        .filter(|l| prompt.contains_key(*l))
                        .collect()
                })
                .unwrap_or_default()
        };
        mark.insert(root, Mark::OnPath);
        path.push((root, links(root)));
        while let Some((_, pending)) = path.last_mut() {
            let Some(next) = pending.pop() else {
                if let Some((done, _)) = path.pop() {
                    mark.insert(done, Mark::Done);
                }
                continue;
            };
            match mark.get(next).copied().unwrap_or(Mark::Done) {
                Mark::OnPath => {
                    let start = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|(n, _)| (*n).to_owned()).collect();
                    // Links point from a node to what it depends on; show the
                    // cycle starting at its smallest id.
                    if let Some(min) = (0..cycle.len()).min_by(|a, b| cycle[*a].cmp(&cycle[*b])) {
                        cycle.rotate_left(min);
                    }
                    return Some(cycle);
                }
                Mark::New => {
                    mark.insert(next, Mark::OnPath);
                    let l = links(next);
                    path.push((next, l));
                }
                Mark::Done => {}
            }
        }
    }
    None
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

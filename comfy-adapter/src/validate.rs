//! ComfyUI's validation of a submitted prompt, answered as ComfyUI answers
//! it (`POST /prompt`'s 400 bodies and `node_errors`): class existence
//! first (the wording depends on the line), then the output nodes, then
//! each output's inputs (required, combo lists, numeric bounds, links, and
//! the files a loader names: see [`file_check`]).
//!
//! It runs over a catalogue (`/object_info`, parsed) and knows nothing of a
//! server: the emulator answers its submits with it, and the gateway checks
//! a user's prompt against the catalogue of the GPU workers that would run
//! it before queueing it.

use crate::model::catalogue::{FileInputSpec, FileName};
use crate::model::server::Line;
use crate::releases::{self, SourceLines};
use semver::Version;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// How a release words its validation answers: the line (the two spellings
/// of an unknown class) and where its tracebacks point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wording {
    /// The server's line.
    pub line: Line,
    /// Line numbers of `execution.py` in the release's tracebacks.
    pub source_lines: SourceLines,
}

impl Wording {
    /// The wording of `version` on `line` (tracebacks of the nearest
    /// recorded release).
    pub fn of(line: Line, version: &Version) -> Self {
        Self {
            line,
            source_lines: releases::nearest(version).source_lines,
        }
    }

    fn new_spelling(&self) -> bool {
        self.line == Line::CancelApi
    }
}

/// A prompt that passed: the outputs to run and the errors of outputs that
/// did not (non-fatal when at least one output passed).
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// Output node ids to execute.
    pub outputs: Vec<String>,
    /// `node_errors` for the answer.
    pub node_errors: Map<String, Value>,
}

fn rejection(kind: &str, message: &str, details: &str, extra_info: Value) -> Value {
    json!({
        "error": {"type": kind, "message": message, "details": details, "extra_info": extra_info},
        "node_errors": {},
    })
}

/// The 400 body for a missing `prompt`.
pub fn no_prompt() -> Value {
    rejection(
        "no_prompt",
        "No prompt provided",
        "No prompt provided",
        json!({}),
    )
}

/// The 400 body for a client prompt id that is not a canonical UUID (0.26+).
pub fn invalid_prompt_id() -> Value {
    rejection(
        "invalid_prompt_id",
        "prompt_id must be a valid UUID",
        "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server generate one",
        json!({}),
    )
}

fn is_link(v: &Value) -> Option<(&str, u64)> {
    let a = v.as_array()?;
    if a.len() != 2 {
        return None;
    }
    Some((a[0].as_str()?, a[1].as_u64()?))
}

/// The reason ComfyUI gives when validating an output raised: a link to a
/// node the prompt does not have is a `KeyError` in `validate_inputs`.
fn exception_reason(wording: &Wording, missing: &str) -> Value {
    let (in_prompt, in_inputs) = (
        wording.source_lines.validate_prompt,
        wording.source_lines.validate_inputs,
    );
    json!({
        "type": "exception_during_validation",
        "message": "Exception when validating node",
        "details": format!("'{missing}'"),
        "extra_info": {
            "exception_type": "KeyError",
            "traceback": [
                format!("  File \"/opt/ComfyUI/execution.py\", line {in_prompt}, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"),
                format!("  File \"/opt/ComfyUI/execution.py\", line {in_inputs}, in validate_inputs\n    o_class_type = prompt[o_id]['class_type']\n                   ~~~~~~^^^^^^\n"),
            ],
        },
    })
}

/// The first node whose class is missing or unknown, as ComfyUI refuses it
/// before anything else (`has_class` says whether the server knows a class).
pub fn check_classes(
    wording: &Wording,
    prompt: &Map<String, Value>,
    has_class: &dyn Fn(&str) -> bool,
) -> Result<(), Value> {
    let new_spelling = wording.new_spelling();
    for (id, node) in prompt {
        let class = node.get("class_type").and_then(Value::as_str);
        let details = format!("Node ID '#{id}'");
        match class {
            None => {
                return Err(if new_spelling {
                    rejection(
                        "missing_node_type",
                        &format!(
                            "Node 'ID #{id}' has no class_type. The workflow may be corrupted or a custom node is missing."
                        ),
                        &details,
                        json!({"node_id": id, "class_type": null, "node_title": null}),
                    )
                } else {
                    rejection(
                        "invalid_prompt",
                        "Cannot execute because a node is missing the class_type property.",
                        &details,
                        json!({}),
                    )
                });
            }
            Some(c) if !has_class(c) => {
                let title = node
                    .get("_meta")
                    .and_then(|m| m.get("title"))
                    .and_then(Value::as_str)
                    .unwrap_or(c);
                return Err(if new_spelling {
                    rejection(
                        "missing_node_type",
                        &format!("Node '{title}' not found. The custom node may not be installed."),
                        &details,
                        json!({"node_id": id, "class_type": c, "node_title": title}),
                    )
                } else {
                    rejection(
                        "invalid_prompt",
                        &format!("Cannot execute because node {c} does not exist."),
                        &details,
                        json!({}),
                    )
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The output nodes to run, in prompt order: nodes whose class is an
/// `output_node` (`is_output`), and of those only the ones in `targets`
/// when the submit named `partial_execution_targets`. None is ComfyUI's
/// `prompt_no_outputs` 400.
pub fn output_nodes(
    prompt: &Map<String, Value>,
    is_output: &dyn Fn(&str) -> bool,
    targets: Option<&[String]>,
) -> Result<Vec<String>, Value> {
    let outputs: Vec<String> = prompt
        .iter()
        .filter(|(id, n)| {
            n.get("class_type")
                .and_then(Value::as_str)
                .is_some_and(is_output)
                && targets.is_none_or(|t| t.iter().any(|x| x == *id))
        })
        .map(|(id, _)| id.clone())
        .collect();
    if outputs.is_empty() {
        return Err(rejection(
            "prompt_no_outputs",
            "Prompt has no outputs",
            "",
            json!({}),
        ));
    }
    Ok(outputs)
}

/// Whether `class` is an output node in `classes` (`output_node: true`).
pub fn is_output_class(classes: &Map<String, Value>, class: &str) -> bool {
    classes
        .get(class)
        .and_then(|d| d.get("output_node"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Validates `prompt` against `classes` (a parsed `/object_info`) as a
/// server of `wording` would: `Ok` with the outputs to run and the errors of
/// the outputs that failed (when at least one passed), or `Err` with
/// ComfyUI's 400 body. `exists` says whether a file a loader names is in the
/// server's folders; `targets` are the submit's `partial_execution_targets`.
pub fn validate(
    wording: &Wording,
    classes: &Map<String, Value>,
    prompt: &Map<String, Value>,
    targets: Option<&[String]>,
    exists: &dyn Fn(&FileName) -> bool,
) -> Result<Validated, Value> {
    check_classes(wording, prompt, &|c| classes.contains_key(c))?;
    let outputs = output_nodes(prompt, &|c| is_output_class(classes, c), targets)?;
    let mut node_errors: Map<String, Value> = Map::new();
    let mut good = Vec::new();
    let mut details: Vec<String> = Vec::new();
    for out in &outputs {
        let mut walk = Walk::default();
        let ok = match check_node(classes, prompt, out, &mut walk, &mut node_errors, exists) {
            Ok(ok) => ok,
            Err(missing) => {
                let reason = exception_reason(wording, &missing);
                details.push(format!("Exception when validating node: '{missing}'"));
                node_errors.entry(out.clone()).or_insert_with(|| {
                    let class = prompt
                        .get(out)
                        .and_then(|n| n.get("class_type"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    json!({"errors": [reason], "dependent_outputs": [], "class_type": class})
                });
                walk.seen.insert(out.clone());
                false
            }
        };
        let seen = walk.seen;
        for (id, e) in node_errors.iter_mut() {
            if seen.contains(id)
                && let Some(deps) = e.get_mut("dependent_outputs").and_then(Value::as_array_mut)
                && !deps.iter().any(|d| d == out)
            {
                deps.push(Value::String(out.clone()));
            }
        }
        if ok {
            good.push(out.clone());
        }
    }
    if good.is_empty() {
        return Err(json!({
            "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": details.join("\n"), "extra_info": {}},
            "node_errors": node_errors,
        }));
    }
    Ok(Validated {
        outputs: good,
        node_errors,
    })
}

/// `input_config` of an input error as ComfyUI writes it: the input's type
/// and its options, `{}` when the catalogue gives none (`[[]]` is
/// `[[], {}]`).
fn input_config(conf: &Value) -> Value {
    json!([
        conf.get(0).cloned().unwrap_or(Value::Null),
        conf.get(1).cloned().unwrap_or_else(|| json!({}))
    ])
}

fn input_error(kind: &str, message: &str, details: &str, extra: Value) -> Value {
    json!({"type": kind, "message": message, "details": details, "extra_info": extra})
}

/// Where the validation of one output stands.
#[derive(Debug, Default)]
struct Walk {
    /// Nodes looked at.
    seen: BTreeSet<String>,
    /// Nodes being checked: the path from the output to here.
    open: BTreeSet<String>,
    /// Nodes found invalid (with or without errors of their own).
    failed: BTreeSet<String>,
}

/// Checks one node and what it links to; records errors; `Ok(true)` when
/// valid, `Err(id)` when a link names a node the prompt lacks (ComfyUI's
/// `KeyError`, which ends the validation of the whole output).
///
/// A link back to a node still being checked is a cycle. ComfyUI records a
/// node as validated only once its inputs are, so it recurses round the
/// cycle until Python's recursion limit; the `RecursionError` is caught
/// deep down and every node of the cycle is then recorded invalid with no
/// reason of its own (`(False, [], id)`): the output fails, and nothing of
/// it shows in `node_errors` or `details`.
fn check_node(
    classes: &Map<String, Value>,
    prompt: &Map<String, Value>,
    id: &str,
    walk: &mut Walk,
    node_errors: &mut Map<String, Value>,
    exists: &dyn Fn(&FileName) -> bool,
) -> Result<bool, String> {
    if walk.open.contains(id) {
        return Ok(false);
    }
    if !walk.seen.insert(id.to_owned()) {
        return Ok(!walk.failed.contains(id) && !node_errors.contains_key(id));
    }
    walk.open.insert(id.to_owned());
    let ok = check_inputs(classes, prompt, id, walk, node_errors, exists);
    walk.open.remove(id);
    if !matches!(ok, Ok(true)) {
        walk.failed.insert(id.to_owned());
    }
    ok
}

/// [`check_node`] for a node not looked at yet.
fn check_inputs(
    classes: &Map<String, Value>,
    prompt: &Map<String, Value>,
    id: &str,
    walk: &mut Walk,
    node_errors: &mut Map<String, Value>,
    exists: &dyn Fn(&FileName) -> bool,
) -> Result<bool, String> {
    let Some(node) = prompt.get(id) else {
        return Err(id.to_owned());
    };
    let class = node
        .get("class_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let empty = Map::new();
    let inputs = node
        .get("inputs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let spec = classes.get(class).and_then(|d| d.get("input"));
    let file_specs = classes
        .get(class)
        .and_then(Value::as_object)
        .map(FileInputSpec::of_class)
        .unwrap_or_default();
    // Errors of a node's own validation (`VALIDATE_INPUTS`) come after the
    // per-input checks, as in ComfyUI.
    let mut custom: Vec<Value> = Vec::new();
    let mut errors: Vec<Value> = Vec::new();
    let mut ok = true;
    for (section, required) in [("required", true), ("optional", false)] {
        let Some(section) = spec.and_then(|s| s.get(section)).and_then(Value::as_object) else {
            continue;
        };
        for (name, conf) in section {
            let kind = conf.get(0);
            let opts = conf.get(1).cloned().unwrap_or(Value::Null);
            let Some(value) = inputs.get(name) else {
                let basic = match kind {
                    Some(Value::String(t)) => !t.starts_with("COMFY_") && !t.contains(','),
                    Some(Value::Array(_)) => true,
                    _ => false,
                };
                if required && basic {
                    errors.push(input_error(
                        "required_input_missing",
                        "Required input is missing",
                        name,
                        json!({"input_name": name}),
                    ));
                }
                continue;
            };
            if let Some(list) = value.as_array()
                && list.len() != 2
            {
                errors.push(input_error(
                    "bad_linked_input",
                    "Bad linked input, must be a length-2 list of [string, int]",
                    name,
                    json!({"input_name": name, "input_config": input_config(conf), "received_value": value}),
                ));
                continue;
            }
            if let Some((from, _slot)) = is_link(value) {
                if !check_node(classes, prompt, from, walk, node_errors, exists)? {
                    ok = false;
                }
                continue;
            }
            let combo = matches!(kind, Some(Value::Array(_)))
                || matches!(kind, Some(Value::String(t)) if t == "COMBO");
            if combo && let Some(spec) = file_specs.iter().find(|s| &s.input == name) {
                match file_check(spec, value, exists) {
                    FileCheck::Found => continue,
                    FileCheck::Invalid(what) => {
                        custom.push(input_error(
                            "custom_validation_failed",
                            "Custom validation failed for node",
                            &format!(
                                "{name} - Invalid {what} file: {}",
                                value.as_str().unwrap_or_default()
                            ),
                            json!({"input_name": name}),
                        ));
                        continue;
                    }
                    FileCheck::List => {}
                }
            }
            let list = match kind {
                Some(Value::Array(list)) => Some(list.clone()),
                Some(Value::String(t)) if t == "COMBO" => {
                    opts.get("options").and_then(Value::as_array).cloned()
                }
                _ => None,
            };
            if let Some(list) = list {
                if !list.contains(value) {
                    let shown: Vec<String> = list
                        .iter()
                        .map(|v| match v {
                            Value::String(s) => format!("'{s}'"),
                            other => other.to_string(),
                        })
                        .collect();
                    let received = match value {
                        Value::String(s) => format!("'{s}'"),
                        other => other.to_string(),
                    };
                    errors.push(input_error(
                        "value_not_in_list",
                        "Value not in list",
                        &format!("{name}: {received} not in [{}]", shown.join(", ")),
                        json!({"input_name": name, "input_config": input_config(conf), "received_value": value}),
                    ));
                }
                continue;
            }
            if let (Some(Value::String(t)), Some(n)) = (kind, value.as_f64())
                && (t == "INT" || t == "FLOAT")
            {
                let shown = value.to_string();
                if let Some(min) = opts.get("min").and_then(Value::as_f64)
                    && n < min
                {
                    errors.push(input_error(
                        "value_smaller_than_min",
                        &format!("Value {shown} smaller than min of {}", opts["min"]),
                        name,
                        json!({"input_name": name, "input_config": input_config(conf), "received_value": value}),
                    ));
                }
                if let Some(max) = opts.get("max").and_then(Value::as_f64)
                    && n > max
                {
                    errors.push(input_error(
                        "value_bigger_than_max",
                        &format!("Value {shown} bigger than max of {}", opts["max"]),
                        name,
                        json!({"input_name": name, "input_config": input_config(conf), "received_value": value}),
                    ));
                }
            }
        }
    }
    errors.append(&mut custom);
    if !errors.is_empty() {
        node_errors.insert(
            id.to_owned(),
            json!({"errors": errors, "dependent_outputs": [], "class_type": class}),
        );
        return Ok(false);
    }
    Ok(ok)
}

/// What [`file_check`] made of a loader's value.
#[derive(Debug, PartialEq, Eq)]
enum FileCheck {
    /// The named file is in the server's folder (ComfyUI lists a loader's
    /// choices from its folder at validation time, so a file uploaded after
    /// the catalogue was read counts).
    Found,
    /// Not there, and the node validates the file itself (LoadImage,
    /// LoadImageMask, LoadImageOutput, LoadAudio, LoadVideo:
    /// `folder_paths.exists_annotated_filepath`, "Invalid image file: x").
    Invalid(&'static str),
    /// Compare with the listed choices as for any combo (Load3D and other
    /// `file_upload` loaders define no validation of their own).
    List,
}

/// Checks a loader's value (an input flagged `*_upload` in the catalogue)
/// against the emulator's folders. A listed choice that is not in the folder
/// (the recordings list `example.png`) is still accepted.
fn file_check(
    spec: &FileInputSpec,
    value: &Value,
    exists: &dyn Fn(&FileName) -> bool,
) -> FileCheck {
    let Some(text) = value.as_str() else {
        return FileCheck::List;
    };
    if spec
        .choices
        .as_ref()
        .is_some_and(|c| c.iter().any(|v| v == text))
    {
        return FileCheck::Found;
    }
    if FileName::parse(text, &spec.folder).is_some_and(|f| exists(&f)) {
        return FileCheck::Found;
    }
    match spec.upload_flag.as_str() {
        "image_upload" => FileCheck::Invalid("image"),
        "audio_upload" => FileCheck::Invalid("audio"),
        "video_upload" => FileCheck::Invalid("video"),
        _ => FileCheck::List,
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::model::output::FolderType;

    #[test]
    fn a_loader_value_is_checked_against_the_folder() {
        let spec = FileInputSpec {
            input: "image".into(),
            upload_flag: "image_upload".into(),
            folder: FolderType::Input,
            choices: Some(vec!["example.png".into()]),
        };
        let there = |f: &FileName| f.subfolder == "comfy-queue/ab" && f.filename == "a.png";
        assert_eq!(
            file_check(&spec, &json!("example.png"), &there),
            FileCheck::Found
        );
        assert_eq!(
            file_check(&spec, &json!("comfy-queue/ab/a.png"), &there),
            FileCheck::Found
        );
        assert_eq!(
            file_check(&spec, &json!("comfy-queue/ab/a.png [input]"), &there),
            FileCheck::Found
        );
        assert_eq!(
            file_check(&spec, &json!("a.png"), &there),
            FileCheck::Invalid("image")
        );
        let model = FileInputSpec {
            upload_flag: "file_upload".into(),
            ..spec
        };
        assert_eq!(file_check(&model, &json!("x.glb"), &there), FileCheck::List);
    }
}

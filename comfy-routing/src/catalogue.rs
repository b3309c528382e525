//! A prompt's node classes and list values against a worker's node catalogue.
//!
//! ComfyUI refuses a prompt whose node class it does not have (`missing_node_type`) and a
//! list input set to a value it does not offer (`value_not_in_list`: a model that is not
//! installed, a sampler a release renamed). Those two depend on the server, not on the
//! prompt alone: another worker may run the same prompt. Every other validation error is
//! the prompt's own and is left to ComfyUI.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Deserialize;
use serde_json::{Map, Value};

/// Keys of ComfyUI's `POST /prompt` body besides `prompt`.
const BODY_KEYS: [&str; 6] = [
    "extra_data",
    "partial_execution_targets",
    "client_id",
    "number",
    "front",
    "prompt_id",
];

/// Whether a job's workflow is a whole `POST /prompt` body (an object `prompt` plus only
/// the body's other keys: `extra_data`, `partial_execution_targets`, ...) rather than a
/// prompt.
pub fn is_prompt_body(workflow: &Map<String, Value>) -> bool {
    workflow.get("prompt").is_some_and(Value::is_object)
        && workflow
            .keys()
            .all(|k| k == "prompt" || BODY_KEYS.contains(&k.as_str()))
}

/// The prompt of a job's workflow: the workflow itself, or its `prompt` when it is a whole
/// `POST /prompt` body ([`is_prompt_body`]). `None` when the workflow is not an object.
pub fn prompt_of(workflow: &Value) -> Option<&Map<String, Value>> {
    let map = workflow.as_object()?;
    if is_prompt_body(map) {
        map.get("prompt")?.as_object()
    } else {
        Some(map)
    }
}

/// One node class of a catalogue: whether it is an output, and its list inputs.
#[derive(Debug, Default)]
struct Class {
    output: bool,
    /// Input name → the values it offers (only list inputs whose values are all strings
    /// and that take no uploads: a loader's file comes with the job).
    lists: HashMap<String, HashSet<String>>,
}

/// A worker's node catalogue (`/object_info`), reduced to what routing checks.
#[derive(Debug, Default)]
pub struct Catalogue {
    classes: HashMap<String, Class>,
}

#[derive(Deserialize)]
struct RawClass {
    #[serde(default)]
    input: RawInputs,
    #[serde(default)]
    output_node: bool,
}

#[derive(Deserialize, Default)]
struct RawInputs {
    #[serde(default)]
    required: Map<String, Value>,
    #[serde(default)]
    optional: Map<String, Value>,
}

/// The options a list input offers, if it is one routing checks.
fn list_options(spec: &Value) -> Option<HashSet<String>> {
    let spec = spec.as_array()?;
    let opts = spec.get(1).and_then(Value::as_object);
    let uploads = opts.is_some_and(|o| {
        o.iter()
            .any(|(k, v)| k.ends_with("_upload") && v.as_bool() == Some(true))
    });
    if uploads || opts.is_some_and(|o| o.contains_key("remote")) {
        return None;
    }
    let values = match spec.first()? {
        Value::Array(values) => values,
        Value::String(t) if t == "COMBO" => opts?.get("options")?.as_array()?,
        _ => return None,
    };
    values
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

impl Catalogue {
    /// Reads an `/object_info` body. Classes whose entry is not an object of the usual
    /// shape are kept as classes with nothing to check.
    pub fn from_slice(body: &[u8]) -> Result<Catalogue, serde_json::Error> {
        let raw: HashMap<String, Value> = serde_json::from_slice(body)?;
        let classes = raw
            .into_iter()
            .map(|(name, v)| {
                let class = match RawClass::deserialize(v) {
                    Ok(c) => {
                        let lists = c
                            .input
                            .required
                            .iter()
                            .chain(c.input.optional.iter())
                            .filter_map(|(k, spec)| Some((k.clone(), list_options(spec)?)))
                            .collect();
                        Class {
                            output: c.output_node,
                            lists,
                        }
                    }
                    Err(_) => Class::default(),
                };
                (name, class)
            })
            .collect();
        Ok(Catalogue { classes })
    }

    /// Number of node classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether it has no node class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// What of `needs` this catalogue lacks; `None` when the prompt fits.
    pub fn misfit(&self, needs: &Needs) -> Option<Misfit> {
        let missing_classes: BTreeSet<String> = needs
            .nodes
            .values()
            .filter(|n| !self.classes.contains_key(&n.class))
            .map(|n| n.class.clone())
            .collect();
        if !missing_classes.is_empty() {
            return Some(Misfit {
                missing_classes,
                missing_values: Vec::new(),
            });
        }
        // Like ComfyUI, list values count only on the nodes that run: the outputs (or the
        // targets) and what they read from.
        let mut stack: Vec<&str> = match &needs.targets {
            Some(t) => t.iter().map(String::as_str).collect(),
            None => needs
                .nodes
                .iter()
                .filter(|(_, n)| self.classes.get(&n.class).is_some_and(|c| c.output))
                .map(|(id, _)| id.as_str())
                .collect(),
        };
        let mut seen = HashSet::new();
        let mut missing_values = Vec::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(node) = needs.nodes.get(id) else {
                continue;
            };
            stack.extend(node.links.iter().map(String::as_str));
            let Some(class) = self.classes.get(&node.class) else {
                continue;
            };
            for (input, value) in &node.picks {
                if let Some(offered) = class.lists.get(input)
                    && !offered.contains(value)
                {
                    missing_values.push(PickedValue {
                        class: node.class.clone(),
                        input: input.clone(),
                        value: value.clone(),
                    });
                }
            }
        }
        missing_values.sort();
        missing_values.dedup();
        (!missing_values.is_empty()).then_some(Misfit {
            missing_classes,
            missing_values,
        })
    }
}

/// One node of a prompt, as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    class: String,
    /// Inputs set to a string (a list input's pick, or free text).
    picks: Vec<(String, String)>,
    /// Ids of the nodes it reads from.
    links: Vec<String>,
}

/// What a prompt needs of a catalogue: its node classes and its string inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    nodes: HashMap<String, Node>,
    targets: Option<Vec<String>>,
}

impl Needs {
    /// Reads a job's workflow (a prompt, or a whole `POST /prompt` body with
    /// `partial_execution_targets`); nodes without a `class_type` are left to ComfyUI.
    pub fn of_workflow(workflow: &Value) -> Needs {
        let Some(map) = workflow.as_object() else {
            return Needs::default();
        };
        if !is_prompt_body(map) {
            return Needs::of_prompt(map);
        }
        let mut needs = map
            .get("prompt")
            .and_then(Value::as_object)
            .map(Needs::of_prompt)
            .unwrap_or_default();
        needs.targets = map
            .get("partial_execution_targets")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            });
        needs
    }

    /// Reads an API-format prompt (node id → `{class_type, inputs}`).
    pub fn of_prompt(prompt: &Map<String, Value>) -> Needs {
        let nodes = prompt
            .iter()
            .filter_map(|(id, node)| {
                let class = node.get("class_type")?.as_str()?.to_owned();
                let mut picks = Vec::new();
                let mut links = Vec::new();
                if let Some(inputs) = node.get("inputs").and_then(Value::as_object) {
                    for (name, value) in inputs {
                        match value {
                            Value::String(s) => picks.push((name.clone(), s.clone())),
                            Value::Array(link) if link.len() == 2 => {
                                if let Some(from) = link.first().and_then(link_id) {
                                    links.push(from);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                Some((
                    id.clone(),
                    Node {
                        class,
                        picks,
                        links,
                    },
                ))
            })
            .collect();
        Needs {
            nodes,
            targets: None,
        }
    }

    /// The node classes the prompt uses.
    pub fn classes(&self) -> BTreeSet<&str> {
        self.nodes.values().map(|n| n.class.as_str()).collect()
    }
}

fn link_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A list input set to a value the catalogue does not offer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PickedValue {
    /// The node's class.
    pub class: String,
    /// The input.
    pub input: String,
    /// The value the prompt picked.
    pub value: String,
}

/// Why a prompt does not fit a catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misfit {
    /// Node classes the catalogue does not have.
    pub missing_classes: BTreeSet<String>,
    /// List values it does not offer (checked once every class is there).
    pub missing_values: Vec<PickedValue>,
}

impl Misfit {
    /// `nodes` or `values`: which of the two it is.
    pub fn kind(&self) -> &'static str {
        if self.missing_classes.is_empty() {
            "values"
        } else {
            "nodes"
        }
    }
}

impl std::fmt::Display for Misfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 5;
        if !self.missing_classes.is_empty() {
            let names: Vec<&str> = self
                .missing_classes
                .iter()
                .take(SHOWN)
                .map(String::as_str)
                .collect();
            write!(f, "no node class {}", names.join(", "))?;
            if self.missing_classes.len() > SHOWN {
                write!(f, " (and {} more)", self.missing_classes.len() - SHOWN)?;
            }
            return Ok(());
        }
        let picks: Vec<String> = self
            .missing_values
            .iter()
            .take(SHOWN)
            .map(|p| format!("{}.{} = {:?}", p.class, p.input, p.value))
            .collect();
        write!(f, "not offered: {}", picks.join(", "))?;
        if self.missing_values.len() > SHOWN {
            write!(f, " (and {} more)", self.missing_values.len() - SHOWN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn catalogue() -> Catalogue {
        let body = json!({
            "CheckpointLoaderSimple": {"input": {"required": {
                "ckpt_name": [["sd15.safetensors"], {}]}}},
            "KSampler": {"input": {"required": {
                "model": ["MODEL", {}],
                "sampler_name": ["COMBO", {"options": ["euler", "dpmpp_2m"]}]}}},
            "LoadImage": {"input": {"required": {
                "image": [["example.png"], {"image_upload": true}]}}},
            "SaveImage": {"input": {"required": {"images": ["IMAGE", {}]}}, "output_node": true},
            "Note": {"input": {"required": {"text": [["a"], {}]}}},
        });
        Catalogue::from_slice(body.to_string().as_bytes()).unwrap()
    }

    fn prompt(ckpt: &str, sampler: &str) -> Value {
        json!({
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
            "2": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "sampler_name": sampler}},
            "3": {"class_type": "LoadImage", "inputs": {"image": "mine.png"}},
            "4": {"class_type": "SaveImage", "inputs": {"images": [2, 0]}},
            "5": {"class_type": "Note", "inputs": {"text": "not run"}},
        })
    }

    #[test]
    fn a_prompt_with_offered_values_fits() {
        let needs = Needs::of_workflow(&prompt("sd15.safetensors", "euler"));
        // The upload input and the value of a node nothing runs are not checked.
        assert_eq!(catalogue().misfit(&needs), None);
        assert_eq!(needs.classes().len(), 5);
    }

    #[test]
    fn values_not_offered_on_the_nodes_that_run_are_named() {
        let needs = Needs::of_workflow(&prompt("sdxl.safetensors", "euler_cfg_pp"));
        let m = catalogue().misfit(&needs).unwrap();
        assert_eq!(m.kind(), "values");
        assert_eq!(
            m.to_string(),
            "not offered: CheckpointLoaderSimple.ckpt_name = \"sdxl.safetensors\", \
             KSampler.sampler_name = \"euler_cfg_pp\""
        );
    }

    #[test]
    fn missing_classes_come_first() {
        let mut p = prompt("sdxl.safetensors", "euler");
        p["6"] = json!({"class_type": "FluxGuidance", "inputs": {}});
        let m = catalogue().misfit(&Needs::of_workflow(&p)).unwrap();
        assert_eq!(m.kind(), "nodes");
        assert_eq!(m.to_string(), "no node class FluxGuidance");
    }

    #[test]
    fn a_whole_prompt_body_is_read_with_its_targets() {
        let body = json!({"prompt": prompt("sd15.safetensors", "euler"),
            "partial_execution_targets": ["5"], "extra_data": {}});
        let m = catalogue().misfit(&Needs::of_workflow(&body)).unwrap();
        assert_eq!(m.to_string(), "not offered: Note.text = \"not run\"");
        // A workflow that merely has a node named `prompt` is a prompt.
        let odd = json!({"prompt": {"class_type": "Note", "inputs": {"text": "a"}}, "x": 1});
        assert!(prompt_of(&odd).unwrap().contains_key("x"));
    }
}

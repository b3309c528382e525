//! The UI ("graph") workflow format the frontend saves: serde types that
//! accept both the 0.4 layout (links as arrays) and the version 1 layout
//! used inside subgraph definitions (links as objects).
//!
//! Only what conversion needs is typed; the rest of a node (position, size,
//! colours, ...) is ignored.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Link origin id of a subgraph's input node.
pub const SUBGRAPH_INPUT_ID: i64 = -10;
/// Link target id of a subgraph's output node.
pub const SUBGRAPH_OUTPUT_ID: i64 = -20;

/// A whole UI workflow.
#[derive(Debug, Clone, Deserialize)]
pub struct UiWorkflow {
    /// Top-level nodes, in the saved order.
    #[serde(default)]
    pub nodes: Vec<UiNode>,
    /// Top-level links.
    #[serde(default)]
    pub links: Vec<UiLink>,
    /// Highest node id handed out (0.4 layout).
    #[serde(default)]
    pub last_node_id: Option<Value>,
    /// Counters (version 1 layout).
    #[serde(default)]
    pub state: Option<GraphState>,
    /// Subgraph definitions.
    #[serde(default)]
    pub definitions: Option<Definitions>,
    /// Frontend extras (`groupNodes`, `ds`, ...).
    #[serde(default)]
    pub extra: Option<Map<String, Value>>,
}

impl UiWorkflow {
    /// The graph's `lastNodeId` counter, whichever layout holds it.
    pub fn last_node_id(&self) -> i64 {
        self.state
            .as_ref()
            .and_then(|s| s.last_node_id.as_ref())
            .or(self.last_node_id.as_ref())
            .and_then(value_as_i64)
            .unwrap_or(0)
    }

    /// Subgraph definitions in document order (empty when there are none).
    pub fn subgraphs(&self) -> &[SubgraphDef] {
        self.definitions
            .as_ref()
            .map(|d| d.subgraphs.as_slice())
            .unwrap_or_default()
    }
}

/// `state` of a version 1 graph.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct GraphState {
    /// Highest node id handed out.
    #[serde(default, rename = "lastNodeId")]
    pub last_node_id: Option<Value>,
}

/// `definitions` of a graph.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Definitions {
    /// Every subgraph definition (nested ones are listed here too).
    #[serde(default)]
    pub subgraphs: Vec<SubgraphDef>,
}

/// One subgraph definition: a graph with boundary inputs and outputs.
#[derive(Debug, Clone, Deserialize)]
pub struct SubgraphDef {
    /// The definition id; instances use it as their `type`.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Boundary inputs (link origin `-10`, slot = index here).
    #[serde(default)]
    pub inputs: Vec<SubgraphIo>,
    /// Boundary outputs (link target `-20`, slot = index here).
    #[serde(default)]
    pub outputs: Vec<SubgraphIo>,
    /// Interior nodes.
    #[serde(default)]
    pub nodes: Vec<UiNode>,
    /// Interior links.
    #[serde(default)]
    pub links: Vec<UiLink>,
    /// Promoted widgets (`[{id, name}]`).
    #[serde(default)]
    pub widgets: Vec<Value>,
    /// Nested definitions, if a frontend stored them here.
    #[serde(default)]
    pub definitions: Option<Definitions>,
}

/// A subgraph boundary slot.
#[derive(Debug, Clone, Deserialize)]
pub struct SubgraphIo {
    /// Slot name; instance inputs match it by name.
    #[serde(default)]
    pub name: String,
    /// Slot type.
    #[serde(default, rename = "type")]
    pub kind: Value,
}

/// One node.
#[derive(Debug, Clone, Deserialize)]
pub struct UiNode {
    /// Node id (an integer in practice; strings are kept as written).
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Node class, a frontend-only type, or a subgraph definition id.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// 0 always, 2 never (muted), 4 bypass.
    #[serde(default, deserialize_with = "mode_number")]
    pub mode: i64,
    /// The title the user gave, if any.
    #[serde(default)]
    pub title: Option<String>,
    /// Input slots (partial for subgraph instances).
    #[serde(default)]
    pub inputs: Vec<UiInput>,
    /// Output slots.
    #[serde(default)]
    pub outputs: Vec<UiOutput>,
    /// `proxyWidgets`, `Node name for S&R`, ...
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Widget values: positional array, or an object keyed by widget name.
    #[serde(default)]
    pub widgets_values: Option<Value>,
}

impl UiNode {
    /// `properties.proxyWidgets` as `(node id, widget name)` pairs.
    pub fn proxy_widgets(&self) -> Vec<(String, String)> {
        let Some(Value::Array(entries)) = self.properties.get("proxyWidgets") else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|e| {
                let pair = e.as_array()?;
                let id = match pair.first()? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                let name = pair.get(1)?.as_str()?.to_owned();
                Some((id, name))
            })
            .collect()
    }
}

/// An input slot.
#[derive(Debug, Clone, Deserialize)]
pub struct UiInput {
    /// Input name (= the API input name for real nodes).
    #[serde(default)]
    pub name: String,
    /// Slot type: a string, `*`, a comma list, or a legacy number.
    #[serde(rename = "type", default)]
    pub kind: Value,
    /// The link feeding it.
    #[serde(default, deserialize_with = "opt_i64")]
    pub link: Option<i64>,
    /// Set when the slot backs a widget.
    #[serde(default)]
    pub widget: Option<Value>,
}

/// An output slot.
#[derive(Debug, Clone, Deserialize)]
pub struct UiOutput {
    /// Output name.
    #[serde(default)]
    pub name: String,
    /// Slot type.
    #[serde(rename = "type", default)]
    pub kind: Value,
}

/// A link, from either layout.
#[derive(Debug, Clone, PartialEq)]
pub struct UiLink {
    /// Link id.
    pub id: i64,
    /// Origin node id (`-10` = subgraph input).
    pub origin_id: i64,
    /// Origin output slot.
    pub origin_slot: i64,
    /// Target node id (`-20` = subgraph output).
    pub target_id: i64,
    /// Target input slot.
    pub target_slot: i64,
    /// Link type.
    pub kind: Value,
}

impl<'de> Deserialize<'de> for UiLink {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        let num = |x: Option<&Value>, what: &str| {
            x.and_then(value_as_i64)
                .ok_or_else(|| D::Error::custom(format!("link without a numeric {what}")))
        };
        match &v {
            Value::Array(a) => Ok(UiLink {
                id: num(a.first(), "id")?,
                origin_id: num(a.get(1), "origin_id")?,
                origin_slot: num(a.get(2), "origin_slot")?,
                target_id: num(a.get(3), "target_id")?,
                target_slot: num(a.get(4), "target_slot")?,
                kind: a.get(5).cloned().unwrap_or(Value::Null),
            }),
            Value::Object(o) => Ok(UiLink {
                id: num(o.get("id"), "id")?,
                origin_id: num(o.get("origin_id"), "origin_id")?,
                origin_slot: num(o.get("origin_slot"), "origin_slot")?,
                target_id: num(o.get("target_id"), "target_id")?,
                target_slot: num(o.get("target_slot"), "target_slot")?,
                kind: o.get("type").cloned().unwrap_or(Value::Null),
            }),
            _ => Err(D::Error::custom("a link is an array or an object")),
        }
    }
}

/// An integer from a JSON number or a numeric string.
pub fn value_as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(D::Error::custom(format!("node id {other} is not a number"))),
    }
}

fn mode_number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(value_as_i64(&Value::deserialize(d)?).unwrap_or(0))
}

fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?
        .as_ref()
        .and_then(value_as_i64))
}

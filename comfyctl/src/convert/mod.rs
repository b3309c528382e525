//! UI workflow → API prompt, as the real frontend's `graphToPrompt` does it.
//!
//! The UI format (what users save, what `workflows/ui/` holds) stores widget
//! values by position, links by id, subgraphs as definitions, and keeps
//! muted, bypassed and frontend-only nodes. The API prompt
//! (`POST /prompt`) has one entry per executable node with named inputs.
//! Turning one into the other needs the server's node catalogue
//! (`/object_info`) for the widget names; see [`widgets`] and [`graph`].
//!
//! What the frontend writes also depends on the frontend's version, not
//! only on the server's catalogue: its own widgets (audio players, 3D
//! previews, image-compare, bounding boxes), where a node's title comes
//! from, whether subgraph ids are renumbered, what the request body
//! carries. [`frontend::Frontend`] names the version and
//! [`frontend::RULES`] is the one table of those differences;
//! [`ConvertOptions`] says which frontend a conversion is for.

pub mod frontend;
pub mod graph;
pub mod locale;
pub mod ui;
pub mod widgets;

use comfy_adapter::model::catalogue::NodeCatalogue;
use frontend::{Frontend, Rule};
use graph::{Graphs, Resolved};
use serde_json::{Map, Value};
use ui::UiWorkflow;

/// Why a workflow could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file is not a UI workflow.
    #[error("not a UI workflow: {0}")]
    NotUiWorkflow(String),
    /// An active node's class is not in the server's catalogue.
    #[error(
        "node {node_id} is a {class_type:?}, which this server's object_info does not have (custom node not installed, or renamed?)"
    )]
    MissingNodeType {
        /// Prompt id of the node (`"75:64"` inside a subgraph).
        node_id: String,
        /// Its class.
        class_type: String,
    },
    /// A catalogue entry could not be parsed.
    #[error("object_info entry for {class_type:?} (node {node_id}) is not valid: {message}")]
    BadCatalogueEntry {
        /// Prompt id of the node.
        node_id: String,
        /// Its class.
        class_type: String,
        /// The parser's message.
        message: String,
    },
    /// Group nodes (`workflow>Name`, frontend < 1.24) are not converted.
    #[error(
        "node {node_id} is a legacy group node {class_type:?}; convert it to a subgraph in the frontend first"
    )]
    GroupNode {
        /// Node id.
        node_id: String,
        /// `workflow>Name`.
        class_type: String,
    },
    /// Subgraph instances expand to more nodes than a prompt may have.
    #[error(
        "the workflow expands to more than {0} nodes (subgraphs nested inside subgraphs multiply); refused"
    )]
    TooManyNodes(usize),
    /// Subgraphs nest deeper than the limit (a definition containing itself).
    #[error("subgraphs nest deeper than {0} levels (does a subgraph contain itself?)")]
    SubgraphTooDeep(usize),
    /// Link resolution went round in circles.
    #[error("links around node {0} form a cycle through reroutes or bypassed nodes")]
    LinkCycle(String),
}

/// Which frontend a conversion is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// The frontend whose rules apply; `None` converts from the catalogue
    /// alone (no frontend widgets, the server's display names as titles,
    /// no id renumbering).
    pub frontend: Option<Frontend>,
    /// Renumber clashing subgraph node ids whatever the frontend does (for
    /// exercising the walk; the frontend's own rule is
    /// [`Rule::RenumberSubgraphIds`]).
    pub dedupe_subgraph_node_ids: bool,
}

impl ConvertOptions {
    /// What the frontend pinned by ComfyUI `version` does (the releases
    /// table says which frontend that is).
    pub fn for_server(version: &semver::Version) -> Self {
        Self::for_frontend(Frontend::pinned_by(version))
    }

    /// What this frontend does.
    pub fn for_frontend(frontend: Frontend) -> Self {
        ConvertOptions {
            frontend: Some(frontend),
            dedupe_subgraph_node_ids: false,
        }
    }

    fn renumbers(&self) -> bool {
        self.dedupe_subgraph_node_ids
            || self
                .frontend
                .as_ref()
                .is_some_and(|f| f.has(Rule::RenumberSubgraphIds))
    }
}

/// Whether a JSON document is a UI workflow (has a `nodes` array) rather
/// than an API prompt.
pub fn is_ui_workflow(doc: &Value) -> bool {
    doc.get("nodes").is_some_and(Value::is_array)
}

/// Every active node whose class the catalogue lacks, as `(prompt id,
/// class)` in walk order (conversion stops at the first; a check wants
/// them all).
pub fn unknown_node_types(
    doc: &Value,
    catalogue: &NodeCatalogue,
    options: &ConvertOptions,
) -> Result<Vec<(String, String)>, ConvertError> {
    let mut wf: UiWorkflow = serde_json::from_value(doc.clone())
        .map_err(|e| ConvertError::NotUiWorkflow(e.to_string()))?;
    if options.renumbers() {
        graph::dedupe_subgraph_node_ids(&mut wf);
    }
    let graphs = Graphs::new(&wf);
    Ok(graphs
        .emitted()?
        .into_iter()
        .filter(|e| !catalogue.contains(&e.node.kind))
        .map(|e| (e.exec_id, e.node.kind.clone()))
        .collect())
}

/// Converts a UI workflow into the API prompt the frontend would send.
pub fn convert(
    doc: &Value,
    catalogue: &NodeCatalogue,
    options: &ConvertOptions,
) -> Result<Map<String, Value>, ConvertError> {
    let mut wf: UiWorkflow = serde_json::from_value(doc.clone())
        .map_err(|e| ConvertError::NotUiWorkflow(e.to_string()))?;
    if options.renumbers() {
        graph::dedupe_subgraph_node_ids(&mut wf);
    }
    let graphs = Graphs::new(&wf);
    let emitted = graphs.emitted()?;
    let mut prompt: Vec<(String, Value)> = Vec::with_capacity(emitted.len());
    for e in &emitted {
        let node = e.node;
        if node.kind.starts_with("workflow>") || node.kind.starts_with("workflow/") {
            return Err(ConvertError::GroupNode {
                node_id: e.exec_id.clone(),
                class_type: node.kind.clone(),
            });
        }
        let class = match catalogue.node(&node.kind) {
            None => {
                return Err(ConvertError::MissingNodeType {
                    node_id: e.exec_id.clone(),
                    class_type: node.kind.clone(),
                });
            }
            Some(Err(err)) => {
                return Err(ConvertError::BadCatalogueEntry {
                    node_id: e.exec_id.clone(),
                    class_type: node.kind.clone(),
                    message: err.to_string(),
                });
            }
            Some(Ok(c)) => c,
        };
        let mut inputs: Map<String, Value> = widgets::widget_inputs_for(
            &class,
            node.widgets_values.as_ref(),
            options.frontend.as_ref(),
        )
        .into_iter()
        .collect();
        if let Some(instance) = e.instance().filter(|_| {
            options
                .frontend
                .as_ref()
                .is_some_and(|f| f.has(Rule::PromotedWidgetsTakeInstanceValues))
        }) && let Some(Value::Array(values)) = &instance.widgets_values
        {
            let nulls = options
                .frontend
                .as_ref()
                .is_some_and(|f| f.has(Rule::NullInstanceValuesApply));
            for (i, (id, name)) in instance.proxy_widgets().into_iter().enumerate() {
                if id == node.id
                    && let Some(v) = values.get(i).filter(|v| nulls || !v.is_null())
                    && let Some(slot) = inputs.get_mut(&name)
                {
                    *slot = widgets::wrap_array(v.clone());
                }
            }
        }
        for (i, input) in node.inputs.iter().enumerate() {
            if input.link.is_none() {
                continue;
            }
            match graphs.resolve(e, i)? {
                Resolved::Link(id, slot) => {
                    inputs.insert(input.name.clone(), serde_json::json!([id, slot]));
                }
                Resolved::Value(v) => {
                    inputs.insert(input.name.clone(), widgets::wrap_array(v));
                }
                Resolved::Nothing => {}
            }
        }
        let server_name = class
            .get("display_name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let title = match (&node.title, &options.frontend) {
            (Some(t), _) => t.clone(),
            (None, Some(fe)) => fe.title(&node.kind, server_name),
            (None, None) => server_name.unwrap_or(&node.kind).to_owned(),
        };
        let mut entry = Map::new();
        entry.insert("inputs".to_owned(), Value::Object(inputs));
        entry.insert("class_type".to_owned(), Value::String(node.kind.clone()));
        let mut meta = Map::new();
        meta.insert("title".to_owned(), Value::String(title));
        if options
            .frontend
            .as_ref()
            .is_some_and(|f| f.has(Rule::PackMetadataInMeta))
        {
            for (k, v) in frontend::pack_metadata(&node.properties) {
                meta.insert(k.to_owned(), Value::String(v));
            }
        }
        entry.insert("_meta".to_owned(), Value::Object(meta));
        prompt.push((e.exec_id.clone(), Value::Object(entry)));
    }
    drop_dangling_links(&mut prompt);
    Ok(js_key_order(prompt))
}

/// The `POST /prompt` body the frontend sends for `prompt`:
/// `{client_id, prompt, extra_data: {extra_pnginfo: {workflow}, ...}}`, with
/// the extra data `frontend` adds. `workflow` is the UI graph as the
/// frontend serialised it (its own re-save of what was loaded).
pub fn prompt_body(
    prompt: Map<String, Value>,
    workflow: Value,
    client_id: &str,
    frontend: Option<&Frontend>,
) -> Value {
    let mut extra = frontend.map(Frontend::extra_data).unwrap_or_default();
    extra.insert(
        "extra_pnginfo".to_owned(),
        serde_json::json!({ "workflow": workflow }),
    );
    serde_json::json!({
        "client_id": client_id,
        "prompt": prompt,
        "extra_data": extra,
    })
}

/// Removes `[id, slot]` inputs whose node is not in the prompt (links from
/// muted nodes, or from nothing).
fn drop_dangling_links(prompt: &mut [(String, Value)]) {
    let ids: std::collections::HashSet<String> = prompt.iter().map(|(k, _)| k.clone()).collect();
    for (_, entry) in prompt.iter_mut() {
        if let Some(Value::Object(inputs)) = entry.get_mut("inputs") {
            inputs.retain(|_, v| match link_target(v) {
                Some(id) => ids.contains(id),
                None => true,
            });
        }
    }
}

/// The node id of a link value `[id, slot]`.
pub fn link_target(v: &Value) -> Option<&str> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(id), slot]) if slot.is_number() => Some(id),
        _ => None,
    }
}

/// Keys in the order a JS object lists them: integer-like keys ascending,
/// then the rest in insertion order.
fn js_key_order(entries: Vec<(String, Value)>) -> Map<String, Value> {
    let is_index = |k: &str| {
        k.parse::<u32>()
            .is_ok_and(|n| n != u32::MAX && n.to_string() == k)
    };
    let (mut ints, rest): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(k, _)| is_index(k));
    ints.sort_by_key(|(k, _)| k.parse::<u32>().unwrap_or(u32::MAX));
    ints.into_iter().chain(rest).collect()
}

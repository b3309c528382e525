//! The graph walk: which nodes end up in the prompt under which id, and
//! what each linked input resolves to.
//!
//! Follows the frontend's `graphToPrompt`:
//! - muted (mode 2) and bypassed (mode 4) nodes are left out; a subgraph
//!   instance in either mode is not expanded;
//! - a link out of a bypassed node continues through the bypassed node's
//!   input of a matching type;
//! - a link out of a muted node stays dangling and is dropped at the end;
//! - `Reroute` passes its input through; a legacy `PrimitiveNode` gives its
//!   value to every input it feeds; notes are dropped;
//! - a subgraph instance is replaced by its interior nodes with ids
//!   `instance:inner` (nested: `a:b:c`); a link from the subgraph's input
//!   node continues at the instance's input of the same name, or takes the
//!   instance's widget value for it (`proxyWidgets` order).

use super::ConvertError;
use super::ui::{SUBGRAPH_INPUT_ID, SUBGRAPH_OUTPUT_ID, SubgraphDef, UiLink, UiNode, UiWorkflow};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Frontend-only node types that never reach the prompt.
pub const VIRTUAL_TYPES: [&str; 5] = [
    "Note",
    "MarkdownNote",
    "PrimitiveNode",
    "Reroute",
    "Comment",
];

/// How deep subgraphs may nest before the walk gives up (a definition that
/// contains an instance of itself would never end).
const MAX_DEPTH: usize = 32;
/// Link hops allowed for one input (reroute/bypass chains); more means a cycle.
const MAX_HOPS: usize = 10_000;
/// Nodes the walk may visit (subgraph instances included) before it gives
/// up: nesting multiplies, and 16 levels of 4 instances each would expand
/// to 4^16 nodes from an 11 KB workflow. The largest official template has
/// a few hundred.
pub const MAX_EXPANDED_NODES: usize = 100_000;

/// What a linked input turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// `[exec id, output slot]`.
    Link(String, i64),
    /// A plain value (a subgraph instance's widget, a legacy primitive).
    Value(Value),
    /// Nothing: the input keeps its widget value, if it has one.
    Nothing,
}

/// One graph's nodes and links, indexed.
#[derive(Debug)]
pub struct Graph<'a> {
    /// Nodes in saved order.
    pub nodes: &'a [UiNode],
    by_id: HashMap<&'a str, &'a UiNode>,
    links: HashMap<i64, &'a UiLink>,
}

impl<'a> Graph<'a> {
    /// Indexes `nodes` and `links`.
    pub fn new(nodes: &'a [UiNode], links: &'a [UiLink]) -> Self {
        Graph {
            nodes,
            by_id: nodes.iter().map(|n| (n.id.as_str(), n)).collect(),
            links: links.iter().map(|l| (l.id, l)).collect(),
        }
    }

    fn node(&self, id: i64) -> Option<&'a UiNode> {
        self.by_id.get(id.to_string().as_str()).copied()
    }

    fn link(&self, id: i64) -> Option<&'a UiLink> {
        self.links.get(&id).copied()
    }

    fn output_link(&self, slot: i64) -> Option<&'a UiLink> {
        let mut found: Vec<&&UiLink> = self
            .links
            .values()
            .filter(|l| l.target_id == SUBGRAPH_OUTPUT_ID && l.target_slot == slot)
            .collect();
        found.sort_by_key(|l| l.id);
        found.last().map(|l| **l)
    }
}

/// Where the walk is: a graph, and the instance that opened it.
#[derive(Debug, Clone)]
pub struct Frame<'a, 'g> {
    graph: &'g Graph<'a>,
    def: Option<&'a SubgraphDef>,
    instance: Option<&'a UiNode>,
    prefix: String,
}

/// A node that goes into the prompt, with the frames that lead to it.
#[derive(Debug, Clone)]
pub struct Emitted<'a, 'g> {
    /// Its prompt id (`"75"`, `"75:64"`).
    pub exec_id: String,
    /// The node.
    pub node: &'a UiNode,
    frames: Vec<Frame<'a, 'g>>,
}

impl<'a> Emitted<'a, '_> {
    /// The subgraph instance whose interior holds the node (`None` at the
    /// root).
    pub fn instance(&self) -> Option<&'a UiNode> {
        self.frames.last().and_then(|f| f.instance)
    }
}

/// The root graph and every subgraph definition, indexed.
#[derive(Debug)]
pub struct Graphs<'a> {
    root: Graph<'a>,
    defs: HashMap<&'a str, (&'a SubgraphDef, Graph<'a>)>,
}

impl<'a> Graphs<'a> {
    /// Indexes a workflow (after any id deduplication).
    pub fn new(wf: &'a UiWorkflow) -> Self {
        let mut defs = HashMap::new();
        let mut stack: Vec<&'a SubgraphDef> = wf.subgraphs().iter().collect();
        while let Some(def) = stack.pop() {
            if let Some(nested) = &def.definitions {
                stack.extend(nested.subgraphs.iter());
            }
            defs.entry(def.id.as_str())
                .or_insert_with(|| (def, Graph::new(&def.nodes, &def.links)));
        }
        Graphs {
            root: Graph::new(&wf.nodes, &wf.links),
            defs,
        }
    }

    /// Whether `kind` names a subgraph definition.
    pub fn is_subgraph(&self, kind: &str) -> bool {
        self.defs.contains_key(kind)
    }

    /// Every node that goes into the prompt, in walk order.
    pub fn emitted(&self) -> Result<Vec<Emitted<'a, '_>>, ConvertError> {
        let root = Frame {
            graph: &self.root,
            def: None,
            instance: None,
            prefix: String::new(),
        };
        let mut out = Vec::new();
        let mut visited = 0;
        self.walk(&[root], &mut out, &mut visited)?;
        Ok(out)
    }

    fn walk<'g>(
        &'g self,
        frames: &[Frame<'a, 'g>],
        out: &mut Vec<Emitted<'a, 'g>>,
        visited: &mut usize,
    ) -> Result<(), ConvertError> {
        if frames.len() > MAX_DEPTH {
            return Err(ConvertError::SubgraphTooDeep(MAX_DEPTH));
        }
        let Some(frame) = frames.last() else {
            return Ok(());
        };
        for node in frame.graph.nodes {
            if node.mode == 2 || node.mode == 4 {
                continue;
            }
            *visited += 1;
            if *visited > MAX_EXPANDED_NODES {
                return Err(ConvertError::TooManyNodes(MAX_EXPANDED_NODES));
            }
            if let Some(inner) = self.enter(frame, node) {
                let mut deeper = frames.to_vec();
                deeper.push(inner);
                self.walk(&deeper, out, visited)?;
                continue;
            }
            if VIRTUAL_TYPES.contains(&node.kind.as_str()) {
                continue;
            }
            out.push(Emitted {
                exec_id: format!("{}{}", frame.prefix, node.id),
                node,
                frames: frames.to_vec(),
            });
        }
        Ok(())
    }

    fn enter<'g>(&'g self, frame: &Frame<'a, 'g>, node: &'a UiNode) -> Option<Frame<'a, 'g>> {
        let (def, graph) = self.defs.get(node.kind.as_str())?;
        Some(Frame {
            graph,
            def: Some(def),
            instance: Some(node),
            prefix: format!("{}{}:", frame.prefix, node.id),
        })
    }

    /// What input `index` of an emitted node resolves to.
    pub fn resolve(&self, e: &Emitted<'a, '_>, index: usize) -> Result<Resolved, ConvertError> {
        let mut hops = 0;
        self.resolve_input(&e.frames, e.node, index, &mut hops)
    }

    fn resolve_input<'g>(
        &'g self,
        frames: &[Frame<'a, 'g>],
        node: &'a UiNode,
        index: usize,
        hops: &mut usize,
    ) -> Result<Resolved, ConvertError> {
        *hops += 1;
        if *hops > MAX_HOPS {
            return Err(ConvertError::LinkCycle(node.id.clone()));
        }
        let Some(frame) = frames.last() else {
            return Ok(Resolved::Nothing);
        };
        let Some(input) = node.inputs.get(index) else {
            return Ok(Resolved::Nothing);
        };
        let Some(link) = input.link.and_then(|id| frame.graph.link(id)) else {
            return Ok(Resolved::Nothing);
        };
        if link.origin_id == SUBGRAPH_INPUT_ID {
            return self.resolve_boundary(frames, link.origin_slot, hops);
        }
        let Some(origin) = frame.graph.node(link.origin_id) else {
            return Ok(Resolved::Nothing);
        };
        let wanted = type_name(&input.kind);
        self.resolve_output(frames, origin, link.origin_slot, &wanted, hops)
    }

    /// A link from the subgraph's input node, slot `slot`.
    fn resolve_boundary<'g>(
        &'g self,
        frames: &[Frame<'a, 'g>],
        slot: i64,
        hops: &mut usize,
    ) -> Result<Resolved, ConvertError> {
        let Some((frame, parent)) = frames.split_last() else {
            return Ok(Resolved::Nothing);
        };
        let (Some(def), Some(instance)) = (frame.def, frame.instance) else {
            return Ok(Resolved::Nothing);
        };
        let Some(name) = usize::try_from(slot)
            .ok()
            .and_then(|s| def.inputs.get(s))
            .map(|i| i.name.as_str())
        else {
            return Ok(Resolved::Nothing);
        };
        if let Some(i) = instance
            .inputs
            .iter()
            .position(|i| i.name == name && i.link.is_some())
        {
            return self.resolve_input(parent, instance, i, hops);
        }
        Ok(instance_widget_value(instance, name).map_or(Resolved::Nothing, Resolved::Value))
    }

    fn resolve_output<'g>(
        &'g self,
        frames: &[Frame<'a, 'g>],
        node: &'a UiNode,
        slot: i64,
        wanted: &str,
        hops: &mut usize,
    ) -> Result<Resolved, ConvertError> {
        *hops += 1;
        if *hops > MAX_HOPS {
            return Err(ConvertError::LinkCycle(node.id.clone()));
        }
        let Some(frame) = frames.last() else {
            return Ok(Resolved::Nothing);
        };
        if node.mode == 4 {
            return match bypass_input(node, slot, wanted) {
                Some(i) => self.resolve_input(frames, node, i, hops),
                None => Ok(Resolved::Nothing),
            };
        }
        if node.mode == 2 {
            return Ok(Resolved::Link(format!("{}{}", frame.prefix, node.id), slot));
        }
        if let Some(inner) = self.enter(frame, node) {
            if frames.len() > MAX_DEPTH {
                return Err(ConvertError::SubgraphTooDeep(MAX_DEPTH));
            }
            let Some(link) = inner.graph.output_link(slot) else {
                return Ok(Resolved::Nothing);
            };
            let graph = inner.graph;
            let mut deeper = frames.to_vec();
            deeper.push(inner);
            if link.origin_id == SUBGRAPH_INPUT_ID {
                return self.resolve_boundary(&deeper, link.origin_slot, hops);
            }
            let Some(origin) = graph.node(link.origin_id) else {
                return Ok(Resolved::Nothing);
            };
            return self.resolve_output(&deeper, origin, link.origin_slot, wanted, hops);
        }
        match node.kind.as_str() {
            "Reroute" => {
                if node.inputs.is_empty() {
                    Ok(Resolved::Nothing)
                } else {
                    self.resolve_input(frames, node, 0, hops)
                }
            }
            "PrimitiveNode" => Ok(match &node.widgets_values {
                Some(Value::Array(a)) => a
                    .first()
                    .cloned()
                    .map_or(Resolved::Nothing, Resolved::Value),
                _ => Resolved::Nothing,
            }),
            k if VIRTUAL_TYPES.contains(&k) => Ok(Resolved::Nothing),
            _ => Ok(Resolved::Link(format!("{}{}", frame.prefix, node.id), slot)),
        }
    }
}

/// The value a subgraph instance holds for its boundary input `name`: the
/// `widgets_values` entry at the position of `["-1", name]` in
/// `proxyWidgets` (or keyed by name); `None` when the save has none, so the
/// interior widget keeps its own value.
fn instance_widget_value(instance: &UiNode, name: &str) -> Option<Value> {
    match &instance.widgets_values {
        Some(Value::Array(values)) => {
            let pos = instance
                .proxy_widgets()
                .iter()
                .position(|(id, n)| id == "-1" && n == name)?;
            values.get(pos).filter(|v| !v.is_null()).cloned()
        }
        Some(Value::Object(values)) => values.get(name).filter(|v| !v.is_null()).cloned(),
        _ => None,
    }
}

/// A slot type as a string (`""` for legacy numbers and missing types).
pub fn type_name(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn is_any(t: &str) -> bool {
    t.is_empty() || t == "*"
}

/// LiteGraph's connection rule: equal ignoring case, a wildcard on either
/// side, or comma lists that share a type.
pub fn types_compatible(a: &str, b: &str) -> bool {
    if is_any(a) || is_any(b) || a.eq_ignore_ascii_case(b) {
        return true;
    }
    let left: HashSet<String> = a
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    b.split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .any(|t| left.contains(&t))
}

/// Which input a bypassed node passes to its output `slot` for a consumer
/// wanting `wanted`: the same index if its type fits, else the first input
/// of exactly that type, else the first that fits both.
fn bypass_input(node: &UiNode, slot: i64, wanted: &str) -> Option<usize> {
    let slot = usize::try_from(slot).ok()?;
    if node.inputs.is_empty() {
        return None;
    }
    if is_any(wanted) {
        return Some(if slot < node.inputs.len() { slot } else { 0 });
    }
    let out_type = node
        .outputs
        .get(slot)
        .map(|o| type_name(&o.kind))
        .unwrap_or_default();
    let fits = |i: usize| {
        let t = type_name(&node.inputs[i].kind);
        types_compatible(&t, &out_type) && types_compatible(&t, wanted)
    };
    if slot < node.inputs.len() && fits(slot) {
        return Some(slot);
    }
    if let Some(i) = node
        .inputs
        .iter()
        .position(|inp| type_name(&inp.kind) == wanted)
    {
        return Some(i);
    }
    (0..node.inputs.len()).find(|&i| fits(i))
}

/// Gives subgraph interior nodes whose ids clash with a root node or an
/// earlier definition's node a fresh id, as frontends from 1.40 do on load:
/// root ids are reserved, definitions are walked in order, a clash takes
/// the next free number after the graph's `lastNodeId` counter (which also
/// rises past every id kept). Links, promoted widgets and `proxyWidgets`
/// that name a renumbered node follow it.
pub fn dedupe_subgraph_node_ids(wf: &mut UiWorkflow) {
    let mut used: HashSet<i64> = wf.nodes.iter().filter_map(|n| n.id.parse().ok()).collect();
    let mut last = wf.last_node_id();
    let mut remaps: HashMap<String, HashMap<String, String>> = HashMap::new();
    let Some(defs) = wf.definitions.as_mut() else {
        return;
    };
    for def in &mut defs.subgraphs {
        let mut remap: HashMap<i64, i64> = HashMap::new();
        for node in &mut def.nodes {
            let Ok(id) = node.id.parse::<i64>() else {
                continue;
            };
            if used.contains(&id) {
                loop {
                    last += 1;
                    if !used.contains(&last) {
                        break;
                    }
                }
                remap.insert(id, last);
                node.id = last.to_string();
                used.insert(last);
            } else {
                used.insert(id);
                last = last.max(id);
            }
        }
        if remap.is_empty() {
            continue;
        }
        for link in &mut def.links {
            if let Some(&n) = remap.get(&link.origin_id) {
                link.origin_id = n;
            }
            if let Some(&n) = remap.get(&link.target_id) {
                link.target_id = n;
            }
        }
        for w in &mut def.widgets {
            if let Some(id) = w.get("id").and_then(super::ui::value_as_i64)
                && let Some(&n) = remap.get(&id)
                && let Some(obj) = w.as_object_mut()
            {
                obj.insert("id".to_owned(), Value::from(n));
            }
        }
        remaps.insert(
            def.id.clone(),
            remap
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
    }
    let patch = |nodes: &mut [UiNode]| {
        for node in nodes {
            let Some(remap) = remaps.get(&node.kind) else {
                continue;
            };
            let Some(Value::Array(entries)) = node.properties.get_mut("proxyWidgets") else {
                continue;
            };
            for entry in entries {
                let Some(pair) = entry.as_array_mut() else {
                    continue;
                };
                let old = match pair.first() {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                if let Some(new) = remap.get(&old) {
                    pair[0] = Value::String(new.clone());
                }
            }
        }
    };
    for def in &mut defs.subgraphs {
        patch(&mut def.nodes);
    }
    patch(&mut wf.nodes);
}

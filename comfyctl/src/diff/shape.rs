//! A probe reduced to what a client depends on, and the comparison of two.

use super::{Change, Class};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What a client can depend on in one recorded exchange or trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// HTTP status (`None` for WebSocket traces).
    pub status: Option<u16>,
    /// Header name → the part of its value that carries meaning.
    pub headers: BTreeMap<String, String>,
    /// JSON path → the types seen there.
    pub paths: BTreeMap<String, BTreeSet<&'static str>>,
    /// JSON path → values of fields that carry meaning (versions, statuses,
    /// error kinds and messages, text bodies).
    pub values: BTreeMap<String, BTreeSet<String>>,
    /// WebSocket message types.
    pub ws_types: BTreeSet<String>,
    /// Node classes, for `/object_info` answers (their descriptions are
    /// walked under `$.*`, so a field added to 600 classes is one change).
    pub node_classes: BTreeSet<String>,
}

/// Keys whose string values are compared (everything else is structure only).
const VALUE_KEYS: &[&str] = &[
    "comfyui_version",
    "required_frontend_version",
    "installed_templates_version",
    "required_templates_version",
    "status",
    "status_str",
    "mediaType",
];

/// A map key that names an instance rather than a field: a UUID, a number,
/// a subgraph node id (`75:64`).
fn is_id_key(k: &str) -> bool {
    let uuid = k.len() == 36
        && k.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && k.matches('-').count() == 4;
    let numeric = !k.is_empty() && k.chars().all(|c| c.is_ascii_digit() || c == ':');
    uuid || numeric
}

/// `/history/59e6…` → `/history/{id}`; `/userdata/workflows%2Fx.json` → `/userdata/{file}`.
pub(super) fn generic_path(path: &str) -> String {
    let mut out = Vec::new();
    let mut after_userdata = false;
    for seg in path.split('/') {
        let g = if is_id_key(seg) {
            "{id}".to_owned()
        } else if after_userdata && !seg.is_empty() && seg != "move" {
            "{file}".to_owned()
        } else {
            seg.to_owned()
        };
        after_userdata = seg == "userdata" || seg == "move";
        out.push(g);
    }
    out.join("/")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(o) if o.contains_key("_binary_bytes") => "binary",
        Value::Object(_) => "object",
    }
}

fn walk(v: &Value, path: &str, shape: &mut Shape) {
    shape
        .paths
        .entry(path.to_owned())
        .or_default()
        .insert(type_name(v));
    match v {
        Value::Object(o) if !o.contains_key("_binary_bytes") => {
            for (k, child) in o {
                let key = if is_id_key(k) { "*" } else { k.as_str() };
                let p = format!("{path}.{key}");
                let in_error = path == "$.error";
                if let Value::String(s) = child
                    && (VALUE_KEYS.contains(&key)
                        || (in_error && (key == "type" || key == "message")))
                {
                    shape.values.entry(p.clone()).or_default().insert(s.clone());
                }
                walk(child, &p, shape);
            }
        }
        Value::Array(a) => {
            let p = format!("{path}[]");
            for child in a {
                walk(child, &p, shape);
            }
        }
        _ => {}
    }
}

/// Reduces a recorded exchange or WebSocket trace to its [`Shape`].
pub fn shape_of(recorded: &Value) -> Shape {
    let mut shape = Shape::default();
    if let Some(messages) = recorded.get("messages").and_then(Value::as_array) {
        for m in messages {
            let kind = m
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| m.get("_event_type").map(|t| format!("binary:{t}")))
                .unwrap_or_else(|| "?".into());
            if let Some(data) = m.get("data") {
                walk(data, &format!("{kind}.data"), &mut shape);
            }
            shape.ws_types.insert(kind);
        }
        return shape;
    }
    let resp = &recorded["response"];
    shape.status = resp
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok());
    if let Some(h) = resp.get("headers").and_then(Value::as_object) {
        for (name, value) in h {
            let value = value.as_str().unwrap_or_default();
            let meaning = match name.to_ascii_lowercase().as_str() {
                "content-type" | "allow" => value.to_owned(),
                // `attachment; filename=...` vs `filename=...`: the disposition, not the name.
                "content-disposition" => value
                    .split([';', '='])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
                _ => String::new(),
            };
            shape.headers.insert(name.to_ascii_lowercase(), meaning);
        }
    }
    let body = &resp["body"];
    if let Value::String(s) = body {
        shape
            .values
            .entry("$".into())
            .or_default()
            .insert(s.clone());
    }
    let path = recorded
        .pointer("/request/path")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match body {
        Value::Object(classes) if path.trim_start_matches("/api").starts_with("/object_info") => {
            shape.paths.entry("$".into()).or_default().insert("object");
            for (class, info) in classes {
                shape.node_classes.insert(class.clone());
                walk(info, "$.*", &mut shape);
            }
        }
        _ => walk(body, "$", &mut shape),
    }
    shape
}

fn fmt_set<T: std::fmt::Display>(s: &BTreeSet<T>) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("|")
}

/// Drops paths whose parent path is in the same set (report the top only).
fn tops<'a>(paths: &BTreeSet<&'a str>) -> Vec<&'a str> {
    paths
        .iter()
        .filter(|p| {
            !paths.iter().any(|q| {
                q.len() < p.len()
                    && p.starts_with(*q)
                    && matches!(p.as_bytes()[q.len()], b'.' | b'[')
            })
        })
        .copied()
        .collect()
}

fn change(
    kind: &str,
    path: &str,
    before: Option<String>,
    after: Option<String>,
    class: Class,
) -> Change {
    Change {
        probe: String::new(),
        endpoint: String::new(),
        kind: kind.into(),
        path: path.into(),
        before,
        after,
        class,
    }
}

/// The changes from `a` to `b`.
pub(super) fn compare(a: &Shape, b: &Shape) -> Vec<Change> {
    let mut out = Vec::new();
    if a.status != b.status {
        let ok = |s: Option<u16>| s.is_some_and(|s| (200..300).contains(&s));
        let class = if !ok(a.status) && ok(b.status) {
            Class::Additive
        } else {
            Class::Breaking
        };
        out.push(change(
            "status",
            "",
            a.status.map(|s| s.to_string()),
            b.status.map(|s| s.to_string()),
            class,
        ));
    }
    for (name, av) in &a.headers {
        match b.headers.get(name) {
            None => out.push(change(
                "header",
                name,
                Some(av.clone()),
                None,
                Class::Breaking,
            )),
            Some(bv) if bv != av => out.push(change(
                "header",
                name,
                Some(av.clone()),
                Some(bv.clone()),
                Class::Breaking,
            )),
            Some(_) => {}
        }
    }
    for (name, bv) in &b.headers {
        if !a.headers.contains_key(name) {
            out.push(change(
                "header",
                name,
                None,
                Some(bv.clone()),
                Class::Additive,
            ));
        }
    }
    for c in a.node_classes.difference(&b.node_classes) {
        out.push(change(
            "node-class",
            c,
            Some(c.clone()),
            None,
            Class::Breaking,
        ));
    }
    for c in b.node_classes.difference(&a.node_classes) {
        out.push(change(
            "node-class",
            c,
            None,
            Some(c.clone()),
            Class::Additive,
        ));
    }
    for t in a.ws_types.difference(&b.ws_types) {
        out.push(change("ws-type", t, Some(t.clone()), None, Class::Breaking));
    }
    for t in b.ws_types.difference(&a.ws_types) {
        out.push(change("ws-type", t, None, Some(t.clone()), Class::Additive));
    }
    // A status change replaces the body: its paths are not compared.
    if a.status == b.status {
        let a_only: BTreeSet<&str> = a
            .paths
            .keys()
            .filter(|p| !b.paths.contains_key(*p))
            .map(String::as_str)
            .collect();
        let b_only: BTreeSet<&str> = b
            .paths
            .keys()
            .filter(|p| !a.paths.contains_key(*p))
            .map(String::as_str)
            .collect();
        for p in tops(&a_only) {
            out.push(change(
                "removed",
                p,
                Some(fmt_set(&a.paths[p])),
                None,
                Class::Breaking,
            ));
        }
        for p in tops(&b_only) {
            out.push(change(
                "added",
                p,
                None,
                Some(fmt_set(&b.paths[p])),
                Class::Additive,
            ));
        }
        // In a catalogue a path stands for every class that has it, so a new
        // class bringing another type there widens the set without changing
        // any existing class: that is additive.
        let catalogue = !a.node_classes.is_empty() || !b.node_classes.is_empty();
        for (p, at) in &a.paths {
            if let Some(bt) = b.paths.get(p)
                && at != bt
            {
                let class = if catalogue && bt.is_superset(at) {
                    Class::Additive
                } else {
                    Class::Breaking
                };
                out.push(change(
                    "retyped",
                    p,
                    Some(fmt_set(at)),
                    Some(fmt_set(bt)),
                    class,
                ));
            }
        }
        for (p, av) in &a.values {
            if let Some(bv) = b.values.get(p)
                && av != bv
            {
                let class = if p.starts_with("$.error.type") {
                    Class::Breaking
                } else {
                    Class::ValueOnly
                };
                out.push(change(
                    "value",
                    p,
                    Some(fmt_set(av)),
                    Some(fmt_set(bv)),
                    class,
                ));
            }
        }
    }
    out
}

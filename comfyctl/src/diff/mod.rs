//! API differences between two recorded fixture sets, for upgrade planners.
//!
//! Each probe (same file name in both sets) is reduced to a [`Shape`]:
//! status, the headers that carry meaning, every JSON path with its type
//! (map keys that are ids or numbers become `*`), the values of a few
//! semantic fields (versions, statuses, error kinds and messages) and, for
//! WebSocket traces, the message types. Ids, timestamps, sizes, RAM, paths
//! and other values are ignored. Two shapes give a list of [`Change`]s, each
//! classed [`Class::Breaking`], [`Class::Additive`] or [`Class::ValueOnly`];
//! probes whose content depends on timing are compared but classed
//! [`Class::Race`].

mod report;
mod shape;

pub(crate) use report::{class_name, describe};
pub use report::{markdown, text};
pub use shape::{Shape, shape_of};

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// How much a change matters to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// A client written for A may break on B.
    Breaking,
    /// B answers more (a new field, endpoint, header, message type).
    Additive,
    /// Same shape, another value in a field that carries meaning.
    ValueOnly,
    /// A difference in a probe whose recorded content depends on timing
    /// (see `fixtures/README.md`): not a version difference.
    Race,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The probe (file stem without its number: `jobs-empty`).
    pub probe: String,
    /// The request (`GET /api/jobs`).
    pub endpoint: String,
    /// What changed: `status`, `added`, `removed`, `retyped`, `value`,
    /// `header`, `ws-type`, `node-class`, `probe`.
    pub kind: String,
    /// The JSON path, header or message type concerned.
    pub path: String,
    /// Before (A).
    pub before: Option<String>,
    /// After (B).
    pub after: Option<String>,
    /// How much it matters.
    pub class: Class,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// Label of A (its version, or the folder name).
    pub a: String,
    /// Label of B.
    pub b: String,
    /// Probes compared.
    pub probes_compared: usize,
    /// Every change, by probe order.
    pub changes: Vec<Change>,
}

impl Diff {
    /// Changes of one class.
    pub fn count(&self, class: Class) -> usize {
        self.changes.iter().filter(|c| c.class == class).count()
    }
}

/// Probes whose recorded content depends on timing: which prompt an
/// interrupt caught, whether history was written before it was read, the
/// order of prompts queued in the same millisecond.
pub const TIMING_DEPENDENT: &[&str] = &[
    "jobs-busy",
    "jobs-pending-filter",
    "queue-after-delete",
    "history-by-id-interrupted",
    "jobs-by-id-interrupted",
    "history-by-id-second-slow",
    "history-by-id-interrupted-ws",
];

/// Why a fixture set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder cannot be listed or a file read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not JSON.
    #[error("{path} is not JSON: {source}")]
    Json {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The folder holds no `NNN-name.json` files.
    #[error("{0} holds no recorded probes (NNN-name.json)")]
    Empty(String),
}

/// A fixture set: probe name → recorded file, in file order.
#[derive(Debug, Clone)]
pub struct FixtureSet {
    /// Label (the recorded ComfyUI version, or the folder name).
    pub label: String,
    /// `(probe name, file contents)` in file order.
    pub probes: Vec<(String, Value)>,
}

impl FixtureSet {
    /// Reads every `NNN-name.json` in `dir`.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let io = |source| LoadError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .filter_map(|p| {
                let stem = p.file_stem()?.to_string_lossy().into_owned();
                let (num, name) = stem.split_once('-')?;
                num.chars()
                    .all(|c| c.is_ascii_digit())
                    .then(|| (stem.clone(), name.to_owned(), p))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(LoadError::Empty(dir.display().to_string()));
        }
        let mut probes = Vec::with_capacity(files.len());
        let mut label = None;
        for (_, name, path) in files {
            let bytes = std::fs::read(&path).map_err(|source| LoadError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let v: Value = serde_json::from_slice(&bytes).map_err(|source| LoadError::Json {
                path: path.display().to_string(),
                source,
            })?;
            if label.is_none() {
                label = v
                    .get("comfyui_version")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            probes.push((name, v));
        }
        let label = label.unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        Ok(FixtureSet { label, probes })
    }
}

/// Compares two fixture sets probe by probe.
pub fn diff(a: &FixtureSet, b: &FixtureSet) -> Diff {
    let b_by_name: BTreeMap<&str, &Value> = b.probes.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let a_names: BTreeSet<&str> = a.probes.iter().map(|(n, _)| n.as_str()).collect();
    let mut changes = Vec::new();
    let mut compared = 0;
    for (name, av) in &a.probes {
        let endpoint = endpoint_of(av);
        match b_by_name.get(name.as_str()) {
            Some(bv) => {
                compared += 1;
                let race = TIMING_DEPENDENT.contains(&name.as_str());
                for mut c in shape::compare(&shape_of(av), &shape_of(bv)) {
                    c.probe.clone_from(name);
                    c.endpoint.clone_from(&endpoint);
                    if race {
                        c.class = Class::Race;
                    }
                    changes.push(c);
                }
            }
            None => changes.push(probe_change(name, &endpoint, "only in A", Class::Breaking)),
        }
    }
    for (name, bv) in &b.probes {
        if !a_names.contains(name.as_str()) {
            changes.push(probe_change(
                name,
                &endpoint_of(bv),
                "only in B",
                Class::Additive,
            ));
        }
    }
    Diff {
        a: a.label.clone(),
        b: b.label.clone(),
        probes_compared: compared,
        changes,
    }
}

fn probe_change(name: &str, endpoint: &str, what: &str, class: Class) -> Change {
    Change {
        probe: name.to_owned(),
        endpoint: endpoint.to_owned(),
        kind: "probe".into(),
        path: what.into(),
        before: None,
        after: None,
        class,
    }
}

fn endpoint_of(v: &Value) -> String {
    match v.get("request") {
        Some(r) => format!(
            "{} {}",
            r.get("method").and_then(Value::as_str).unwrap_or("?"),
            r.get("path")
                .and_then(Value::as_str)
                .map(shape::generic_path)
                .unwrap_or_default()
        ),
        None => "WS /ws".into(),
    }
}

//! One upgrade plan from release A to release B, for the people who decide
//! an upgrade: the API differences that matter to the platform's clients
//! (from [`crate::diff`]), every workflow checked against both catalogues
//! (from [`crate::check`]), the frontend each release pins and what that
//! changes for the gateway (from `comfy_adapter::releases`), the steps of
//! a rolling upgrade and a verdict.
//!
//! [`build`] computes a [`Plan`] (serde for JSON), [`markdown`] renders it
//! (a pure function: `docs/upgrades/<a>-to-<b>.plan.md` are its output).

mod gateway;
mod report;
mod steps;

pub use gateway::{GatewayRow, GatewaySection};
pub use report::markdown;

use crate::check::{self, CheckOptions, Finding, FindingKind, Severity};
use crate::convert::{self, ConvertOptions, frontend::Frontend};
use crate::diff::{self, Change, Class, FixtureSet};
use comfy_adapter::Line;
use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_adapter::releases;
use serde::Serialize;
use serde_json::Value;

/// One side of the upgrade, loaded.
#[derive(Debug, Clone)]
pub struct Side {
    /// How it was named on the command line (a version, a folder, a URL).
    pub source: String,
    /// Its recorded exchanges.
    pub set: FixtureSet,
    /// Its node catalogue (the set's `GET /object_info`).
    pub catalogue: NodeCatalogue,
}

/// A workflow file to check on both sides.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// Its path as it is to be shown (relative to where the command ran).
    pub path: String,
    /// Its contents.
    pub doc: Value,
}

/// The workflows of a folder.
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    /// The folder as given.
    pub dir: String,
    /// Its files, in path order.
    pub files: Vec<Workflow>,
}

/// How the plan was asked for.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Model files missing from a list that holds none are warnings (the
    /// catalogues come from machines without the pool's models).
    pub models_elsewhere: bool,
    /// The command line that regenerates the plan, shown in the report.
    pub command: String,
}

/// A release as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideInfo {
    /// As given.
    pub source: String,
    /// The version its recordings report (or the folder name).
    pub version: String,
    /// Whether the releases table has this exact release (recorded and
    /// tested); otherwise it is expected to behave as [`Self::behaves_as`].
    pub recorded: bool,
    /// The recorded release whose behaviour it shares.
    pub behaves_as: Option<String>,
    /// Its behaviour line (`legacy`, `jobs-api`, `cancel-api`).
    pub line: Option<Line>,
    /// The releases of that line (`0.6-0.25`).
    pub line_range: Option<String>,
    /// The frontend (`comfyui-frontend-package`) it pins: the releases
    /// table's, or for a release the table lacks, what its recorded
    /// `/system_stats` says.
    pub frontend: Option<String>,
}

impl SideInfo {
    fn of(side: &Side) -> SideInfo {
        let version = comfy_adapter::normalize::parse_version(&side.set.label);
        SideInfo {
            source: side.source.clone(),
            version: side.set.label.clone(),
            recorded: releases::find(&side.set.label).is_some(),
            behaves_as: version
                .as_ref()
                .map(|v| releases::nearest(v).version.to_owned()),
            line: version.as_ref().map(Line::for_version),
            line_range: version.as_ref().map(|v| Line::for_version(v).range()),
            // A recorded release pins what the table says (a test checks the
            // table against the recordings); another says it in its
            // /system_stats, else it is taken to pin what the recorded
            // release before it pins.
            frontend: releases::find(&side.set.label)
                .map(|r| r.frontend.to_owned())
                .or_else(|| pinned_frontend(&side.set))
                .or_else(|| {
                    version
                        .as_ref()
                        .map(|v| releases::frontend_for(v).to_owned())
                }),
        }
    }

    fn semver(&self) -> Option<semver::Version> {
        comfy_adapter::normalize::parse_version(&self.version)
    }
}

/// The API differences that matter to the platform.
#[derive(Debug, Clone, Serialize)]
pub struct ApiSection {
    /// Probes compared.
    pub probes_compared: usize,
    /// Changes per class in the whole diff.
    pub breaking: usize,
    /// Additive changes in the whole diff.
    pub additive: usize,
    /// Value-only changes in the whole diff.
    pub value_only: usize,
    /// Timing-dependent differences (not version differences).
    pub race: usize,
    /// Every breaking change, then the other (non-race) changes on the
    /// endpoints the platform calls, apart from the node catalogue's
    /// (whose effect the workflow checks show).
    pub changes: Vec<Change>,
    /// Node classes B no longer has.
    pub node_classes_removed: Vec<String>,
    /// Node classes B adds.
    pub node_classes_added: Vec<String>,
}

/// The endpoints the platform calls on a ComfyUI (the worker through the
/// adapter, the gateway for its users), by path prefix after the optional
/// `/api`.
pub const PLATFORM_ENDPOINTS: &[&str] = &[
    "/prompt",
    "/queue",
    "/history",
    "/jobs",
    "/interrupt",
    "/system_stats",
    "/object_info",
    "/features",
    "/view",
    "/upload/image",
    "/userdata",
    "/free",
    "/ws",
];

/// Whether a diff endpoint (`GET /api/jobs/*`) is one the platform calls.
pub fn platform_uses(endpoint: &str) -> bool {
    let path = endpoint.split_once(' ').map_or(endpoint, |(_, p)| p);
    let path = path.strip_prefix("/api").unwrap_or(path);
    PLATFORM_ENDPOINTS.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
    })
}

fn api_section(d: &diff::Diff) -> ApiSection {
    let node_classes = |removed: bool| {
        d.changes
            .iter()
            .filter(|c| c.kind == "node-class" && c.after.is_none() == removed)
            .map(|c| c.path.clone())
            .collect::<Vec<_>>()
    };
    let matters = |c: &&Change| {
        c.class == Class::Breaking
            || (c.class != Class::Race
                && platform_uses(&c.endpoint)
                && !c.probe.starts_with("object_info"))
    };
    let mut changes: Vec<Change> = d
        .changes
        .iter()
        .filter(|c| c.class == Class::Breaking)
        .cloned()
        .collect();
    changes.extend(
        d.changes
            .iter()
            .filter(|c| c.class != Class::Breaking)
            .filter(matters)
            .cloned(),
    );
    ApiSection {
        probes_compared: d.probes_compared,
        breaking: d.count(Class::Breaking),
        additive: d.count(Class::Additive),
        value_only: d.count(Class::ValueOnly),
        race: d.count(Class::Race),
        changes,
        node_classes_removed: node_classes(true),
        node_classes_added: node_classes(false),
    }
}

/// Whether a workflow runs on one side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No error: the server would accept and run it.
    Ok,
    /// At least one error.
    Breaks,
    /// It could not be checked (a UI workflow that does not convert).
    Unchecked,
}

/// A workflow on one side.
#[derive(Debug, Clone, Serialize)]
pub struct SideCheck {
    /// Ok, breaks or unchecked.
    pub status: Status,
    /// Errors found.
    pub errors: usize,
    /// Warnings found.
    pub warnings: usize,
    /// Why it was not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Every finding.
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// A finding with its one-line text.
#[derive(Debug, Clone, Serialize)]
pub struct NewFinding {
    /// The text `comfyctl check` prints.
    pub text: String,
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
}

/// One workflow on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowResult {
    /// The file.
    pub path: String,
    /// `ui` or `api`.
    pub format: &'static str,
    /// On A.
    pub from: SideCheck,
    /// On B.
    pub to: SideCheck,
    /// Findings on B that A did not have (errors, warnings, missing models).
    pub new_on_to: Vec<NewFinding>,
}

impl WorkflowResult {
    /// Runs on A, breaks on B: it must stay on A (or be fixed) during the
    /// upgrade.
    pub fn regresses(&self) -> bool {
        self.from.status == Status::Ok && self.to.status != Status::Ok
    }
}

/// The workflows of the folder on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowSection {
    /// The folder.
    pub dir: String,
    /// Workflows checked.
    pub checked: usize,
    /// JSON files that are not workflows.
    pub skipped: Vec<String>,
    /// Each workflow.
    pub files: Vec<WorkflowResult>,
    /// Those that run on A and break on B.
    pub stay_on_from: Vec<String>,
    /// Those that break on A and run on B.
    pub fixed_by_to: Vec<String>,
}

/// The decision, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing the platform runs breaks.
    Safe,
    /// Safe if the workflows that break on B are pinned to A until fixed.
    SafeWithPinnedWorkflows,
    /// Not before the release is recorded and its differences in the
    /// releases table (breaking changes the adapter was not tested on).
    Blocking,
}

impl Verdict {
    /// As written in the report.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::SafeWithPinnedWorkflows => "safe with pinned workflows",
            Verdict::Blocking => "blocking",
        }
    }
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The command that regenerates it.
    pub command: String,
    /// Before.
    pub from: SideInfo,
    /// After.
    pub to: SideInfo,
    /// The decision.
    pub verdict: Verdict,
    /// Why.
    pub reasons: Vec<String>,
    /// API differences.
    pub api: ApiSection,
    /// Workflow checks (none without a folder).
    pub workflows: Option<WorkflowSection>,
    /// Frontends and the gateway.
    pub frontend_gateway: GatewaySection,
    /// The rolling upgrade, in order.
    pub steps: Vec<String>,
}

/// The `required_frontend_version` a set's `GET /system_stats` answered.
fn pinned_frontend(set: &FixtureSet) -> Option<String> {
    set.probes
        .iter()
        .find(|(name, _)| name == "system_stats")
        .and_then(|(_, v)| {
            v.pointer("/response/body/system/required_frontend_version")?
                .as_str()
                .map(str::to_owned)
        })
}

fn convert_options(info: &SideInfo) -> ConvertOptions {
    ConvertOptions {
        frontend: info
            .frontend
            .as_deref()
            .and_then(|f| Frontend::parse(f).ok())
            .or_else(|| info.semver().as_ref().map(Frontend::pinned_by)),
        dedupe_subgraph_node_ids: false,
    }
}

/// A finding without the parts that only describe the server's lists
/// (the files a machine has, declared bounds), for telling whether B
/// reports what A reported.
fn finding_key(f: &Finding) -> Value {
    let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        for k in ["allowed", "min", "max"] {
            o.remove(k);
        }
    }
    v
}

fn check_side(
    doc: &Value,
    catalogue: &NodeCatalogue,
    convert: &ConvertOptions,
    options: &CheckOptions,
) -> Result<SideCheck, check::CheckError> {
    match check::check_document(doc, catalogue, convert, options) {
        Ok(r) => Ok(SideCheck {
            status: if r.is_ok() {
                Status::Ok
            } else {
                Status::Breaks
            },
            errors: r.count(Severity::Error),
            warnings: r.count(Severity::Warning),
            note: None,
            findings: r.findings,
        }),
        Err(check::CheckError::Convert(e)) => Ok(SideCheck {
            status: Status::Unchecked,
            errors: 0,
            warnings: 0,
            note: Some(e.to_string()),
            findings: Vec::new(),
        }),
        Err(e) => Err(e),
    }
}

fn worth_telling(f: &Finding) -> bool {
    match &f.kind {
        FindingKind::ModelReference { installed, .. } => !installed,
        _ => f.severity != Severity::Info,
    }
}

fn workflow_section(
    from: (&Side, &SideInfo),
    to: (&Side, &SideInfo),
    workflows: &Workflows,
    options: &CheckOptions,
    progress: &mut dyn FnMut(usize, &str),
) -> WorkflowSection {
    let (fc, tc) = (convert_options(from.1), convert_options(to.1));
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for (i, w) in workflows.files.iter().enumerate() {
        progress(i, &w.path);
        let format = if convert::is_ui_workflow(&w.doc) {
            "ui"
        } else {
            "api"
        };
        let (Ok(a), Ok(b)) = (
            check_side(&w.doc, &from.0.catalogue, &fc, options),
            check_side(&w.doc, &to.0.catalogue, &tc, options),
        ) else {
            skipped.push(w.path.clone());
            continue;
        };
        let before: Vec<Value> = a.findings.iter().map(finding_key).collect();
        let new_on_to = b
            .findings
            .iter()
            .filter(|f| worth_telling(f) && !before.contains(&finding_key(f)))
            .map(|f| NewFinding {
                text: f.to_string(),
                finding: f.clone(),
            })
            .collect();
        files.push(WorkflowResult {
            path: w.path.clone(),
            format,
            from: a,
            to: b,
            new_on_to,
        });
    }
    progress(workflows.files.len(), "");
    WorkflowSection {
        dir: workflows.dir.clone(),
        checked: files.len(),
        skipped,
        stay_on_from: files
            .iter()
            .filter(|f| f.regresses())
            .map(|f| f.path.clone())
            .collect(),
        fixed_by_to: files
            .iter()
            .filter(|f| f.from.status != Status::Ok && f.to.status == Status::Ok)
            .map(|f| f.path.clone())
            .collect(),
        files,
    }
}

/// The plan for upgrading from `from` to `to`, with the workflows of a
/// folder checked on both; `progress(done, path)` is called before each
/// workflow and once at the end.
pub fn build(
    from: &Side,
    to: &Side,
    workflows: Option<&Workflows>,
    options: &PlanOptions,
    progress: &mut dyn FnMut(usize, &str),
) -> Plan {
    let (fi, ti) = (SideInfo::of(from), SideInfo::of(to));
    let api = api_section(&diff::diff(&from.set, &to.set));
    let check_options = CheckOptions {
        models_elsewhere: options.models_elsewhere,
    };
    let workflows =
        workflows.map(|w| workflow_section((from, &fi), (to, &ti), w, &check_options, progress));
    let frontend_gateway = gateway::section(&fi, &ti);
    let (verdict, reasons) = steps::verdict(&fi, &ti, &api, workflows.as_ref());
    let steps = steps::rolling_upgrade(&fi, &ti, workflows.as_ref(), &frontend_gateway);
    Plan {
        command: options.command.clone(),
        from: fi,
        to: ti,
        verdict,
        reasons,
        api,
        workflows,
        frontend_gateway,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::platform_uses;

    #[test]
    fn the_platform_endpoints_match_by_path_segment() {
        for used in [
            "POST /prompt",
            "GET /api/jobs/*",
            "POST /api/jobs/*/cancel",
            "GET /history",
            "GET /api/system_stats",
            "WS /ws",
            "GET /userdata/*",
        ] {
            assert!(platform_uses(used), "{used}");
        }
        for unused in [
            "GET /embeddings",
            "GET /extensions",
            "GET /jobsx",
            "GET /settings",
        ] {
            assert!(!platform_uses(unused), "{unused}");
        }
    }
}

//! What the frontend each release pins, and the gateway's answers for the
//! users' line, change between A and B: read from the releases table
//! (lines, differences, queue panels), never from version strings here.

use super::SideInfo;
use comfy_adapter::Line;
use comfy_adapter::releases::{self, Difference, QueuePanel};
use serde::Serialize;

/// One thing the user side sees, on A and on B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayRow {
    /// What it is about.
    pub topic: String,
    /// On A.
    pub from: String,
    /// On B.
    pub to: String,
    /// Whether it differs.
    pub changes: bool,
}

/// Frontends and the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewaySection {
    /// The frontend A pins.
    pub from_frontend: Option<String>,
    /// The frontend B pins.
    pub to_frontend: Option<String>,
    /// Where A's frontend's queue panel reads from (`None`: not watched).
    pub from_queue_panel: Option<QueuePanel>,
    /// Where B's frontend's queue panel reads from.
    pub to_queue_panel: Option<QueuePanel>,
    /// Each topic.
    pub rows: Vec<GatewayRow>,
}

impl GatewaySection {
    /// The rows that differ.
    pub fn changed(&self) -> impl Iterator<Item = &GatewayRow> {
        self.rows.iter().filter(|r| r.changes)
    }
}

fn panel_of(frontend: Option<&str>) -> Option<QueuePanel> {
    frontend
        .and_then(|f| semver::Version::parse(f).ok())
        .and_then(|v| releases::queue_panel(&v))
}

fn panel_text(p: Option<QueuePanel>) -> String {
    match p {
        Some(p) => p
            .endpoints()
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(" + "),
        None => "not watched (between frontends that differ; the gateway answers `/api/queue`, `/api/history` and `/api/jobs`)".to_owned(),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// The facts of one side, by topic.
fn facts(info: &SideInfo) -> Vec<(&'static str, String)> {
    let unknown = || "unknown version".to_owned();
    let (Some(v), Some(line)) = (info.semver(), info.line) else {
        return vec![
            (
                "queue panel reads",
                panel_text(panel_of(info.frontend.as_deref())),
            ),
            ("line", unknown()),
        ];
    };
    let has = |d: Difference| d.applies_to(&v);
    let jobs = line != Line::Legacy;
    vec![
        (
            "queue panel reads",
            panel_text(panel_of(info.frontend.as_deref())),
        ),
        ("line", format!("`{}` ({})", line.name(), line.range())),
        (
            "`GET /api/jobs`, `/api/jobs/{id}` answered by the gateway",
            yes_no(jobs),
        ),
        (
            "cancel routes `POST /api/jobs/{id}/cancel`, `POST /api/jobs/cancel`",
            yes_no(line == Line::CancelApi),
        ),
        (
            "an interrupted job's status in the jobs API",
            match (jobs, has(Difference::CancelledStatus)) {
                (false, _) => "— (no jobs API)".to_owned(),
                (true, true) => "`cancelled`".to_owned(),
                (true, false) => "`failed`".to_owned(),
            },
        ),
        (
            "`create_time` in queue and history items",
            yes_no(has(Difference::CreateTime)),
        ),
        (
            "`previewable_outputs_count` on jobs",
            yes_no(jobs && has(Difference::PreviewableOutputsCount)),
        ),
        (
            "text outputs (`PreviewAny`) counted in `outputs_count`",
            yes_no(jobs && has(Difference::TextOutputsCounted)),
        ),
        (
            "an unknown node class is refused as",
            if line == Line::CancelApi {
                "`missing_node_type`"
            } else {
                "`invalid_prompt`"
            }
            .to_owned(),
        ),
        (
            "client-chosen prompt ids (job-id shape)",
            if line == Line::CancelApi {
                "canonical lowercase UUIDs only (else 400 `invalid_prompt_id`)"
            } else {
                "any string"
            }
            .to_owned(),
        ),
        (
            "userdata `modified`/`created`",
            if has(Difference::UserdataTimesMs) {
                "integer milliseconds"
            } else {
                "float seconds"
            }
            .to_owned(),
        ),
    ]
}

/// The section for an upgrade from `from` to `to`.
pub(super) fn section(from: &SideInfo, to: &SideInfo) -> GatewaySection {
    let dash = || "—".to_owned();
    let mut rows = vec![GatewayRow {
        topic: "frontend pinned (`comfyui-frontend-package`)".to_owned(),
        from: from.frontend.clone().unwrap_or_else(dash),
        to: to.frontend.clone().unwrap_or_else(dash),
        changes: from.frontend != to.frontend,
    }];
    let (a, b) = (facts(from), facts(to));
    for (topic, av) in &a {
        let bv = b
            .iter()
            .find(|(t, _)| t == topic)
            .map_or_else(dash, |(_, v)| v.clone());
        rows.push(GatewayRow {
            topic: (*topic).to_owned(),
            changes: *av != bv,
            from: av.clone(),
            to: bv,
        });
    }
    GatewaySection {
        from_queue_panel: panel_of(from.frontend.as_deref()),
        to_queue_panel: panel_of(to.frontend.as_deref()),
        from_frontend: from.frontend.clone(),
        to_frontend: to.frontend.clone(),
        rows,
    }
}

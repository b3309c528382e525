//! The verdict and the steps of a rolling upgrade.

use super::{ApiSection, GatewaySection, SideInfo, Verdict, WorkflowSection};

fn list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn line_of(info: &SideInfo) -> String {
    info.line
        .map_or_else(|| "unknown".to_owned(), |l| l.name().to_owned())
}

/// The decision and its reasons.
pub(super) fn verdict(
    from: &SideInfo,
    to: &SideInfo,
    api: &ApiSection,
    workflows: Option<&WorkflowSection>,
) -> (Verdict, Vec<String>) {
    let mut reasons = Vec::new();
    let mut verdict = Verdict::Safe;
    if to.line.is_none() {
        verdict = Verdict::Blocking;
        reasons.push(format!(
            "{} is not a version the adapter can place on a line",
            to.version
        ));
    } else if !to.recorded && api.breaking > 0 {
        verdict = Verdict::Blocking;
        reasons.push(format!(
            "{} is not a recorded release and answers {} breaking change(s) the adapter was not tested on: record it and add its row to the releases table first (docs/adding-a-release.md)",
            to.version, api.breaking
        ));
    } else if api.breaking > 0 {
        reasons.push(format!(
            "{} breaking API change(s), all in recorded releases the adapter speaks (both lines are tested against their recordings)",
            api.breaking
        ));
    } else {
        reasons.push("no breaking API change".to_owned());
    }
    if from.line != to.line {
        reasons.push(format!(
            "the line changes from `{}` to `{}`: workers re-detect and re-register, the gateway answers in the new line's shapes",
            line_of(from),
            line_of(to)
        ));
    }
    if !api.node_classes_removed.is_empty() {
        reasons.push(format!(
            "node classes removed: {}",
            list(&api.node_classes_removed)
        ));
    }
    match workflows {
        Some(w) if !w.stay_on_from.is_empty() => {
            if verdict == Verdict::Safe {
                verdict = Verdict::SafeWithPinnedWorkflows;
            }
            reasons.push(format!(
                "{} of {} workflow(s) run on {} and break on {}: {}",
                w.stay_on_from.len(),
                w.checked,
                from.version,
                to.version,
                list(&w.stay_on_from)
            ));
        }
        Some(w) => reasons.push(format!(
            "no workflow of `{}` that runs on {} breaks on {} ({} checked)",
            w.dir, from.version, to.version, w.checked
        )),
        None => reasons.push("no workflows checked (give `--workflows DIR`)".to_owned()),
    }
    (verdict, reasons)
}

/// The numbered steps of a rolling upgrade, in order.
pub(super) fn rolling_upgrade(
    from: &SideInfo,
    to: &SideInfo,
    workflows: Option<&WorkflowSection>,
    gateway: &GatewaySection,
) -> Vec<String> {
    let (a, b) = (&from.version, &to.version);
    let pinned: &[String] = workflows.map_or(&[], |w| &w.stay_on_from);
    let mut steps = vec![format!(
        "Before: every GPU worker runs ComfyUI {a} (`GET /api/workers` shows `comfyui_version` {a}, line `{}`). Keep them registered; at least one stays on {a} until the last step.",
        line_of(from)
    )];
    steps.push(match workflows {
        None => format!(
            "Check the platform's workflows against both releases first: `comfyctl plan --from {a} --to {b} --workflows DIR`."
        ),
        Some(_) if pinned.is_empty() => format!(
            "No checked workflow breaks on {b}: nothing needs pinning."
        ),
        Some(_) => format!(
            "Pin the workflows that break on {b} to the old workers: submit their jobs with `metadata.requires.comfyui = \"<{b}\"` (only workers below {b} take them). They must stay on {a}: {}.",
            list(pinned)
        ),
    });
    steps.push(
        "Drain one worker: `POST /api/workers/{id}/drain` (admin token). It finishes its running job and takes no new one; wait until `GET /api/workers` shows it `drained`.".to_owned(),
    );
    steps.push(format!(
        "Replace that worker's ComfyUI with {b}{}. The worker re-detects the version and line (`{}`) and re-registers with the new node catalogue.",
        to.frontend
            .as_deref()
            .map(|f| format!(" (it pins frontend {f})"))
            .unwrap_or_default(),
        line_of(to)
    ));
    steps.push(format!(
        "Undrain it: `POST /api/workers/{{id}}/undrain`. It takes jobs again{}.",
        if pinned.is_empty() {
            ""
        } else {
            " (not the pinned ones)"
        }
    ));
    steps.push(format!(
        "Watch the per-version share of workers in `GET /api/workers` (or the dashboard) and the jobs the {b} worker completes. A job whose prompt its ComfyUI cannot run (a node class or a model it lacks) is handed back unrun and goes to the {a} workers; one that no live worker can run shows `waiting` with the reason (`GET /api/jobs/{{id}}`, the dashboard) and fails as `no_capable_worker` after `--no-capable-worker-secs` (600 s). Each such reason, and any job {b} fails with `node_errors`, names a workflow to pin or fix (`comfyctl check --version {b} FILE`)."
    ));
    steps.push(format!(
        "Repeat drain, replace, undrain and watch for each remaining worker{}.",
        if pinned.is_empty() {
            String::new()
        } else {
            format!(
                ", keeping enough {a} workers for the pinned workflows until they are fixed for {b}; then drop the pin and upgrade the last {a} workers. While every {a} worker is drained, pinned jobs wait (reason `drained`) and fail as `no_capable_worker` once `--no-capable-worker-secs` has passed: raise it before a long drain"
            )
        }
    ));
    let changed: Vec<String> = gateway
        .changed()
        .map(|r| format!("{}: {} → {}", r.topic, r.from, r.to))
        .collect();
    steps.push(format!(
        "Then the user side: upgrade each user's own (CPU) ComfyUI to {b} and restart the gateway, which reads each user's release from `/system_stats` once. {}",
        if changed.is_empty() {
            "The users' frontends see nothing change.".to_owned()
        } else {
            format!("What changes for the users' frontends: {}.", changed.join("; "))
        }
    ));
    steps
}

//! `/metrics` in the Prometheus text format, written by hand (a handful of counters and one
//! histogram do not justify a metrics framework).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::model::Status;
use crate::state::AppState;

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "status", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = state.store.counts().await?;
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    out.push_str("# HELP comfy_queue_jobs Jobs per status.\n# TYPE comfy_queue_jobs gauge\n");
    for st in Status::ALL {
        let _ = writeln!(
            out,
            "comfy_queue_jobs{{status=\"{}\"}} {}",
            st.as_str(),
            counts.get(st)
        );
    }
    out.push_str(
        "# HELP comfy_queue_user_jobs Pending and running jobs per user.\n# TYPE comfy_queue_user_jobs gauge\n",
    );
    for (user, n) in &counts.by_user {
        let user = escape(user);
        let _ = writeln!(
            out,
            "comfy_queue_user_jobs{{user=\"{user}\",status=\"pending\"}} {}",
            n.pending
        );
        let _ = writeln!(
            out,
            "comfy_queue_user_jobs{{user=\"{user}\",status=\"running\"}} {}",
            n.running
        );
    }
    for (name, help, c) in [
        (
            "comfy_queue_submitted_total",
            "Jobs accepted.",
            &m.submitted,
        ),
        ("comfy_queue_claims_total", "Leases granted.", &m.claims),
        (
            "comfy_queue_completed_total",
            "Jobs completed.",
            &m.completed,
        ),
        (
            "comfy_queue_failed_total",
            "Jobs failed by a worker.",
            &m.failed,
        ),
        (
            "comfy_queue_retries_total",
            "Jobs put back in the queue (lease expiry or fail with retry).",
            &m.retries,
        ),
        (
            "comfy_queue_lease_expiries_total",
            "Leases that ran out without a heartbeat.",
            &m.lease_expiries,
        ),
        (
            "comfy_queue_dead_letters_total",
            "Jobs failed after running out of attempts.",
            &m.dead_letters,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            c.get()
        );
    }
    m.claim_latency.render(
        &mut out,
        "comfy_queue_claim_duration_seconds",
        "Time the store took to answer a claim.",
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

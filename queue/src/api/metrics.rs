//! `/metrics` in the Prometheus text format, encoded by `prometheus-client`: per scrape, a
//! registry of the job-count gauges (from the store) and the process's counters.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::model::Status;
use crate::state::AppState;
use crate::store::Counts;

/// Labels of `comfy_queue_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

/// Labels of `comfy_queue_user_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UserLabels {
    user: String,
    status: &'static str,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The registry of one scrape: gauges from `counts`, the counters of `state`. The per-user
/// family (user names as labels) only when `with_users` (admins).
fn registry(state: &AppState, counts: &Counts, with_users: bool) -> Registry {
    let mut reg = Registry::default();
    let jobs = Family::<StatusLabels, Gauge>::default();
    for st in Status::ALL {
        jobs.get_or_create(&StatusLabels {
            status: st.as_str(),
        })
        .set(gauge_value(counts.get(st)));
    }
    reg.register("comfy_queue_jobs", "Jobs per status", jobs);
    if with_users {
        let user_jobs = Family::<UserLabels, Gauge>::default();
        for (user, n) in &counts.by_user {
            for (status, value) in [("pending", n.pending), ("running", n.running)] {
                user_jobs
                    .get_or_create(&UserLabels {
                        user: user.clone(),
                        status,
                    })
                    .set(gauge_value(value));
            }
        }
        reg.register(
            "comfy_queue_user_jobs",
            "Pending and running jobs per user",
            user_jobs,
        );
    }
    let m = &state.metrics;
    for (name, help, counter) in [
        ("comfy_queue_submitted", "Jobs accepted", &m.submitted),
        ("comfy_queue_claims", "Leases granted", &m.claims),
        ("comfy_queue_completed", "Jobs completed", &m.completed),
        ("comfy_queue_failed", "Jobs failed by a worker", &m.failed),
        (
            "comfy_queue_retries",
            "Jobs put back in the queue (lease expiry or fail with retry)",
            &m.retries,
        ),
        (
            "comfy_queue_lease_expiries",
            "Leases that ran out without a heartbeat",
            &m.lease_expiries,
        ),
        (
            "comfy_queue_dead_letters",
            "Jobs failed after running out of attempts",
            &m.dead_letters,
        ),
    ] {
        // Counters are shared handles: the registry reads the live values.
        reg.register(name, help, counter.clone());
    }
    reg.register(
        "comfy_queue_claim_duration_seconds",
        "Time the store took to answer a claim",
        m.claim_latency.clone(),
    );
    reg
}

/// Prometheus metrics. `comfy_queue_user_jobs` (user names) only for admins.
#[utoipa::path(get, path = "/metrics", tag = "status", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<impl IntoResponse, ApiError> {
    let counts = state.store.counts().await?;
    let mut out = String::with_capacity(4096);
    let with_users = caller == Caller::Admin;
    // Encoding into a String cannot fail; should it ever, the scrape shows what was written.
    if let Err(e) = encode(&mut out, &registry(&state, &counts, with_users)) {
        tracing::error!(error = %e, "encoding /metrics failed");
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::state::Settings;
    use crate::store::UserCounts;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn names_labels_and_values_are_the_documented_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
        let files = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(comfy_artifacts::LocalStore::open(dir.path().join("files")))
            .unwrap();
        let state = AppState::new(
            Arc::new(store),
            Arc::new(files),
            Arc::new(ManualClock::new(0)),
            Settings::default(),
        );
        state.metrics.submitted.inc();
        state.metrics.submitted.inc();
        state.metrics.record_claim(Duration::from_micros(300));
        let mut counts = Counts::default();
        counts.by_status.insert("pending", 3);
        counts.by_user.insert(
            "a\"lice".into(),
            UserCounts {
                pending: 2,
                running: 1,
            },
        );
        let mut out = String::new();
        encode(&mut out, &registry(&state, &counts, true)).unwrap();
        for line in [
            "comfy_queue_jobs{status=\"pending\"} 3",
            "comfy_queue_jobs{status=\"cancelled\"} 0",
            "comfy_queue_user_jobs{user=\"a\\\"lice\",status=\"pending\"} 2",
            "comfy_queue_user_jobs{user=\"a\\\"lice\",status=\"running\"} 1",
            "comfy_queue_submitted_total 2",
            "comfy_queue_dead_letters_total 0",
            "comfy_queue_claim_duration_seconds_bucket{le=\"0.00025\"} 0",
            "comfy_queue_claim_duration_seconds_bucket{le=\"0.0005\"} 1",
            "comfy_queue_claim_duration_seconds_bucket{le=\"+Inf\"} 1",
            "comfy_queue_claim_duration_seconds_count 1",
            "# TYPE comfy_queue_jobs gauge",
            "# TYPE comfy_queue_claim_duration_seconds histogram",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
    }
}

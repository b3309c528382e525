//! `/health`, `/api/health` and `/api/queue/status`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::model::Status;
use crate::state::AppState;

/// A worker counts as active if it was seen within this many lease lengths.
pub(crate) const ACTIVE_LEASES: i64 = 2;

/// `/health` answer (the original's fields, plus `backend`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HealthResponse {
    /// `healthy` or `unhealthy` (the store does not answer).
    pub status: &'static str,
    /// Package version.
    pub version: &'static str,
    /// Always `local` (GPU workers pull jobs).
    pub inference_mode: &'static str,
    /// Not tracked: null.
    pub active_gpu: Option<String>,
    /// Not used: null.
    pub serverless_endpoint: Option<String>,
    /// True when the Redis backend is in use and answers.
    pub redis_connected: bool,
    /// Workers seen recently.
    pub workers_active: u64,
    /// Pending jobs.
    pub queue_depth: u64,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// `sqlite` or `redis`.
    pub backend: &'static str,
    /// Where files are kept: `local` or `s3`.
    pub file_store: &'static str,
}

async fn active_workers(state: &AppState) -> Result<(u64, u64), ApiError> {
    let workers = state.store.list_workers().await?;
    let horizon = state.now() - ACTIVE_LEASES * state.settings.lease_ms;
    let active = workers.iter().filter(|w| w.last_seen >= horizon).count();
    Ok((workers.len() as u64, active as u64))
}

/// Liveness and a few numbers; always 200 so old clients can read `status`.
#[utoipa::path(get, path = "/health", tag = "status", responses((status = 200, body = HealthResponse)))]
pub async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    let ok = state.store.ping().await;
    let depth = if ok {
        state
            .store
            .counts()
            .await
            .map(|c| c.get(Status::Pending))
            .unwrap_or(0)
    } else {
        0
    };
    let workers_active = if ok {
        active_workers(&state).await.map(|(_, a)| a).unwrap_or(0)
    } else {
        0
    };
    Json(HealthResponse {
        status: if ok { "healthy" } else { "unhealthy" },
        version: env!("CARGO_PKG_VERSION"),
        inference_mode: "local",
        active_gpu: None,
        serverless_endpoint: None,
        redis_connected: ok && state.store.name() == "redis",
        workers_active,
        queue_depth: depth,
        uptime_seconds: state.started.elapsed().as_secs(),
        backend: state.store.name(),
        file_store: state.files.name(),
    })
}

/// Pending and running jobs of one user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserQueue {
    /// Pending jobs.
    pub pending: u64,
    /// Running jobs.
    pub running: u64,
}

/// `/api/queue/status` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueStatus {
    /// `priority`: lower priority numbers first; within a priority, users take turns.
    pub mode: &'static str,
    /// Fairness rule inside a priority.
    pub fairness: &'static str,
    /// Pending jobs.
    pub pending_jobs: u64,
    /// Running jobs.
    pub running_jobs: u64,
    /// Completed jobs.
    pub completed_jobs: u64,
    /// Failed jobs (including dead letters).
    pub failed_jobs: u64,
    /// Cancelled jobs.
    pub cancelled_jobs: u64,
    /// Workers ever seen.
    pub total_workers: u64,
    /// Workers seen within two lease lengths.
    pub active_workers: u64,
    /// Pending jobs.
    pub queue_depth: u64,
    /// Pending and running per user; only for admins (with auth off, everyone is one).
    /// Other callers get the counts without user names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<BTreeMap<String, UserQueue>>,
}

/// Queue statistics. User names (`users`) only for admins.
#[utoipa::path(get, path = "/api/queue/status", tag = "status", responses((status = 200, body = QueueStatus)))]
pub async fn queue_status(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<QueueStatus>, ApiError> {
    let c = state.store.counts().await?;
    let users = (caller == Caller::Admin).then(|| {
        c.by_user
            .iter()
            .map(|(u, n)| {
                (
                    u.clone(),
                    UserQueue {
                        pending: n.pending,
                        running: n.running,
                    },
                )
            })
            .collect()
    });
    let (total_workers, active_workers) = active_workers(&state).await?;
    Ok(Json(QueueStatus {
        mode: "priority",
        fairness: "round_robin_per_user",
        pending_jobs: c.get(Status::Pending),
        running_jobs: c.get(Status::Running),
        completed_jobs: c.get(Status::Completed),
        failed_jobs: c.get(Status::Failed),
        cancelled_jobs: c.get(Status::Cancelled),
        total_workers,
        active_workers,
        queue_depth: c.get(Status::Pending),
        users,
    }))
}

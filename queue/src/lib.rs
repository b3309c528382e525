//! `comfy-queue`: the queue manager of the multi-user ComfyUI platform.
//!
//! Users submit jobs over HTTP; GPU workers lease them with `next-job` (long-polling),
//! renew the lease with heartbeats and report results. See `docs/queue.md` for the API and
//! the guarantees. [`app`] builds the whole HTTP service from an [`AppState`].
//!
//! # Which module may use which
//!
//! The graph has no cycles; a module uses only those listed after its arrow (and nothing
//! uses this crate root, which only declares, re-exports and builds [`app`]):
//!
//! ```text
//! clock, input, events, auth            leaves
//! scheduler  → input                     routing: Requirements, WorkerInfo, versions
//! model      → clock, input, scheduler   jobs, attempts, input validation
//! progress   → input                     heartbeat progress, the progress board
//! lifecycle  → clock, model              the job state machine (pure functions)
//! store      → clock, model, scheduler, lifecycle   Store trait, SQLite and Redis backends
//! metrics    → store                     the counters behind /metrics
//! state      → auth, clock, events, metrics, progress, scheduler, store
//! config     → auth, state               clap flags and env → Settings
//! error      → input, auth, store        ErrorCode, ApiError: domain errors → HTTP
//! api        → all of the above          routes, extractors, handlers, OpenAPI
//! reaper     → state, store, api         lease expiry pass (publishes job events)
//! ```
//!
//! Domain modules (scheduler, model, progress, lifecycle, store, auth) return their own
//! error types ([`input::InputError`], [`lifecycle::TransitionError`],
//! [`store::StoreError`], [`auth::AuthError`]); only `error` and `api` know HTTP statuses.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod input;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod progress;
mod reaper;
pub mod scheduler;
mod state;
pub mod store;

pub use state::{AppState, Inner, Settings};

/// Build the whole HTTP service. Tests drive it with `tower::ServiceExt::oneshot`; `main`
/// serves it on a socket.
pub fn app(state: AppState) -> axum::Router {
    api::router(state)
}

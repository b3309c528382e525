//! `comfy-queue`: the queue manager of the multi-user ComfyUI platform.
//!
//! Users submit jobs over HTTP; GPU workers lease them with `next-job`, renew the lease with
//! heartbeats and report results. See `docs/queue.md` for the API and the guarantees.

pub mod clock;
pub mod error;
pub mod lifecycle;
pub mod model;
pub mod scheduler;
pub mod store;

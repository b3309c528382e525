//! What a queued job needs of the ComfyUI that runs it, and whether a worker's ComfyUI has
//! it. The queue and the worker judge a job with the same rules:
//!
//! - [`Requirements`] (from the submit's `metadata.requires`: a version range and
//!   capabilities, plus the catalogues that handed the job back) against what a worker
//!   registered ([`Server`]): the queue routes on it at every claim;
//! - [`Needs`] (the node classes a prompt uses and the values it picks from lists: models,
//!   samplers, ...) against a worker's node catalogue ([`Catalogue`], its `/object_info`):
//!   the worker checks it before it submits, the queue when it explains why a job waits.
//!
//! Nothing here does I/O.

mod catalogue;
mod requires;

pub use catalogue::{Catalogue, Misfit, Needs, PickedValue, is_prompt_body, prompt_of};
pub use requires::{Requirements, RequiresError, RequiresProblem, Server, parse_version};

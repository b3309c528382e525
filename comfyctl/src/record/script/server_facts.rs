//! 001–022: what the server is, its catalogue, an empty queue and history.

use super::super::RecordError;
use super::super::capture::Request;
use super::super::session::Session;
use super::{ZERO_ID, history, probe_each};

/// The nodes the single-node `object_info` probes ask for.
const SINGLE_NODES: &[&str] = &[
    "EmptyImage",
    "SaveImage",
    "LoadImage",
    "KSampler",
    "CheckpointLoaderSimple",
    "PreviewImage",
    "LoraLoader",
];

pub(super) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    probe_each(
        s,
        [
            ("system_stats", Request::get("/system_stats")),
            ("api-system_stats", Request::get("/api/system_stats")),
            ("features", Request::get("/features")),
            ("embeddings", Request::get("/embeddings")),
            ("models-list", Request::get("/models")),
            ("models-checkpoints", Request::get("/models/checkpoints")),
            ("extensions", Request::get("/extensions")),
            ("users", Request::get("/users")),
        ],
    )
    .await?;
    for node in SINGLE_NODES {
        s.probe(
            &format!("object_info-{node}"),
            Request::get(format!("/object_info/{node}")),
        )
        .await?;
    }
    probe_each(
        s,
        [
            ("object_info-summary", Request::get("/object_info")),
            (
                "object_info-unknown",
                Request::get("/object_info/NoSuchNode"),
            ),
            ("object_info-full", Request::get("/object_info")),
            ("queue-empty", Request::get("/queue")),
            ("history-empty", Request::get("/history")),
            ("history-unknown-id", history(ZERO_ID)),
            ("jobs-empty", Request::get("/api/jobs")),
        ],
    )
    .await
}

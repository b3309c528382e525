//! 071–080: history and jobs listings, paging, bad parameters, deletion.

use super::super::RecordError;
use super::super::capture::Request;
use super::super::session::Session;
use super::{ZERO_ID, history, job, post_json, probe_each, probe_with};
use serde_json::json;

pub(super) async fn run(s: &mut Session<'_>, cached: Option<&str>) -> Result<(), RecordError> {
    let jobs = || Request::get("/api/jobs");
    probe_each(
        s,
        [
            (
                "history-max_items-2",
                Request::get("/history").query("max_items", "2"),
            ),
            (
                "history-bad-max_items",
                Request::get("/history").query("max_items", "abc"),
            ),
            ("jobs-list", jobs().query("limit", "3")),
            (
                "jobs-list-asc-offset",
                jobs()
                    .query("limit", "2")
                    .query("offset", "1")
                    .query("sort_order", "asc"),
            ),
            ("jobs-bad-status", jobs().query("status", "running")),
            ("jobs-bad-limit", jobs().query("limit", "0")),
            ("jobs-unknown-id", job(ZERO_ID)),
            ("jobs-without-api-prefix", Request::get("/jobs")),
        ],
    )
    .await?;
    probe_with(s, "history-delete-one", cached, "run-cached-submit", |id| {
        post_json("/history", json!({"delete": [id]}))
    })
    .await?;
    probe_with(
        s,
        "history-after-delete-one",
        cached,
        "run-cached-submit",
        history,
    )
    .await?;
    Ok(())
}

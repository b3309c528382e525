//! 093–116: userdata with encoded, nested and space-containing paths.

use super::super::RecordError;
use super::super::capture::{Request, RequestBody};
use super::super::session::Session;
use super::probe_each;

/// Userdata files the suite writes (encoded as in the URL); a server that
/// already has one is not recorded.
pub(crate) const USERDATA_WRITTEN: &[&str] = &[
    "workflows%2Ffixture_template.json",
    "workflows%2Fteam%2Fnested%20name.json",
    "workflows%2Ffull_info.json",
    "workflows%2Frenamed.json",
];

/// The workflow file the userdata probes write, as the recordings sent it.
const WORKFLOW_FILE: &str = r#"{"last_node_id": 2, "last_link_id": 1, "nodes": [], "links": [], "groups": [], "config": {}, "extra": {}, "version": 0.4}"#;

fn workflow_post(path: &str) -> Request {
    Request::post(
        format!("/userdata/{path}"),
        RequestBody::Text(WORKFLOW_FILE.into()),
    )
}

pub(super) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    let list = || Request::get("/userdata").query("dir", "workflows");
    let move_to = |from: &str, to: &str| {
        Request::post(format!("/userdata/{from}/move/{to}"), RequestBody::None)
    };
    probe_each(
        s,
        [
            ("userdata-list-missing-dir", list()),
            (
                "userdata-post-encoded",
                workflow_post("workflows%2Ffixture_template.json"),
            ),
            (
                "userdata-post-nested",
                workflow_post("workflows%2Fteam%2Fnested%20name.json"),
            ),
            (
                "userdata-post-no-overwrite-conflict",
                workflow_post("workflows%2Ffixture_template.json").query("overwrite", "false"),
            ),
            (
                "userdata-post-full_info",
                workflow_post("workflows%2Ffull_info.json").query("full_info", "true"),
            ),
            ("userdata-list", list()),
            ("userdata-list-recurse", list().query("recurse", "true")),
            (
                "userdata-list-full_info",
                list().query("recurse", "true").query("full_info", "true"),
            ),
            (
                "userdata-list-split",
                list().query("recurse", "true").query("split", "true"),
            ),
            (
                "api-userdata-list",
                Request::get("/api/userdata").query("dir", "workflows"),
            ),
            ("v2-userdata-root", Request::get("/v2/userdata")),
            (
                "v2-userdata-workflows",
                Request::get("/v2/userdata").query("path", "workflows"),
            ),
            (
                "userdata-get-encoded",
                Request::get("/userdata/workflows%2Ffixture_template.json"),
            ),
            (
                "api-userdata-get-encoded",
                Request::get("/api/userdata/workflows%2Ffixture_template.json"),
            ),
            (
                "userdata-get-unencoded-slash",
                Request::get("/userdata/workflows/fixture_template.json"),
            ),
            (
                "userdata-get-nested-space",
                Request::get("/userdata/workflows%2Fteam%2Fnested%20name.json"),
            ),
            (
                "userdata-get-missing",
                Request::get("/userdata/workflows%2Fnope.json"),
            ),
            (
                "userdata-get-traversal",
                Request::get("/userdata/..%2F..%2Fcomfy.settings.json"),
            ),
            (
                "userdata-get-traversal-2",
                Request::get("/userdata/workflows%2F..%2F..%2F..%2Fserver.py"),
            ),
            (
                "userdata-move",
                move_to("workflows%2Ffull_info.json", "workflows%2Frenamed.json"),
            ),
            (
                "userdata-move-conflict",
                move_to(
                    "workflows%2Frenamed.json",
                    "workflows%2Ffixture_template.json",
                )
                .query("overwrite", "false"),
            ),
            (
                "userdata-delete",
                Request::delete("/userdata/workflows%2Frenamed.json"),
            ),
            (
                "userdata-delete-missing",
                Request::delete("/userdata/workflows%2Frenamed.json"),
            ),
            ("userdata-list-after", list().query("recurse", "true")),
        ],
    )
    .await
}

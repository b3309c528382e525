//! Request bodies are read into typed requests (serde); these pin the looser forms the
//! field-by-field parser accepted, and the field each error names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use comfy_queue::Settings;
use common::{TestApp, test_app};
use serde_json::json;

fn app() -> TestApp {
    test_app(Settings::default())
}

fn assert_field_error(r: &common::Resp, status: StatusCode, code: &str, field: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
    assert_eq!(r.json["error"]["field"], field, "{}", r.text);
}

/// A submitted and leased job: (id, lease token).
async fn leased(a: &TestApp) -> (String, String) {
    let id = a.submit("u", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    (id, token)
}

#[tokio::test]
async fn register_names_the_capability_problem_and_treats_null_as_missing() {
    let a = app();
    for (body, code, field) in [
        (json!({"worker_id": null}), "missing_field", "worker_id"),
        (json!({"worker_id": 7}), "invalid_type", "worker_id"),
        (json!({"worker_id": "w", "line": 1}), "invalid_type", "line"),
        (
            json!({"worker_id": "w", "capabilities": ["ok", 3]}),
            "invalid_type",
            "capabilities",
        ),
        (
            json!({"worker_id": "w", "capabilities": ["ok", ""]}),
            "invalid_type",
            "capabilities",
        ),
        (
            json!({"worker_id": "w", "line": "x".repeat(101)}),
            "invalid_line",
            "line",
        ),
    ] {
        let r = a.post_json("/api/workers/register", &body).await;
        assert_field_error(&r, StatusCode::UNPROCESSABLE_ENTITY, code, field);
    }
    let r = a
        .post_json(
            "/api/workers/register",
            &json!({"worker_id": "w", "capabilities": ["b", "a", "b"], "line": null, "extra": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["capabilities"], json!(["a", "b"]));
}

#[tokio::test]
async fn fail_job_query_values_win_and_the_body_is_then_not_read() {
    let a = app();
    let (id, token) = leased(&a).await;
    // `retry` in the body has the wrong type, but the query gives it: the query wins.
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}&retry=true&lease_token={token}"),
            &json!({"error": "boom", "retry": "maybe", "lease_token": 5}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["job_status"], "pending");
    // The error may come from the query alone.
    let (id, token) = leased(&a).await;
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}&error=from%20query"),
            &json!({"lease_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let job = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(job.json["error"], "from query");
}

#[tokio::test]
async fn fail_job_body_field_errors_name_the_field() {
    let a = app();
    let (id, _) = leased(&a).await;
    for (body, code, field) in [
        (json!({"error": 5}), "invalid_type", "error"),
        (
            json!({"error": "e", "cancelled": 1}),
            "invalid_type",
            "cancelled",
        ),
        (
            json!({"error": "e", "lease_token": []}),
            "invalid_type",
            "lease_token",
        ),
        (json!({"error": "e", "job_id": 5}), "invalid_type", "job_id"),
    ] {
        let r = a
            .post_json(&format!("/api/workers/fail-job?job_id={id}"), &body)
            .await;
        assert_field_error(&r, StatusCode::UNPROCESSABLE_ENTITY, code, field);
    }
}

#[tokio::test]
async fn heartbeat_job_id_in_the_body_is_trimmed_and_the_query_wins() {
    let a = app();
    let (id, token) = leased(&a).await;
    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"job_id": format!("  {id} "), "lease_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["job_id"], id.as_str());
    let r = a
        .post_json(
            &format!("/api/workers/heartbeat?job_id={id}"),
            &json!({"job_id": "not a uuid", "lease_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"job_id": "not a uuid", "lease_token": token}),
        )
        .await;
    assert_field_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_job_id",
        "job_id",
    );
    let r = a
        .post_json("/api/workers/heartbeat", &json!({"job_id": id}))
        .await;
    assert_field_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        "lease_token",
    );
}

#[tokio::test]
async fn keepalive_heartbeat_reads_only_the_worker_id() {
    let a = app();
    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"worker_id": "w9", "progress": "garbage", "lease_token": 3}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a
        .post_json("/api/workers/heartbeat", &json!({"worker_id": 9}))
        .await;
    assert_field_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_type",
        "worker_id",
    );
    let r = a.post_json("/api/workers/heartbeat", &json!({})).await;
    assert_field_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
        "job_id",
    );
}

#[tokio::test]
async fn complete_job_bare_result_drops_the_envelope_fields() {
    let a = app();
    let (id, token) = leased(&a).await;
    let r = a
        .post_json(
            "/api/workers/complete-job",
            &json!({"job_id": id, "lease_token": 5, "images": []}),
        )
        .await;
    assert_field_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_type",
        "lease_token",
    );
    let r = a
        .post_json(
            "/api/workers/complete-job",
            &json!({"job_id": id, "lease_token": token, "images": ["a.png"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let job = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(job.json["result"], json!({"images": ["a.png"]}));
}

#[tokio::test]
async fn openapi_request_bodies_are_the_parsed_types() {
    let a = app();
    let doc = a.get("/api/openapi.json").await.json;
    let body = |path: &str, method: &str| {
        doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"].clone()
    };
    assert_eq!(
        body("/api/workers/register", "post")["$ref"],
        "#/components/schemas/RegisterRequest"
    );
    assert_eq!(
        body("/api/workers/heartbeat", "post")["$ref"],
        "#/components/schemas/HeartbeatRequest"
    );
    let submit = body("/api/jobs", "post");
    let required = submit["required"].as_array().cloned().unwrap_or_default();
    assert!(required.contains(&json!("user_id")), "{submit}");
    assert!(required.contains(&json!("workflow")), "{submit}");
    let codes = &doc["components"]["schemas"]["ErrorCode"]["enum"];
    assert!(
        codes
            .as_array()
            .is_some_and(|c| c.contains(&json!("invalid_priority"))),
        "{codes}"
    );
}

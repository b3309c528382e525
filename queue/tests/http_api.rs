//! The HTTP API driven through `tower::ServiceExt::oneshot` (no socket).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use comfy_queue::Settings;
use comfy_queue::auth::AuthConfig;
use comfy_test_support::logs::LogBuf;
use common::{TestApp, test_app};
use serde_json::{Value, json};

fn app() -> TestApp {
    test_app(Settings::default())
}

fn assert_error(r: &common::Resp, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
    assert!(r.json["error"]["message"].is_string());
    assert_eq!(r.json["detail"], r.json["error"]["message"]);
}

#[tokio::test]
async fn health_on_both_paths() {
    let a = app();
    for path in ["/health", "/api/health"] {
        let r = a.get(path).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json["status"], "healthy");
        assert_eq!(r.json["backend"], "sqlite");
        assert_eq!(r.json["redis_connected"], false);
        assert_eq!(r.json["queue_depth"], 0);
        for f in [
            "version",
            "inference_mode",
            "active_gpu",
            "serverless_endpoint",
            "workers_active",
            "uptime_seconds",
        ] {
            assert!(r.json.get(f).is_some(), "missing {f}");
        }
    }
}

#[tokio::test]
async fn submit_returns_the_contract_job_shape() {
    let a = app();
    let r = a
        .post_json(
            "/api/jobs",
            &json!({"user_id": "user001", "workflow": {"3": {"class_type": "KSampler"}}, "priority": 1, "metadata": {"batch_index": 0, "batch_total": 2}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let j = &r.json;
    for f in [
        "id",
        "user_id",
        "status",
        "priority",
        "created_at",
        "started_at",
        "completed_at",
        "worker_id",
        "result",
        "error",
        "position_in_queue",
        "estimated_wait_time",
    ] {
        assert!(j.get(f).is_some(), "missing {f}");
    }
    assert_eq!(j["status"], "pending");
    assert_eq!(
        j["job_id"], j["id"],
        "the original submit answer's job_id is kept"
    );
    assert_eq!(j["priority"], 1);
    assert_eq!(j["position_in_queue"], 1);
    assert!(j["estimated_wait_time"].is_number());
    assert!(
        j.get("workflow").is_none(),
        "job responses never carry the workflow"
    );
    assert_eq!(j["created_at"], "2026-01-01T00:00:00.000Z");
    assert_eq!(j["metadata"]["batch_total"], 2);
    // Default priority is 2.
    let r = a
        .post_json("/api/jobs", &json!({"user_id": "u", "workflow": {"a": 1}}))
        .await;
    assert_eq!(r.json["priority"], 2);
    assert_eq!(r.json["position_in_queue"], 2);
}

#[tokio::test]
async fn submit_rejects_bad_input_naming_the_field() {
    let a = app();
    let cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
        (b"{not json".to_vec(), StatusCode::BAD_REQUEST, "malformed_json", "body"),
        (b"[1,2]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", "body"),
        (br#"{"workflow": {"a": 1}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "missing_field", "user_id"),
        (br#"{"user_id": "bad user", "workflow": {"a": 1}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_user_id", "user_id"),
        (br#"{"user_id": 7, "workflow": {"a": 1}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", "user_id"),
        (br#"{"user_id": "u", "workflow": {}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_workflow", "workflow"),
        (br#"{"user_id": "u", "workflow": "x"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", "workflow"),
        (br#"{"user_id": "u", "workflow": {"a": 1}, "priority": 4}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_priority", "priority"),
        (br#"{"user_id": "u", "workflow": {"a": 1}, "priority": "high"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", "priority"),
        (br#"{"user_id": "u", "workflow": {"a": 1}, "priority": -1}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_priority", "priority"),
        (br#"{"user_id": "u", "workflow": {"a": 1}, "metadata": [1]}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_type", "metadata"),
        (br#"{"user_id": "u", "workflow": {"a": 1}, "metadata": {"requires": {"comfyui": "??"}}}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_version_requirement", "metadata.requires.comfyui"),
        (Vec::new(), StatusCode::UNPROCESSABLE_ENTITY, "missing_body", "body"),
    ];
    for (body, status, code, field) in cases {
        let r = a.req("POST", "/api/jobs", &[], Some(body.clone())).await;
        assert_error(&r, status, code);
        assert_eq!(
            r.json["error"]["field"],
            field,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    // Nothing was stored by any of them.
    let r = a.get("/api/jobs").await;
    assert_eq!(r.json, json!([]));
}

#[tokio::test]
async fn oversize_input_is_413() {
    let a = app();
    let big = "x".repeat(10 * 1024 * 1024);
    let r = a
        .post_json(
            "/api/jobs",
            &json!({"user_id": "u", "workflow": {"a": big}}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(r.json["error"]["field"], "workflow");
    let meta = "m".repeat(1024 * 1024);
    let r = a
        .post_json(
            "/api/jobs",
            &json!({"user_id": "u", "workflow": {"a": 1}, "metadata": {"m": meta}}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(r.json["error"]["field"], "metadata");
    let huge = "y".repeat(13 * 1024 * 1024);
    let r = a
        .post_json(
            "/api/jobs",
            &json!({"user_id": "u", "workflow": {"a": huge}}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(r.json["error"]["field"], "body");
}

#[tokio::test]
async fn queue_cap_answers_429() {
    let a = test_app(Settings {
        max_pending: 2,
        ..Settings::default()
    });
    a.submit("u1", 2).await;
    a.submit("u2", 2).await;
    let r = a
        .post_json("/api/jobs", &json!({"user_id": "u3", "workflow": {"a": 1}}))
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "queue_full");
    let unlimited = test_app(Settings {
        max_pending: 0,
        ..Settings::default()
    });
    for i in 0..120 {
        unlimited.submit(&format!("u{i}"), 2).await;
    }
}

#[tokio::test]
async fn per_user_limit_answers_429() {
    let a = test_app(Settings {
        max_per_user: 1,
        ..Settings::default()
    });
    a.submit("u1", 2).await;
    let r = a
        .post_json("/api/jobs", &json!({"user_id": "u1", "workflow": {"a": 1}}))
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "user_limit_reached");
    a.submit("u2", 2).await;
}

#[tokio::test]
async fn idempotency_key_201_then_200_same_job() {
    let a = app();
    let body = serde_json::to_vec(&json!({"user_id": "u", "workflow": {"a": 1}})).unwrap();
    let first = a
        .req(
            "POST",
            "/api/jobs",
            &[("idempotency-key", "abc-1")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = a
        .req(
            "POST",
            "/api/jobs",
            &[("idempotency-key", "abc-1")],
            Some(body.clone()),
        )
        .await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.json["id"], second.json["id"]);
    let other = a
        .req(
            "POST",
            "/api/jobs",
            &[("idempotency-key", "abc-2")],
            Some(body),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_ne!(other.json["id"], first.json["id"]);
    let r = a
        .req(
            "POST",
            "/api/jobs",
            &[("idempotency-key", "has space")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_error(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_idempotency_key",
    );
}

#[tokio::test]
async fn list_filters_and_pages() {
    let a = app();
    let j1 = a.submit("alice", 2).await;
    let j2 = a.submit("bob", 2).await;
    let j3 = a.submit("alice", 2).await;
    a.req("DELETE", &format!("/api/jobs/{j2}"), &[], None).await;
    let r = a.get("/api/jobs").await;
    let ids: Vec<&str> = r
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![j3.as_str(), j2.as_str(), j1.as_str()]);
    let r = a.get("/api/jobs?status=pending&user_id=alice").await;
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    let r = a.get("/api/jobs?status=cancelled").await;
    assert_eq!(r.json[0]["id"], j2.as_str());
    let r = a.get("/api/jobs?limit=1&offset=1").await;
    assert_eq!(r.json[0]["id"], j2.as_str());
    let r = a.get("/api/jobs?limit=1&page=3").await;
    assert_eq!(r.json[0]["id"], j1.as_str());
    assert_error(
        &a.get("/api/jobs?status=done").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_status",
    );
    assert_error(
        &a.get("/api/jobs?limit=0").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_integer",
    );
    assert_error(
        &a.get("/api/jobs?limit=abc").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_integer",
    );
    assert_error(
        &a.get("/api/jobs?user_id=a%20b").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_user_id",
    );
}

#[tokio::test]
async fn get_unknown_job_is_404_with_detail() {
    let a = app();
    let r = a
        .get("/api/jobs/7d0c1e36-6a55-4a0b-8d6e-0d9b7a3f2b11")
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    assert_eq!(r.json["detail"], "Job not found");
    assert_error(
        &a.get("/api/jobs/not-a-uuid").await,
        StatusCode::NOT_FOUND,
        "job_not_found",
    );
    let id = a.submit("u", 2).await;
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["id"], id.as_str());
}

#[tokio::test]
async fn delete_cancels_then_400() {
    let a = app();
    let id = a.submit("u", 2).await;
    let r = a.req("DELETE", &format!("/api/jobs/{id}"), &[], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["status"],
        "cancelled"
    );
    let r = a.req("DELETE", &format!("/api/jobs/{id}"), &[], None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_state");
    let r = a
        .req(
            "DELETE",
            "/api/jobs/7d0c1e36-6a55-4a0b-8d6e-0d9b7a3f2b11",
            &[],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
}

#[tokio::test]
async fn priority_from_query_or_body() {
    let a = app();
    let id = a.submit("u", 2).await;
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{id}/priority?priority=0"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["priority"], 0);
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{id}/priority"),
            &[],
            Some(br#"{"priority": 3}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["priority"], 3);
    assert_eq!(a.get(&format!("/api/jobs/{id}")).await.json["priority"], 3);
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{id}/priority?priority=9"),
            &[],
            None,
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_priority");
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{id}/priority"),
            &[],
            Some(br#"{"priority": "x"}"#.to_vec()),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_type");
    let r = a
        .req("PATCH", &format!("/api/jobs/{id}/priority"), &[], None)
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{id}/priority"),
            &[],
            Some(b"{oops".to_vec()),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "malformed_json");
    a.get("/api/workers/next-job?worker_id=w1").await;
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{id}/priority?priority=1"),
            &[],
            None,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "invalid_state");
}

#[tokio::test]
async fn worker_lifecycle_with_lease_token() {
    let a = app();
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({"job": null}));
    let id = a.submit("user001", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    let job = &r.json["job"];
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["user_id"], "user001");
    assert_eq!(job["workflow"]["1"]["class_type"], "X");
    assert!(job["metadata"].is_object());
    let token = job["lease_token"].as_str().unwrap().to_owned();
    assert_eq!(job["attempt"], 1);
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "running");
    assert_eq!(r.json["worker_id"], "w1");

    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"job_id": id, "lease_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["cancel_requested"], false);
    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"job_id": id, "lease_token": "stale"}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a
        .post_json("/api/workers/heartbeat", &json!({"job_id": id}))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");

    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}&lease_token=wrong"),
            &json!({"result": {"x": 1}}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"result": {"images": ["a.png"]}, "lease_token": token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["status"], "success");
    assert_eq!(r.json["job_id"], id.as_str());
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "completed");
    assert_eq!(r.json["result"], json!({"images": ["a.png"]}));
    assert_eq!(r.json["history"][0]["outcome"], "completed");
    assert_eq!(r.json["history"][0]["worker_id"], "w1");
}

#[tokio::test]
async fn old_worker_shapes_are_accepted() {
    let a = app();
    let id = a.submit("u", 2).await;
    a.get("/api/workers/next-job?worker_id=legacy").await;
    // Unwrapped result, no lease token.
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"outputs": {"9": {}}, "execution_time": 3.2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(
        r.json["result"],
        json!({"outputs": {"9": {}}, "execution_time": 3.2})
    );

    let id = a.submit("u", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=legacy").await;
    // Unregistered workers get the long legacy lease, since they never heartbeat.
    assert_eq!(r.json["job"]["lease_seconds"], 3600.0);
    let r = a
        .req(
            "POST",
            &format!("/api/workers/fail-job?job_id={id}&error=CUDA%20out%20of%20memory"),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "failed");
    assert_eq!(r.json["error"], "CUDA out of memory");
}

#[tokio::test]
async fn worker_calls_reject_bad_input() {
    let a = app();
    let id = a.submit("u", 2).await;
    assert_error(
        &a.get("/api/workers/next-job").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "missing_field",
    );
    assert_error(
        &a.get("/api/workers/next-job?worker_id=a%20b").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_worker_id",
    );
    assert_error(
        &a.get("/api/workers/next-job?worker_id=w&wait=-1").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_wait",
    );
    let r = a
        .post_json("/api/workers/complete-job", &json!({"result": {}}))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let r = a
        .post_json(
            "/api/workers/complete-job?job_id=xyz",
            &json!({"result": {}}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_job_id");
    let r = a
        .post_json(
            "/api/workers/complete-job?job_id=7d0c1e36-6a55-4a0b-8d6e-0d9b7a3f2b11",
            &json!({"result": {}}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    // Completing a job nobody claimed is refused (the original accepted it).
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"result": {}}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"result": [1]}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_type");
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}"),
            &json!({"error": "   "}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_error");
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}"),
            &json!({"error": "x".repeat(10_001)}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_error");
    let r = a
        .post_json(&format!("/api/workers/fail-job?job_id={id}"), &json!({}))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}"),
            &json!({"error": "e", "retry": "maybe"}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_type");
    let big = "r".repeat(51 * 1024 * 1024);
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"result": {"x": big}}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // The job is untouched by all of that.
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["status"],
        "pending"
    );
}

#[tokio::test]
async fn expired_lease_via_http_is_fenced_and_retried() {
    let a = app();
    a.post_json(
        "/api/workers/register",
        &json!({"worker_id": "w1", "comfyui_version": "0.9.2"}),
    )
    .await;
    let id = a.submit("u", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    assert_eq!(r.json["job"]["lease_seconds"], 60.0);
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    a.clock.advance(61_000);
    let report = a.state.reap_once().await.unwrap();
    assert_eq!(report.requeued.len(), 1);
    let r = a.get("/api/workers/next-job?worker_id=w2").await;
    assert_eq!(r.json["job"]["id"], id.as_str());
    assert_eq!(r.json["job"]["attempt"], 2);
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}&lease_token={token}"),
            &json!({"result": {}}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let m = a.get("/metrics").await.text;
    assert!(m.contains("comfy_queue_lease_expiries_total 1"), "{m}");
    assert!(m.contains("comfy_queue_retries_total 1"), "{m}");
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["history"][0]["outcome"], "lease_expired");
    assert_eq!(r.json["history"][1]["worker_id"], "w2");
}

/// Issue 12 item 1 over HTTP: the original (unregistered, tokenless) worker comes back after
/// its lease expired and the job went to a registered worker; its complete and fail are 409.
#[tokio::test]
async fn a_stale_tokenless_worker_cannot_overwrite_a_re_leased_job() {
    let a = app();
    let id = a.submit("u", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=legacy").await;
    assert_eq!(r.json["job"]["lease_seconds"], 3600.0);
    a.clock.advance(3_600_001);
    assert_eq!(a.state.reap_once().await.unwrap().requeued.len(), 1);
    a.post_json(
        "/api/workers/register",
        &json!({"worker_id": "w2", "comfyui_version": "0.9.2"}),
    )
    .await;
    let r = a.get("/api/workers/next-job?worker_id=w2").await;
    assert_eq!(r.json["job"]["id"], id.as_str());
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"outputs": {"stale": true}}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a
        .req(
            "POST",
            &format!("/api/workers/fail-job?job_id={id}&error=stale"),
            &[],
            None,
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "running");
    assert_eq!(r.json["worker_id"], "w2");
    assert_eq!(r.json["result"], Value::Null);
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}&lease_token={token}"),
            &json!({"result": {"images": ["a.png"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn cancel_running_reaches_the_worker_through_heartbeat() {
    let a = app();
    let id = a.submit("u", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    let r = a.req("DELETE", &format!("/api/jobs/{id}"), &[], None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "running");
    assert_eq!(r.json["cancel_requested"], true);
    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"job_id": id, "lease_token": token}),
        )
        .await;
    assert_eq!(r.json["cancel_requested"], true);
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}&lease_token={token}"),
            &json!({"error": "interrupted", "cancelled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["job_status"], "cancelled");
}

#[tokio::test]
async fn fail_with_retry_requeues() {
    let a = app();
    let id = a.submit("u", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    let r = a
        .post_json(
            &format!("/api/workers/fail-job?job_id={id}"),
            &json!({"error": "ComfyUI unreachable", "retry": true, "lease_token": token}),
        )
        .await;
    assert_eq!(r.json["job_status"], "pending");
    // It waits out the 10 s backoff (default --retry-delay-secs) before running again.
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["retry_at"], "2026-01-01T00:00:10.000Z");
    let r = a.get("/api/workers/next-job?worker_id=w2").await;
    assert_eq!(r.json["job"], Value::Null);
    a.clock.advance(10_000);
    let r = a.get("/api/workers/next-job?worker_id=w2").await;
    assert_eq!(r.json["job"]["id"], id.as_str());
    assert_eq!(r.json["job"]["attempt"], 2);
}

#[tokio::test]
async fn registration_routes_jobs() {
    let a = app();
    let r = a
        .post_json(
            "/api/jobs",
            &json!({"user_id": "u", "workflow": {"a": 1}, "metadata": {"requires": {"comfyui": ">=0.9", "capabilities": ["jobs_api"]}}}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.get("/api/workers/next-job?worker_id=plain").await.json["job"],
        Value::Null
    );
    let r = a.post_json("/api/workers/register", &json!({"worker_id": "old", "comfyui_version": "0.3.40", "line": "legacy", "capabilities": ["jobs_api"]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        a.get("/api/workers/next-job?worker_id=old").await.json["job"],
        Value::Null
    );
    a.post_json(
        "/api/workers/register",
        &json!({"worker_id": "new", "comfyui_version": "0.11.1", "capabilities": ["jobs_api"]}),
    )
    .await;
    let r = a.get("/api/workers/next-job?worker_id=new").await;
    assert_eq!(r.json["job"]["id"], id.as_str());
    a.clock.advance(5_000);
    let r = a.get("/api/workers").await;
    let workers = r.json.as_array().unwrap();
    let new = workers.iter().find(|w| w["worker_id"] == "new").unwrap();
    assert_eq!(new["comfyui_version"], "0.11.1");
    assert_eq!(new["heartbeat_age_seconds"], 5.0);
    assert_eq!(new["running_jobs"], json!([id]));
    let r = a
        .post_json(
            "/api/workers/register",
            &json!({"worker_id": "x", "comfyui_version": "banana"}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_version");
    let r = a
        .post_json("/api/workers/register", &json!({"comfyui_version": "0.9"}))
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let r = a
        .post_json(
            "/api/workers/register",
            &json!({"worker_id": "x", "capabilities": "all"}),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_type");
}

fn secured() -> TestApp {
    test_app(Settings {
        auth: AuthConfig {
            worker_token: Some("worker-secret".into()),
            admin_token: Some("admin-secret".into()),
            user_header: "X-Forwarded-User".into(),
        },
        ..Settings::default()
    })
}

#[tokio::test]
async fn auth_tokens_and_user_scoping() {
    let a = secured();
    let submit = |user: &'static str| {
        serde_json::to_vec(&json!({"user_id": user, "workflow": {"a": 1}})).unwrap()
    };
    // No identity at all.
    assert_error(
        &a.req("POST", "/api/jobs", &[], Some(submit("alice"))).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    // A user submits as themself only.
    let r = a
        .req(
            "POST",
            "/api/jobs",
            &[("x-forwarded-user", "alice")],
            Some(submit("alice")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let alice_job = r.json["id"].as_str().unwrap().to_owned();
    let r = a
        .req(
            "POST",
            "/api/jobs",
            &[("x-forwarded-user", "alice")],
            Some(submit("bob")),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = a
        .req(
            "POST",
            "/api/jobs",
            &[("x-forwarded-user", "bob")],
            Some(submit("bob")),
        )
        .await;
    let bob_job = r.json["id"].as_str().unwrap().to_owned();
    // Each user lists and reads only their own jobs.
    let r = a
        .req("GET", "/api/jobs", &[("x-forwarded-user", "alice")], None)
        .await;
    assert_eq!(r.json.as_array().unwrap().len(), 1);
    assert_eq!(r.json[0]["id"], alice_job.as_str());
    let r = a
        .req(
            "GET",
            "/api/jobs?user_id=bob",
            &[("x-forwarded-user", "alice")],
            None,
        )
        .await;
    assert_eq!(r.json, json!([]));
    let r = a
        .req(
            "GET",
            &format!("/api/jobs/{bob_job}"),
            &[("x-forwarded-user", "alice")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    let r = a
        .req(
            "DELETE",
            &format!("/api/jobs/{bob_job}"),
            &[("x-forwarded-user", "alice")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    // Users cannot use priority 0; the admin can, on anyone's job.
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{alice_job}/priority?priority=0"),
            &[("x-forwarded-user", "alice")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = a
        .req(
            "PATCH",
            &format!("/api/jobs/{bob_job}/priority?priority=0"),
            &[("authorization", "Bearer admin-secret")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = a
        .req(
            "GET",
            "/api/jobs",
            &[("authorization", "Bearer admin-secret")],
            None,
        )
        .await;
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    // Workers need the worker token.
    assert_error(
        &a.get("/api/workers/next-job?worker_id=w").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let r = a
        .req(
            "GET",
            "/api/workers/next-job?worker_id=w",
            &[("x-forwarded-user", "alice")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = a
        .req(
            "GET",
            "/api/workers/next-job?worker_id=w",
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = a
        .req(
            "GET",
            "/api/workers/next-job?worker_id=w",
            &[("authorization", "Bearer worker-secret")],
            None,
        )
        .await;
    assert_eq!(r.json["job"]["id"], bob_job.as_str());
    // The worker token does not open user routes.
    let r = a
        .req(
            "GET",
            "/api/jobs",
            &[("authorization", "Bearer worker-secret")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Secrets never appear in answers.
    assert!(!r.text.contains("secret"));
}

/// Issue 12 item 2: with auth on, only admins see user names in `/api/queue/status`
/// (`users`) and `/metrics` (`comfy_queue_user_jobs{user}`); everyone else gets counts.
#[tokio::test]
async fn status_and_metrics_name_users_to_admins_only() {
    let a = secured();
    let body = serde_json::to_vec(&json!({"user_id": "alice", "workflow": {"a": 1}})).unwrap();
    let r = a
        .req(
            "POST",
            "/api/jobs",
            &[("x-forwarded-user", "alice")],
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for who in [
        vec![],
        vec![("x-forwarded-user", "bob")],
        vec![("authorization", "Bearer worker-secret")],
        vec![("authorization", "Bearer wrong")],
    ] {
        let r = a.req("GET", "/api/queue/status", &who, None).await;
        assert_eq!(r.status, StatusCode::OK, "{who:?}: {}", r.text);
        assert_eq!(r.json["pending_jobs"], 1, "{who:?}");
        assert!(r.json.get("users").is_none(), "{who:?}: {}", r.text);
        assert!(!r.text.contains("alice"), "{who:?}: {}", r.text);
        let r = a.req("GET", "/metrics", &who, None).await;
        assert_eq!(r.status, StatusCode::OK, "{who:?}");
        assert!(
            r.text.contains("comfy_queue_jobs{status=\"pending\"} 1"),
            "{who:?}: {}",
            r.text
        );
        assert!(!r.text.contains("alice"), "{who:?}: {}", r.text);
        assert!(!r.text.contains("comfy_queue_user_jobs"), "{who:?}");
    }
    let admin = [("authorization", "Bearer admin-secret")];
    let r = a.req("GET", "/api/queue/status", &admin, None).await;
    assert_eq!(
        r.json["users"]["alice"],
        json!({"pending": 1, "running": 0})
    );
    let r = a.req("GET", "/metrics", &admin, None).await;
    assert!(
        r.text
            .contains("comfy_queue_user_jobs{user=\"alice\",status=\"pending\"} 1"),
        "{}",
        r.text
    );
}

/// Issue 12 item 3: a body is read only when it is declared JSON. A browser form
/// (`application/x-www-form-urlencoded`, `multipart/form-data`) or a `text/plain` fetch from
/// another site needs no CORS preflight; all of them are 415 with the JSON error shape, on
/// every route that reads a JSON body, and nothing is written.
#[tokio::test]
async fn bodies_must_be_declared_json() {
    let a = app();
    let id = a.submit("alice", 2).await;
    a.get("/api/workers/next-job?worker_id=legacy").await;
    let submit = serde_json::to_vec(&json!({"user_id": "mallory", "workflow": {"a": 1}})).unwrap();
    let routes = [
        ("POST", "/api/jobs".to_owned(), submit.clone()),
        (
            "PATCH",
            format!("/api/jobs/{id}/priority"),
            br#"{"priority": 0}"#.to_vec(),
        ),
        (
            "POST",
            "/api/workers/register".into(),
            br#"{"worker_id": "w"}"#.to_vec(),
        ),
        (
            "POST",
            format!("/api/workers/complete-job?job_id={id}"),
            br#"{"result": {"forged": true}}"#.to_vec(),
        ),
        (
            "POST",
            format!("/api/workers/fail-job?job_id={id}"),
            br#"{"error": "forged"}"#.to_vec(),
        ),
        (
            "POST",
            "/api/workers/heartbeat".into(),
            br#"{"worker_id": "w"}"#.to_vec(),
        ),
    ];
    for (method, uri, body) in &routes {
        for ct in [
            None,
            Some("text/plain"),
            Some("text/plain;charset=UTF-8"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
        ] {
            let r = a.req_typed(method, uri, &[], ct, body.clone()).await;
            assert_error(
                &r,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            );
            assert_eq!(r.json["error"]["field"], "body", "{method} {uri} {ct:?}");
        }
    }
    let r = a.get("/api/jobs").await;
    assert_eq!(r.json.as_array().unwrap().len(), 1, "{}", r.text);
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "running");
    assert_eq!(r.json["priority"], 2);
    // JSON with parameters or in another case is JSON; so is a +json type.
    for ct in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.x+json",
    ] {
        let r = a
            .req_typed("POST", "/api/jobs", &[], Some(ct), submit.clone())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{ct}: {}", r.text);
    }
    // No body needs no type: the original worker's fail-job with `?error=`, a PATCH with
    // `?priority=`.
    let r = a
        .req_typed(
            "POST",
            &format!("/api/workers/fail-job?job_id={id}&error=oom"),
            &[],
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let other = a.submit("alice", 2).await;
    let r = a
        .req_typed(
            "PATCH",
            &format!("/api/jobs/{other}/priority?priority=1"),
            &[],
            Some("text/plain"),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // A JSON body from another origin needs a CORS preflight, which is not granted.
    let r = a
        .req(
            "OPTIONS",
            "/api/jobs",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            None,
        )
        .await;
    assert!(!r.status.is_success(), "{}", r.status);
    assert!(
        r.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-"))
    );
}

#[tokio::test]
async fn queue_status_counts() {
    let a = app();
    a.submit("alice", 2).await;
    a.submit("alice", 2).await;
    a.submit("bob", 2).await;
    a.get("/api/workers/next-job?worker_id=w1").await;
    let r = a.get("/api/queue/status").await;
    assert_eq!(r.status, StatusCode::OK);
    for f in [
        "mode",
        "pending_jobs",
        "running_jobs",
        "completed_jobs",
        "failed_jobs",
        "total_workers",
        "active_workers",
        "queue_depth",
    ] {
        assert!(r.json.get(f).is_some(), "missing {f}");
    }
    assert_eq!(r.json["pending_jobs"], 2);
    assert_eq!(r.json["running_jobs"], 1);
    assert_eq!(r.json["queue_depth"], 2);
    assert_eq!(r.json["total_workers"], 1);
    assert_eq!(r.json["active_workers"], 1);
    assert_eq!(
        r.json["users"]["alice"],
        json!({"pending": 1, "running": 1})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let a = app();
    assert_error(
        &a.get("/nope").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    );
    assert_error(
        &a.req("PUT", "/api/jobs", &[], None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn metrics_openapi_and_admin_page() {
    let a = app();
    a.submit("alice", 2).await;
    let r = a.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        r.text.contains("comfy_queue_jobs{status=\"pending\"} 1"),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("comfy_queue_user_jobs{user=\"alice\",status=\"pending\"} 1")
    );
    assert!(r.text.contains("comfy_queue_claim_duration_seconds_count"));
    let r = a.get("/api/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."));
    for schema in ["SubmitResponse", "JobResponse", "ErrorBody", "LeasedJob"] {
        assert!(
            r.json["components"]["schemas"].get(schema).is_some(),
            "missing schema {schema}"
        );
    }
    for p in [
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/workers/next-job",
        "/api/workers/heartbeat",
        "/api/workers/register",
    ] {
        assert!(r.json["paths"].get(p).is_some(), "missing {p}");
    }
    let r = a.get("/admin").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// Garbage at every endpoint: never a 5xx, always a JSON error body for a 4xx.
#[tokio::test]
async fn no_input_causes_a_5xx() {
    let a = app();
    let id = a.submit("u", 2).await;
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"null".to_vec(),
        b"\"str\"".to_vec(),
        b"123".to_vec(),
        b"{".to_vec(),
        b"{\"user_id\": null, \"workflow\": null}".to_vec(),
        b"{\"job_id\": 5, \"error\": 5, \"result\": 5, \"priority\": {}}".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"{\"worker_id\": [], \"capabilities\": [1]}".to_vec(),
    ];
    let routes = [
        ("POST", "/api/jobs".to_owned()),
        ("GET", "/api/jobs?limit=-5&status=%ZZ".to_owned()),
        ("GET", format!("/api/jobs/{id}x")),
        ("DELETE", "/api/jobs/%00".to_owned()),
        ("PATCH", format!("/api/jobs/{id}/priority")),
        ("PATCH", format!("/api/jobs/{id}/priority?priority=")),
        (
            "GET",
            "/api/workers/next-job?worker_id=&wait=NaN".to_owned(),
        ),
        ("POST", format!("/api/workers/complete-job?job_id={id}")),
        ("POST", format!("/api/workers/fail-job?job_id={id}&retry=2")),
        ("POST", "/api/workers/heartbeat".to_owned()),
        ("POST", "/api/workers/register".to_owned()),
    ];
    for (method, uri) in &routes {
        for body in &bodies {
            let r = a.req(method, uri, &[], Some(body.clone())).await;
            assert!(
                r.status.as_u16() < 500,
                "{method} {uri} {:?} -> {} {}",
                String::from_utf8_lossy(body),
                r.status,
                r.text
            );
            if r.status.is_client_error() {
                assert!(
                    r.json["error"]["code"].is_string(),
                    "{method} {uri}: {}",
                    r.text
                );
            }
        }
    }
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["status"],
        "pending"
    );
}

/// The same HTTP lifecycle over the Redis backend (own redis-server).
#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn redis_backend_over_http() {
    let server = common::RedisServer::start();
    let store = comfy_queue::store::redis::RedisStore::connect(&server.url(), "http")
        .await
        .unwrap();
    let a = common::test_app_with(
        std::sync::Arc::new(store),
        Settings::default(),
        Box::new(server),
    );
    let r = a.get("/health").await;
    assert_eq!(r.json["backend"], "redis");
    assert_eq!(r.json["redis_connected"], true);
    let id = a.submit("alice", 2).await;
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["position_in_queue"], 1);
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}&lease_token={token}"),
            &json!({"result": {"images": ["x.png"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.json["status"], "completed");
    assert_eq!(r.json["result"], json!({"images": ["x.png"]}));
    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}&lease_token="),
            &json!({"result": {}}),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a.get("/api/queue/status").await;
    assert_eq!(r.json["completed_jobs"], 1);
}

#[tokio::test]
async fn heartbeat_progress_shows_on_the_running_job_and_is_dropped_when_it_ends() {
    let a = app();
    let id = a.submit("user001", 2).await;
    let r = a.get("/api/workers/next-job?worker_id=w1").await;
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["progress"],
        Value::Null
    );

    let progress =
        json!({"percent": 42.5, "node": "3", "node_class": "KSampler", "prompt_id": "p-1"});
    let r = a
        .post_json(
            "/api/workers/heartbeat",
            &json!({"job_id": id, "lease_token": token, "progress": progress}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["progress"],
        progress
    );

    for (bad, field, code) in [
        (
            json!({"percent": "half"}),
            "progress.percent",
            "invalid_value",
        ),
        (
            json!({"percent": 1, "node": 3}),
            "progress.node",
            "invalid_value",
        ),
        (json!("50%"), "progress", "invalid_type"),
    ] {
        let r = a
            .post_json(
                "/api/workers/heartbeat",
                &json!({"job_id": id, "lease_token": token, "progress": bad}),
            )
            .await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(r.json["error"]["field"], field, "{}", r.text);
    }
    // A rejected heartbeat changed nothing.
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["progress"]["percent"],
        42.5
    );

    let r = a
        .post_json(
            &format!("/api/workers/complete-job?job_id={id}&lease_token={token}"),
            &json!({"result": {}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["progress"],
        Value::Null
    );
}

/// Issue 12 item 4: at every level (TRACE included) the request trace shows the URI with
/// `?token=` and `lease_token=` values redacted, and no header values.
#[tokio::test]
async fn secrets_never_reach_the_log() {
    let buf = LogBuf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let a = secured();
    let worker = [
        ("authorization", "Bearer worker-secret"),
        ("x-lease-token", "header-lease-secret"),
    ];
    let body = serde_json::to_vec(&json!({"user_id": "alice", "workflow": {"a": 1}})).unwrap();
    let r = a
        .req(
            "POST",
            "/api/jobs",
            &[("authorization", "Bearer admin-secret")],
            Some(body),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let r = a
        .req("GET", "/api/workers/next-job?worker_id=w1", &worker, None)
        .await;
    let token = r.json["job"]["lease_token"].as_str().unwrap().to_owned();
    a.req("GET", "/ws?token=admin-secret", &[], None).await;
    a.req("GET", "/metrics?token=admin-secret&x=1", &[], None)
        .await;
    let r = a
        .req(
            "POST",
            &format!("/api/workers/complete-job?job_id={id}&lease_token={token}"),
            &worker[..1],
            Some(br#"{"result": {}}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    drop(guard);
    let log = buf.text();
    // The URIs are there (so the test looks at the right lines) ...
    assert!(
        log.contains("uri=/api/workers/complete-job?job_id="),
        "{log}"
    );
    assert!(log.contains("lease_token=<redacted>"), "{log}");
    assert!(log.contains("uri=/ws?token=<redacted>"), "{log}");
    // ... the secrets are not.
    for secret in [
        token.as_str(),
        "admin-secret",
        "worker-secret",
        "header-lease-secret",
    ] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// Issue 12 item 5: requests that axum's extractors used to refuse with a plain-text 400
/// get the JSON error shape: a job path that does not decode, `/ws` without an upgrade.
#[tokio::test]
async fn extractor_rejections_have_the_json_error_shape() {
    let a = app();
    for (method, uri) in [
        ("GET", "/api/jobs/%ff"),
        ("DELETE", "/api/jobs/%ff"),
        ("PATCH", "/api/jobs/%ff/priority?priority=1"),
        ("GET", "/api/jobs/%C0%AF"),
    ] {
        let r = a.req(method, uri, &[], None).await;
        assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
        assert_eq!(r.json["detail"], "Job not found", "{method} {uri}");
    }
    for uri in ["/ws", "/ws?x=1"] {
        let r = a.get(uri).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "websocket_required");
    }
    let r = a
        .req(
            "GET",
            "/ws",
            &[("connection", "upgrade"), ("upgrade", "websocket")],
            None,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "websocket_required");
}

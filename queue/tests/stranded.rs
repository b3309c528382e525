//! Routing that cannot strand a job (issue 14), through the HTTP app on both backends,
//! stepped look by look (`AppState::route_once`) on a manual clock: a pending job no live
//! worker can run shows `waiting` with the reason, and fails with `no_capable_worker` once
//! it waited `no_capable_worker_ms`, except while no worker is live at all; a worker hands
//! back a job its ComfyUI cannot run, which then goes to a worker that can.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use comfy_queue::Settings;
use common::{Harness, TestApp, test_app_with};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const LEASE: i64 = 60_000;
const PATIENCE: i64 = 300_000;

fn settings() -> Settings {
    Settings {
        lease_ms: LEASE,
        no_capable_worker_ms: PATIENCE,
        ..Settings::default()
    }
}

async fn backends() -> Vec<(&'static str, TestApp)> {
    let on = |h: Harness| test_app_with(h.store, settings(), h.guard);
    let mut out = vec![("sqlite", on(common::sqlite_harness().await))];
    if cfg!(has_redis) {
        out.push(("redis", on(common::redis_harness().await)));
    }
    out
}

async fn register(app: &TestApp, id: &str, version: &str, catalogue: Option<&str>) {
    let mut body = json!({"worker_id": id, "comfyui_version": version});
    if let Some(c) = catalogue {
        body["catalogue"] = json!(c);
    }
    let r = app.post_json("/api/workers/register", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// Publishes a catalogue with these node classes (SaveImage an output), answering its id.
async fn publish(app: &TestApp, classes: &[&str]) -> String {
    let mut body = serde_json::Map::new();
    for c in classes {
        body.insert(
            (*c).to_owned(),
            json!({"input": {"required": {}}, "output_node": *c == "SaveImage"}),
        );
    }
    let bytes = serde_json::to_vec(&body).unwrap();
    let id = hex::encode(Sha256::digest(&bytes));
    let r = app
        .req_typed(
            "PUT",
            &format!("/api/workers/catalogues/{id}"),
            &[],
            Some("application/json"),
            bytes,
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    id
}

async fn submit(app: &TestApp, workflow: Value, requires: Option<&str>) -> String {
    let mut body = json!({"user_id": "alice", "workflow": workflow});
    if let Some(r) = requires {
        body["metadata"] = json!({"requires": {"comfyui": r}});
    }
    let r = app.post_json("/api/jobs", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.json["id"].as_str().unwrap().to_owned()
}

fn save_image() -> Value {
    json!({"1": {"class_type": "SaveImage", "inputs": {}}})
}

async fn job(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/jobs/{id}")).await.json
}

async fn look(app: &TestApp) {
    app.state.route_once().await.unwrap();
}

#[tokio::test]
async fn a_job_no_live_worker_fits_waits_with_the_reason_then_fails() {
    for (backend, app) in backends().await {
        register(&app, "gpu-new", "0.11.1", None).await;
        let pinned = submit(&app, save_image(), Some("<0.10")).await;
        let free = submit(&app, save_image(), None).await;
        look(&app).await;
        let j = job(&app, &pinned).await;
        assert_eq!(j["status"], "pending", "{backend}");
        assert_eq!(j["waiting"]["reason"], "requires", "{backend}: {j}");
        assert_eq!(
            j["waiting"]["message"],
            "no live worker can run it: gpu-new (ComfyUI 0.11.1): needs ComfyUI <0.10, not 0.11.1",
            "{backend}"
        );
        assert!(j["waiting"]["since"].is_string(), "{backend}: {j}");
        assert!(job(&app, &free).await.get("waiting").is_none(), "{backend}");
        let listed = app.get("/api/jobs?status=pending").await.json;
        let shown = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == pinned.as_str())
            .unwrap()
            .clone();
        assert_eq!(
            shown["waiting"]["reason"], "requires",
            "{backend}: lists show it too"
        );

        // Not failed before its time; the worker stays live by polling.
        app.clock.advance(PATIENCE - 1);
        register(&app, "gpu-new", "0.11.1", None).await;
        look(&app).await;
        assert_eq!(job(&app, &pinned).await["status"], "pending", "{backend}");
        app.clock.advance(1);
        look(&app).await;
        let j = job(&app, &pinned).await;
        assert_eq!(j["status"], "failed", "{backend}: {j}");
        let error = j["error"].as_str().unwrap();
        assert!(
            error.starts_with("no_capable_worker: no live worker can run it: gpu-new"),
            "{backend}: {error}"
        );
        assert!(error.ends_with("(waited 300.0 s)"), "{backend}: {error}");
        assert!(j.get("waiting").is_none(), "{backend}");
        assert_eq!(job(&app, &free).await["status"], "pending", "{backend}");
    }
}

#[tokio::test]
async fn with_no_live_worker_a_job_waits_and_is_not_failed() {
    for (backend, app) in backends().await {
        register(&app, "gpu-old", "0.9.2", None).await;
        let id = submit(&app, save_image(), Some("<0.10")).await;
        look(&app).await;
        assert!(job(&app, &id).await.get("waiting").is_none(), "{backend}");
        // The worker stops polling: after two leases it is not live.
        app.clock.advance(2 * LEASE + 1);
        look(&app).await;
        assert_eq!(
            job(&app, &id).await["waiting"]["reason"],
            "no_live_worker",
            "{backend}"
        );
        app.clock.advance(2 * PATIENCE);
        look(&app).await;
        let j = job(&app, &id).await;
        assert_eq!(j["status"], "pending", "{backend}: an outage fails nothing");
        // A worker that cannot run it comes: the wait starts now, not at the outage.
        register(&app, "gpu-new", "0.11.1", None).await;
        look(&app).await;
        assert_eq!(
            job(&app, &id).await["waiting"]["reason"],
            "requires",
            "{backend}"
        );
        app.clock.advance(PATIENCE / 2);
        register(&app, "gpu-new", "0.11.1", None).await;
        look(&app).await;
        assert_eq!(job(&app, &id).await["status"], "pending", "{backend}");
    }
}

#[tokio::test]
async fn the_prompt_is_checked_against_the_published_catalogues() {
    for (backend, app) in backends().await {
        let without = publish(&app, &["SaveImage"]).await;
        register(&app, "gpu-a", "0.11.1", Some(&without)).await;
        let flux = json!({
            "1": {"class_type": "FluxGuidance", "inputs": {}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
        });
        let id = submit(&app, flux, None).await;
        let plain = submit(&app, save_image(), None).await;
        look(&app).await;
        let j = job(&app, &id).await;
        assert_eq!(j["waiting"]["reason"], "catalogue", "{backend}: {j}");
        assert_eq!(
            j["waiting"]["message"],
            "no live worker can run it: gpu-a (ComfyUI 0.11.1): no node class FluxGuidance",
            "{backend}"
        );
        assert!(
            job(&app, &plain).await.get("waiting").is_none(),
            "{backend}"
        );

        // A worker whose catalogue has the node comes: the job no longer waits; drained,
        // it is the reason.
        let with = publish(&app, &["SaveImage", "FluxGuidance"]).await;
        register(&app, "gpu-b", "0.11.1", Some(&with)).await;
        look(&app).await;
        assert!(job(&app, &id).await.get("waiting").is_none(), "{backend}");
        let r = app.post_json("/api/workers/gpu-b/drain", &json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        look(&app).await;
        let j = job(&app, &id).await;
        assert_eq!(j["waiting"]["reason"], "drained", "{backend}: {j}");
        assert_eq!(
            j["waiting"]["message"],
            "the workers that could run it are drained: gpu-b (ComfyUI 0.11.1)",
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_handed_back_job_goes_to_a_worker_that_can_run_it() {
    for (backend, app) in backends().await {
        let without = publish(&app, &["SaveImage"]).await;
        let with = publish(&app, &["SaveImage", "FluxGuidance"]).await;
        register(&app, "gpu-a", "0.11.1", Some(&without)).await;
        let id = submit(&app, save_image(), None).await;
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-a&wait=0")
            .await
            .json;
        let token = next["job"]["lease_token"].as_str().unwrap().to_owned();

        // Without the lease token a hand-back is refused.
        let r = app
            .post_json(
                &format!("/api/workers/fail-job?job_id={id}"),
                &json!({"error": "no node class FluxGuidance", "unfit": "catalogue"}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend}: {}",
            r.text
        );
        assert_eq!(
            r.json["error"]["field"], "lease_token",
            "{backend}: {}",
            r.text
        );

        let r = app
            .post_json(
                &format!("/api/workers/fail-job?job_id={id}"),
                &json!({"error": "no node class FluxGuidance", "unfit": "catalogue",
                        "lease_token": token, "retry": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.text);
        assert_eq!(r.json["job_status"], "pending", "{backend}: {}", r.text);
        let j = job(&app, &id).await;
        assert_eq!(
            (j["attempts"].as_u64(), j["status"].as_str()),
            (Some(0), Some("pending")),
            "{backend}: {j}"
        );
        assert_eq!(j["history"][0]["outcome"], "handed_back", "{backend}");
        assert_eq!(
            j["history"][0]["error"], "no node class FluxGuidance",
            "{backend}"
        );

        // Not offered to gpu-a again, even after it registers again with the same catalogue.
        register(&app, "gpu-a", "0.11.1", Some(&without)).await;
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-a&wait=0")
            .await
            .json;
        assert!(next["job"].is_null(), "{backend}: {next}");
        look(&app).await;
        assert_eq!(
            job(&app, &id).await["waiting"]["reason"],
            "requires",
            "{backend}"
        );
        // A worker with another catalogue takes it.
        register(&app, "gpu-b", "0.11.1", Some(&with)).await;
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-b&wait=0")
            .await
            .json;
        assert_eq!(next["job"]["id"], id.as_str(), "{backend}: {next}");
        assert_eq!(job(&app, &id).await["attempts"], 1, "{backend}");
    }
}

#[tokio::test]
async fn a_worker_handing_back_for_its_requirements_is_not_refused_its_catalogue() {
    for (backend, app) in backends().await {
        register(&app, "gpu-a", "0.9.2", None).await;
        let id = submit(&app, save_image(), Some("<0.10")).await;
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-a&wait=0")
            .await
            .json;
        let token = next["job"]["lease_token"].as_str().unwrap().to_owned();
        // Its ComfyUI became 0.11.1: it registers again, then hands the job back.
        register(&app, "gpu-a", "0.11.1", None).await;
        let r = app
            .post_json(
                &format!("/api/workers/fail-job?job_id={id}&lease_token={token}"),
                &json!({"error": "needs ComfyUI <0.10, not 0.11.1", "unfit": "requires"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.text);
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-a&wait=0")
            .await
            .json;
        assert!(next["job"].is_null(), "{backend}: {next}");
        // Back on 0.9.2 (a rollback), it gets the job again.
        register(&app, "gpu-a", "0.9.2", None).await;
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-a&wait=0")
            .await
            .json;
        assert_eq!(next["job"]["id"], id.as_str(), "{backend}: {next}");
    }
}

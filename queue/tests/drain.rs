//! Draining workers (issue 14), through the HTTP app on both backends: a drained worker is
//! offered no job, also in a long-poll waiting when the drain comes; a draining worker
//! finishes its job and then shows `drained`; the flag survives re-registration; undrain
//! puts it back; only worker or admin callers may set it, on workers that exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use comfy_queue::Settings;
use common::{Harness, TestApp, assert_error, authed_settings, test_app_with};
use serde_json::{Value, json};

async fn app_on(h: Harness, settings: Settings) -> TestApp {
    test_app_with(h.store, settings, h.guard)
}

async fn backends(settings: Settings) -> Vec<(&'static str, TestApp)> {
    let mut out = vec![(
        "sqlite",
        app_on(common::sqlite_harness().await, settings.clone()).await,
    )];
    if cfg!(has_redis) {
        out.push((
            "redis",
            app_on(common::redis_harness().await, settings).await,
        ));
    }
    out
}

async fn register(app: &TestApp, id: &str, version: &str) -> Value {
    let r = app
        .post_json(
            "/api/workers/register",
            &json!({"worker_id": id, "comfyui_version": version}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn worker(app: &TestApp, id: &str) -> Value {
    let all = app.get("/api/workers").await.json;
    all.as_array()
        .and_then(|ws| ws.iter().find(|w| w["worker_id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_drained_worker_gets_no_job_until_it_is_put_back() {
    for (backend, app) in backends(Settings::default()).await {
        register(&app, "gpu-1", "0.9.2").await;
        let id = app.submit("alice", 2).await;
        assert_eq!(worker(&app, "gpu-1").await["state"], "idle", "{backend}");

        let r = app.post_json("/api/workers/gpu-1/drain", &json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.text);
        assert_eq!(r.json["state"], "drained", "{backend}");
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-1&wait=0")
            .await;
        assert_eq!(next.json, json!({"job": null, "drain": true}), "{backend}");

        // Its ComfyUI replaced, it registers again: still drained.
        register(&app, "gpu-1", "0.11.1").await;
        let w = worker(&app, "gpu-1").await;
        assert_eq!(
            (w["state"].as_str(), w["comfyui_version"].as_str()),
            (Some("drained"), Some("0.11.1")),
            "{backend}: {w}"
        );
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-1&wait=0")
            .await;
        assert_eq!(next.json["drain"], true, "{backend}");

        let r = app
            .post_json("/api/workers/gpu-1/undrain", &json!({}))
            .await;
        assert_eq!(r.json["state"], "idle", "{backend}: {}", r.text);
        let next = app
            .get("/api/workers/next-job?worker_id=gpu-1&wait=0")
            .await;
        assert_eq!(
            next.json["job"]["id"],
            id.as_str(),
            "{backend}: {}",
            next.text
        );
        assert!(
            next.json.get("drain").is_none(),
            "{backend}: no flag when not drained"
        );
    }
}

#[tokio::test]
async fn a_draining_worker_finishes_its_job_and_then_shows_drained() {
    for (backend, app) in backends(Settings::default()).await {
        register(&app, "gpu-1", "0.9.2").await;
        let id = app.submit("alice", 2).await;
        app.submit("alice", 2).await;
        let job = app.get("/api/workers/next-job?worker_id=gpu-1").await.json["job"].clone();
        let r = app.post_json("/api/workers/gpu-1/drain", &json!({})).await;
        assert_eq!(r.json["state"], "draining", "{backend}: {}", r.text);
        assert_eq!(r.json["running_jobs"], json!([id]), "{backend}");
        let done = app
            .post_json(
                &format!("/api/workers/complete-job?job_id={id}"),
                &json!({"result": {"ok": true}, "lease_token": job["lease_token"]}),
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{backend}: {}", done.text);
        assert_eq!(worker(&app, "gpu-1").await["state"], "drained", "{backend}");
        let next = app.get("/api/workers/next-job?worker_id=gpu-1").await;
        assert_eq!(
            next.json["job"],
            Value::Null,
            "{backend}: the second job waits"
        );
    }
}

#[tokio::test]
async fn a_drain_answers_a_long_poll_waiting_now() {
    for (backend, app) in backends(Settings::default()).await {
        register(&app, "gpu-1", "0.9.2").await;
        let polling = {
            let app = app.app.clone();
            tokio::spawn(async move {
                let req = axum::http::Request::get("/api/workers/next-job?worker_id=gpu-1&wait=20")
                    .body(axum::body::Body::empty())
                    .unwrap();
                let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
                let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                serde_json::from_slice::<Value>(&bytes).unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.post_json("/api/workers/gpu-1/drain", &json!({})).await;
        // Then a job arrives: the drained long-poll must not take it.
        app.submit("alice", 2).await;
        let answer = tokio::time::timeout(Duration::from_secs(10), polling)
            .await
            .expect("the long-poll waited out its 20 s")
            .unwrap();
        assert_eq!(answer, json!({"job": null, "drain": true}), "{backend}");
    }
}

#[tokio::test]
async fn only_workers_and_admins_drain_and_only_workers_that_exist() {
    for (backend, app) in backends(authed_settings()).await {
        let r = app
            .req(
                "POST",
                "/api/workers/register",
                &[("authorization", "Bearer wtok")],
                Some(br#"{"worker_id": "gpu-1", "comfyui_version": "0.9.2"}"#.to_vec()),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{backend}: {}", r.text);
        let as_user = app
            .req(
                "POST",
                "/api/workers/gpu-1/drain",
                &[("x-forwarded-user", "alice")],
                None,
            )
            .await;
        assert_error(&as_user, StatusCode::FORBIDDEN, "forbidden");
        let nobody = app.req("POST", "/api/workers/gpu-1/drain", &[], None).await;
        assert_error(&nobody, StatusCode::UNAUTHORIZED, "unauthorized");
        let unknown = app
            .req(
                "POST",
                "/api/workers/gpu-9/drain",
                &[("authorization", "Bearer atok")],
                None,
            )
            .await;
        assert_error(&unknown, StatusCode::NOT_FOUND, "worker_not_found");
        let itself = app
            .req(
                "POST",
                "/api/workers/gpu-1/drain",
                &[("authorization", "Bearer wtok")],
                None,
            )
            .await;
        assert_eq!(itself.json["drain"], true, "{backend}: {}", itself.text);
    }
}

/// SQLite: a v6 file (before `workers.drain`) opens as v7 with its workers not draining.
#[tokio::test]
async fn sqlite_v6_file_migrates_to_v7_with_its_workers_not_draining() {
    use comfy_queue::scheduler::WorkerInfo;
    use comfy_queue::store::Store;
    use comfy_queue::store::sqlite::{SCHEMA_VERSION, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let info = WorkerInfo {
            worker_id: "gpu-1".into(),
            comfyui_version: Some("0.9.2".into()),
            ..WorkerInfo::default()
        };
        store.register_worker(info, 1).await.unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE workers DROP COLUMN drain; PRAGMA user_version = 6;")
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let w = store.get_worker("gpu-1").await.unwrap().unwrap();
    assert_eq!(w.info.comfyui_version.as_deref(), Some("0.9.2"));
    assert!(!w.drain);
    let w = store.set_drain("gpu-1", true).await.unwrap().unwrap();
    assert!(w.drain);
    assert!(store.set_drain("gpu-9", true).await.unwrap().is_none());
}

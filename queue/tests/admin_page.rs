//! The `/admin` page in a real headless Chromium against a live server: the page connects
//! its WebSocket and fills its tables from the API. Skipped (with a message) when no
//! Chromium is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use comfy_queue::clock::SystemClock;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use serde_json::json;

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

#[tokio::test]
async fn dashboard_renders_live_data_in_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium installed; /admin browser test skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let state = AppState::new(Arc::new(store), Arc::new(SystemClock), Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });

    let http = reqwest::Client::new();
    http.post(format!("http://{addr}/api/workers/register"))
        .json(&json!({"worker_id": "gpu-7", "comfyui_version": "0.11.1", "line": "stable"}))
        .send()
        .await
        .unwrap();
    for user in ["student042", "student043"] {
        let r = http
            .post(format!("http://{addr}/api/jobs"))
            .json(&json!({"user_id": user, "workflow": {"1": {}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{addr}/admin");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--virtual-time-budget=4000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--dump-dom", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("id=\"live\" class=\"on\""),
        "websocket not connected:\n{dom}"
    );
    for text in ["student042", "student043", "gpu-7", "0.11.1", "Cancel"] {
        assert!(
            dom.contains(text),
            "{text} missing from the rendered page:\n{dom}"
        );
    }
}

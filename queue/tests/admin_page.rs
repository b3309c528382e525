//! The `/admin` page in a real headless Chromium against a live server: the page connects
//! its WebSocket and fills its tables from the API, and its Cancel and priority controls
//! reach the queue. The browser is driven over WebDriver (`comfy_test_support::chromium`).
//! Reported as ignored when Chromium or chromedriver is not installed; with
//! `COMFY_REQUIRE_CHROMIUM=1` (CI) that is a build failure instead (`build.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy_queue::clock::SystemClock;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use comfy_test_support::chromium::fantoccini::{self, Locator, error::CmdError};
use comfy_test_support::chromium::{Browser, WAIT};
use comfy_test_support::http::Client;
use serde_json::json;

/// A queue on a free local port, backed by a temporary SQLite file (kept
/// alive by the returned guard).
async fn serve_queue() -> (std::net::SocketAddr, tempfile::TempDir) {
    let (addr, dir, _) = serve_queue_state().await;
    (addr, dir)
}

/// A served queue and its state (to step its background passes by hand).
async fn serve_queue_state() -> (std::net::SocketAddr, tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let state = AppState::new(
        Arc::new(store),
        common::local_files(&dir.path().join("files")),
        Arc::new(SystemClock),
        Settings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = state.clone();
    tokio::spawn(async move { axum::serve(listener, app(served)).await });
    (addr, dir, state)
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn dashboard_renders_live_data_in_chromium() {
    let (addr, _db) = serve_queue().await;

    let http = Client::new(format!("http://{addr}"));
    http.post(
        "/api/workers/register",
        &json!({"worker_id": "gpu-7", "comfyui_version": "0.11.1", "line": "stable"}),
    )
    .await;
    for user in ["student042", "student043"] {
        let r = http
            .post(
                "/api/jobs",
                &json!({"user_id": user, "workflow": {"1": {}}}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let browser = Browser::launch().await;
    browser
        .client()
        .goto(&format!("http://{addr}/admin"))
        .await
        .unwrap();
    // Let the page settle (socket open, tables filled), then read its DOM;
    // what it must show is asserted below, one message per item.
    let settled = "document.getElementById('live')?.className === 'on' \
        && ['student042', 'student043', 'gpu-7', '0.11.1', 'Cancel'] \
            .every(t => document.body.innerHTML.includes(t))";
    let deadline = Instant::now() + WAIT;
    while browser.eval(settled).await != json!(true) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dom = browser.client().source().await.unwrap();
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
    browser.close().await;
}

/// The `#jobs` row of job `id`.
fn row_xpath(id: &str) -> String {
    format!("//*[@id='jobs']//td[@title='{id}']/..")
}

/// Finds `css` in the row of job `id` and clicks it (a `<button>`) or picks
/// `value` in it (a `<select>`), as a user would. The page re-renders the
/// table on every event, which can make a found row or control stale before
/// it is used: then both are found again. `false` when the row has no such
/// control.
async fn use_control(browser: &Browser, id: &str, css: &str, value: Option<&str>) -> bool {
    let deadline = Instant::now() + WAIT;
    loop {
        match try_control(browser.client(), id, css, value).await {
            Ok(found) => return found,
            Err(e) if e.is_stale_element_reference() && Instant::now() < deadline => {}
            Err(e) => panic!("{css} in the row of {id}: {e}"),
        }
    }
}

async fn try_control(
    c: &fantoccini::Client,
    id: &str,
    css: &str,
    value: Option<&str>,
) -> Result<bool, CmdError> {
    let xpath = row_xpath(id);
    let row = match c.find(Locator::XPath(&xpath)).await {
        Err(e) if e.is_no_such_element() => return Ok(false),
        r => r?,
    };
    let control = match row.find(Locator::Css(css)).await {
        Err(e) if e.is_no_such_element() => return Ok(false),
        r => r?,
    };
    match value {
        Some(v) => control.select_by_value(v).await?,
        None => control.click().await?,
    }
    Ok(true)
}

/// The browser scenario: load the page, submit a job through the API,
/// see it appear, cancel it (and reprioritise another) from the page, save a
/// screenshot. `UPDATE_SCREENSHOTS=1` writes it to `docs/admin-dashboard.png`.
#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn dashboard_cancels_and_reprioritises_from_the_page() {
    let (addr, _db) = serve_queue().await;
    let http = Client::new(format!("http://{addr}"));
    http.post(
        "/api/workers/register",
        &json!({"worker_id": "gpu-1", "comfyui_version": "0.11.1", "line": "jobs-api"}),
    )
    .await;

    let browser = Browser::launch().await;
    browser
        .client()
        .goto(&format!("http://{addr}/admin"))
        .await
        .unwrap();
    browser
        .wait_for("document.getElementById('live')?.className === 'on'")
        .await;

    // Submitted after the page is open: it must arrive over the live socket.
    let mut ids = Vec::new();
    for user in ["student042", "student043"] {
        let job = http
            .post("/api/jobs", &json!({"user_id": user, "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "priority": 2}))
            .await
            .json;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let row = |id: &str| {
        format!(
            "[...document.querySelectorAll('#jobs td')].find(t => t.title === '{id}')?.parentElement"
        )
    };
    browser.wait_for(&format!("!!{}", row(&ids[0]))).await;
    browser.wait_for(&format!("!!{}", row(&ids[1]))).await;

    // Cancel the first from the page: a click on its button.
    let clicked = use_control(&browser, &ids[0], "button", None).await;
    assert!(clicked, "no Cancel button on the row");
    // Reprioritise the second from the page: priority 0 picked in its selector.
    let changed = use_control(&browser, &ids[1], "select", Some("0")).await;
    assert!(changed, "no priority selector on the row");

    let mut settled = false;
    for _ in 0..100 {
        let a = http.get(&format!("/api/jobs/{}", ids[0])).await.json;
        let b = http.get(&format!("/api/jobs/{}", ids[1])).await.json;
        if a["status"] == "cancelled" && b["priority"] == 0 {
            settled = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        settled,
        "the page's Cancel and priority controls did not reach the queue"
    );
    // The page shows the new state (pushed over /ws).
    browser
        .wait_for(&format!(
            "{}?.innerText.includes('cancelled')",
            row(&ids[0])
        ))
        .await;

    let png = browser.client().screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin-dashboard.png");
    std::fs::write(&out, &png).unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        std::fs::write(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/admin-dashboard.png"),
            &png,
        )
        .unwrap();
    }
    browser.close().await;
}

/// A running job's progress bars move as its worker posts live events, and a completed job
/// whose result names an image output URL shows it as a thumbnail (`<img>`).
#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn dashboard_shows_live_progress_and_output_thumbnails() {
    let (addr, _db) = serve_queue().await;
    let http = Client::new(format!("http://{addr}"));
    http.post(
        "/api/workers/register",
        &json!({"worker_id": "gpu-1", "comfyui_version": "0.11.1", "line": "jobs-api"}),
    )
    .await;
    let workflow = json!({
        "1": {"class_type": "EmptyLatentImage", "inputs": {}},
        "2": {"class_type": "KSampler", "inputs": {}},
        "3": {"class_type": "SaveImage", "inputs": {}},
    });
    let id = http
        .post(
            "/api/jobs",
            &json!({"user_id": "student042", "workflow": workflow}),
        )
        .await
        .json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let leased = http.get("/api/workers/next-job?worker_id=gpu-1").await.json;
    let token = leased["job"]["lease_token"].as_str().unwrap().to_owned();
    let attempt = leased["job"]["attempt"].clone();

    let browser = Browser::launch().await;
    browser
        .client()
        .goto(&format!("http://{addr}/admin"))
        .await
        .unwrap();
    browser
        .wait_for("document.getElementById('live')?.className === 'on'")
        .await;
    let cell = format!(
        "[...document.querySelectorAll('#jobs td.live')].find(t => t.dataset.job === '{id}')"
    );
    browser.wait_for(&format!("!!{cell}")).await;

    let post = |seq: u64, event: serde_json::Value| {
        let http = http.clone();
        let body = json!({"job_id": id, "lease_token": token, "attempt": attempt,
                          "events": [{"seq": seq, "received_at_ms": 0, "event": event}]});
        async move {
            let r = http.post("/api/workers/events", &body).await;
            assert_eq!(r.status, 202, "{}", r.json);
        }
    };
    post(0, json!({"event": "execution_start", "prompt_id": "p"})).await;
    post(
        1,
        json!({"event": "executing", "prompt_id": "p", "node": "1"}),
    )
    .await;
    post(
        2,
        json!({"event": "executing", "prompt_id": "p", "node": "2"}),
    )
    .await;
    post(
        3,
        json!({"event": "progress", "prompt_id": "p", "node": "2", "value": 3.0, "max": 10.0}),
    )
    .await;
    browser
        .wait_for(&format!(
            "{cell}?.querySelector('progress.node-steps')?.value === 3 \
             && {cell}.querySelector('progress.nodes').value === 1 \
             && {cell}.innerText.includes('KSampler')"
        ))
        .await;
    post(
        4,
        json!({"event": "progress", "prompt_id": "p", "node": "2", "value": 7.0, "max": 10.0}),
    )
    .await;
    browser
        .wait_for(&format!(
            "{cell}?.querySelector('progress.node-steps')?.value === 7"
        ))
        .await;
    post(
        5,
        json!({"event": "executing", "prompt_id": "p", "node": "3"}),
    )
    .await;
    browser
        .wait_for(&format!(
            "{cell}?.querySelector('progress.nodes')?.value === 2 && {cell}.innerText.includes('SaveImage')"
        ))
        .await;

    let url = format!("/api/jobs/{id}/files/output/thumb.png");
    let r = http
        .post(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"lease_token": token, "result": {"outputs": [
                {"node_id": "3", "kind": "image", "filename": "thumb.png", "url": url},
                {"node_id": "4", "kind": "video", "filename": "clip.mp4", "url": format!("/api/jobs/{id}/files/output/clip.mp4")},
            ]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    browser
        .wait_for(&format!(
            "!!{cell}?.querySelector('img[src=\"{url}\"]') \
             && [...{cell}.querySelectorAll('a')].some(a => a.innerText.includes('clip.mp4'))"
        ))
        .await;
    browser.close().await;
}

/// Drain from the page (issue 14): the workers table shows each worker's state and
/// ComfyUI version, and its Drain button drains the worker; the page then shows it
/// drained with an Undrain button, which puts it back.
#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn dashboard_drains_and_undrains_a_worker_from_the_page() {
    let (addr, _db) = serve_queue().await;
    let http = Client::new(format!("http://{addr}"));
    http.post(
        "/api/workers/register",
        &json!({"worker_id": "gpu-3", "comfyui_version": "0.9.2"}),
    )
    .await;
    let browser = Browser::launch().await;
    browser
        .client()
        .goto(&format!("http://{addr}/admin"))
        .await
        .unwrap();
    let row =
        "[...document.querySelectorAll('#workers tr')].find(r => r.innerText.includes('gpu-3'))";
    browser
        .wait_for(&format!(
            "{row}?.innerText.includes('idle') && {row}.innerText.includes('0.9.2')"
        ))
        .await;
    let click = |label: &str| {
        format!(
            "(() => {{ const b = [...({row})?.querySelectorAll('button') ?? []].find(b => b.textContent === '{label}'); if (b) b.click(); return !!b; }})()"
        )
    };
    assert_eq!(
        browser.eval(&click("Drain")).await,
        json!(true),
        "no Drain button"
    );
    browser
        .wait_for(&format!(
            "{row}?.innerText.includes('drained') && {row}.innerText.includes('Undrain')"
        ))
        .await;
    let w = http.get("/api/workers").await.json;
    assert_eq!(w[0]["state"], "drained", "{w}");
    assert_eq!(
        browser.eval(&click("Undrain")).await,
        json!(true),
        "no Undrain button"
    );
    browser
        .wait_for(&format!("{row}?.innerText.includes('idle')"))
        .await;
    let w = http.get("/api/workers").await.json;
    assert_eq!(w[0]["drain"], false, "{w}");
    browser.close().await;
}

/// A pending job no live worker can run shows why in its row, from the `/ws` event the
/// look for stranded jobs sends when it starts to wait.
#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn dashboard_shows_why_a_job_waits() {
    let (addr, _db, state) = serve_queue_state().await;
    let http = Client::new(format!("http://{addr}"));
    http.post(
        "/api/workers/register",
        &json!({"worker_id": "gpu-9", "comfyui_version": "0.11.1"}),
    )
    .await;
    let r = http
        .post(
            "/api/jobs",
            &json!({"user_id": "student044", "workflow": {"1": {}},
                    "metadata": {"requires": {"comfyui": "<0.10"}}}),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let browser = Browser::launch().await;
    browser
        .client()
        .goto(&format!("http://{addr}/admin"))
        .await
        .unwrap();
    let row = format!(
        "[...document.querySelectorAll('#jobs tr')].find(r => r.innerText.includes('{}'))",
        &id[..8]
    );
    browser
        .wait_for(&format!("{row}?.innerText.includes('pending')"))
        .await;
    state.route_once().await.unwrap();
    browser
        .wait_for(&format!(
            "{row}?.innerText.includes('waiting: requires') && {row}.innerText.includes('needs ComfyUI <0.10, not 0.11.1')"
        ))
        .await;
    browser.close().await;
}

//! The `/admin` page in a real headless Chromium against a live server: the page connects
//! its WebSocket and fills its tables from the API, and its Cancel and priority controls
//! reach the queue. Skipped (with a message) when no Chromium is installed, unless
//! `COMFY_REQUIRE_CHROMIUM` is set (CI), which turns the skip into a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use comfy_queue::clock::SystemClock;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use serde_json::json;

/// A queue on a free local port, backed by a temporary SQLite file (kept
/// alive by the returned guard).
async fn serve_queue() -> (std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let state = AppState::new(Arc::new(store), Arc::new(SystemClock), Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    (addr, dir)
}

/// The installed Chromium; `None` (test skipped) when there is none, unless
/// `COMFY_REQUIRE_CHROMIUM` is set, which makes a missing browser a failure.
fn chromium() -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("COMFY_REQUIRE_CHROMIUM").is_none(),
            "COMFY_REQUIRE_CHROMIUM is set but no chromium is installed"
        );
        eprintln!("SKIPPED: no chromium installed; /admin browser test skipped");
    }
    found
}

fn find_chromium() -> Option<PathBuf> {
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
        return;
    };
    let (addr, _db) = serve_queue().await;

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

/// A minimal Chrome DevTools Protocol session over the page's WebSocket.
struct Cdp {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        loop {
            let frame = tokio::time::timeout(std::time::Duration::from_secs(20), self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .unwrap()
                .unwrap();
            if let Message::Text(t) = frame {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates a JS expression in the page and returns its value.
    async fn eval(&mut self, expression: &str) -> serde_json::Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Polls `expression` until it returns `true` (10 s at most).
    async fn wait_for(&mut self, expression: &str) {
        for _ in 0..100 {
            if self.eval(expression).await == json!(true) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let dom = self.eval("document.body.innerText").await;
        panic!("timed out waiting for {expression}; page shows:\n{dom}");
    }
}

/// Starts headless Chromium with a DevTools port and attaches to its page.
async fn open_devtools(browser: PathBuf, profile: &std::path::Path) -> (std::process::Child, Cdp) {
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let port_file = profile.join("DevToolsActivePort");
    let mut port = None;
    for _ in 0..200 {
        if let Some(p) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
        {
            port = Some(p);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let port = port.expect("chromium wrote no DevToolsActivePort within 20 s");
    let targets: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page = targets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "page")
        .expect("a page target");
    let ws_url = page["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
    let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    (child, Cdp { ws, next_id: 0 })
}

/// The browser scenario: load the page, submit a job through the API,
/// see it appear, cancel it (and reprioritise another) from the page, save a
/// screenshot. `UPDATE_SCREENSHOTS=1` writes it to `docs/admin-dashboard.png`.
#[tokio::test]
async fn dashboard_cancels_and_reprioritises_from_the_page() {
    let Some(browser) = chromium() else {
        return;
    };
    let (addr, _db) = serve_queue().await;
    let http = reqwest::Client::new();
    http.post(format!("http://{addr}/api/workers/register"))
        .json(&json!({"worker_id": "gpu-1", "comfyui_version": "0.11.1", "line": "jobs-api"}))
        .send()
        .await
        .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let (mut chrome, mut cdp) = open_devtools(browser, profile.path()).await;
    cdp.call("Page.enable", json!({})).await;
    cdp.call(
        "Page.navigate",
        json!({"url": format!("http://{addr}/admin")}),
    )
    .await;
    cdp.wait_for("document.getElementById('live')?.className === 'on'")
        .await;

    // Submitted after the page is open: it must arrive over the live socket.
    let mut ids = Vec::new();
    for user in ["student042", "student043"] {
        let job: serde_json::Value = http
            .post(format!("http://{addr}/api/jobs"))
            .json(&json!({"user_id": user, "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}}, "priority": 2}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    let row = |id: &str| {
        format!(
            "[...document.querySelectorAll('#jobs td')].find(t => t.title === '{id}')?.parentElement"
        )
    };
    cdp.wait_for(&format!("!!{}", row(&ids[0]))).await;
    cdp.wait_for(&format!("!!{}", row(&ids[1]))).await;

    // Cancel the first from the page.
    let clicked = cdp.eval(&format!("(() => {{ const b = {}?.querySelector('button'); if (!b) return false; b.click(); return true; }})()", row(&ids[0]))).await;
    assert_eq!(clicked, json!(true), "no Cancel button on the row");
    // Reprioritise the second from the page.
    let changed = cdp
        .eval(&format!(
            "(() => {{ const s = {}?.querySelector('select'); if (!s) return false; s.value = '0'; s.dispatchEvent(new Event('change')); return true; }})()",
            row(&ids[1])
        ))
        .await;
    assert_eq!(changed, json!(true), "no priority selector on the row");

    let mut settled = false;
    for _ in 0..100 {
        let a: serde_json::Value = http
            .get(format!("http://{addr}/api/jobs/{}", ids[0]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let b: serde_json::Value = http
            .get(format!("http://{addr}/api/jobs/{}", ids[1]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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
    cdp.wait_for(&format!(
        "{}?.innerText.includes('cancelled')",
        row(&ids[0])
    ))
    .await;

    let shot = cdp
        .call("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot["data"].as_str().unwrap(),
    )
    .unwrap();
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
    let _ = chrome.kill();
    let _ = chrome.wait();
}

//! What the gateway adds, on loopback, in this process:
//!
//! 1. a passed-through request: `GET /api/ping` on a minimal upstream, direct
//!    and through the gateway (sequential, N times), p50/p99 of each and the
//!    difference;
//! 2. a proxied WebSocket message: a text frame echoed by the upstream's
//!    `/ws`, round trip direct and through the gateway (both directions pass
//!    the gateway, so the added one-way latency is half the difference);
//! 3. submits per second through the gateway (`POST /api/prompt` → a queue
//!    job on SQLite), C at a time for a few seconds, no worker.
//!
//! ```sh
//! cargo run --release -p comfy-stack --example gateway_overhead -- [N] [C] [SECS]
//! ```
//!
//! The upstream is a stand-in ComfyUI: `/system_stats` and `/object_info`
//! are the recorded 0.33.0 answers, `/api/ping` answers `pong`, `/ws` echoes
//! (after ComfyUI's `status` greeting).

mod support;

use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::routing::get;
use comfy_stack::{QueueOptions, start_queue};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{arg, pct};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn fixture(name: &str) -> anyhow::Result<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/comfyui-0.33.0");
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(name))
        {
            let v: Value = serde_json::from_slice(&std::fs::read(&p)?)?;
            return Ok(v["response"]["body"].clone());
        }
    }
    anyhow::bail!("no fixture {name} in {}", dir.display())
}

async fn upstream() -> anyhow::Result<String> {
    let stats = fixture("001-")?;
    let info = fixture("018-")?;
    let app = axum::Router::new()
        .route("/system_stats", get(move || async move { axum::Json(stats) }))
        .route("/object_info", get(move || async move { axum::Json(info) }))
        .route("/api/ping", get(|| async { "pong" }))
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut s| async move {
                    let hello = json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "bench"}});
                    if s.send(AxMessage::Text(hello.to_string().into())).await.is_err() {
                        return;
                    }
                    while let Some(Ok(m)) = s.next().await {
                        if let AxMessage::Text(_) = m
                            && s.send(m).await.is_err()
                        {
                            return;
                        }
                    }
                })
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(url)
}

async fn get_times(http: &reqwest::Client, url: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let body = http
            .get(url)
            .header("X-Forwarded-User", "alice")
            .send()
            .await?
            .text()
            .await?;
        t.push(start.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(body == "pong", "unexpected answer {body}");
    }
    t.sort_by(f64::total_cmp);
    Ok(t)
}

async fn ws_times(url: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("x-forwarded-user", "alice".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    // The greeting.
    ws.next().await;
    let mut t = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("{{\"type\": \"bench\", \"i\": {i}}}");
        let start = Instant::now();
        ws.send(Message::text(text.clone())).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(got))) if got.as_str() == text => break,
                Some(Ok(_)) => continue,
                other => anyhow::bail!("socket ended: {other:?}"),
            }
        }
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (n, c, secs) = (arg(1, 2000) as usize, arg(2, 8) as usize, arg(3, 5));
    let dir = tempfile::tempdir()?;
    let mut o = QueueOptions::sqlite(dir.path().join("bench.db"));
    o.settings.max_pending = 0;
    o.settings.max_per_user = 0;
    let queue = start_queue(o).await?;
    let up = upstream().await?;
    let gw = comfy_stack::user_side::start_gateway(&queue.url(), "alice", &up).await?;
    let http = reqwest::Client::new();

    // Warm up both paths.
    get_times(&http, &format!("{up}/api/ping"), 50).await?;
    get_times(&http, &format!("{gw}/alice/api/ping"), 50).await?;
    let direct = get_times(&http, &format!("{up}/api/ping"), n).await?;
    let via = get_times(&http, &format!("{gw}/alice/api/ping"), n).await?;
    println!("passed-through GET, {n} sequential requests (ms):");
    println!(
        "  direct        p50 {:.3}  p99 {:.3}",
        pct(&direct, 0.5),
        pct(&direct, 0.99)
    );
    println!(
        "  via gateway   p50 {:.3}  p99 {:.3}",
        pct(&via, 0.5),
        pct(&via, 0.99)
    );
    println!(
        "  added         p50 {:.3}",
        pct(&via, 0.5) - pct(&direct, 0.5)
    );

    let ws_direct = ws_times(&format!("{}/ws", up.replace("http", "ws")), n).await?;
    let ws_via = ws_times(&format!("{}/alice/ws", gw.replace("http", "ws")), n).await?;
    println!("WebSocket echo round trip, {n} messages (ms):");
    println!(
        "  direct        p50 {:.3}  p99 {:.3}",
        pct(&ws_direct, 0.5),
        pct(&ws_direct, 0.99)
    );
    println!(
        "  via gateway   p50 {:.3}  p99 {:.3}",
        pct(&ws_via, 0.5),
        pct(&ws_via, 0.99)
    );
    println!(
        "  added one way p50 {:.3}  (half the round-trip difference)",
        (pct(&ws_via, 0.5) - pct(&ws_direct, 0.5)) / 2.0
    );

    let prompt = json!({"prompt": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}},
    }, "client_id": "bench"});
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let http = http.clone();
        let url = format!("{gw}/alice/api/prompt");
        let prompt = prompt.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("X-Forwarded-User", "alice")
                    .json(&prompt)
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            (ok, lat)
        }));
    }
    let mut total = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (ok, l) = t.await?;
        total += ok;
        lat.extend(l);
    }
    lat.sort_by(f64::total_cmp);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "submits through the gateway, {c} at a time for {secs} s: {total} jobs, {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
        total as f64 / elapsed,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    queue.stop().await;
    Ok(())
}

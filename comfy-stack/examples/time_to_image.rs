//! Time to image in the user's browser: how long after the user's frontend hears a node's
//! `executed` does its `/view` of that output come back through the gateway. The frontend
//! asks for an output the moment it is announced, and the gateway answers from the queue's
//! file store, waiting while the worker has not stored the file yet.
//!
//! In this process: the queue (SQLite), one worker on an emulated GPU ComfyUI 0.33.0 with
//! `NODE_MS` per node, a user's emulated ComfyUI 0.33.0 (no frontend) and the gateway in
//! front of it. Each of `JOBS` prompts (one after another) has two SaveImages: `early`
//! (second node) and `late` (fifth node, after two scaling nodes), so the early image is
//! announced while three nodes' worth of time is still to run.
//!
//! ```sh
//! cargo run --release -p comfy-stack --example time_to_image -- [JOBS] [NODE_MS]
//! ```
//!
//! Printed, per SaveImage: p50 / p90 / max of the time from the `executed` message's
//! arrival on the user's socket to the `/view` body's last byte, and how many of the early
//! images arrived before the prompt's `execution_success`.

mod support;

use comfy_emulator::{Emulator, EmulatorConfig};
use comfy_stack::{QueueOptions, start_queue};
use comfy_worker::Worker;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{arg, pct};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn prompt(job: usize) -> Value {
    let scale = |from: &str| json!({"class_type": "ImageScaleBy", "inputs": {"image": [from, 0], "upscale_method": "nearest-exact", "scale_by": 1.0}});
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": job}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "early"}},
        "3": scale("1"),
        "4": scale("3"),
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "late"}},
    })
}

/// Fetches the first image an `executed` message names, through the gateway, as alice.
async fn view(http: &reqwest::Client, gw: &str, executed: &Value) -> anyhow::Result<usize> {
    let image = &executed["data"]["output"]["images"][0];
    let q = [
        ("filename", image["filename"].as_str().unwrap_or_default()),
        ("subfolder", image["subfolder"].as_str().unwrap_or_default()),
        ("type", image["type"].as_str().unwrap_or("output")),
    ];
    let resp = http
        .get(format!("{gw}/alice/api/view"))
        .header("x-forwarded-user", "alice")
        .query(&q)
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "/view answered {}", resp.status());
    Ok(resp.bytes().await?.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (jobs, node_ms) = (arg(1, 20) as usize, arg(2, 200));
    let dir = tempfile::tempdir()?;
    let mut o = QueueOptions::sqlite(dir.path().join("bench.db"));
    o.settings.max_pending = 0;
    let queue = start_queue(o).await?;
    let gpu =
        Emulator::start(EmulatorConfig::new("0.33.0").node_time(Duration::from_millis(node_ms)))
            .await?;
    let user_ui = Emulator::start(EmulatorConfig::new("0.33.0")).await?;
    let mut cfg = comfy_worker::config::Config::for_urls(&queue.url(), &gpu.url());
    cfg.worker_id = Some("bench".into());
    cfg.health_listen = "off".into();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(Worker::new(cfg)?.run(rx));

    let gw = comfy_stack::user_side::start_gateway(&queue.url(), "alice", &user_ui.url()).await?;
    let http = reqwest::Client::new();
    let mut req = format!("{}/alice/ws?clientId=tab-1", gw.replace("http://", "ws://"))
        .into_client_request()?;
    req.headers_mut()
        .insert("x-forwarded-user", "alice".parse()?);
    let (mut sock, _) = tokio_tungstenite::connect_async(req).await?;

    let (mut early, mut late) = (Vec::new(), Vec::new());
    let mut last_executed = None;
    let mut early_before_end = 0;
    // One job more than measured: the first warms up detection and connections.
    for job in 0..=jobs {
        let resp = http
            .post(format!("{gw}/alice/api/prompt"))
            .header("x-forwarded-user", "alice")
            .json(&json!({"client_id": "tab-1", "prompt": prompt(job)}))
            .send()
            .await?;
        let accepted: Value = resp.json().await?;
        let Some(id) = accepted["prompt_id"].as_str().map(str::to_owned) else {
            anyhow::bail!("the gateway refused the prompt: {accepted}");
        };
        let mut views = tokio::task::JoinSet::new();
        let mut ended = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while ended.is_none() {
            let msg = tokio::time::timeout_at(deadline, sock.next()).await;
            let Ok(Some(Ok(Message::Text(text)))) = msg else {
                if msg.is_err() {
                    anyhow::bail!("job {id}: no execution_success within 60 s");
                }
                continue;
            };
            let at = Instant::now();
            let m: Value = serde_json::from_str(&text)?;
            if m["data"]["prompt_id"] != id.as_str() {
                continue;
            }
            match m["type"].as_str() {
                Some("executed") => {
                    last_executed = Some(m.clone());
                    let (http, gw) = (http.clone(), gw.clone());
                    let node = m["data"]["node"].as_str().unwrap_or_default().to_owned();
                    views.spawn(async move {
                        let r = view(&http, &gw, &m).await;
                        (node, at, at.elapsed(), r)
                    });
                }
                Some("execution_success") => ended = Some(at),
                Some("execution_error" | "execution_interrupted") => {
                    anyhow::bail!("job {id} did not succeed: {m}")
                }
                _ => {}
            }
        }
        while let Some(done) = views.join_next().await {
            let (node, heard, took, result) = done?;
            result?;
            if job == 0 {
                continue;
            }
            let ms = took.as_secs_f64() * 1e3;
            if node == "2" {
                early.push(ms);
                if ended.is_some_and(|end| heard + took < end) {
                    early_before_end += 1;
                }
            } else {
                late.push(ms);
            }
        }
    }
    // The same `/view` of an image stored long ago: what the gateway and the queue take
    // without any waiting.
    let mut stored = Vec::new();
    if let Some(m) = &last_executed {
        for _ in 0..50 {
            let t = Instant::now();
            view(&http, &gw, m).await?;
            stored.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    stored.sort_by(f64::total_cmp);
    let _ = stop.send(true);
    let _ = worker.await;
    for v in [&mut early, &mut late] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "jobs: {jobs} (sequential; {node_ms} ms per node; executed on the user's socket → /view body through the gateway)"
    );
    for (name, v) in [
        ("early SaveImage (node 2 of 5)", &early),
        ("last SaveImage (node 5 of 5)", &late),
    ] {
        println!(
            "{name}: n {}, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 1.0)
        );
    }
    println!("early images in the browser before the prompt ended: {early_before_end} of {jobs}");
    println!(
        "a /view of an image stored before: p50 {:.2} ms, max {:.2} ms (50 requests)",
        pct(&stored, 0.5),
        pct(&stored, 1.0)
    );
    gpu.stop().await;
    user_ui.stop().await;
    queue.stop().await;
    Ok(())
}

//! Latency of live ComfyUI events through the whole stack: from the moment the emulated
//! ComfyUI sends a `progress` message on its WebSocket to the moment a `/ws` subscriber of
//! the queue receives it as a `comfy_event`. The queue (SQLite), one worker and the
//! emulator (0.11.1) run in this process, on loopback; the emulator's send time is the
//! instant it hands the message to its sockets (`EmulatorHandle::ws_messages`), the
//! subscriber's the instant its socket yields the message, both from the same monotonic
//! clock.
//!
//! ```sh
//! cargo run --release -p comfy-stack --example live_latency -- [JOBS] [STEPS] [NODE_MS]
//! ```
//!
//! Each job is EmptyImage → SaveImage; SaveImage sends STEPS progress messages over NODE_MS
//! (defaults: 10 jobs × 40 steps over 400 ms, i.e. 400 events 10 ms apart).

mod support;

use comfy_emulator::{Emulator, EmulatorConfig};
use comfy_stack::{QueueOptions, UserApi, start_queue};
use comfy_worker::Worker;
use comfy_worker::config::Config;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::{arg, pct};
use tokio_tungstenite::tungstenite::Message;

/// (prompt id, node, step) of a progress message, as the emulator sent it or as the
/// normalized event carries it.
type Key = (String, String, u64);

fn key(v: &Value) -> Option<Key> {
    Some((
        v.get("prompt_id")?.as_str()?.to_owned(),
        v.get("node")?.as_str()?.to_owned(),
        v.get("value")?.as_f64()? as u64,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (jobs, steps, node_ms) = (arg(1, 10), arg(2, 40), arg(3, 400));
    let dir = tempfile::tempdir()?;
    let mut o = QueueOptions::sqlite(dir.path().join("bench.db"));
    o.settings.max_pending = 0;
    let queue = start_queue(o).await?;
    let emu = Emulator::start(
        EmulatorConfig::new("0.11.1")
            .node_time(Duration::from_millis(node_ms))
            .progress_steps(u32::try_from(steps)?),
    )
    .await?;
    let mut cfg = Config::for_urls(&queue.url(), &emu.url());
    cfg.worker_id = Some("bench".into());
    cfg.health_listen = "off".into();
    let worker = Worker::new(cfg)?;
    let health = worker.health();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(rx));

    // The emulator's side: when each progress message was sent.
    let mut sent_rx = emu.ws_messages();
    let sent = tokio::spawn(async move {
        let mut at: HashMap<Key, Instant> = HashMap::new();
        while let Ok(m) = sent_rx.recv().await {
            if let Ok(v) = serde_json::from_str::<Value>(&m.text)
                && v["type"] == "progress"
                && let Some(k) = key(&v["data"])
            {
                at.insert(k, m.at);
            }
        }
        at
    });
    // The watcher's side: when each relayed progress event arrived.
    let ws_url = format!("{}/ws", queue.url().replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await?;
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let received = tokio::spawn(async move {
        let mut at: HashMap<Key, Instant> = HashMap::new();
        let mut relay_ms: Vec<f64> = Vec::new();
        loop {
            let msg = tokio::select! {
                m = ws.next() => m,
                _ = done_rx.changed() => break,
            };
            let Some(Ok(Message::Text(t))) = msg else {
                continue;
            };
            let now = Instant::now();
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                && v["type"] == "comfy_event"
                && v["data"]["event"]["event"] == "progress"
                && let Some(k) = key(&v["data"]["event"])
            {
                at.insert(k, now);
                if let Some(r) = v["data"]["received_at_ms"].as_f64() {
                    relay_ms.push(wall - r);
                }
            }
        }
        (at, relay_ms)
    });

    let api = UserApi::new(&queue.url());
    for i in 0..jobs {
        // A different colour each time, so ComfyUI's cache does not skip the nodes.
        let workflow = json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": i}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "latency"}},
        });
        let j = api
            .submit(
                "bench",
                &workflow,
                json!({"batch_index": i, "batch_total": jobs}),
            )
            .await?;
        let id = j["id"].as_str().unwrap_or_default().to_owned();
        let done = api.wait_terminal(&id, Duration::from_secs(60)).await?;
        anyhow::ensure!(done["status"] == "completed", "job {id}: {done}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = done_tx.send(true);
    let (got, relay_ms) = received.await?;
    let _ = stop.send(true);
    let _ = task.await;
    emu.stop().await;
    let sent_at = sent.await?;
    let mut lat: Vec<f64> = got
        .iter()
        .filter_map(|(k, r)| Some(r.duration_since(*sent_at.get(k)?).as_secs_f64() * 1000.0))
        .collect();
    lat.sort_by(f64::total_cmp);
    let mut relay_ms = relay_ms;
    relay_ms.sort_by(f64::total_cmp);
    let (relayed, dropped) = health.events_counts();
    println!(
        "progress events: {} sent by the emulator, {} received on /ws ({} jobs × {steps} steps over {node_ms} ms); worker relayed {relayed} events in all, dropped {dropped}",
        sent_at.len(),
        lat.len(),
        jobs
    );
    for (name, v) in [
        ("emulator send → /ws receive", &lat),
        ("worker receive (received_at_ms) → /ws receive", &relay_ms),
    ] {
        println!(
            "{name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    queue.stop().await;
    Ok(())
}

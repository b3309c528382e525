//! Dispatch overhead of the whole stack per job: the queue (SQLite), one
//! worker and a zero-time emulated ComfyUI 0.11.1, all in this process.
//! Jobs are submitted one after another; for each, the overhead is the
//! queue's own `completed_at − created_at` minus ComfyUI's execution time
//! as the worker reported it.
//!
//! ```sh
//! cargo run --release -p comfy-stack --example overhead -- 500
//! ```

use comfy_emulator::{Emulator, EmulatorConfig};
use comfy_stack::{QueueOptions, UserApi, start_queue};
use comfy_worker::Worker;
use comfy_worker::config::Config;
use serde_json::json;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn ms(v: &serde_json::Value) -> Option<f64> {
    let t = OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e6)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir()?;
    let mut o = QueueOptions::sqlite(dir.path().join("bench.db"));
    o.settings.max_pending = 0;
    let queue = start_queue(o).await?;
    let emu = Emulator::start(EmulatorConfig::new("0.11.1").node_time(Duration::ZERO)).await?;
    let mut cfg = Config::for_urls(&queue.url(), &emu.url());
    cfg.worker_id = Some("bench".into());
    cfg.health_listen = "off".into();
    let worker = Worker::new(cfg)?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    let api = UserApi::new(&queue.url());
    let workflow = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}},
    });
    // Warm-up: detection, registration, connections.
    for _ in 0..10 {
        let j = api.submit("bench", &workflow, json!({})).await?;
        api.wait_terminal(
            j["id"].as_str().unwrap_or_default(),
            Duration::from_secs(30),
        )
        .await?;
    }
    let mut overhead = Vec::with_capacity(jobs);
    let mut total = Vec::with_capacity(jobs);
    let mut exec = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let j = api
            .submit(
                "bench",
                &workflow,
                json!({"batch_index": i, "batch_total": jobs}),
            )
            .await?;
        let id = j["id"].as_str().unwrap_or_default().to_owned();
        let done = api
            .wait_for(&id, Duration::from_secs(30), |j| {
                j["status"] == "completed" || j["status"] == "failed"
            })
            .await?;
        let (Some(created), Some(completed)) = (ms(&done["created_at"]), ms(&done["completed_at"]))
        else {
            anyhow::bail!("job {id} has no timestamps: {done}");
        };
        let e = done["result"]["timings"]["comfy_execution_ms"]
            .as_f64()
            .unwrap_or(0.0);
        total.push(completed - created);
        exec.push(e);
        overhead.push(completed - created - e);
    }
    let _ = stop.send(true);
    let _ = task.await;
    for v in [&mut overhead, &mut total, &mut exec] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "jobs: {jobs} (sequential; queue SQLite, worker and emulated ComfyUI 0.11.1 with zero node time, one process)"
    );
    for (name, v) in [
        (
            "dispatch overhead (submit→completed − ComfyUI execution)",
            &overhead,
        ),
        ("submit→completed", &total),
        ("ComfyUI execution (as reported)", &exec),
    ] {
        println!(
            "{name}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    emu.stop().await;
    queue.stop().await;
    Ok(())
}

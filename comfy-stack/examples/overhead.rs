//! Dispatch overhead of the whole stack per job: the queue (SQLite), one
//! worker and a zero-time emulated ComfyUI 0.11.1, all in this process.
//! Jobs are submitted one after another; for each, the overhead is the
//! queue's own `completed_at − created_at` minus ComfyUI's execution time
//! as the worker reported it. The queue's timestamps have 1 ms resolution, so
//! the same job is also timed by this client, in µs: from just before its
//! submit to the `job_updated` event of its completion on the queue's `/ws`
//! (which is how it waits for each job).
//!
//! ```sh
//! cargo run --release -p comfy-stack --example overhead -- 500
//! cargo run --release -p comfy-stack --example overhead -- 500 --stages
//! cargo run --release -p comfy-stack --example overhead -- 500 --same-outputs
//! ```
//!
//! Every job's output image has bytes of its own, as on a real ComfyUI (the
//! emulator writes the prompt into the PNG, as SaveImage does, and each job's
//! `EmptyImage` has another color), so the queue stores a new file per job.
//! `--same-outputs` sends one prompt and writes no metadata: every output is
//! the same 1×1 PNG, which the queue's file store finds stored already.
//!
//! It also prints the queue's hand-off (`started_at − created_at`: submit to lease) and what
//! the emulated ComfyUI served per job (requests, WebSocket opens). `--stages` turns on the
//! worker's per-stage timing (debug events of target `comfy_worker::timing`) and prints
//! each stage's p50/p90/p99 (it costs a few µs a job, so the headline figures are taken
//! without it).

use comfy_emulator::{Emulator, EmulatorConfig};
use comfy_queue_api::Status;
use comfy_stack::{QueueOptions, UserApi, start_queue};
use comfy_worker::Worker;
use comfy_worker::config::Config;
use futures_util::StreamExt as _;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn ms(v: &serde_json::Value) -> Option<f64> {
    let t = OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() as f64 / 1e6)
}

/// Collects the worker's per-stage times (`stages = "name=<µs>us ..."`), in ms by stage.
#[derive(Clone, Default)]
struct StageLog(Arc<Mutex<BTreeMap<String, Vec<f64>>>>);

struct StagesField<'a>(&'a StageLog);

impl tracing::field::Visit for StagesField<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.take(field, value);
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.take(field, &format!("{value:?}"));
    }
}

impl StagesField<'_> {
    fn take(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() != "stages" {
            return;
        }
        let Ok(mut log) = self.0.0.lock() else {
            return;
        };
        for pair in value.split_whitespace() {
            let Some((name, us)) = pair.split_once('=') else {
                continue;
            };
            if let Ok(us) = us.trim_end_matches("us").parse::<f64>() {
                log.entry(name.to_owned()).or_default().push(us / 1000.0);
            }
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StageLog {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        event.record(&mut StagesField(self));
    }
}

/// A request path with its ids cut out (`/api/jobs/{id}`).
fn route(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.len() >= 32 && seg.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A job's end as the queue's `/ws` told it: id, status and when it arrived.
type Told = (String, String, std::time::Instant);

/// Reads the queue's `/ws` and sends each `job_updated` event's id and status, timed
/// when it arrived.
async fn watch_jobs(queue: &str) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<Told>> {
    let url = format!("{}/ws", queue.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let at = std::time::Instant::now();
            let tokio_tungstenite::tungstenite::Message::Text(text) = msg else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["type"] != "job_updated" {
                continue;
            }
            let (Some(id), Some(status)) = (v["data"]["id"].as_str(), v["data"]["status"].as_str())
            else {
                continue;
            };
            if tx.send((id.to_owned(), status.to_owned(), at)).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Waits until `/ws` says job `id` ended; when it said so.
async fn told_end(
    told: &mut tokio::sync::mpsc::UnboundedReceiver<Told>,
    id: &str,
) -> anyhow::Result<std::time::Instant> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, told.recv()).await {
            Ok(Some((job, status, at))) => {
                if job == id && Status::parse(&status).is_some_and(Status::is_terminal) {
                    return Ok(at);
                }
            }
            Ok(None) => anyhow::bail!("the queue's /ws closed"),
            Err(_) => anyhow::bail!("job {id} did not end within 30 s"),
        }
    }
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs: usize = args.iter().find_map(|s| s.parse().ok()).unwrap_or(300);
    let stage_log = StageLog::default();
    if args.iter().any(|a| a == "--stages") {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::{Layer as _, filter::Targets};
        let only_timing = Targets::new().with_target("comfy_worker::timing", tracing::Level::DEBUG);
        let subscriber =
            tracing_subscriber::registry().with(stage_log.clone().with_filter(only_timing));
        tracing::subscriber::set_global_default(subscriber)?;
    }
    let same_outputs = args.iter().any(|a| a == "--same-outputs");
    let dir = tempfile::tempdir()?;
    let mut o = QueueOptions::sqlite(dir.path().join("bench.db"));
    o.settings.max_pending = 0;
    let queue = start_queue(o).await?;
    let emu = Emulator::start(
        EmulatorConfig::new("0.11.1")
            .node_time(Duration::ZERO)
            .metadata(!same_outputs),
    )
    .await?;
    let mut cfg = Config::for_urls(&queue.url(), &emu.url());
    cfg.worker_id = Some("bench".into());
    cfg.health_listen = "off".into();
    let worker = Worker::new(cfg)?;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    let api = UserApi::new(&queue.url());
    let mut told = watch_jobs(&queue.url()).await?;
    let workflow = |color: usize| {
        let color = if same_outputs { 0 } else { color };
        json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": color}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}},
        })
    };
    // Warm-up: detection, registration, connections.
    for i in 0..10 {
        let j = api.submit("bench", &workflow(jobs + i), json!({})).await?;
        told_end(&mut told, j["id"].as_str().unwrap_or_default()).await?;
    }
    if let Ok(mut log) = stage_log.0.lock() {
        log.clear();
    }
    let served_before = emu.served().len();
    let mut overhead = Vec::with_capacity(jobs);
    let mut total = Vec::with_capacity(jobs);
    let mut exec = Vec::with_capacity(jobs);
    let mut handoff = Vec::with_capacity(jobs);
    let mut client = Vec::with_capacity(jobs);
    let mut client_total = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let sent = std::time::Instant::now();
        let j = api
            .submit(
                "bench",
                &workflow(i),
                json!({"batch_index": i, "batch_total": jobs}),
            )
            .await?;
        let id = j["id"].as_str().unwrap_or_default().to_owned();
        let ended = told_end(&mut told, &id).await?;
        let done = api.job(&id).await?;
        if done["status"] != "completed" {
            anyhow::bail!("job {id} did not complete: {done}");
        }
        let (Some(created), Some(started), Some(completed)) = (
            ms(&done["created_at"]),
            ms(&done["started_at"]),
            ms(&done["completed_at"]),
        ) else {
            anyhow::bail!("job {id} has no timestamps: {done}");
        };
        handoff.push(started - created);
        let e = done["result"]["timings"]["comfy_execution_ms"]
            .as_f64()
            .unwrap_or(0.0);
        total.push(completed - created);
        exec.push(e);
        overhead.push(completed - created - e);
        let wall = (ended - sent).as_secs_f64() * 1000.0;
        client_total.push(wall);
        client.push(wall - e);
    }
    let served: Vec<_> = emu.served().into_iter().skip(served_before).collect();
    let _ = stop.send(true);
    let _ = task.await;
    for v in [
        &mut overhead,
        &mut total,
        &mut exec,
        &mut handoff,
        &mut client,
        &mut client_total,
    ] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "jobs: {jobs} (sequential; queue SQLite, worker and emulated ComfyUI 0.11.1 with zero node time, one process; {})",
        if same_outputs {
            "every output the same bytes"
        } else {
            "every output new bytes"
        }
    );
    for (name, v) in [
        (
            "dispatch overhead (submit→completed − ComfyUI execution)",
            &overhead,
        ),
        ("submit→completed", &total),
        ("ComfyUI execution (as reported)", &exec),
        ("queue hand-off (submit→leased)", &handoff),
        (
            "as this client saw it, µs clock (submit sent→/ws says completed)",
            &client_total,
        ),
        ("  the same, minus ComfyUI execution", &client),
    ] {
        println!(
            "{name}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 1.0)
        );
    }
    let mut routes: BTreeMap<String, usize> = BTreeMap::new();
    for s in &served {
        *routes
            .entry(format!("{} {} {}", s.method, route(&s.path), s.status))
            .or_default() += 1;
    }
    println!("ComfyUI served per job (method path status: count / jobs):");
    for (r, n) in &routes {
        println!("  {r}: {:.2}", *n as f64 / jobs as f64);
    }
    if let Ok(mut log) = stage_log.0.lock()
        && !log.is_empty()
    {
        println!(
            "worker stages (ms, each from the end of the one before; the first from the lease):"
        );
        for (name, v) in log.iter_mut() {
            v.sort_by(f64::total_cmp);
            println!(
                "  {name}: n {}, p50 {:.3}, p90 {:.3}, p99 {:.3}, max {:.3}",
                v.len(),
                pct(v, 0.5),
                pct(v, 0.9),
                pct(v, 0.99),
                pct(v, 1.0)
            );
        }
    }
    emu.stop().await;
    queue.stop().await;
    Ok(())
}

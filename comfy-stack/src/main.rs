//! The whole platform in one command: the queue manager (SQLite file), one
//! worker and, without `--comfy-url`, an emulated ComfyUI, so jobs really
//! flow on a machine with nothing but this repository; and the user side: a
//! gateway in front of an emulated user ComfyUI that serves a real frontend,
//! so the printed URL opens a platform user's own ComfyUI in a browser.
//!
//! ```sh
//! cargo run --release -p comfy-stack -- --demo
//! ```

use anyhow::Context;
use clap::Parser;
use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_queue_api::Status;
use comfy_stack::user_side::{UserSideOptions, start_user_side};
use comfy_stack::{Backend, QueueOptions, start_queue};
use comfy_worker::Worker;
use comfy_worker::config::Config as WorkerConfig;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tracing_subscriber::EnvFilter;

/// The queue manager, one worker and (without --comfy-url) an emulated
/// ComfyUI, plus a gateway with an emulated user ComfyUI serving a real
/// frontend, in one process, on embedded defaults.
#[derive(Debug, Parser)]
#[command(name = "comfy-stack", version, about, long_about = None)]
struct Args {
    /// Where the queue manager (API, /admin dashboard, /ws) listens.
    #[arg(long, env = "STACK_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,

    /// SQLite file of the queue (created on first start).
    #[arg(long, env = "STACK_DB", default_value = "./comfy-queue.db")]
    db: PathBuf,

    /// Use Redis at this URL instead of SQLite.
    #[arg(long, env = "STACK_REDIS_URL")]
    redis_url: Option<String>,

    /// Drive this real ComfyUI instead of the emulator.
    #[arg(long, env = "COMFY_URL")]
    comfy_url: Option<String>,

    /// ComfyUI version the emulator speaks (0.3.64, 0.6.0, 0.9.2, 0.11.1, 0.26.0, 0.33.0).
    #[arg(long, default_value = "0.11.1")]
    emulator_version: String,

    /// Where the emulator listens.
    #[arg(long, default_value = "127.0.0.1:8188")]
    emulator_listen: SocketAddr,

    /// Time each node takes in the emulator, in milliseconds.
    #[arg(long, default_value_t = 150)]
    emulator_node_ms: u64,

    /// Lease of the worker's jobs, in seconds.
    #[arg(long, default_value_t = 30.0)]
    lease_secs: f64,

    /// Where the worker serves /health and /metrics (`off` to disable).
    #[arg(long, default_value = "127.0.0.1:9188")]
    worker_health_listen: String,

    /// Where the gateway listens: open `http://<this>/demo/` for the demo
    /// user's own ComfyUI frontend, whose Run goes to the queue.
    #[arg(long, env = "STACK_GATEWAY_LISTEN", default_value = "127.0.0.1:8190")]
    gateway_listen: SocketAddr,

    /// ComfyUI version of the emulated user (CPU) ComfyUI behind the gateway
    /// (default: --emulator-version).
    #[arg(long)]
    user_comfy_version: Option<String>,

    /// Frontend version it serves (default: the one that release pins).
    /// Fetched once from PyPI (comfyui-frontend-package) into the cache
    /// ($COMFY_FRONTENDS, else ~/.cache/comfy-ci/frontend).
    #[arg(long)]
    frontend: Option<String>,

    /// No gateway and no user ComfyUI (queue, worker and emulator only).
    #[arg(long)]
    no_gateway: bool,

    /// Submit the bundled example workflows and print how each ended.
    #[arg(long)]
    demo: bool,

    /// Exit after the demo jobs ended instead of serving until Ctrl-C.
    #[arg(long, requires = "demo")]
    exit_after_demo: bool,

    /// A workflows folder (the layout of the repository's `workflows/`)
    /// whose `api-ground-truth/1.37.11/*.api.json` prompts the demo submits;
    /// without it, the copies built into the binary.
    #[arg(long)]
    workflows: Option<PathBuf>,
}

fn core_demo_prompts() -> Vec<(String, Value)> {
    vec![
        (
            "hello (EmptyImage → SaveImage)".into(),
            json!({
                "1": {"class_type": "EmptyImage", "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": 3381759}, "_meta": {"title": "EmptyImage"}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo_hello"}, "_meta": {"title": "Save Image"}},
            }),
        ),
        (
            "invert + preview (EmptyImage → ImageInvert → SaveImage, PreviewImage)".into(),
            json!({
                "1": {"class_type": "EmptyImage", "inputs": {"width": 256, "height": 256, "batch_size": 1, "color": 0}},
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "demo_inverted"}},
                "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
            }),
        ),
        (
            "execution error (SaveImage outside the output folder, as recorded)".into(),
            json!({
                "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 7}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../../outside"}},
            }),
        ),
    ]
}

/// The API prompts frontend 1.37.11 made from the bundled templates
/// (`workflows/api-ground-truth/1.37.11/`), built in so the demo runs from
/// any directory.
const BUILT_IN_PROMPTS: &[(&str, &str)] = &[
    (
        "image_flux2_klein_text_to_image",
        include_str!(
            "../../workflows/api-ground-truth/1.37.11/image_flux2_klein_text_to_image.api.json"
        ),
    ),
    (
        "image_flux2_text_to_image_9b",
        include_str!(
            "../../workflows/api-ground-truth/1.37.11/image_flux2_text_to_image_9b.api.json"
        ),
    ),
    (
        "tiny_bypass_mute",
        include_str!("../../workflows/api-ground-truth/1.37.11/tiny_bypass_mute.api.json"),
    ),
    (
        "video_ltx2_t2v",
        include_str!("../../workflows/api-ground-truth/1.37.11/video_ltx2_t2v.api.json"),
    ),
    (
        "video_ltx2_t2v_distilled",
        include_str!("../../workflows/api-ground-truth/1.37.11/video_ltx2_t2v_distilled.api.json"),
    ),
];

fn ground_truth_prompts(dir: Option<&std::path::Path>) -> Vec<(String, Value)> {
    let label = |stem: &str| format!("{stem} (frontend 1.37.11 ground truth)");
    let Some(dir) = dir else {
        return BUILT_IN_PROMPTS
            .iter()
            .filter_map(|(stem, text)| Some((label(stem), serde_json::from_str(text).ok()?)))
            .collect();
    };
    let dir = dir.join("api-ground-truth/1.37.11");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "note: {} not found; only the core demo prompts are submitted",
            dir.display()
        );
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let stem = name.strip_suffix(".api.json")?.to_owned();
            let bytes = std::fs::read(e.path()).ok()?;
            let v: Value = serde_json::from_slice(&bytes).ok()?;
            Some((label(&stem), v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn run_demo(queue_url: &str, workflows: Option<&std::path::Path>) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut prompts = core_demo_prompts();
    prompts.extend(ground_truth_prompts(workflows));
    let total = prompts.len();
    let mut submitted = Vec::new();
    for (i, (name, workflow)) in prompts.into_iter().enumerate() {
        let body = json!({
            "user_id": "demo",
            "workflow": workflow,
            "priority": 2,
            "metadata": {"batch_index": i, "batch_total": total, "demo": name},
        });
        let resp = http
            .post(format!("{queue_url}/api/jobs"))
            .json(&body)
            .send()
            .await
            .context("submitting a demo job")?;
        let status = resp.status();
        let job: Value = resp.json().await.context("reading the submit answer")?;
        let id = job["id"].as_str().unwrap_or_default().to_owned();
        println!("  submitted {id}  {name}  ({status})");
        submitted.push((id, name, Instant::now()));
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut ended = vec![false; submitted.len()];
    while ended.iter().any(|e| !e) && Instant::now() < deadline {
        for (i, (id, name, at)) in submitted.iter().enumerate() {
            if ended[i] {
                continue;
            }
            let Ok(resp) = http.get(format!("{queue_url}/api/jobs/{id}")).send().await else {
                continue;
            };
            let Ok(job) = resp.json::<Value>().await else {
                continue;
            };
            let status = job["status"].as_str().unwrap_or_default();
            if Status::parse(status).is_some_and(Status::is_terminal) {
                ended[i] = true;
                let secs = at.elapsed().as_secs_f64();
                match status {
                    "completed" => {
                        let outs: Vec<String> = job["result"]["outputs"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    // The queue's copy (`url`, a path on the queue) when the
                                    // worker stored the file there; ComfyUI's `/view` otherwise.
                                    .map(|o| match o["url"].as_str() {
                                        Some(path) => format!("{queue_url}{path}"),
                                        None => {
                                            o["view_url"].as_str().unwrap_or_default().to_owned()
                                        }
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        println!(
                            "  COMPLETED {name} in {secs:.2}s; outputs: {}",
                            outs.join(" ")
                        );
                    }
                    _ => {
                        let err: Value = job["error"]
                            .as_str()
                            .and_then(|e| serde_json::from_str(e).ok())
                            .unwrap_or(Value::Null);
                        println!(
                            "  {} {name} in {secs:.2}s: [{}] {}",
                            status.to_uppercase(),
                            err["class"].as_str().unwrap_or("?"),
                            err["message"]
                                .as_str()
                                .unwrap_or(job["error"].as_str().unwrap_or_default())
                        );
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if ended.iter().any(|e| !e) {
        println!("  some demo jobs did not end within 5 minutes");
    } else {
        println!("demo: all {} jobs ended", submitted.len());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("error")),
        )
        .init();
    let args = Args::parse();

    let mut opts = QueueOptions::sqlite(&args.db);
    opts.listen = args.listen;
    if let Some(url) = &args.redis_url {
        opts.backend = Backend::Redis(url.clone(), "cq".into());
    }
    opts.settings.lease_ms = (args.lease_secs.clamp(1.0, 3600.0) * 1000.0) as i64;
    opts.reap_every = Duration::from_secs(1);
    let files_dir = opts.files_dir.clone();
    let queue = start_queue(opts).await?;

    let mut emulator: Option<EmulatorHandle> = None;
    let comfy_url = match &args.comfy_url {
        Some(u) => u.clone(),
        None => {
            // The models the templates name, as placeholder files, so the
            // headline Flux.2 and LTX-2 templates run.
            let mut cfg = EmulatorConfig::new(&args.emulator_version)
                .node_time(Duration::from_millis(args.emulator_node_ms))
                .models(comfy_stack::user_side::template_models());
            cfg.addr = args.emulator_listen;
            let emu = match Emulator::start(cfg.clone()).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "emulator address busy; using a free port");
                    cfg.addr = SocketAddr::from(([127, 0, 0, 1], 0));
                    Emulator::start(cfg).await?
                }
            };
            let url = emu.url();
            emulator = Some(emu);
            url
        }
    };

    let mut wcfg = WorkerConfig::for_urls(&queue.url(), &comfy_url);
    wcfg.worker_id = Some("stack-worker-1".into());
    wcfg.health_listen = args.worker_health_listen.clone();
    wcfg.status_poll_secs = 0.5;
    let health_addr = wcfg.health_addr().map_err(anyhow::Error::msg)?;
    let worker = Worker::new(wcfg)?;
    let mut health_url = None;
    if let Some(addr) = health_addr {
        match comfy_worker::health::serve(addr, worker.health()).await {
            Ok(bound) => health_url = Some(format!("http://{bound}/health")),
            Err(e) => tracing::warn!(error = %e, %addr, "worker health port busy; not served"),
        }
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker_task = tokio::spawn(worker.run(stop_rx));

    let user_side = if args.no_gateway {
        None
    } else {
        let state_dir = match args.db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join("gateway"),
            _ => PathBuf::from("gateway"),
        };
        let o = UserSideOptions {
            queue_url: queue.url(),
            version: args
                .user_comfy_version
                .clone()
                .unwrap_or_else(|| args.emulator_version.clone()),
            frontend: args.frontend.clone(),
            listen: args.gateway_listen,
            state_dir,
            user: "demo".into(),
        };
        Some(start_user_side(o).await?)
    };

    println!();
    println!("comfy-stack is up");
    if let Some(u) = &user_side {
        match &u.frontend {
            Ok(fe) => println!(
                "  open      : {}  (user demo's own ComfyUI {} with frontend {fe}; Run goes to the queue)",
                u.open_url,
                u.comfyui.version()
            ),
            Err(why) => println!("  gateway   : {}  ({why})", u.open_url),
        }
    }
    println!("  dashboard : {}/admin", queue.url());
    println!(
        "  queue API : {}/api/jobs   (docs: {}/api/openapi.json)",
        queue.url(),
        queue.url()
    );
    match &emulator {
        Some(e) => println!("  ComfyUI   : {} (emulated {})", e.url(), e.version()),
        None => println!("  ComfyUI   : {comfy_url}"),
    }
    if let Some(h) = &health_url {
        println!("  worker    : {h}  (and /metrics)");
    }
    match &args.redis_url {
        Some(u) => println!(
            "  store     : Redis {u} (job files in {})",
            files_dir.display()
        ),
        None => println!(
            "  store     : SQLite {} (job files in {})",
            args.db.display(),
            files_dir.display()
        ),
    }
    println!(
        "  logs      : errors only; RUST_LOG=info for every job (job_id, user_id, prompt_id on each line)"
    );
    println!();

    if args.demo {
        println!("demo: submitting the bundled example workflows as user `demo`");
        run_demo(&queue.url(), args.workflows.as_deref()).await?;
    }
    if !args.exit_after_demo {
        println!("serving until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("stopping: the worker finishes or hands back its job");
    let _ = stop_tx.send(true);
    if let Err(e) = worker_task.await {
        tracing::warn!(error = %e, "worker task ended abnormally");
    }
    if let Some(u) = user_side {
        u.stop().await;
    }
    if let Some(e) = emulator {
        e.stop().await;
    }
    queue.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_prompt_parses_as_an_api_prompt() {
        let prompts = ground_truth_prompts(None);
        assert_eq!(prompts.len(), BUILT_IN_PROMPTS.len());
        for (name, p) in prompts {
            let graph = p.as_object().unwrap_or_else(|| panic!("{name}"));
            assert!(
                graph.values().all(|n| n["class_type"].is_string()),
                "{name}"
            );
        }
    }
}

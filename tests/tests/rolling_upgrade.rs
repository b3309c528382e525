//! The rolling upgrade, run as it would be run (issue 14): two `comfy-queue` replicas (real
//! processes) on one real Redis behind a load balancer, three GPU workers (real processes)
//! on emulated ComfyUI 0.9.2, and a steady load of 540 jobs from six users, a fifth of the
//! early ones pinned to `<0.10`. While it runs, each worker in turn is drained, its ComfyUI
//! replaced by 0.11.1, put back, and later replaced by 0.33.0 the same way; the last 0.9.2
//! worker goes only once the pinned jobs are done. One replica is killed with SIGKILL
//! midway and restarted.
//!
//! Required: every job submitted completes, none completes twice, none fails (so none for
//! a version reason), and every job that required `<0.10` ran on 0.9.2. The run's timeline
//! (jobs/s by ComfyUI version, queue depth, the steps) is drawn as an SVG: into the test's
//! temp dir, and into `docs/rolling-upgrade.svg` with `COMFY_WRITE_DOCS=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use comfy_e2e::balancer::Balancer;
use comfy_e2e::timeline::{Plot, Sample, Step};
use comfy_e2e::{free_port, worker_command};
use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_test_support::redis::RedisServer;
use serde_json::{Value, json};

const JOBS: usize = 540;
/// Submits per second.
const RATE: f64 = 12.0;
/// Jobs `0..PINNED_UNTIL` may be pinned to `<0.10`; later ones are not.
const PINNED_UNTIL: usize = 300;
const USERS: usize = 6;

fn pinned(i: usize) -> bool {
    i < PINNED_UNTIL && i.is_multiple_of(5)
}

fn workflow(i: usize) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": i % 255}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": format!("roll{i}")}},
    })
}

fn metadata(i: usize) -> Value {
    if pinned(i) {
        json!({"requires": {"comfyui": "<0.10"}})
    } else if i.is_multiple_of(7) {
        json!({"requires": {"comfyui": ">=0.9"}})
    } else {
        json!({})
    }
}

/// A `comfy-queue` replica process on a fixed port.
struct Replica {
    args: Vec<String>,
    child: Child,
}

impl Replica {
    fn start(redis: &str, files: &Path, addr: SocketAddr) -> Replica {
        let args: Vec<String> = [
            "--listen",
            &addr.to_string(),
            "--redis-url",
            redis,
            "--redis-prefix",
            "{roll}",
            "--files-dir",
            &files.display().to_string(),
            "--lease-secs",
            "3",
            "--max-pending",
            "0",
            "--max-wait-secs",
            "2",
            "--reap-interval-secs",
            "0.5",
            "--retry-delay-secs",
            "0.2",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let child = spawn_queue(&args);
        Replica { args, child }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn restart(&mut self) {
        self.child = spawn_queue(&self.args);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_queue(args: &[String]) -> Child {
    Command::new(comfy_e2e::workspace_bin("comfy-queue"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

async fn wait_healthy(addr: SocketAddr) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("http://{addr}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica {addr} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn emulator(version: &str, addr: SocketAddr) -> EmulatorHandle {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let config = EmulatorConfig::new(version)
            .addr(addr)
            .node_time(Duration::from_millis(20));
        match Emulator::start(config).await {
            Ok(e) => return e,
            // The old one's port may take a moment to be free again.
            Err(e) if Instant::now() < deadline => {
                eprintln!("emulator {version} on {addr}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("emulator {version} on {addr}: {e}"),
        }
    }
}

/// The platform's API through the balancer, retrying what a replica going away breaks.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base));
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    return r.json().await.unwrap_or(Value::Null);
                }
                Ok(r) if r.status().is_server_error() => {}
                Ok(r) => {
                    let status = r.status();
                    panic!(
                        "{method} {path}: {status} {}",
                        r.text().await.unwrap_or_default()
                    );
                }
                Err(_) => {} // the replica went away mid-request: ask again
            }
            assert!(
                Instant::now() < deadline,
                "{method} {path} kept failing for 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    async fn worker(&self, id: &str) -> Value {
        let all = self.get("/api/workers").await;
        all.as_array()
            .and_then(|ws| ws.iter().find(|w| w["worker_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    }

    async fn wait_worker(&self, id: &str, what: &str, ok: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let w = self.worker(id).await;
            if ok(&w) {
                return;
            }
            assert!(Instant::now() < deadline, "worker {id} never {what}: {w}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One GPU machine: its worker process and the ComfyUI it drives.
struct Gpu {
    id: String,
    addr: SocketAddr,
    comfy: Option<EmulatorHandle>,
    worker: Child,
}

impl Drop for Gpu {
    fn drop(&mut self) {
        let _ = self.worker.kill();
        let _ = self.worker.wait();
    }
}

/// Drains `gpu`, replaces its ComfyUI with `version`, and puts it back.
async fn upgrade(api: &Api, gpu: &mut Gpu, version: &str, steps: &Steps) {
    steps.mark(format!("drain {}", gpu.id));
    api.post(&format!("/api/workers/{}/drain", gpu.id), &json!({}))
        .await;
    api.wait_worker(&gpu.id, "drained", |w| w["state"] == "drained")
        .await;
    if let Some(old) = gpu.comfy.take() {
        old.stop().await;
    }
    gpu.comfy = Some(emulator(version, gpu.addr).await);
    api.wait_worker(&gpu.id, &format!("re-registered on {version}"), |w| {
        w["comfyui_version"] == version
    })
    .await;
    api.post(&format!("/api/workers/{}/undrain", gpu.id), &json!({}))
        .await;
    steps.mark(format!("{} on {version}", gpu.id));
    api.wait_worker(&gpu.id, "back", |w| w["state"] != "drained")
        .await;
}

/// The steps of the run, with their times.
#[derive(Clone)]
struct Steps {
    start: Instant,
    list: Arc<Mutex<Vec<Step>>>,
}

impl Steps {
    fn mark(&self, label: String) {
        let at = self.start.elapsed().as_secs_f64();
        eprintln!("{at:7.2} s  {label}");
        self.list.lock().unwrap().push(Step { at, label });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_rolling_upgrade_under_load_loses_nothing_and_keeps_pinned_jobs_on_their_release() {
    let redis = RedisServer::start_with(&["--appendonly", "yes"]);
    let files = tempfile::tempdir().unwrap();
    let addrs: Vec<SocketAddr> = (0..2)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let mut replicas: Vec<Replica> = addrs
        .iter()
        .map(|a| Replica::start(&redis.url(), files.path(), *a))
        .collect();
    for a in &addrs {
        wait_healthy(*a).await;
    }
    let balancer = Balancer::start(addrs.clone()).await.unwrap();
    let api = Api {
        base: balancer.url(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    };

    let mut gpus = Vec::new();
    for n in 1..=3 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let comfy = emulator("0.9.2", addr).await;
        let id = format!("gpu-{n}");
        let worker = worker_command(&balancer.url(), &comfy.url(), &id)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        gpus.push(Gpu {
            id,
            addr,
            comfy: Some(comfy),
            worker,
        });
    }
    for g in &gpus {
        api.wait_worker(&g.id, "registered on 0.9.2", |w| {
            w["comfyui_version"] == "0.9.2"
        })
        .await;
    }

    let steps = Steps {
        start: Instant::now(),
        list: Arc::new(Mutex::new(Vec::new())),
    };
    // The load: JOBS submits at RATE per second, each with its own idempotency key, so a
    // submit repeated after a replica died mid-answer is the same job.
    let ids: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; JOBS]));
    let load = {
        let (api, ids, start) = (api.clone(), ids.clone(), steps.start);
        tokio::spawn(async move {
            for i in 0..JOBS {
                let due = start + Duration::from_secs_f64(i as f64 / RATE);
                tokio::time::sleep_until(due.into()).await;
                let body = json!({
                    "user_id": format!("user{:03}", i % USERS + 1),
                    "workflow": workflow(i),
                    "metadata": metadata(i),
                });
                let job = api
                    .send(
                        reqwest::Method::POST,
                        "/api/jobs",
                        Some(&body),
                        Some(&format!("roll-{i}")),
                    )
                    .await;
                let id = job["id"].as_str().map(str::to_owned);
                assert!(id.is_some(), "submit {i}: {job}");
                ids.lock().unwrap()[i] = id;
            }
        })
    };
    // The sampler: queue depth and completions every 250 ms.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (api, samples, start) = (api.clone(), samples.clone(), steps.start);
        tokio::spawn(async move {
            loop {
                let s = api.get("/api/queue/status").await;
                samples.lock().unwrap().push(Sample {
                    at: start.elapsed().as_secs_f64(),
                    pending: s["pending_jobs"].as_u64().unwrap_or(0),
                    running: s["running_jobs"].as_u64().unwrap_or(0),
                });
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    // The upgrade, as docs/upgrades/ plans it: gpu-3 keeps 0.9.2 for the pinned jobs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    upgrade(&api, &mut gpus[0], "0.11.1", &steps).await;
    upgrade(&api, &mut gpus[1], "0.11.1", &steps).await;
    let at = |secs: u64| tokio::time::sleep_until((steps.start + Duration::from_secs(secs)).into());
    at(12).await;
    upgrade(&api, &mut gpus[0], "0.33.0", &steps).await;
    upgrade(&api, &mut gpus[1], "0.33.0", &steps).await;
    // Midway through the load, one replica dies without a goodbye and comes back.
    at(20).await;
    steps.mark("replica 2 killed (SIGKILL)".into());
    replicas[1].kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    replicas[1].restart();
    wait_healthy(addrs[1]).await;
    steps.mark("replica 2 back".into());
    // The last 0.9.2 worker goes once every pinned job has been submitted and has ended.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let pinned_ids: Vec<Option<String>> = ids.lock().unwrap()[..PINNED_UNTIL]
            .iter()
            .enumerate()
            .filter(|(i, _)| pinned(*i))
            .map(|(_, id)| id.clone())
            .collect();
        let mut open = pinned_ids.iter().filter(|id| id.is_none()).count();
        for id in pinned_ids.iter().flatten() {
            let job = api.get(&format!("/api/jobs/{id}")).await;
            if !matches!(
                job["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                open += 1;
            }
        }
        if open == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} pinned jobs still open after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    steps.mark("pinned jobs done".into());
    upgrade(&api, &mut gpus[2], "0.11.1", &steps).await;
    upgrade(&api, &mut gpus[2], "0.33.0", &steps).await;

    load.await.unwrap();
    let ids: Vec<String> = ids.lock().unwrap().iter().flatten().cloned().collect();
    assert_eq!(ids.len(), JOBS, "every submit was answered");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut jobs: HashMap<String, Value> = HashMap::new();
    while jobs.len() < ids.len() {
        for id in &ids {
            if jobs.contains_key(id) {
                continue;
            }
            let job = api.get(&format!("/api/jobs/{id}")).await;
            if matches!(
                job["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                jobs.insert(id.clone(), job);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} jobs not ended 120 s after the last submit",
            ids.len() - jobs.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    steps.mark("all jobs ended".into());
    sampler.abort();

    // The verdict.
    let mut by_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut finished: Vec<(f64, String)> = Vec::new();
    let mut twice = 0;
    let mut failed = Vec::new();
    let mut pinned_elsewhere = Vec::new();
    let wall_start = wall_now_ms() - steps.start.elapsed().as_millis() as i64;
    for (i, id) in ids.iter().enumerate() {
        let job = &jobs[id];
        if job["status"] != "completed" {
            failed.push(format!("{id}: {} {}", job["status"], job["error"]));
            continue;
        }
        let completions = job["history"]
            .as_array()
            .map(|h| h.iter().filter(|a| a["outcome"] == "completed").count())
            .unwrap_or(0);
        if completions > 1 {
            twice += 1;
        }
        let version = job["result"]["comfyui"]["version"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        if pinned(i) && version != "0.9.2" {
            pinned_elsewhere.push(format!("{id} ran on {version}"));
        }
        *by_version.entry(version.clone()).or_default() += 1;
        if let Some(at) = job["completed_at"].as_str().and_then(parse_ms) {
            finished.push(((at - wall_start) as f64 / 1000.0, version));
        }
    }
    eprintln!("completions by ComfyUI version: {by_version:?}");
    let plot = Plot {
        title: format!(
            "Rolling upgrade 0.9.2 → 0.11.1 → 0.33.0 under load: {JOBS} jobs, 3 workers, 2 queue replicas on one Redis"
        ),
        samples: samples.lock().unwrap().clone(),
        finished,
        steps: steps.list.lock().unwrap().clone(),
    };
    let svg = plot.svg();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rolling-upgrade.svg");
    std::fs::write(&out, &svg).unwrap();
    eprintln!("timeline: {}", out.display());
    if std::env::var_os("COMFY_WRITE_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/rolling-upgrade.svg");
        std::fs::write(docs, &svg).unwrap();
    }

    assert!(
        failed.is_empty(),
        "{} jobs did not complete: {failed:?}",
        failed.len()
    );
    assert_eq!(twice, 0, "jobs completed twice");
    assert!(pinned_elsewhere.is_empty(), "{pinned_elsewhere:?}");
    for v in ["0.9.2", "0.11.1", "0.33.0"] {
        assert!(
            by_version.get(v).copied().unwrap_or(0) > 0,
            "no job ran on {v}: {by_version:?}"
        );
    }
    for g in &gpus {
        let w = api.worker(&g.id).await;
        assert_eq!(w["comfyui_version"], "0.33.0", "{w}");
    }
    drop(replicas);
}

fn wall_now_ms() -> i64 {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(0)
}

fn parse_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

//! The worker keeps one WebSocket to its ComfyUI across jobs, and opens it again when it
//! drops: an emulated ComfyUI 0.11.1 (behind a TCP proxy that can cut its WebSockets) and a
//! queue played by wiremock that hands out the jobs a test pushes. Every job's events reach
//! the queue's event relay (`POST /api/workers/events`), which is how a test sees that a job
//! got its prompt's events from the socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Breakpoint, Emulator, EmulatorConfig, EmulatorHandle};
use comfy_worker::Worker;
use comfy_worker::config::Config;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const T: Duration = Duration::from_secs(20);

/// `next-job`: the jobs pushed, one per call, else `{"job": null}` after 50 ms.
#[derive(Clone, Default)]
struct Jobs(Arc<Mutex<VecDeque<Value>>>);

impl Jobs {
    fn push(&self, id: &str, prefix: &str) {
        let job = json!({
            "id": id,
            "workflow": {
                "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
                "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
            },
            "user_id": "u1",
            "metadata": {},
            "priority": 2,
            "lease_token": format!("lease-{id}"),
            "lease_expires_at": "2099-01-01T00:00:00Z",
            "lease_seconds": 60.0,
            "heartbeat_interval_seconds": 20.0,
            "attempt": 1,
            "max_attempts": 3,
        });
        self.0.lock().unwrap().push_back(job);
    }
}

impl Respond for Jobs {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        match self.0.lock().unwrap().pop_front() {
            Some(job) => ResponseTemplate::new(200).set_body_json(json!({ "job": job })),
            None => ResponseTemplate::new(200)
                .set_body_json(json!({"job": null}))
                .set_delay(Duration::from_millis(50)),
        }
    }
}

/// A queue that takes registrations, heartbeats, events and reports, and has no files API
/// (outputs stay on ComfyUI).
async fn queue(jobs: &Jobs) -> MockServer {
    let queue = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex("^/api/workers/catalogues/[0-9a-f]{64}$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sha256": "x", "size": 1})))
        .mount(&queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/workers/register"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"worker_id": "gpu-ws"})))
        .mount(&queue)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/workers/next-job"))
        .respond_with(jobs.clone())
        .mount(&queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/workers/heartbeat"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "ok", "cancel_requested": false})),
        )
        .mount(&queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/workers/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "ok"})))
        .mount(&queue)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/api/workers/jobs/[^/]+/files$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!({"error": {"code": "route_not_found", "message": "no files API"}}),
        ))
        .mount(&queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/workers/complete-job"))
        .respond_with(|r: &Request| {
            let id = r
                .url
                .query_pairs()
                .find(|(k, _)| k == "job_id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            ResponseTemplate::new(200)
                .set_body_json(json!({"status": "ok", "job_id": id, "job_status": "completed"}))
        })
        .mount(&queue)
        .await;
    queue
}

/// A TCP proxy to `upstream` that can cut the WebSockets passing through it.
struct Proxy {
    addr: SocketAddr,
    sockets: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sockets: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let kept = sockets.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut first = vec![0u8; 8192];
                    let n = client.read(&mut first).await.unwrap_or(0);
                    if n == 0 || server.write_all(&first[..n]).await.is_err() {
                        return;
                    }
                    let pipe = tokio::spawn(async move {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                    if first[..n].starts_with(b"GET /ws") {
                        kept.lock().unwrap().push(pipe.abort_handle());
                    }
                });
            }
        });
        Proxy {
            addr,
            sockets,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every WebSocket open through the proxy (both ends see the connection die).
    fn cut_sockets(&self) -> usize {
        let cut: Vec<_> = self.sockets.lock().unwrap().drain(..).collect();
        for h in &cut {
            h.abort();
        }
        cut.len()
    }
}

fn config(queue: &MockServer, comfy_url: &str) -> Config {
    let mut c = Config::for_urls(&queue.uri(), comfy_url);
    c.worker_id = Some("gpu-ws".into());
    c.health_listen = "off".into();
    c.poll_wait_secs = 0.05;
    c.status_poll_secs = 0.2;
    c.catalogue_refresh_secs = 0.0;
    c.backoff_min_secs = 0.05;
    c.backoff_max_secs = 0.2;
    c
}

/// WebSocket upgrades ComfyUI answered so far.
fn sockets_opened(emu: &EmulatorHandle) -> usize {
    emu.served()
        .iter()
        .filter(|s| s.path == "/ws" && s.status == 101)
        .count()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The result job `id` was reported complete with (waits for the report).
async fn completed(queue: &MockServer, id: &str) -> Value {
    let deadline = Instant::now() + T;
    loop {
        let reports = queue.received_requests().await.unwrap_or_default();
        let found = reports.iter().find(|r| {
            r.url.path() == "/api/workers/complete-job"
                && r.url.query_pairs().any(|(k, v)| k == "job_id" && v == id)
        });
        if let Some(r) = found {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            return body["result"].clone();
        }
        let failed = reports
            .iter()
            .find(|r| r.url.path() == "/api/workers/fail-job");
        assert!(
            failed.is_none(),
            "a job failed: {}",
            String::from_utf8_lossy(&failed.unwrap().body)
        );
        assert!(Instant::now() < deadline, "job {id} never completed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The ComfyUI events the worker relayed for job `id` (`event` names, in order).
async fn relayed(queue: &MockServer, id: &str) -> Vec<Value> {
    let mut events: Vec<(u64, Value)> = queue
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/workers/events")
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
        .filter(|b| b["job_id"] == id)
        .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
        .map(|e| (e["seq"].as_u64().unwrap(), e["event"].clone()))
        .collect();
    events.sort_by_key(|(seq, _)| *seq);
    events.into_iter().map(|(_, e)| e).collect()
}

/// Whether `events` hold the successful end of `prompt_id`.
fn ends_with_success(events: &[Value], prompt_id: &str) -> bool {
    events
        .iter()
        .any(|e| e["event"] == "execution_success" && e["prompt_id"] == prompt_id)
}

const JOB_A: &str = "00000000-0000-4000-8000-00000000000a";
const JOB_B: &str = "00000000-0000-4000-8000-00000000000b";
const JOB_C: &str = "00000000-0000-4000-8000-00000000000c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_in_a_row_share_one_socket_and_each_gets_its_own_events() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1").node_time(Duration::from_millis(5)))
        .await
        .unwrap();
    let jobs = Jobs::default();
    let queue = queue(&jobs).await;
    let worker = start(config(&queue, &emu.url()));
    let version_checks = || {
        emu.served()
            .iter()
            .filter(|s| s.path == "/system_stats")
            .count()
    };
    let mut prompts = Vec::new();
    let mut checks = Vec::new();
    for (id, prefix) in [(JOB_A, "a"), (JOB_B, "b"), (JOB_C, "c")] {
        jobs.push(id, prefix);
        let result = completed(&queue, id).await;
        checks.push(version_checks());
        let prompt_id = result["prompt_id"].as_str().unwrap().to_owned();
        // The relay sends the job's last events before its report.
        let events = relayed(&queue, id).await;
        assert!(
            ends_with_success(&events, &prompt_id),
            "job {id} got the events of its prompt {prompt_id}: {events:?}"
        );
        assert!(
            events.iter().all(|e| e["prompt_id"] == prompt_id),
            "job {id} relayed only its own prompt's events: {events:?}"
        );
        prompts.push(prompt_id);
    }
    prompts.dedup();
    assert_eq!(prompts.len(), 3, "three prompts: {prompts:?}");
    assert_eq!(
        sockets_opened(&emu),
        1,
        "one WebSocket for three jobs: {:?}",
        emu.served()
    );
    // ComfyUI's version is checked before a job until a check was made while the socket
    // was open (by the second job at the latest); then not while that socket stays open.
    assert_eq!(checks[1], checks[2], "no check before job C: {checks:?}");
    worker.stop().await;
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_cut_mid_job_is_opened_again_and_the_next_job_gets_its_events() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1").node_time(Duration::from_millis(5)))
        .await
        .unwrap();
    let proxy = Proxy::start(emu.addr()).await;
    let jobs = Jobs::default();
    let queue = queue(&jobs).await;
    let worker = start(config(&queue, &proxy.url()));

    // Job A is held before it saves; its socket is cut meanwhile.
    let hold = emu.hold(Breakpoint::before_node().class("SaveImage"));
    jobs.push(JOB_A, "a");
    hold.reached().await;
    assert_eq!(sockets_opened(&emu), 1);
    assert_eq!(
        proxy.cut_sockets(),
        1,
        "the worker's socket went through the proxy"
    );
    hold.release();
    // The job is not lost: polling finishes it whatever the socket does.
    let a = completed(&queue, JOB_A).await;
    assert!(a["prompt_id"].is_string(), "{a}");

    // The worker opens its socket again by itself (same client id)...
    eventually("the socket to be opened again", || {
        sockets_opened(&emu) >= 2
    })
    .await;
    let ws: Vec<_> = emu
        .served()
        .into_iter()
        .filter(|s| s.path == "/ws")
        .collect();
    assert!(ws[0].query.contains("clientId="), "{ws:?}");
    assert!(
        ws.iter().all(|s| s.query == ws[0].query),
        "the same client id: {ws:?}"
    );

    // ...and the next job gets its events through it.
    jobs.push(JOB_B, "b");
    let b = completed(&queue, JOB_B).await;
    let prompt_b = b["prompt_id"].as_str().unwrap();
    let events = relayed(&queue, JOB_B).await;
    assert!(
        ends_with_success(&events, prompt_b),
        "job B got its events over the re-opened socket: {events:?}"
    );
    assert_eq!(
        sockets_opened(&emu),
        2,
        "opened once more, not per job: {ws:?}"
    );
    worker.stop().await;
    drop(proxy);
    emu.stop().await;
}

/// A worker running as a task, with its stop switch.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(config: Config) -> Running {
    let worker = Worker::new(config).unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    Running { stop, task }
}

impl Running {
    /// Stop it and check it ended without an error.
    async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

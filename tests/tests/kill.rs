//! Faults with real processes: workers killed with SIGKILL mid-job, stopped
//! with SIGTERM, and the whole stack (queue included) killed under load.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_stack::{QueueOptions, RunningQueue, UserApi, start_queue};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(2);

fn prompt(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })
}

fn meta() -> Value {
    json!({"batch_index": 0, "batch_total": 1})
}

/// Submits `workflow` as `user` with single-job metadata; the new job's id.
async fn submit(api: &UserApi, user: &str, workflow: &Value) -> String {
    let job = api.submit(user, workflow, meta()).await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

async fn queue(dir: &tempfile::TempDir, max_attempts: u32) -> (RunningQueue, UserApi) {
    let mut o = QueueOptions::sqlite(dir.path().join("q.db")).short_leases(LEASE);
    o.settings.max_attempts = max_attempts;
    o.settings.max_pending = 0;
    o.settings.max_wait_secs = 1.0;
    o.settings.retry_delay_ms = 100;
    let q = start_queue(o).await.unwrap();
    let api = UserApi::new(&q.url());
    (q, api)
}

async fn emulator(node_ms: u64) -> EmulatorHandle {
    Emulator::start(EmulatorConfig::new("0.11.1").node_time(Duration::from_millis(node_ms)))
        .await
        .unwrap()
}

/// A worker as a real child process.
fn spawn_worker(queue_url: &str, comfy_url: &str, id: &str) -> Child {
    comfy_e2e::worker_command(queue_url, comfy_url, id)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn completed_attempts(job: &Value) -> usize {
    job["history"]
        .as_array()
        .map(|h| h.iter().filter(|a| a["outcome"] == "completed").count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_a_killed_worker_is_rerun_by_another_and_completed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (q, api) = queue(&dir, 3).await;
    let emu = emulator(1500).await;
    let mut a = spawn_worker(&q.url(), &emu.url(), "victim");
    let id = submit(&api, "user001", &prompt("kill")).await;
    api.wait_for(&id, Duration::from_secs(20), |j| {
        j["status"] == "running" && j["worker_id"] == "victim"
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.running().is_none() {
        assert!(Instant::now() < deadline, "the prompt never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.kill().unwrap(); // SIGKILL: no goodbye, the lease just stops being renewed
    a.wait().unwrap();
    let killed_at = Instant::now();
    let mut b = spawn_worker(&q.url(), &emu.url(), "rescuer");
    let job = api
        .wait_terminal(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["worker_id"], "rescuer");
    assert_eq!(job["result"]["worker_id"], "rescuer");
    assert_eq!(job["attempts"], 2, "{job}");
    assert_eq!(completed_attempts(&job), 1, "completed exactly once: {job}");
    let outcomes: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["lease_expired", "completed"], "{job}");
    assert!(killed_at.elapsed() < Duration::from_secs(20));
    b.kill().unwrap();
    b.wait().unwrap();
    emu.stop().await;
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_with_random_kills_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (q, api) = queue(&dir, 20).await;
    let emus = [emulator(25).await, emulator(25).await, emulator(25).await];
    let mut workers: Vec<Child> = (0..3)
        .map(|i| spawn_worker(&q.url(), &emus[i].url(), &format!("w{i}-0")))
        .collect();
    let mut ids = Vec::new();
    for i in 0..200 {
        let job = api
            .submit(
                &format!("user{:03}", i % 20),
                &prompt(&format!("bulk{i}")),
                json!({"batch_index": i, "batch_total": 200}),
            )
            .await
            .unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    // Which worker dies when: printed, and replayed with COMFY_TEST_SEED.
    let mut rng = comfy_e2e::seed("two_hundred_jobs_with_random_kills_lose_nothing") | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut kills = 0;
    let mut generation = 1;
    let mut pending: HashSet<String> = ids.iter().cloned().collect();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} jobs never ended",
            pending.len()
        );
        if kills < 12 {
            tokio::time::sleep(Duration::from_millis(150 + next() % 250)).await;
            let victim = (next() % 3) as usize;
            workers[victim].kill().unwrap();
            workers[victim].wait().unwrap();
            kills += 1;
            workers[victim] = spawn_worker(
                &q.url(),
                &emus[victim].url(),
                &format!("w{victim}-{generation}"),
            );
            generation += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut ended = Vec::new();
        for id in &pending {
            let job = api.job(id).await.unwrap();
            if matches!(
                job["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            ) {
                ended.push(id.clone());
            }
        }
        for id in ended {
            pending.remove(&id);
        }
    }
    let mut reruns = 0;
    for id in &ids {
        let job = api.job(id).await.unwrap();
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(completed_attempts(&job), 1, "completed exactly once: {job}");
        reruns += job["attempts"].as_u64().unwrap() - 1;
    }
    eprintln!("200 jobs completed; {kills} kills; {reruns} re-runs");
    assert!(kills >= 3, "the kills happened while work remained");
    for mut w in workers {
        let _ = w.kill();
        let _ = w.wait();
    }
    q.stop().await;
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "the worker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_a_short_job_and_hands_back_a_long_one() {
    let dir = tempfile::tempdir().unwrap();
    let (q, api) = queue(&dir, 3).await;
    let emu = emulator(100).await;

    // Short job: finishes within the 0.5 s grace period.
    let mut w = spawn_worker(&q.url(), &emu.url(), "term-1");
    let id = submit(&api, "user001", &prompt("short")).await;
    api.wait_for(&id, Duration::from_secs(20), |j| j["status"] == "running")
        .await
        .unwrap();
    sigterm(&w);
    assert!(wait_exit(&mut w, Duration::from_secs(10)).success());
    let job = api.job(&id).await.unwrap();
    assert_eq!(job["status"], "completed", "{job}");

    // Stalled job: interrupted after the grace period and handed back at once
    // (well before its lease would expire).
    let mut w = spawn_worker(&q.url(), &emu.url(), "term-2");
    let id = submit(&api, "user001", &prompt("emulator_stall")).await;
    api.wait_for(&id, Duration::from_secs(20), |j| j["status"] == "running")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.running().is_none() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sigterm(&w);
    assert!(wait_exit(&mut w, Duration::from_secs(10)).success());
    let job = api.job(&id).await.unwrap();
    assert_eq!(job["status"], "pending", "handed back: {job}");
    assert_eq!(job["history"][0]["outcome"], "failed", "{job}");
    let err: Value = serde_json::from_str(job["history"][0]["error"].as_str().unwrap()).unwrap();
    assert_eq!(err["class"], "shutdown");
    assert_eq!(emu.running(), None, "the prompt was interrupted");
    q.stop().await;
    emu.stop().await;
}

fn spawn_stack(port: u16, db: &std::path::Path) -> Child {
    Command::new(comfy_e2e::workspace_bin("comfy-stack"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(db)
        .args([
            "--emulator-listen",
            "127.0.0.1:0",
            "--emulator-node-ms",
            "2",
        ])
        .args(["--lease-secs", "2", "--worker-health-listen", "off"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_up(api: &UserApi, base: &str) {
    comfy_test_support::http::wait_until_up(base, Duration::from_secs(20), "the stack").await;
    let _ = api;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_job_survives_a_kill_9_of_the_queue_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stack.db");
    let port = comfy_e2e::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let api = UserApi::new(&base);
    let mut stack = spawn_stack(port, &db);
    wait_up(&api, &base).await;

    // Four clients submit as fast as they can; only 201/200 answers count as acknowledged.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for c in 0..4 {
        let api = api.clone();
        let acked = acked.clone();
        clients.push(tokio::spawn(async move {
            for i in 0..1000 {
                match api
                    .submit(
                        &format!("user{c}"),
                        &prompt(&format!("load{c}_{i}")),
                        meta(),
                    )
                    .await
                {
                    Ok(job) => acked
                        .lock()
                        .unwrap()
                        .push(job["id"].as_str().unwrap().to_owned()),
                    Err(comfy_stack::UserApiError::Status(429, _)) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 150 {
        assert!(Instant::now() < deadline, "load did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stack.kill().unwrap(); // SIGKILL of queue + worker + emulator under load
    stack.wait().unwrap();
    for c in clients {
        let _ = c.await;
    }
    let acked = acked.lock().unwrap().clone();

    let mut stack = spawn_stack(port, &db);
    wait_up(&api, &base).await;
    for id in &acked {
        let job = api
            .job(id)
            .await
            .unwrap_or_else(|e| panic!("acknowledged job {id} lost: {e}"));
        assert!(job["status"].is_string());
    }
    // And the restarted stack runs every one of them to completion.
    for id in &acked {
        let job = api
            .wait_terminal(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(job["status"], "completed", "{job}");
    }
    eprintln!(
        "{} acknowledged jobs survived the kill and completed",
        acked.len()
    );
    stack.kill().unwrap();
    stack.wait().unwrap();
}

/// A TCP proxy in front of the queue that forwards everything, except that on a connection
/// whose request is an output upload (`POST /api/workers/jobs/...`) it forwards the request
/// head and then holds the body: the upload is in flight, and stays so, until the test kills
/// the worker. Sends the job's id on `uploading` when it holds one.
async fn stalling_proxy(
    upstream: std::net::SocketAddr,
) -> (String, tokio::sync::mpsc::Receiver<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // Answers flow back untouched.
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen: Vec<u8> = Vec::new();
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => return, // the worker is gone: drop the upstream half
                        Ok(n) => n,
                    };
                    seen.extend_from_slice(&buf[..n]);
                    let upload = seen
                        .windows(b"POST /api/workers/jobs/".len())
                        .position(|w| w == b"POST /api/workers/jobs/");
                    let head_end = upload.and_then(|at| {
                        seen[at..]
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map(|end| at + end + 4)
                    });
                    if let Some(end) = head_end {
                        // Forward what came before the upload and its head, then hold the
                        // body until the worker's side of the connection ends.
                        let already = seen.len() - n;
                        if end > already {
                            let _ = sw.write_all(&seen[already..end]).await;
                        }
                        let _ = tx.send(()).await;
                        while matches!(cr.read(&mut buf).await, Ok(n) if n > 0) {}
                        return;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    // Keep only a tail long enough to find a request line split across reads.
                    if seen.len() > 4096 {
                        seen.drain(..seen.len() - 4096);
                    }
                }
            });
        }
    });
    (url, rx)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_an_output_upload_leaves_no_half_file_and_the_job_completes_once() {
    let dir = tempfile::tempdir().unwrap();
    let (q, api) = queue(&dir, 3).await;
    let emu = emulator(50).await;
    let upstream: std::net::SocketAddr = q.url().trim_start_matches("http://").parse().unwrap();
    let (proxy, mut uploading) = stalling_proxy(upstream).await;
    let mut a = spawn_worker(&proxy, &emu.url(), "victim");
    let id = submit(&api, "user001", &prompt("upload-kill")).await;
    tokio::time::timeout(Duration::from_secs(30), uploading.recv())
        .await
        .expect("the worker never started an output upload")
        .unwrap();
    // The upload's head reached the queue and its body is held: kill the worker now.
    a.kill().unwrap();
    a.wait().unwrap();
    let files_dir = dir.path().join("files");
    let mut b = spawn_worker(&q.url(), &emu.url(), "rescuer");
    let job = api
        .wait_terminal(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["worker_id"], "rescuer", "{job}");
    assert_eq!(completed_attempts(&job), 1, "completed exactly once: {job}");
    let outcomes: Vec<&str> = job["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["lease_expired", "completed"], "{job}");
    // Every file the job refers to is whole: its blob exists with the recorded size and
    // hash, and the interrupted upload left no temp file behind.
    let files = job["files"].as_array().unwrap();
    assert!(!files.is_empty(), "the rescuer stored the outputs: {job}");
    for f in files {
        let sha = f["sha256"].as_str().unwrap();
        let blob = files_dir.join("sha256").join(&sha[..2]).join(sha);
        let bytes = std::fs::read(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
        assert_eq!(bytes.len() as u64, f["size"].as_u64().unwrap(), "{f}");
        let served = reqwest::get(format!("{}{}", q.url(), f["url"].as_str().unwrap()))
            .await
            .unwrap();
        // No credentials with auth off: the owner's view; the bytes are the blob's.
        assert_eq!(served.status(), 200, "{f}");
        assert_eq!(
            served.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{f}"
        );
    }
    let temps = files_under(&files_dir.join("tmp"));
    assert!(temps.is_empty(), "half-written files left: {temps:?}");
    b.kill().unwrap();
    b.wait().unwrap();
    emu.stop().await;
    q.stop().await;
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name}");
}

/// SIGUSR1 drains a worker process (it finishes its job and takes no new one, and the
/// queue shows it `drained`); SIGUSR2 puts it back and it runs the job that waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_drains_a_worker_and_sigusr2_puts_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let (q, api) = queue(&dir, 3).await;
    let emu = emulator(20).await;
    let mut w = spawn_worker(&q.url(), &emu.url(), "gpu-sig");
    wait_for_worker(&api, "gpu-sig", "idle").await;
    signal(&w, "USR1");
    wait_for_worker(&api, "gpu-sig", "drained").await;
    let id = submit(&api, "user001", &prompt("sig")).await;
    // Drained: the job waits (the worker polls about once a second meanwhile).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.job(&id).await.unwrap()["status"], "pending");
    signal(&w, "USR2");
    let job = api
        .wait_terminal(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["worker_id"], "gpu-sig");
    w.kill().unwrap();
    w.wait().unwrap();
    q.stop().await;
}

/// `--drain` starts a worker drained: it registers (the queue shows its version) but takes
/// no job until it is undrained, then runs the one that waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_with_drain_takes_no_job_until_undrained() {
    let dir = tempfile::tempdir().unwrap();
    let (q, api) = queue(&dir, 3).await;
    let emu = emulator(20).await;
    let id = submit(&api, "user001", &prompt("drain-flag")).await;
    let mut w = comfy_e2e::worker_command(&q.url(), &emu.url(), "gpu-flag")
        .arg("--drain")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_worker(&api, "gpu-flag", "drained").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let job = api.job(&id).await.unwrap();
    assert_eq!(job["status"], "pending", "{job}");
    assert!(job["history"].as_array().unwrap().is_empty(), "{job}");
    let r = reqwest::Client::new()
        .post(format!("{}/api/workers/gpu-flag/undrain", q.url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let job = api
        .wait_terminal(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["worker_id"], "gpu-flag");
    w.kill().unwrap();
    w.wait().unwrap();
    q.stop().await;
}

/// Polls `GET /api/workers` until worker `id` is in `state`.
async fn wait_for_worker(api: &UserApi, id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = api.workers().await.unwrap();
        let w = all
            .as_array()
            .and_then(|ws| ws.iter().find(|w| w["worker_id"] == id))
            .cloned()
            .unwrap_or(Value::Null);
        if w["state"] == state {
            return;
        }
        assert!(Instant::now() < deadline, "worker {id} never {state}: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

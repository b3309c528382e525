//! A job's files end to end: a user uploads an input to the queue, the
//! worker places it on an emulated ComfyUI that never had it, and the
//! outputs land in the queue, served to their owner only; a prompt naming a
//! file nobody gave fails at once as `missing_input`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::*;
use comfy_stack::{QueueOptions, start_queue};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);
const WORKER_TOKEN: &str = "worker-secret";
const ADMIN_TOKEN: &str = "admin-secret";

fn sha256(bytes: &[u8]) -> String {
    comfy_worker::files::sha256_hex(bytes)
}

/// `rb` as `user` (the queue's trusted user header).
fn user(user: &str, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    rb.header("X-Forwarded-User", user)
}

/// The prompt of a job that reads `photo.png`.
fn loader_prompt(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_reach_comfyui_without_colliding_and_outputs_land_in_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = QueueOptions::sqlite(dir.path().join("queue.db")).short_leases(LEASE);
    o.settings.max_attempts = 1;
    o.settings.max_pending = 0;
    o.settings.max_wait_secs = 2.0;
    o.settings.auth.worker_token = Some(WORKER_TOKEN.into());
    o.settings.auth.admin_token = Some(ADMIN_TOKEN.into());
    let queue = start_queue(o).await.unwrap();
    let base = queue.url();
    let emu = emulator("0.33.0", 10).await;
    assert!(!emu.data_dir().join("input/comfy-queue").exists());
    let mut config = worker_config(&base, &emu.url(), "w-files");
    config.worker_token = Some(WORKER_TOKEN.into());
    let worker = TestWorker::start(config);
    let http = reqwest::Client::new();

    // Two users, one file name, different bytes.
    let mut jobs = Vec::new();
    for (who, bytes) in [
        ("alice", b"alice's photo".as_slice()),
        ("bob", b"bob's photo".as_slice()),
    ] {
        let up = user(who, http.post(format!("{base}/api/files")))
            .query(&[("filename", "photo.png")])
            .header("content-type", "image/png")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(up.status().as_u16(), 201);
        let up: Value = up.json().await.unwrap();
        assert_eq!(up["sha256"], sha256(bytes));
        let job = user(who, http.post(format!("{base}/api/jobs")))
            .json(&json!({
                "user_id": who, "workflow": loader_prompt(who), "priority": 1,
                "metadata": {}, "inputs": [{"sha256": up["sha256"], "filename": "photo.png"}],
            }))
            .send()
            .await
            .unwrap();
        let status = job.status().as_u16();
        let job: Value = job.json().await.unwrap();
        assert!(status == 201 || status == 200, "{job}");
        jobs.push((who, bytes, job["id"].as_str().unwrap().to_owned()));
    }

    let wait = |who: &'static str, id: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let deadline = tokio::time::Instant::now() + T;
            loop {
                let job: Value = user(who, http.get(format!("{base}/api/jobs/{id}")))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if ["completed", "failed", "cancelled"]
                    .contains(&job["status"].as_str().unwrap_or_default())
                {
                    return job;
                }
                assert!(tokio::time::Instant::now() < deadline, "{job}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    let mut first_output_url = None;
    for (who, bytes, id) in &jobs {
        let job = wait(who, id.clone()).await;
        assert_eq!(job["status"], "completed", "{job}");
        // Each user's bytes are on ComfyUI under their own content-addressed name.
        let placed = emu
            .data_dir()
            .join("input/comfy-queue")
            .join(&sha256(bytes)[..16])
            .join("photo.png");
        assert_eq!(std::fs::read(&placed).unwrap(), *bytes, "{who}");
        // The output is in the queue with its bytes and content type.
        let out = &job["result"]["outputs"][0];
        assert_eq!(out["kind"], "image");
        let url = out["url"].as_str().unwrap();
        let served = user(who, http.get(format!("{base}{url}")))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status().as_u16(), 200, "{url}");
        assert_eq!(served.headers()["content-type"], "image/png");
        let body = served.bytes().await.unwrap();
        let on_comfy = emu
            .data_dir()
            .join("output")
            .join(out["subfolder"].as_str().unwrap())
            .join(out["filename"].as_str().unwrap());
        assert_eq!(body.as_ref(), std::fs::read(on_comfy).unwrap().as_slice());
        assert_eq!(out["sha256"], sha256(&body));
        assert_eq!(out["size"], body.len());
        first_output_url.get_or_insert((url.to_owned(), *who));
    }
    // Another user sees nothing.
    let (url, owner) = first_output_url.unwrap();
    assert_eq!(owner, "alice");
    let other = user("bob", http.get(format!("{base}{url}")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);

    worker.stop().await;
    emu.stop().await;
    drop(queue);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_naming_a_file_nobody_gave_fails_as_missing_input_at_once() {
    let q = sqlite_queue(3).await;
    let emu = emulator("0.3.64", 10).await;
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-missing"));
    let id = q.submit("user001", &loader_prompt("missing")).await;
    let done = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 1, "not retried: {done}");
    let err = reported_error(&done);
    assert_eq!(err["class"], "missing_input", "{err}");
    assert_eq!(err["detail"]["missing"][0]["node_id"], "1");
    assert_eq!(err["detail"]["missing"][0]["file"], "photo.png");
    worker.stop().await;
    emu.stop().await;
}

/// An early node's output is in the queue while later nodes still run: the worker stores
/// each output when ComfyUI announces it (`executed`), not only once the prompt has ended.
/// So the user's frontend, which asks for an output the moment it is announced, gets it
/// while the job runs, and the job's final result names the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_output_is_in_the_queue_while_later_nodes_still_run() {
    let q = sqlite_queue(1).await;
    // Five nodes of 300 ms each: the first SaveImage runs second, the last one fifth.
    let emu = emulator("0.33.0", 300).await;
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-early"));
    let scale = |from: &str| json!({"class_type": "ImageScaleBy", "inputs": {"image": [from, 0], "upscale_method": "nearest-exact", "scale_by": 1.0}});
    let prompt = json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "early"}},
        "3": scale("1"),
        "4": scale("3"),
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "late"}},
    });
    let id = q.submit("user001", &prompt).await;
    let names = |job: &Value| -> Vec<String> {
        job["files"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter_map(|f| f["filename"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + T;
    let seen_running = loop {
        let job = q.api.job(&id).await.unwrap();
        let files = names(&job);
        if job["status"] == "running" && files.iter().any(|f| f.starts_with("early")) {
            break files;
        }
        assert!(
            job["status"] == "pending" || job["status"] == "running",
            "the job ended before its early output was seen in the queue while it ran: {job}"
        );
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        !seen_running.iter().any(|f| f.starts_with("late")),
        "the late output cannot be stored before its node ran: {seen_running:?}"
    );
    // Stored early, not in the last milliseconds before the report: two nodes of 300 ms
    // are still to run.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let later = q.api.job(&id).await.unwrap();
    assert_eq!(later["status"], "running", "{later}");
    assert!(
        !names(&later).iter().any(|f| f.starts_with("late")),
        "{later}"
    );
    let done = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let outputs = done["result"]["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{done}");
    for o in outputs {
        assert!(o["url"].is_string(), "every output stored: {o}");
    }
    assert_eq!(names(&done).len(), 2, "each file stored once: {done}");
    // One `/view` per file: the early upload is not repeated at the end.
    let views = emu.served().iter().filter(|s| s.path == "/view").count();
    assert_eq!(views, 2);
    worker.stop().await;
    emu.stop().await;
}

/// The recorded mixed-outputs prompt (animated WebP, temp previews, MP4 video, FLAC audio,
/// text) run through the queue: every file output, temp previews included, is stored in the
/// queue and served with ComfyUI's bytes and a content type matching its kind; the text stays
/// in the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_of_every_recorded_kind_are_stored_and_served_with_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = QueueOptions::sqlite(dir.path().join("queue.db")).short_leases(LEASE);
    o.settings.max_attempts = 1;
    o.settings.max_wait_secs = 2.0;
    let queue = start_queue(o).await.unwrap();
    let base = queue.url();
    let emu = emulator("0.11.1", 5).await;
    let worker = TestWorker::start(worker_config(&base, &emu.url(), "w-kinds"));
    let http = reqwest::Client::new();
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/comfyui-0.11.1/081-run-mixed-outputs-submit.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let prompt = recorded["request"]["body"]["prompt"].clone();
    let job: Value = user("carol", http.post(format!("{base}/api/jobs")))
        .json(&json!({"user_id": "carol", "workflow": prompt, "metadata": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + T;
    let job = loop {
        let job: Value = user("carol", http.get(format!("{base}/api/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] != "pending" && job["status"] != "running" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "completed", "{job}");

    let mut seen = Vec::new();
    for out in job["result"]["outputs"].as_array().unwrap() {
        if out["kind"] == "text" {
            assert_eq!(out["text"], "hello from a fixture", "{out}");
            seen.push(("text".to_owned(), "-".to_owned(), "-".to_owned()));
            continue;
        }
        let url = out["url"]
            .as_str()
            .unwrap_or_else(|| panic!("not stored: {out}"));
        let served = user("carol", http.get(format!("{base}{url}")))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status().as_u16(), 200, "{url}");
        let content_type = served.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = served.bytes().await.unwrap();
        let on_comfy = http
            .get(format!("{}/view", emu.url()))
            .query(&[
                ("filename", out["filename"].as_str().unwrap()),
                ("subfolder", out["subfolder"].as_str().unwrap()),
                ("type", out["type"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body, on_comfy, "{url}: the queue's bytes are ComfyUI's");
        assert_eq!(out["sha256"], sha256(&body), "{out}");
        assert_eq!(out["content_type"], content_type.as_str(), "{out}");
        seen.push((
            out["kind"].as_str().unwrap().to_owned(),
            out["type"].as_str().unwrap().to_owned(),
            content_type,
        ));
    }
    seen.sort();
    seen.dedup();
    let want = [
        ("audio", "output", "audio/flac"),
        ("image", "output", "image/webp"),
        ("image", "temp", "image/png"),
        ("text", "-", "-"),
        ("video", "output", "video/mp4"),
    ]
    .map(|(k, t, c)| (k.to_owned(), t.to_owned(), c.to_owned()));
    assert_eq!(seen, want, "{job}");
    // The job lists the same files (four temp previews among them) with their roles.
    let roles: Vec<&str> = job["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "temp").count(), 4, "{job}");
    assert_eq!(roles.iter().filter(|r| **r == "output").count(), 3, "{job}");
    worker.stop().await;
    emu.stop().await;
    queue.stop().await;
}

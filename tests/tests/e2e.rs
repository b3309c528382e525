//! The whole stack through its public HTTP APIs: queue (SQLite, Redis),
//! in-process workers, emulated ComfyUI servers of each line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::*;
use comfy_emulator::{Emulator, EmulatorConfig, Faults};
use comfy_test_support::logs::LogBuf;
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn attempts(job: &Value) -> u64 {
    job["attempts"].as_u64().unwrap_or(0)
}

async fn completes_on(q: &TestQueue, version: &str) {
    let emu = emulator(version, 10).await;
    let worker = TestWorker::start(worker_config(
        &q.url(),
        &emu.url(),
        &format!("w-{}", version.replace('.', "-")),
    ));
    let id = q.submit("user001", &image_prompt("e2e")).await;
    let done = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(done["status"], "completed", "{version}: {done}");
    assert_eq!(attempts(&done), 1);
    let result = &done["result"];
    assert_eq!(result["comfyui"]["version"], version);
    let outputs = result["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{result}");
    let o = &outputs[0];
    assert_eq!(o["kind"], "image");
    assert_eq!(o["node_id"], "2");
    assert_eq!(o["type"], "output");
    assert_eq!(o["cached"], false);
    assert!(o["filename"].as_str().unwrap().starts_with("e2e_"));
    let view = o["view_url"].as_str().unwrap();
    assert!(
        view.starts_with(&emu.url()) && view.contains("/view?filename="),
        "{view}"
    );
    assert!(reqwest::get(view).await.unwrap().status().is_success());
    for t in ["comfy_execution_ms", "comfy_queued_ms", "total_ms"] {
        assert!(result["timings"][t].is_number(), "{t}: {result}");
    }
    let workers = q.api.workers().await.unwrap();
    let me = workers
        .as_array()
        .or_else(|| workers["workers"].as_array())
        .unwrap()
        .iter()
        .find(|w| {
            w["worker_id"]
                .as_str()
                .is_some_and(|id| id.contains(&version.replace('.', "-")))
        })
        .cloned()
        .unwrap();
    assert_eq!(me["comfyui_version"], version, "{me}");
    assert_eq!(
        worker
            .health
            .count(comfy_worker::health::Outcome::Completed),
        1
    );
    worker.stop().await;
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_job_completes_with_outputs_on_each_line() {
    let q = sqlite_queue(3).await;
    for v in ["0.3.64", "0.9.2", "0.11.1", "0.33.0"] {
        completes_on(&q, v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_seed_job_completes_on_the_redis_backend() {
    let q = redis_queue(3).await;
    completes_on(&q, "0.11.1").await;
    completes_on(&q, "0.3.64").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_and_execution_errors_are_classified_and_not_retried() {
    let q = sqlite_queue(3).await;
    for v in ["0.3.64", "0.33.0"] {
        let emu = emulator(v, 5).await;
        let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-errors"));

        // ComfyUI's own validation (what the worker's check before the submit leaves to
        // it: everything but missing nodes and list values).
        let mut huge = image_prompt("e2e");
        huge["1"]["inputs"]["width"] = json!(1_000_000);
        let id = q.submit("user002", &huge).await;
        let job = q.api.wait_terminal(&id, T).await.unwrap();
        assert_eq!(job["status"], "failed", "{v}: {job}");
        assert_eq!(attempts(&job), 1, "{v}: not retried");
        let e = reported_error(&job);
        assert_eq!(e["class"], "validation_error", "{v}: {e}");
        assert_eq!(e["retryable"], false);
        let kinds: Vec<&str> = e["detail"]["node_errors"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|n| n["errors"].as_array().unwrap())
            .map(|x| x["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["value_bigger_than_max"], "{v}: {e}");

        let outside = image_prompt("../../outside");
        let id = q.submit("user002", &outside).await;
        let job = q.api.wait_terminal(&id, T).await.unwrap();
        assert_eq!(job["status"], "failed", "{v}: {job}");
        assert_eq!(attempts(&job), 1, "{v}: not retried");
        let e = reported_error(&job);
        assert_eq!(e["class"], "execution_error", "{v}: {e}");
        assert_eq!(e["detail"]["node_id"], "2");
        assert_eq!(e["detail"]["node_type"], "SaveImage");
        assert_eq!(e["detail"]["exception_type"], "Exception");
        assert!(
            e["detail"]["exception_message"]
                .as_str()
                .unwrap()
                .contains("outside the output folder")
        );
        assert!(!e["detail"]["traceback"].as_array().unwrap().is_empty());

        worker.stop().await;
        emu.stop().await;
    }
}

/// A prompt the worker's ComfyUI lacks nodes or models for is handed back unrun, not
/// failed by ComfyUI: with no other worker to run it, it waits for a capable worker (the
/// job says why) and fails with `no_capable_worker` once `no_capable_worker_ms` passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_no_worker_can_run_is_handed_back_and_fails_as_no_capable_worker() {
    let q = sqlite_queue_with(3, |s| {
        s.no_capable_worker_ms = 1_500;
        s.route_check_ms = 100;
    })
    .await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../workflows/api-ground-truth/1.37.11/image_flux2_klein_text_to_image.api.json"
    );
    let flux: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for v in ["0.3.64", "0.33.0"] {
        let emu = emulator(v, 5).await;
        let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-unfit"));
        let bad = json!({"1": {"class_type": "DoesNotExist", "inputs": {}}});
        for (prompt, lacks) in [
            (&bad, "no node class DoesNotExist".to_owned()),
            // A frontend-made prompt whose models are not installed (0.11.1 refused it
            // with `value_not_in_list`, recorded); 0.3.64 predates the Flux.2 nodes.
            (
                &flux,
                if v == "0.3.64" {
                    "no node class ".to_owned()
                } else {
                    "not offered: CLIPLoader.clip_name = \"qwen_3_4b.safetensors\"".to_owned()
                },
            ),
        ] {
            let id = q.submit("user002", prompt).await;
            let job = q.api.wait_terminal(&id, T).await.unwrap();
            assert_eq!(job["status"], "failed", "{v}: {job}");
            assert_eq!(attempts(&job), 0, "{v}: no attempt counted: {job}");
            assert_eq!(job["history"][0]["outcome"], "handed_back", "{v}: {job}");
            let handed = job["history"][0]["error"].as_str().unwrap();
            assert!(
                handed.starts_with(&format!(
                    "handed back unrun: this worker's ComfyUI {v} has {lacks}"
                )),
                "{v}: {handed}"
            );
            let error = job["error"].as_str().unwrap();
            assert!(
                error.starts_with("no_capable_worker: no live worker can run it: w-unfit")
                    && error.contains(&lacks),
                "{v}: {error}"
            );
        }
        assert_eq!(
            worker.health.count(comfy_worker::health::Outcome::Unfit),
            2,
            "{v}"
        );
        assert_eq!(
            worker.health.count(comfy_worker::health::Outcome::Failed),
            0,
            "{v}: nothing reached ComfyUI"
        );
        worker.stop().await;
        emu.stop().await;
    }
}

/// Issue 14 item 3: a worker's ComfyUI replaced (0.9.2 → 0.11.1 on the same address) while
/// it waits for work, without a drain. The queue still routes on the old registration and
/// leases it a job that requires `<0.10`; the worker notices the new version, registers it,
/// and hands the job back unrun instead of running it on 0.11.1. The job waits, saying why,
/// until a 0.9.2 worker comes, and completes there with one attempt counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_comfyui_was_swapped_hands_back_a_job_that_no_longer_fits() {
    use comfy_worker::health::Outcome;

    let q = sqlite_queue_with(3, |s| s.route_check_ms = 100).await;
    let emu = emulator("0.9.2", 5).await;
    let addr = emu.addr();
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-swapped"));
    let registered = |version: &'static str| {
        let api = &q.api;
        async move {
            let deadline = tokio::time::Instant::now() + T;
            loop {
                let ws = api.workers().await.unwrap();
                let list = ws.as_array().or_else(|| ws["workers"].as_array()).cloned();
                if list
                    .unwrap_or_default()
                    .iter()
                    .any(|w| w["worker_id"] == "w-swapped" && w["comfyui_version"] == version)
                {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "never registered {version}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    registered("0.9.2").await;
    emu.stop().await;
    let swapped = Emulator::start(
        EmulatorConfig::new("0.11.1")
            .addr(addr)
            .node_time(Duration::from_millis(5)),
    )
    .await
    .unwrap();
    let pinned = q
        .api
        .submit(
            "user007",
            &image_prompt("pinned"),
            json!({"requires": {"comfyui": "<0.10"}}),
        )
        .await
        .unwrap();
    let id = pinned["id"].as_str().unwrap().to_owned();
    let job = q
        .api
        .wait_for(&id, T, |j| {
            j.get("waiting").is_some_and(|w| w["reason"] == "requires")
        })
        .await
        .unwrap();
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(
        attempts(&job),
        0,
        "the hand-back gave the attempt back: {job}"
    );
    assert_eq!(job["history"][0]["outcome"], "handed_back", "{job}");
    assert_eq!(job["history"][0]["worker_id"], "w-swapped", "{job}");
    assert!(
        job["waiting"]["message"]
            .as_str()
            .unwrap()
            .contains("w-swapped (ComfyUI 0.11.1): needs ComfyUI <0.10, not 0.11.1"),
        "{job}"
    );
    registered("0.11.1").await;
    assert_eq!(worker.health.count(Outcome::Unfit), 1);
    assert_eq!(swapped.submitted(), 0, "nothing was sent to 0.11.1");

    // A 0.9.2 worker comes: the job runs there.
    let old = emulator("0.9.2", 5).await;
    let other = TestWorker::start(worker_config(&q.url(), &old.url(), "w-old"));
    let done = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(attempts(&done), 1, "{done}");
    assert_eq!(done["worker_id"], "w-old");
    assert_eq!(done["result"]["comfyui"]["version"], "0.9.2");
    assert!(done.get("waiting").is_none(), "{done}");
    other.stop().await;
    worker.stop().await;
    old.stop().await;
    swapped.stop().await;
}

/// Three `ImageInvert`s in a circle feeding a `SaveImage`: ComfyUI refuses
/// it at validation (400 `prompt_outputs_failed_validation`, no node errors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_cycle_is_a_validation_error_and_not_retried() {
    let q = sqlite_queue(3).await;
    for v in ["0.9.2", "0.11.1", "0.33.0"] {
        let emu = emulator(v, 5).await;
        let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-cycle"));
        let invert =
            |from: &str| json!({"class_type": "ImageInvert", "inputs": {"image": [from, 0]}});
        let cycle = json!({
            "1": invert("3"), "2": invert("1"), "3": invert("2"),
            "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "cycle"}},
        });
        let id = q.submit("user008", &cycle).await;
        let job = q.api.wait_terminal(&id, T).await.unwrap();
        assert_eq!(job["status"], "failed", "{v}: {job}");
        assert_eq!(attempts(&job), 1, "{v}: not retried");
        let e = reported_error(&job);
        assert_eq!(e["class"], "validation_error", "{v}: {e}");
        assert_eq!(e["retryable"], false, "{v}: {e}");
        assert_eq!(
            e["detail"]["server_type"], "prompt_outputs_failed_validation",
            "{v}: {e}"
        );
        assert_eq!(e["detail"]["node_errors"], json!([]), "{v}: {e}");
        assert_eq!(emu.submitted(), 0, "{v}: nothing queued in ComfyUI");
        worker.stop().await;
        emu.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_retried_then_given_up() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    let q = sqlite_queue(2).await;
    let emu = emulator("0.11.1", 5).await;
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-oom"));
    let id = q.submit("user003", &image_prompt("emulator_oom")).await;
    let job = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(
        attempts(&job),
        2,
        "retried once, then out of attempts: {job}"
    );
    let e = reported_error(&job);
    assert_eq!(e["class"], "out_of_memory", "{e}");
    assert_eq!(e["retryable"], true);
    worker.stop().await;
    emu.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_running_job_interrupts_the_prompt() {
    let q = sqlite_queue(3).await;
    for v in ["0.3.64", "0.11.1", "0.33.0"] {
        let emu = emulator(v, 5).await;
        let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-cancel"));
        let id = q.submit("user004", &image_prompt("emulator_stall")).await;
        q.api
            .wait_for(&id, T, |j| j["status"] == "running")
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + T;
        while emu.running().is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{v}: prompt never ran"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The worker's heartbeats carry progress, which the queue shows on the job
        // (the dashboard renders it): the stalled SaveImage is the node running.
        let job = q
            .api
            .wait_for(&id, T, |j| j["progress"]["node_class"] == "SaveImage")
            .await
            .unwrap_or_else(|e| panic!("{v}: no progress on the running job: {e}"));
        assert!(job["progress"]["prompt_id"].is_string(), "{v}: {job}");
        q.api.cancel(&id).await.unwrap();
        let job = q.api.wait_terminal(&id, T).await.unwrap();
        assert_eq!(job["status"], "cancelled", "{v}: {job}");
        assert_eq!(
            job["progress"],
            serde_json::Value::Null,
            "{v}: progress ends with the attempt"
        );
        assert_eq!(emu.running(), None, "{v}: the prompt was interrupted");
        assert_eq!(emu.queue_remaining(), 0);
        worker.stop().await;
        emu.stop().await;
    }
}

/// Cancels a job through the queue while its `SaveImage` is held inside
/// the node, lets the node go on once the interrupt reached ComfyUI, and
/// returns the job as the worker reported it.
async fn cancel_while_saving(v: &str, uninterruptible: Option<&str>, user: &str) -> Value {
    let q = sqlite_queue(3).await;
    let emu = emulator(v, 5).await;
    emu.set_uninterruptible_class(uninterruptible);
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-late-cancel"));
    let held = emu.hold(comfy_emulator::Breakpoint::in_node().class("SaveImage"));
    let id = q.submit(user, &image_prompt("late")).await;
    tokio::time::timeout(T, held.reached())
        .await
        .unwrap_or_else(|_| panic!("{v}: SaveImage never ran"));
    q.api.cancel(&id).await.unwrap();
    let deadline = tokio::time::Instant::now() + T;
    while emu.interrupts() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{v}: the worker never interrupted the prompt"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held.release();
    let job = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(emu.running(), None, "{v}: the prompt ended");
    worker.stop().await;
    emu.stop().await;
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_the_running_node_ignores_completes_the_job_with_its_outputs() {
    for v in ["0.9.2", "0.33.0"] {
        let job = cancel_while_saving(v, Some("SaveImage"), "user006").await;
        assert_eq!(job["status"], "completed", "{v}: {job}");
        let result = &job["result"];
        assert_eq!(
            result["outputs"].as_array().map(Vec::len),
            Some(1),
            "{v}: {result}"
        );
        assert_eq!(result["cancel"]["requested"], true, "{v}: {result}");
        assert_eq!(result["cancel"]["honoured"], false, "{v}: {result}");
        assert!(result["cancel"]["note"].is_string(), "{v}: {result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_the_running_node_sees_cancels_the_job() {
    for v in ["0.9.2", "0.33.0"] {
        let job = cancel_while_saving(v, None, "user007").await;
        assert_eq!(job["status"], "cancelled", "{v}: {job}");
        assert_eq!(reported_error(&job)["class"], "cancelled", "{v}: {job}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_of_a_prompt_still_waiting_in_comfyui_cancels_the_job() {
    for v in ["0.9.2", "0.33.0"] {
        let q = sqlite_queue(3).await;
        let emu = emulator(v, 5).await;
        // Someone else's prompt holds ComfyUI, so the job's prompt waits.
        let held = emu.hold(comfy_emulator::Breakpoint::before_node());
        let other = reqwest::Client::new()
            .post(format!("{}/prompt", emu.url()))
            .json(&json!({"prompt": image_prompt("other")}))
            .send()
            .await
            .unwrap();
        assert!(other.status().is_success(), "{v}");
        tokio::time::timeout(T, held.reached())
            .await
            .unwrap_or_else(|_| panic!("{v}: the other prompt never ran"));
        let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-pending-cancel"));
        let id = q.submit("user009", &image_prompt("waiting")).await;
        let deadline = tokio::time::Instant::now() + T;
        while emu.queue_remaining() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{v}: the job's prompt never reached ComfyUI"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        q.api.cancel(&id).await.unwrap();
        let job = q.api.wait_terminal(&id, T).await.unwrap();
        assert_eq!(job["status"], "cancelled", "{v}: {job}");
        assert_eq!(reported_error(&job)["class"], "cancelled", "{v}: {job}");
        assert_eq!(
            emu.queue_remaining(),
            1,
            "{v}: only the other prompt is left"
        );
        held.release();
        worker.stop().await;
        emu.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_never_hangs_a_job() {
    let q = sqlite_queue(3).await;
    let emu = emulator("0.9.2", 5).await;
    emu.set_faults(Faults {
        silent_ws: true,
        ..Faults::default()
    });
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-silent"));
    let id = q.submit("user005", &image_prompt("quiet")).await;
    let job = q.api.wait_terminal(&id, T).await.unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    worker.stop().await;
    emu.stop().await;
}

async fn restarted_mid_job(before: &str, after: &str) {
    let q = sqlite_queue(3).await;
    let emu = emulator(before, 800).await;
    let addr = emu.addr();
    let worker = TestWorker::start(worker_config(&q.url(), &emu.url(), "w-upgrade"));
    let id = q.submit("user006", &image_prompt("upgrade")).await;
    let deadline = tokio::time::Instant::now() + T;
    while emu.running().is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ComfyUI dies mid-prompt and comes back upgraded on the same address.
    emu.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let upgraded = Emulator::start(
        EmulatorConfig::new(after)
            .addr(addr)
            .node_time(Duration::from_millis(5)),
    )
    .await
    .unwrap();
    let job = q
        .api
        .wait_terminal(&id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        attempts(&job),
        2,
        "the interrupted attempt was retried: {job}"
    );
    assert_eq!(job["result"]["comfyui"]["version"], after);
    assert!(worker.health.detections() >= 2, "re-detected");
    let workers = q.api.workers().await.unwrap();
    let list = workers
        .as_array()
        .or_else(|| workers["workers"].as_array())
        .unwrap();
    let me = list.iter().find(|w| w["worker_id"] == "w-upgrade").unwrap();
    assert_eq!(me["comfyui_version"], after, "re-registered: {me}");
    worker.stop().await;
    upgraded.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfy_restarted_mid_job_retries_and_redetects() {
    restarted_mid_job("0.11.1", "0.11.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfy_upgraded_mid_job_from_0_9_2_to_0_11_1_retries_and_redetects() {
    restarted_mid_job("0.9.2", "0.11.1").await;
}

/// Issue 12 item 7 (worker): ComfyUI goes away while the worker waits for a job, so the
/// job it leases next is handed back (fail with retry) before any prompt is sent. That
/// hand-back counts on /health and /metrics like any other, and its log line names the job.
#[tokio::test]
async fn a_job_handed_back_before_its_prompt_is_counted_and_logged_with_its_id() {
    use comfy_worker::health::Outcome;
    use tracing::instrument::WithSubscriber;

    let q = sqlite_queue(3).await;
    let emu = emulator("0.9.2", 10).await;
    let buf = LogBuf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let worker =
        comfy_worker::Worker::new(worker_config(&q.url(), &emu.url(), "w-handback")).unwrap();
    let health = worker.health();
    let addr = comfy_worker::health::serve("127.0.0.1:0".parse().unwrap(), health.clone())
        .await
        .unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(rx).with_subscriber(subscriber));
    // Registered (detected ComfyUI), then ComfyUI goes away.
    let deadline = tokio::time::Instant::now() + T;
    while !q
        .api
        .workers()
        .await
        .unwrap()
        .to_string()
        .contains("w-handback")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emu.stop().await;
    let id = q.submit("user001", &image_prompt("handback")).await;
    let job = q
        .api
        .wait_for(&id, T, |j| j["history"][0]["outcome"] == "failed")
        .await
        .unwrap();
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["history"][0]["worker_id"], "w-handback");
    // The worker counts it once its fail call has returned.
    let deadline = tokio::time::Instant::now() + T;
    while health.count(Outcome::Retried) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hand-back was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    let _ = task.await;
    let h: Value = reqwest::get(format!("http://{addr}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["jobs"]["retried"], 1, "{h}");
    let m = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("comfy_worker_jobs_total{outcome=\"retried\"} 1"),
        "{m}"
    );
    let log = buf.text();
    let line = log
        .lines()
        .find(|l| l.contains("handed the job back"))
        .unwrap_or_else(|| panic!("no hand-back line in\n{log}"));
    assert!(line.contains(&format!("job_id={id}")), "{line}");
}

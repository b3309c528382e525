//! A cancel reaches the worker when it is made, not at its next heartbeat:
//! each heartbeat waits for a cancel request (`heartbeat?wait=`) and the
//! queue answers it the moment one is made. Here heartbeats are 25 s apart
//! and the job is cancelled 0.2 s after one, so only the pushed path can end
//! it within the 10 s the test waits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::{TestWorker, emulator, image_prompt, seed_metadata, worker_config};
use comfy_stack::{QueueOptions, UserApi, start_queue};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_running_worker_before_its_next_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = QueueOptions::sqlite(dir.path().join("q.db")).short_leases(Duration::from_secs(90));
    o.settings.max_pending = 0;
    o.settings.max_wait_secs = 30.0;
    let q = start_queue(o).await.unwrap();
    let api = UserApi::new(&q.url());
    let emu = emulator("0.33.0", 5).await;
    let mut config = worker_config(&q.url(), &emu.url(), "w-push");
    config.heartbeat_secs = Some(25.0);
    let worker = TestWorker::start(config);

    let job = api
        .submit("user001", &image_prompt("emulator_stall"), seed_metadata())
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    api.wait_for(&id, Duration::from_secs(20), |j| j["status"] == "running")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while emu.running().is_none() {
        assert!(Instant::now() < deadline, "the prompt never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    api.cancel(&id).await.unwrap();
    let job = api
        .wait_terminal(&id, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| {
            panic!("the cancel did not reach the worker before its next heartbeat: {e}")
        });
    println!(
        "cancel → job {} in {:.1} ms (heartbeats every 25 s)",
        job["status"],
        asked.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(job["status"], "cancelled", "{job}");
    assert_eq!(emu.running(), None, "the prompt was interrupted");
    worker.stop().await;
    emu.stop().await;
    q.stop().await;
}

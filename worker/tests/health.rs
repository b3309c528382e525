//! `/health` and `/metrics` over HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_worker::health::{CurrentJob, Health, Outcome, Status, serve};
use comfy_worker::queue_client::Progress;
use std::sync::Arc;

#[tokio::test]
async fn health_reflects_status_job_progress_and_counters() {
    let h = Arc::new(Health::new("gpu-1", "http://127.0.0.1:8188"));
    let addr = serve("127.0.0.1:0".parse().unwrap(), h.clone())
        .await
        .unwrap();
    let base = format!("http://{addr}");

    let r = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "starting is not healthy yet");

    h.detected(Some("0.11.1".into()), "jobs-api".into());
    h.set_status(Status::Healthy, None);
    h.set_job(Some(CurrentJob {
        job_id: "j1".into(),
        user_id: "user001".into(),
        attempt: 1,
        progress: Progress::default(),
    }));
    h.set_progress(Progress {
        percent: 50.0,
        node: Some("2".into()),
        node_class: Some("SaveImage".into()),
        prompt_id: Some("p1".into()),
    });
    h.record(Outcome::Completed, 120);
    let r = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "healthy");
    assert_eq!(v["worker_id"], "gpu-1");
    assert_eq!(v["comfyui"]["version"], "0.11.1");
    assert_eq!(v["current_job"]["progress"]["percent"], 50.0);
    assert_eq!(v["current_job"]["progress"]["node_class"], "SaveImage");
    assert_eq!(v["jobs"]["completed"], 1);

    let m = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("comfy_worker_up 1"), "{m}");
    assert!(m.contains("comfy_worker_busy 1"));
    assert!(m.contains("comfy_worker_job_progress_percent 50"));
    assert!(m.contains("comfy_worker_jobs_total{outcome=\"completed\"} 1"));

    h.set_status(Status::Unhealthy, Some("ComfyUI unreachable".into()));
    let r = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["reason"], "ComfyUI unreachable");
}

//! End to end: a real worker publishes its emulated ComfyUI's node catalogue to a real queue
//! (auth on) at registration, and a user reads it back through the queue, the same classes
//! in the same order as the ComfyUI's own `/object_info`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_e2e::{TestWorker, authed_sqlite_options, emulator, worker_config};
use comfy_queue_api::CatalogueList;
use comfy_stack::start_queue;
use std::time::{Duration, Instant};

const WORKER_TOKEN: &str = "wtok";
const ADMIN_TOKEN: &str = "atok";

#[tokio::test]
async fn a_worker_publishes_its_catalogue_and_a_user_reads_it_from_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let queue = start_queue(authed_sqlite_options(dir.path(), WORKER_TOKEN, ADMIN_TOKEN))
        .await
        .unwrap();
    let gpu = emulator("0.11.1", 0).await;
    let mut cfg = worker_config(&queue.url(), &gpu.url(), "gpu-cat");
    cfg.worker_token = Some(WORKER_TOKEN.into());
    let worker = TestWorker::start(cfg);

    let http = reqwest::Client::new();
    let as_user = |path: &str| {
        http.get(format!("{}{path}", queue.url()))
            .header("X-Forwarded-User", "alice")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = loop {
        let r = as_user("/api/catalogues").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let list: CatalogueList = r.json().await.unwrap();
        if !list.catalogues.is_empty() {
            break list;
        }
        assert!(Instant::now() < deadline, "no catalogue was published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(list.catalogues.len(), 1);
    let info = &list.catalogues[0];
    assert_eq!(info.workers, vec!["gpu-cat".to_owned()]);
    assert_eq!(info.comfyui_version.as_deref(), Some("0.11.1"));

    let r = as_user(&format!("/api/catalogues/{}", info.sha256))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, info.size);
    let published = NodeCatalogue::from_slice(&bytes).unwrap();
    let own = http
        .get(format!("{}/object_info", gpu.url()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let own = NodeCatalogue::from_slice(&own).unwrap();
    assert!(published.len() > 10, "{} classes", published.len());
    assert!(published.class_names().eq(own.class_names()));
    for class in own.class_names() {
        assert_eq!(
            published.node(class).unwrap().unwrap(),
            own.node(class).unwrap().unwrap(),
            "{class}"
        );
    }
    // Anonymous callers are refused (auth is on).
    let r = http
        .get(format!("{}/api/catalogues", queue.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    worker.stop().await;
}

//! The worker publishes its ComfyUI's node catalogue to the queue at registration and again
//! when it changes: a queue and a ComfyUI 0.33.0 played by wiremock (the recorded catalogue).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_worker::config::Config;
use common::start;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn recorded(file: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../fixtures/comfyui-0.33.0/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["response"]["body"].clone()
}

/// A ComfyUI 0.33.0 as detection sees it, answering `catalogue` for `/object_info`.
async fn mount_comfy(comfy: &MockServer, catalogue: &Value) {
    Mock::given(method("GET"))
        .and(path("/system_stats"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded("001-system_stats.json")))
        .mount(comfy)
        .await;
    Mock::given(method("GET"))
        .and(path("/features"))
        .respond_with(ResponseTemplate::new(200).set_body_json(recorded("003-features.json")))
        .mount(comfy)
        .await;
    // The jobs API and the cancel API exist (both refuse the probes with 400).
    Mock::given(method("GET"))
        .and(path("/api/jobs"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "bad limit"})))
        .mount(comfy)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/jobs/cancel"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "bad ids"})))
        .mount(comfy)
        .await;
    Mock::given(method("GET"))
        .and(path("/object_info"))
        .respond_with(ResponseTemplate::new(200).set_body_json(catalogue))
        .mount(comfy)
        .await;
}

/// The queue: stores catalogues (or, `old`, has no such route), takes registrations, has
/// no jobs (the long-poll answers after 50 ms).
async fn mount_queue(queue: &MockServer, old: bool) {
    let put = if old {
        ResponseTemplate::new(404)
            .set_body_json(json!({"error": {"code": "route_not_found", "message": "no"}}))
    } else {
        ResponseTemplate::new(201).set_body_json(json!({"sha256": "ignored", "size": 1}))
    };
    Mock::given(method("PUT"))
        .and(path_regex("^/api/workers/catalogues/[0-9a-f]{64}$"))
        .respond_with(put)
        .mount(queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/workers/register"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"worker_id": "gpu-1"})))
        .mount(queue)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/workers/next-job"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"job": null}))
                .set_delay(Duration::from_millis(50)),
        )
        .mount(queue)
        .await;
}

fn config(queue: &MockServer, comfy: &MockServer, refresh_secs: f64) -> Config {
    let mut c = Config::for_urls(&queue.uri(), &comfy.uri());
    c.worker_id = Some("gpu-1".into());
    c.worker_token = Some("wtok".into());
    c.poll_wait_secs = 0.0;
    c.catalogue_refresh_secs = refresh_secs;
    c.backoff_min_secs = 0.05;
    c.backoff_max_secs = 0.2;
    c
}

async fn requests(server: &MockServer, m: &str, prefix: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path().starts_with(prefix))
        .collect()
}

/// Waits (at most 10 s) until `server` received `n` requests of `m` under `prefix`.
async fn wait_for(server: &MockServer, m: &str, prefix: &str, n: usize) -> Vec<Request> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = requests(server, m, prefix).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} {m} {prefix} requests, wanted {n}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn registered_catalogue(r: &Request) -> Option<String> {
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    body.get("catalogue")
        .map(|c| c.as_str().unwrap().to_owned())
}

fn put_hash(r: &Request) -> String {
    r.url.path().rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_catalogue_is_published_at_registration_and_again_when_it_changes() {
    let comfy = MockServer::start().await;
    let queue = MockServer::start().await;
    let original = recorded("018-object_info-full.json");
    mount_comfy(&comfy, &original).await;
    mount_queue(&queue, false).await;
    let running = start(config(&queue, &comfy, 0.3));

    let registers = wait_for(&queue, "POST", "/api/workers/register", 1).await;
    let puts = requests(&queue, "PUT", "/api/workers/catalogues/").await;
    assert_eq!(puts.len(), 1, "uploaded once, before the registration");
    let put = &puts[0];
    let sha = put_hash(put);
    assert_eq!(
        hex::encode(Sha256::digest(&put.body)),
        sha,
        "the path is the bytes' hash"
    );
    assert_eq!(put.headers["content-type"], "application/json");
    assert_eq!(put.headers["authorization"], "Bearer wtok");
    assert_eq!(registered_catalogue(&registers[0]), Some(sha.clone()));
    let reg: Value = serde_json::from_slice(&registers[0].body).unwrap();
    assert_eq!(reg["comfyui_version"], "0.33.0");
    // The bytes are ComfyUI's whole catalogue, every class in its order.
    let sent = NodeCatalogue::from_slice(&put.body).unwrap();
    let want = NodeCatalogue::from_slice(&serde_json::to_vec(&original).unwrap()).unwrap();
    assert_eq!(sent.len(), want.len());
    assert!(sent.class_names().eq(want.class_names()));
    assert!(sent.len() > 100, "the full catalogue: {}", sent.len());

    // Refreshes read it again; unchanged, nothing is re-registered.
    wait_for(&comfy, "GET", "/object_info", 3).await;
    assert_eq!(
        requests(&queue, "POST", "/api/workers/register")
            .await
            .len(),
        1
    );

    // A model is added on the GPU box: the loader's choices change.
    let mut changed = original.clone();
    changed["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
        .as_array_mut()
        .unwrap()
        .push(json!("flux2-new.safetensors"));
    assert_ne!(changed, original);
    comfy.reset().await;
    mount_comfy(&comfy, &changed).await;
    let registers = wait_for(&queue, "POST", "/api/workers/register", 2).await;
    let puts = requests(&queue, "PUT", "/api/workers/catalogues/").await;
    let new_sha = put_hash(puts.last().unwrap());
    assert_ne!(new_sha, sha);
    assert_eq!(
        hex::encode(Sha256::digest(&puts.last().unwrap().body)),
        new_sha
    );
    assert_eq!(registered_catalogue(&registers[1]), Some(new_sha.clone()));
    let again: Value = serde_json::from_slice(&registers[1].body).unwrap();
    assert_eq!(
        again["comfyui_version"], "0.33.0",
        "the same registration otherwise"
    );
    assert_eq!(again["capabilities"], reg["capabilities"]);
    running.stop().await;
    // Nothing more than those two registrations.
    assert_eq!(
        requests(&queue, "POST", "/api/workers/register")
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn an_older_queue_without_the_route_gets_a_registration_without_a_catalogue() {
    let comfy = MockServer::start().await;
    let queue = MockServer::start().await;
    mount_comfy(&comfy, &recorded("018-object_info-full.json")).await;
    mount_queue(&queue, true).await;
    let running = start(config(&queue, &comfy, 0.2));
    let registers = wait_for(&queue, "POST", "/api/workers/register", 1).await;
    assert_eq!(registered_catalogue(&registers[0]), None);
    let body: Value = serde_json::from_slice(&registers[0].body).unwrap();
    assert!(body.get("catalogue").is_none(), "{body}");
    // Refreshes try again (the queue may be upgraded) but never re-register without a change.
    wait_for(&queue, "PUT", "/api/workers/catalogues/", 3).await;
    running.stop().await;
    assert_eq!(
        requests(&queue, "POST", "/api/workers/register")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_catalogue_the_queue_lost_before_the_registration_is_uploaded_again() {
    let comfy = MockServer::start().await;
    let queue = MockServer::start().await;
    mount_comfy(&comfy, &recorded("018-object_info-full.json")).await;
    // The first registration finds the catalogue swept (400 unknown_catalogue).
    Mock::given(method("POST"))
        .and(path("/api/workers/register"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"code": "unknown_catalogue", "message": "gone", "field": "catalogue"}}),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&queue)
        .await;
    mount_queue(&queue, false).await;
    let running = start(config(&queue, &comfy, 0.0));
    let registers = wait_for(&queue, "POST", "/api/workers/register", 2).await;
    running.stop().await;
    let puts = requests(&queue, "PUT", "/api/workers/catalogues/").await;
    assert_eq!(puts.len(), 2, "uploaded again after the 400");
    assert_eq!(
        registers.len(),
        2,
        "no back-off loop: one more registration"
    );
    let sha = put_hash(&puts[1]);
    assert_eq!(registered_catalogue(&registers[1]), Some(sha));
    // With --catalogue-refresh-secs 0 it is read at detection only (and again for the retry).
    assert_eq!(requests(&comfy, "GET", "/object_info").await.len(), 2);
}

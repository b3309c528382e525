//! What one large submit costs the queue in memory, counted by the allocator (this binary's
//! global allocator counts the live bytes and their peak): the workflow stays the JSON text
//! it came in as, from the body to the store, and is never built into a tree of values
//! (which took about 16 times the body). One test in this binary, so nothing else allocates
//! meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use comfy_queue::Settings;
use peak_alloc::PeakAlloc;
use tower::ServiceExt;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// An API prompt of `nodes` nodes, as the submit-memory benchmark sends it.
fn big_submit(nodes: usize) -> Vec<u8> {
    let mut w = serde_json::Map::new();
    for i in 0..nodes {
        w.insert(
            i.to_string(),
            serde_json::json!({"class_type": "EmptyImage",
                "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": i},
                "_meta": {"title": format!("Empty Image number {i}")}}),
        );
    }
    serde_json::to_vec(&serde_json::json!({"user_id": "u1", "workflow": w})).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_large_submit_holds_at_most_three_times_its_body() {
    let a = common::test_app(Settings {
        max_pending: 0,
        ..Settings::default()
    });
    // The first submit allocates what every later one reuses (statements, caches).
    a.submit("u1", 2).await;
    let body = big_submit(25_000);
    let len = body.len();
    let req = Request::builder()
        .method("POST")
        .uri("/api/jobs")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let base = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let resp = a.app.clone().oneshot(req).await.unwrap();
    let peak = ALLOC.peak_usage().saturating_sub(base);
    let status = resp.status();
    drop(resp);
    println!(
        "body {len} bytes, peak {peak} bytes over the start: {:.2}x",
        peak as f64 / len as f64
    );
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        peak <= 3 * len,
        "one submit of {len} bytes held {peak} bytes at its peak ({:.1}x the body; at most 3x)",
        peak as f64 / len as f64
    );
    // The job is stored and listed as any other.
    let jobs = a.get("/api/jobs").await;
    assert_eq!(jobs.json.as_array().map(Vec::len), Some(2), "{}", jobs.text);
}

//! The bound on the bytes of submit bodies being read and processed at once
//! (`--max-body-bytes-in-flight`): past it a submit is answered 503 `server_busy` with
//! `Retry-After`, nothing of it is stored, and the bodies within it are accepted. Bodies are
//! streamed into the in-process app and held open, so which ones are in flight is known
//! without any timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use clap::Parser;
use comfy_queue::config::Config;
use tokio::sync::mpsc;
use tower::ServiceExt;

const MIB: usize = 1 << 20;

/// A valid submit body of exactly `len` bytes (the workflow padded).
fn body_of(len: usize) -> Vec<u8> {
    let head = br#"{"user_id":"u1","workflow":{"1":{"class_type":"X","inputs":{"pad":""#;
    let tail = br#""}}}}"#;
    let mut b = head.to_vec();
    b.resize(len - tail.len(), b'x');
    b.extend_from_slice(tail);
    assert_eq!(b.len(), len);
    b
}

fn submit_request(body: Body, len: Option<usize>) -> Request<Body> {
    let mut r = Request::builder()
        .method("POST")
        .uri("/api/jobs")
        .header("content-type", "application/json");
    if let Some(len) = len {
        r = r.header("content-length", len.to_string());
    }
    r.body(body).unwrap()
}

/// A body whose chunks the test sends; it ends when the sender is dropped.
fn streamed() -> (mpsc::Sender<Bytes>, Body) {
    // Room for one chunk: a second `send` returns only once the server took the first.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (Ok::<_, Infallible>(c), rx))
    });
    (tx, Body::from_stream(stream))
}

/// A submit being answered while its body is still being sent.
type Open = (
    mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<Result<axum::response::Response, Infallible>>,
);

/// Starts `n` submits of `body` (its length declared) and sends the first 2,000 bytes of
/// each: the server has taken room for every one of them and waits for the rest.
async fn hold_submits(a: &common::TestApp, body: &[u8], n: usize) -> Vec<Open> {
    let mut open = Vec::new();
    for _ in 0..n {
        let (tx, req_body) = streamed();
        let app = a.app.clone();
        let len = body.len();
        let answer =
            tokio::spawn(async move { app.oneshot(submit_request(req_body, Some(len))).await });
        // The first chunk is taken by the server once it reads the body, which it does
        // after it took room for the declared length.
        tx.send(Bytes::copy_from_slice(&body[..1000]))
            .await
            .unwrap();
        tx.send(Bytes::copy_from_slice(&body[1000..2000]))
            .await
            .unwrap();
        open.push((tx, answer));
    }
    open
}

/// Sends the rest of each held submit and checks it is accepted.
async fn finish_submits(open: Vec<Open>, body: &[u8]) {
    for (tx, answer) in open {
        tx.send(Bytes::copy_from_slice(&body[2000..]))
            .await
            .unwrap();
        drop(tx);
        let resp = answer.await.unwrap().unwrap();
        let status = resp.status();
        assert_eq!(status, StatusCode::CREATED, "{}", json_of(resp).await);
    }
}

async fn json_of(resp: axum::response::Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn submits_past_the_bytes_in_flight_are_refused_with_retry_after_and_not_stored() {
    let config = Config::try_parse_from([
        "comfy-queue",
        "--max-pending",
        "0",
        "--max-body-bytes-in-flight",
        &(3 * MIB).to_string(),
    ])
    .unwrap();
    let a = common::test_app(config.settings());

    // Three bodies of 1 MiB each are being sent: together they take the whole budget.
    let body = body_of(MIB);
    let open = hold_submits(&a, &body, 3).await;

    // A fourth, declared: refused before its body is read.
    let resp = a
        .app
        .clone()
        .oneshot(submit_request(Body::from(body.clone()), Some(MIB)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let err = json_of(resp).await;
    assert_eq!(err["error"]["code"], "server_busy", "{err}");
    assert!(err["detail"].is_string(), "{err}");

    // A fifth without a length (chunked): refused as its first chunk arrives.
    let (tx, req_body) = streamed();
    let app = a.app.clone();
    let answer = tokio::spawn(async move { app.oneshot(submit_request(req_body, None)).await });
    let _ = tx.send(Bytes::copy_from_slice(&body[..4096])).await;
    let resp = answer.await.unwrap().unwrap();
    drop(tx);
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(resp).await["error"]["code"], "server_busy");

    // The three in flight finish and are accepted.
    finish_submits(open, &body).await;
    // Only they were stored.
    let jobs = a.get("/api/jobs").await;
    assert_eq!(jobs.json.as_array().map(Vec::len), Some(3), "{}", jobs.text);

    // Their room was given back: the next submit is accepted.
    let resp = a
        .app
        .clone()
        .oneshot(submit_request(Body::from(body), Some(MIB)))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_workflow_nested_past_what_can_be_handed_out_is_refused_before_it_is_stored() {
    let a = common::test_app(comfy_queue::Settings::default());
    // 125 levels (the workflow and 124 arrays in its node): stored, and handed out in a
    // next-job answer a worker can still parse (two levels more).
    let ok = format!(
        r#"{{"user_id":"u1","workflow":{{"1":{}{}}}}}"#,
        "[".repeat(124),
        "]".repeat(124)
    );
    let r = a.req("POST", "/api/jobs", &[], Some(ok.into_bytes())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let claim = a.get("/api/workers/next-job?worker_id=w1").await;
    assert_eq!(claim.status, StatusCode::OK, "{}", claim.text);
    assert!(
        claim.json["job"]["workflow"]["1"].is_array(),
        "{}",
        claim.text
    );
    // One level more, and 10,000 levels: 400, as a body that does not parse, nothing stored.
    let over = format!(
        r#"{{"user_id":"u1","workflow":{{"1":{}{}}}}}"#,
        "[".repeat(125),
        "]".repeat(125)
    );
    let r = a
        .req("POST", "/api/jobs", &[], Some(over.into_bytes()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let deep = format!(
        r#"{{"user_id":"u1","workflow":{{"1":{}{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = a
        .req("POST", "/api/jobs", &[], Some(deep.into_bytes()))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "malformed_json", "{}", r.text);
    let jobs = a.get("/api/jobs").await;
    assert_eq!(jobs.json.as_array().map(Vec::len), Some(1), "{}", jobs.text);
}

#[tokio::test]
async fn a_result_past_the_bytes_in_flight_is_refused_with_retry_after_and_taken_later() {
    let config = Config::try_parse_from([
        "comfy-queue",
        "--max-pending",
        "0",
        "--max-body-bytes-in-flight",
        &(3 * MIB).to_string(),
    ])
    .unwrap();
    let a = common::test_app(config.settings());
    let id = a.submit("u1", 2).await;
    let leased = a.get("/api/workers/next-job?worker_id=w1").await;
    assert_eq!(leased.json["job"]["id"], id.as_str(), "{}", leased.text);

    // Three submits of 1 MiB are being sent and hold the whole budget.
    let body = body_of(MIB);
    let open = hold_submits(&a, &body, 3).await;

    // A 1 MiB result does not fit: 503 with Retry-After, and the job still runs.
    let result = {
        let mut r = br#"{"result":{"pad":""#.to_vec();
        r.resize(MIB - 3, b'x');
        r.extend_from_slice(br#""}}"#);
        r
    };
    let complete = |result: Vec<u8>| {
        Request::builder()
            .method("POST")
            .uri(format!("/api/workers/complete-job?job_id={id}"))
            .header("content-type", "application/json")
            .header("content-length", result.len().to_string())
            .body(Body::from(result))
            .unwrap()
    };
    let resp = a
        .app
        .clone()
        .oneshot(complete(result.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(json_of(resp).await["error"]["code"], "server_busy");
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["status"],
        "running"
    );

    // Once the submits are in, the worker's retry is taken.
    finish_submits(open, &body).await;
    let resp = a.app.clone().oneshot(complete(result)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        a.get(&format!("/api/jobs/{id}")).await.json["status"],
        "completed"
    );
}

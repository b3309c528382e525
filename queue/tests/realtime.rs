//! Real-socket tests: `/ws` with tokio-tungstenite and the long-poll of `next-job`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use comfy_queue::auth::AuthConfig;
use comfy_queue::clock::SystemClock;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use comfy_test_support::http::{Client, Identity};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn serve(settings: Settings) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let state = AppState::new(
        Arc::new(store),
        common::local_files(&dir.path().join("files")),
        Arc::new(SystemClock),
        settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    Server { addr, _dir: dir }
}

async fn next_text<S>(ws: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no websocket message within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return t.to_string();
        }
    }
}

#[tokio::test]
async fn ws_answers_pong_and_pushes_job_events() {
    let s = serve(Settings::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
        .await
        .unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "pong: hello");

    let http = Client::new(format!("http://{}", s.addr));
    let r = http
        .post(
            "/api/jobs",
            &json!({"user_id": "alice", "workflow": {"1": {"secret": "prompt"}}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let text = next_text(&mut ws).await;
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ev["type"], "job_created");
    assert_eq!(ev["data"]["id"], id.as_str());
    assert_eq!(ev["data"]["status"], "pending");
    assert!(ev["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(!text.contains("secret"), "events never carry the workflow");

    let r = http.delete(&format!("/api/jobs/{id}")).await;
    assert_eq!(r.status, 204);
    let ev: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(ev["type"], "job_updated");
    assert_eq!(ev["data"]["status"], "cancelled");
    let ev: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(ev["type"], "job_deleted");
    assert_eq!(ev["data"], json!({"job_id": id}));
}

#[tokio::test]
async fn ws_with_auth_scopes_events_to_the_user() {
    let s = serve(Settings {
        auth: AuthConfig {
            worker_token: Some("w-tok".into()),
            admin_token: Some("a-tok".into()),
            user_header: "X-Forwarded-User".into(),
        },
        ..Settings::default()
    })
    .await;
    let url = format!("ws://{}/ws", s.addr);
    assert!(
        tokio_tungstenite::connect_async(&url).await.is_err(),
        "anonymous refused"
    );
    let mut req = url.as_str().into_client_request().unwrap();
    for (k, v) in Identity::user("alice").headers() {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    let (mut alice_ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let (mut admin_ws, _) = tokio_tungstenite::connect_async(format!("{url}?token=a-tok"))
        .await
        .unwrap();

    let http = Client::new(format!("http://{}", s.addr));
    for user in ["bob", "alice"] {
        let r = http
            .as_user(user)
            .post(
                "/api/jobs",
                &json!({"user_id": user, "workflow": {"1": {}}}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let ev: Value = serde_json::from_str(&next_text(&mut alice_ws).await).unwrap();
    assert_eq!(
        ev["data"]["user_id"], "alice",
        "bob's event was not sent to alice"
    );
    let ev: Value = serde_json::from_str(&next_text(&mut admin_ws).await).unwrap();
    assert_eq!(ev["data"]["user_id"], "bob", "the admin sees everything");
}

#[tokio::test]
async fn long_poll_hands_a_new_job_to_a_waiting_worker_at_once() {
    let s = serve(Settings::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", s.addr);
    // Warm up the connection pool so the timing measures the queue, not TCP setup.
    http.get(format!("{base}/health")).send().await.unwrap();

    let poll = {
        let http = http.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let r = http
                .get(format!("{base}/api/workers/next-job?worker_id=w1&wait=10"))
                .send()
                .await
                .unwrap();
            let got = Instant::now();
            (r.json::<Value>().await.unwrap(), got)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !poll.is_finished(),
        "the worker is waiting, not answered empty"
    );
    let submitted = Instant::now();
    let r = http
        .post(format!("{base}/api/jobs"))
        .json(&json!({"user_id": "alice", "workflow": {"1": {}}}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (body, got) = poll.await.unwrap();
    assert_eq!(body["job"]["id"], id.as_str());
    let latency = got.saturating_duration_since(submitted);
    eprintln!("long-poll hand-off latency: {latency:?}");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
}

#[tokio::test]
async fn long_poll_times_out_with_null_job() {
    let s = serve(Settings::default()).await;
    let started = Instant::now();
    let r: Value = reqwest::get(format!(
        "http://{}/api/workers/next-job?worker_id=w1&wait=0.3",
        s.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(r, json!({"job": null}));
    assert!(
        took >= Duration::from_millis(290),
        "answered too early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "answered too late: {took:?}");
}

#[tokio::test]
async fn long_poll_is_capped_by_the_server() {
    let s = serve(Settings {
        max_wait_secs: 0.2,
        ..Settings::default()
    })
    .await;
    let started = Instant::now();
    let r: Value = reqwest::get(format!(
        "http://{}/api/workers/next-job?worker_id=w1&wait=600",
        s.addr
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r, json!({"job": null}));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn each_waiting_worker_gets_one_of_the_new_jobs() {
    let s = serve(Settings::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", s.addr);
    let mut polls = Vec::new();
    for w in ["w1", "w2"] {
        let http = http.clone();
        let url = format!("{base}/api/workers/next-job?worker_id={w}&wait=10");
        polls.push(tokio::spawn(async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for _ in 0..2 {
        let r = http
            .post(format!("{base}/api/jobs"))
            .json(&json!({"user_id": "alice", "workflow": {"1": {}}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let mut ids = Vec::new();
    for p in polls {
        let v = p.await.unwrap();
        ids.push(v["job"]["id"].as_str().unwrap().to_owned());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn shutdown_answers_waiting_long_polls_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let state = AppState::new(
        Arc::new(store),
        common::local_files(&dir.path().join("files")),
        Arc::new(SystemClock),
        Settings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app_state = state.clone();
    tokio::spawn(async move { axum::serve(listener, app(app_state)).await });
    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let v: Value = reqwest::get(format!(
            "http://{addr}/api/workers/next-job?worker_id=w&wait=20"
        ))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        (v, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    state.begin_shutdown();
    let (v, took) = poll.await.unwrap();
    assert_eq!(v, json!({"job": null}));
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Issue 12 item 5: at shutdown every `/ws` client gets a close frame (1001, going away)
/// instead of a dropped connection, and the server learns when all of them are gone.
#[tokio::test]
async fn shutdown_closes_websockets_with_a_close_frame() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let state = AppState::new(
        Arc::new(store),
        common::local_files(&dir.path().join("files")),
        Arc::new(SystemClock),
        Settings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app_state = state.clone();
    tokio::spawn(async move { axum::serve(listener, app(app_state)).await });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    // The connection is being served (its handler has subscribed) once it answers.
    ws.send(Message::Text("hi".into())).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "pong: hi");
    state.begin_shutdown();
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("nothing from the server within 5 s")
        .expect("the stream ended without a close frame")
        .expect("the connection failed instead of closing");
    let Message::Close(Some(frame)) = msg else {
        panic!("expected a close frame, got {msg:?}");
    };
    assert_eq!(frame.code, CloseCode::Away);
    // The client's answer completes the closing handshake; then no /ws connection is left.
    drop(ws);
    tokio::time::timeout(Duration::from_secs(5), state.websockets_closed())
        .await
        .expect("a /ws connection outlived its close");
}

/// Issue 12 item 5 over a socket: a plain GET of `/ws` is a JSON 400.
#[tokio::test]
async fn ws_without_an_upgrade_is_a_json_400() {
    let s = serve(Settings::default()).await;
    let r = reqwest::get(format!("http://{}/ws", s.addr)).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "websocket_required", "{v}");
}

//! `POST /api/workers/events` and the `comfy_event` messages of `/ws`, over real sockets:
//! fencing (202, 409), limits (413, 400, 422), who receives the events (the job's owner and
//! admins, in order) and previews only with `?previews=true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use comfy_queue::auth::AuthConfig;
use comfy_queue::clock::SystemClock;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use comfy_test_support::http::{Client, Identity};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Server {
    addr: SocketAddr,
    state: AppState,
    _dir: tempfile::TempDir,
}

const WORKER: &str = "w-tok";
const ADMIN: &str = "a-tok";

async fn serve() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("q.db")).unwrap();
    let settings = Settings {
        auth: AuthConfig {
            worker_token: Some(WORKER.into()),
            admin_token: Some(ADMIN.into()),
            user_header: "X-Forwarded-User".into(),
        },
        ..Settings::default()
    };
    let files = comfy_artifacts::LocalStore::open(dir.path().join("files"))
        .await
        .unwrap();
    let state = AppState::new(
        Arc::new(store),
        Arc::new(files),
        Arc::new(SystemClock),
        settings,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = state.clone();
    tokio::spawn(async move { axum::serve(listener, app(served)).await });
    Server {
        addr,
        state,
        _dir: dir,
    }
}

impl Server {
    fn http(&self) -> Client {
        Client::new(format!("http://{}", self.addr))
    }

    async fn ws_as_user(&self, user: &str, query: &str) -> Ws {
        let url = format!("ws://{}/ws{query}", self.addr);
        let mut req = url.as_str().into_client_request().unwrap();
        for (k, v) in Identity::user(user).headers() {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = k.parse().unwrap();
            req.headers_mut().insert(name, v.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req).await.unwrap().0
    }

    async fn ws_as_admin(&self, extra: &str) -> Ws {
        let url = format!("ws://{}/ws?token={ADMIN}{extra}", self.addr);
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    /// Submits a job as `user` and leases it to a registered worker: (job id, token, attempt).
    async fn leased_job(&self, user: &str) -> (String, String, u64) {
        let http = self.http();
        let worker = http.as_worker(WORKER);
        let r = worker
            .post(
                "/api/workers/register",
                &json!({"worker_id": "gpu-1", "comfyui_version": "0.11.1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.json);
        let workflow = json!({
            "1": {"class_type": "EmptyImage", "inputs": {}},
            "2": {"class_type": "KSampler", "inputs": {}},
            "3": {"class_type": "SaveImage", "inputs": {}},
        });
        let r = http
            .as_user(user)
            .post("/api/jobs", &json!({"user_id": user, "workflow": workflow}))
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
        let r = worker.get("/api/workers/next-job?worker_id=gpu-1").await;
        let job = &r.json["job"];
        (
            job["id"].as_str().unwrap().to_owned(),
            job["lease_token"].as_str().unwrap().to_owned(),
            job["attempt"].as_u64().unwrap(),
        )
    }
}

/// The next `comfy_event` on `ws` (other messages are skipped).
async fn next_comfy_event(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no websocket message within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "comfy_event" {
                return v;
            }
        }
    }
}

/// Every text message on `ws` until the answer to a ping (nothing may be pending after it
/// within a short wait).
async fn messages_until_pong(ws: &mut Ws) -> Vec<Value> {
    ws.send(Message::Text("probe".into())).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no pong within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            if t.as_str() == "pong: probe" {
                break;
            }
            seen.push(serde_json::from_str(t.as_str()).unwrap());
        }
    }
    while let Ok(Some(Ok(Message::Text(t)))) =
        tokio::time::timeout(Duration::from_millis(300), ws.next()).await
    {
        seen.push(serde_json::from_str(t.as_str()).unwrap());
    }
    seen
}

fn batch(id: &str, token: &str, attempt: u64, events: Vec<Value>) -> Value {
    json!({"job_id": id, "lease_token": token, "attempt": attempt, "events": events})
}

fn event(seq: u64, event: Value) -> Value {
    json!({"seq": seq, "received_at_ms": 1_700_000_000_000i64 + seq as i64, "event": event})
}

#[tokio::test]
async fn events_reach_the_owner_and_admins_in_order_and_nobody_else() {
    let s = serve().await;
    let mut alice = s.ws_as_user("alice", "").await;
    let mut bob = s.ws_as_user("bob", "").await;
    let mut admin = s.ws_as_admin("").await;
    let mut admin_previews = s.ws_as_admin("&previews=true").await;
    let (id, token, attempt) = s.leased_job("alice").await;

    let mut events = vec![
        event(
            0,
            json!({"event": "execution_start", "prompt_id": "p1", "timestamp_ms": 1}),
        ),
        event(
            1,
            json!({"event": "executing", "prompt_id": "p1", "node": "1", "display_node": "1"}),
        ),
        event(
            2,
            json!({"event": "executing", "prompt_id": "p1", "node": "2", "display_node": "2"}),
        ),
        event(
            3,
            json!({"event": "progress", "prompt_id": "p1", "node": "2", "value": 3.0, "max": 10.0}),
        ),
    ];
    let mut preview = event(
        5, // seq 4 was dropped by the worker: the gap is relayed as it is
        json!({"event": "preview", "mime": "image/png", "node_id": "2", "prompt_id": "p1", "bytes": 4}),
    );
    preview["preview_base64"] = json!("iVBORw==");
    events.push(preview);
    let r = s
        .http()
        .as_worker(WORKER)
        .post("/api/workers/events", &batch(&id, &token, attempt, events))
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["accepted"], 5);

    let seqs = [0, 1, 2, 3, 5];
    for ws in [&mut alice, &mut admin, &mut admin_previews] {
        for (i, want) in seqs.iter().enumerate() {
            let ev = next_comfy_event(ws).await;
            let d = &ev["data"];
            assert_eq!(d["job_id"], id.as_str());
            assert_eq!(d["attempt"], attempt);
            assert_eq!(d["seq"], *want, "event {i} out of order: {ev}");
            assert!(d["received_at_ms"].is_i64());
            assert!(ev["timestamp"].as_str().unwrap().ends_with('Z'));
            if *want == 3 {
                assert_eq!(d["event"]["event"], "progress");
                assert_eq!(d["progress"]["node"], "2");
                assert_eq!(d["progress"]["node_class"], "KSampler");
                assert_eq!(d["progress"]["value"], 3.0);
                assert_eq!(d["progress"]["max"], 10.0);
                assert_eq!(d["progress"]["nodes_done"], 1);
                assert_eq!(d["progress"]["nodes_total"], 3);
            }
        }
    }
    let bob_saw = messages_until_pong(&mut bob).await;
    assert!(
        bob_saw.iter().all(|m| m["type"] != "comfy_event"),
        "another user's socket got the events: {bob_saw:?}"
    );
    assert!(
        bob_saw.is_empty(),
        "bob saw alice's job events: {bob_saw:?}"
    );

    // The progress board follows the events between heartbeats.
    let job = s
        .http()
        .as_admin(ADMIN)
        .get(&format!("/api/jobs/{id}"))
        .await
        .json;
    assert_eq!(job["progress"]["node"], "2", "{job}");
    assert_eq!(job["progress"]["node_class"], "KSampler");
    assert_eq!(job["progress"]["prompt_id"], "p1");
    let percent = job["progress"]["percent"].as_f64().unwrap();
    assert!((percent - 100.0 * 1.3 / 3.0).abs() < 0.01, "{percent}");
}

#[tokio::test]
async fn previews_go_only_to_sockets_that_ask_for_them() {
    let s = serve().await;
    let mut owner = s.ws_as_user("alice", "").await;
    let mut owner_previews = s.ws_as_user("alice", "?previews=true").await;
    let mut admin = s.ws_as_admin("").await;
    let mut admin_previews = s.ws_as_admin("&previews=1").await;
    let (id, token, attempt) = s.leased_job("alice").await;
    let mut preview = event(
        0,
        json!({"event": "preview", "mime": "image/jpeg", "node_id": "2", "prompt_id": "p1", "bytes": 3}),
    );
    preview["preview_base64"] = json!("/9j/");
    let r = s
        .http()
        .as_worker(WORKER)
        .post(
            "/api/workers/events",
            &batch(&id, &token, attempt, vec![preview]),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    for ws in [&mut owner, &mut admin] {
        let ev = next_comfy_event(ws).await;
        assert_eq!(ev["data"]["event"]["event"], "preview");
        assert!(
            ev["data"].get("preview_base64").is_none(),
            "a socket without ?previews=true got the image: {ev}"
        );
    }
    for ws in [&mut owner_previews, &mut admin_previews] {
        let ev = next_comfy_event(ws).await;
        assert_eq!(ev["data"]["preview_base64"], "/9j/", "{ev}");
    }
}

#[tokio::test]
async fn events_of_a_lost_lease_or_another_attempt_are_refused() {
    let s = serve().await;
    let (id, token, attempt) = s.leased_job("alice").await;
    let worker = s.http().as_worker(WORKER);
    let one = || {
        vec![event(
            0,
            json!({"event": "execution_start", "prompt_id": "p"}),
        )]
    };

    let r = worker
        .post("/api/workers/events", &batch(&id, "stale", attempt, one()))
        .await;
    assert_eq!(r.status, 409, "{}", r.json);
    assert_eq!(r.json["error"]["code"], "lease_conflict");
    let r = worker
        .post(
            "/api/workers/events",
            &batch(&id, &token, attempt + 1, one()),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.json);

    // A queue that does not know the lease (restarted) asks the store, then remembers it.
    s.state.live.forget(id.parse().unwrap());
    let r = worker
        .post("/api/workers/events", &batch(&id, &token, attempt, one()))
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    s.state.live.forget(id.parse().unwrap());
    let r = worker
        .post(
            "/api/workers/events",
            &batch(&id, &token, attempt + 1, one()),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.json);

    // After the report the lease is gone.
    let r = worker
        .post(
            &format!("/api/workers/complete-job?job_id={id}"),
            &json!({"result": {}, "lease_token": token}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    let r = worker
        .post("/api/workers/events", &batch(&id, &token, attempt, one()))
        .await;
    assert_eq!(r.status, 409, "{}", r.json);

    // Unknown job; users may not post events.
    let r = worker
        .post(
            "/api/workers/events",
            &batch(&uuid_like(), &token, 1, one()),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.json);
    let r = s
        .http()
        .as_user("alice")
        .post("/api/workers/events", &batch(&id, &token, attempt, one()))
        .await;
    assert_eq!(r.status, 403, "{}", r.json);
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".into()
}

#[tokio::test]
async fn oversized_and_malformed_batches_are_refused() {
    let s = serve().await;
    let (id, token, attempt) = s.leased_job("alice").await;
    let worker = s.http().as_worker(WORKER);

    let many: Vec<Value> = (0..257)
        .map(|i| event(i, json!({"event": "progress", "value": 1.0, "max": 2.0})))
        .collect();
    let r = worker
        .post("/api/workers/events", &batch(&id, &token, attempt, many))
        .await;
    assert_eq!(r.status, 413, "{}", r.json);
    assert_eq!(r.json["error"]["code"], "payload_too_large");
    assert_eq!(r.json["error"]["field"], "events");

    // A body over 8 MiB, in-process (a socket may be reset before the client reads the 413).
    let mut huge = event(0, json!({"event": "preview"}));
    huge["preview_base64"] = json!("A".repeat(9 * 1024 * 1024));
    let body = serde_json::to_vec(&batch(&id, &token, attempt, vec![huge])).unwrap();
    let req = axum::http::Request::post("/api/workers/events")
        .header("authorization", format!("Bearer {WORKER}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app(s.state.clone()), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    let mut big_preview = event(0, json!({"event": "preview"}));
    big_preview["preview_base64"] = json!("A".repeat(5 * 1024 * 1024));
    let r = worker
        .post(
            "/api/workers/events",
            &batch(&id, &token, attempt, vec![big_preview]),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.json);
    assert_eq!(r.json["error"]["field"], "events[0].preview_base64");

    let r = worker
        .post(
            "/api/workers/events",
            &json!({"job_id": id, "lease_token": token, "attempt": attempt}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.json);
    assert_eq!(r.json["error"]["field"], "events");
    let r = worker
        .post(
            "/api/workers/events",
            &batch(&id, &token, attempt, vec![event(0, json!("progress"))]),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.json);
    assert_eq!(r.json["error"]["field"], "events[0].event");
    let r = worker
        .post(
            "/api/workers/events",
            &batch(
                &id,
                &token,
                attempt,
                vec![json!({"seq": -1, "received_at_ms": 0, "event": {}})],
            ),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.json);
    assert_eq!(r.json["error"]["field"], "events[0].seq");

    let raw = reqwest::Client::new()
        .post(format!("http://{}/api/workers/events", s.addr))
        .bearer_auth(WORKER)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
}

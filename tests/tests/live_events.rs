//! Live ComfyUI events of a running job, end to end: emulated ComfyUI → worker (relay) →
//! queue (`POST /api/workers/events`) → `/ws`. The job's owner sees its events in order;
//! another user sees none of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::*;
use comfy_emulator::{Emulator, EmulatorConfig, Faults};
use comfy_stack::start_queue;
use comfy_test_support::http::Client;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WORKER_TOKEN: &str = "e2e-worker";
const ADMIN_TOKEN: &str = "e2e-admin";

async fn ws_as(base: &str, user: &str) -> Ws {
    let url = format!("{}/ws", base.replace("http://", "ws://"));
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-user", user.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Text messages of `ws` as JSON, until `stop` says a message is the last one wanted.
async fn read_until(ws: &mut Ws, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("no websocket message within 20 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap_or(json!(t.as_str()));
            let last = stop(&v);
            seen.push(v);
            if last {
                return seen;
            }
        }
    }
}

/// A queue with auth, an emulated ComfyUI 0.11.1 made by `emulator` and a worker
/// relaying its events.
struct Live {
    queue: comfy_stack::RunningQueue,
    emu: comfy_emulator::EmulatorHandle,
    worker: TestWorker,
    base: String,
    _dir: tempfile::TempDir,
}

async fn live(emulator: EmulatorConfig, worker_id: &str) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let o = authed_sqlite_options(dir.path(), WORKER_TOKEN, ADMIN_TOKEN);
    let queue = start_queue(o).await.unwrap();
    let base = queue.url();
    let emu = Emulator::start(emulator).await.unwrap();
    let mut cfg = worker_config(&base, &emu.url(), worker_id);
    cfg.worker_token = Some(WORKER_TOKEN.into());
    let worker = TestWorker::start(cfg);
    Live {
        queue,
        emu,
        worker,
        base,
        _dir: dir,
    }
}

impl Live {
    /// Submits EmptyImage → ImageInvert → SaveImage as `user`; the job's id.
    async fn submit(&self, user: &str) -> String {
        let prompt = json!({
            "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
            "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
            "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "live"}},
        });
        let job = Client::new(&self.base)
            .as_user(user)
            .post("/api/jobs", &json!({"user_id": user, "workflow": prompt}))
            .await;
        assert_eq!(job.status, 201, "{}", job.text);
        job.json["id"].as_str().unwrap().to_owned()
    }

    async fn stop(self) {
        self.worker.stop().await;
        self.emu.stop().await;
        self.queue.stop().await;
    }
}

/// Everything `ws` gets until job `id` is reported completed, and the `data` of its
/// `comfy_event`s among them.
async fn until_completed(ws: &mut Ws, id: &str) -> (Vec<Value>, Vec<Value>) {
    let seen = read_until(ws, |m| {
        m["type"] == "job_updated" && m["data"]["status"] == "completed" && m["data"]["id"] == id
    })
    .await;
    let events = seen
        .iter()
        .filter(|m| m["type"] == "comfy_event")
        .map(|m| m["data"].clone())
        .collect();
    (seen, events)
}

fn event_names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|d| d["event"]["event"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_watches_a_running_prompt_and_nobody_else_does() {
    let emulator = EmulatorConfig::new("0.11.1")
        .node_time(Duration::from_millis(40))
        .progress_steps(4);
    let l = live(emulator, "w-live").await;
    let mut alice = ws_as(&l.base, "alice").await;
    let mut bob = ws_as(&l.base, "bob").await;
    let id = l.submit("alice").await;

    // Everything alice's socket gets until her job is reported completed.
    let (seen, events) = until_completed(&mut alice, &id).await;
    assert!(
        !events.is_empty(),
        "no comfy_event reached the owner: {seen:?}"
    );
    assert!(
        events
            .iter()
            .all(|d| d["job_id"] == id.as_str() && d["attempt"] == 1)
    );
    let seqs: Vec<u64> = events.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    let names = event_names(&events);
    // The prompt's life, in order (other events in between).
    assert_in_order(
        &names,
        &[
            "execution_start",
            "executing",
            "progress",
            "executed",
            "execution_success",
        ],
    );
    let progress: Vec<&Value> = events
        .iter()
        .filter(|d| d["event"]["event"] == "progress")
        .collect();
    assert_eq!(progress.len(), 8, "4 steps in each looping node: {names:?}");
    assert!(progress.iter().all(|d| d["event"]["max"] == 4.0));
    let executing: Vec<&str> = events
        .iter()
        .filter(|d| d["event"]["event"] == "executing")
        .filter_map(|d| d["event"]["node"].as_str())
        .collect();
    assert_eq!(executing, ["1", "2", "3"]);
    let last = events.last().unwrap();
    assert_eq!(last["event"]["event"], "execution_success", "{names:?}");
    assert_eq!(last["progress"]["percent"], 100.0);
    // The job's completion comes after its last event.
    let done_at = seen
        .iter()
        .position(|m| m["type"] == "job_updated" && m["data"]["status"] == "completed");
    let last_event_at = seen.iter().rposition(|m| m["type"] == "comfy_event");
    assert!(last_event_at < done_at);

    // Bob's socket: nothing of alice's (a ping's answer marks the end of what was sent).
    bob.send(Message::Text("probe".into())).await.unwrap();
    let bob_saw = read_until(&mut bob, |m| m == "pong: probe").await;
    assert_eq!(bob_saw, vec![json!("pong: probe")], "bob saw alice's job");

    let (sent, dropped) = l.worker.health.events_counts();
    assert_eq!(dropped, 0);
    assert_eq!(sent as usize, events.len());
    l.stop().await;
}

/// The worker's socket is read late (here: ComfyUI sends every message 300 ms late, as a
/// loaded machine makes it), so the status poll sees the prompt ended before the socket
/// says so: the worker still relays the prompt's last events, the outputs' `executed`
/// among them, before it reports the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_socket_still_gets_the_prompts_last_events_to_its_owner() {
    let emulator = EmulatorConfig::new("0.11.1").node_time(Duration::from_millis(20));
    let l = live(emulator, "w-late").await;
    l.emu.set_faults(Faults {
        ws_delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    let mut alice = ws_as(&l.base, "alice").await;
    let id = l.submit("alice").await;
    let (seen, events) = until_completed(&mut alice, &id).await;
    let names = event_names(&events);
    assert_in_order(
        &names,
        &["execution_start", "executed", "execution_success"],
    );
    let executed = events
        .iter()
        .find(|d| d["event"]["event"] == "executed")
        .unwrap();
    assert_eq!(executed["event"]["node"], "3", "{names:?}");
    let done_at = seen
        .iter()
        .position(|m| m["type"] == "job_updated" && m["data"]["status"] == "completed");
    let last_event_at = seen.iter().rposition(|m| m["type"] == "comfy_event");
    assert!(last_event_at < done_at);
    assert_eq!(l.worker.health.events_counts().1, 0);
    l.stop().await;
}

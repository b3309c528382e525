//! The stepping hooks: a breakpoint holds the executor at one step of one
//! prompt, whatever the node time (zero here, so without the hold every
//! prompt would be over before the next request), until it is released.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Breakpoint, Emulator, EmulatorConfig, EmulatorHandle, Hold, Step, Stopped};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(emu: &EmulatorHandle) -> Self {
        Client {
            http: reqwest::Client::new(),
            url: emu.url(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let resp = self.http.get(format!("{}{path}", self.url)).send().await;
        resp.unwrap().json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        let resp = self.http.post(format!("{}{path}", self.url)).json(&body);
        resp.send().await.unwrap()
    }

    async fn submit(&self, body: Value) -> String {
        let resp: Value = self.post("/prompt", body).await.json().await.unwrap();
        resp["prompt_id"].as_str().unwrap().to_owned()
    }

    /// The queue as `(running ids, pending ids)`.
    async fn queue(&self) -> (Vec<String>, Vec<String>) {
        let q = self.get("/queue").await;
        let ids = |k: &str| -> Vec<String> {
            q[k].as_array()
                .unwrap()
                .iter()
                .map(|e| e[1].as_str().unwrap().to_owned())
                .collect()
        };
        (ids("queue_running"), ids("queue_pending"))
    }

    async fn history(&self, id: &str) -> Value {
        self.get(&format!("/history/{id}")).await
    }

    /// The history entry of `id`, once written.
    async fn finished(&self, id: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let h = self.history(id).await;
            if let Some(entry) = h.get(id) {
                return entry.clone();
            }
            assert!(Instant::now() < deadline, "{id} never reached history");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The last `status.messages` entry of a history entry: `(kind, data)`.
fn last_message(entry: &Value) -> (String, Value) {
    let m = entry["status"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap();
    (m[0].as_str().unwrap().to_owned(), m[1].clone())
}

async fn reached(hold: &Hold) -> Stopped {
    tokio::time::timeout(WAIT, hold.reached())
        .await
        .expect("the breakpoint was never reached")
}

async fn instant(version: &str) -> EmulatorHandle {
    let config = EmulatorConfig::new(version).node_time(Duration::ZERO);
    Emulator::start(config).await.unwrap()
}

fn slow(color: u32) -> Value {
    json!({"prompt": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 4096, "height": 4096, "batch_size": 8, "color": color}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bicubic", "width": 4000, "height": 4000, "crop": "disabled"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "slow"}},
    }})
}

#[tokio::test]
async fn a_prompt_held_before_a_node_is_running_and_an_interrupt_stops_it_at_that_node() {
    let emu = instant("0.11.1").await;
    let c = Client::new(&emu);
    let hold = emu.hold(Breakpoint::before_node().class("ImageScale"));
    let first = c.submit(slow(1)).await;
    let second = c.submit(slow(2)).await;
    let at = reached(&hold).await;
    assert_eq!(
        at,
        Stopped {
            step: Step::BeforeNode,
            prompt: first.clone(),
            node: Some("2".into()),
            class: Some("ImageScale".into()),
        }
    );
    assert_eq!(c.queue().await, (vec![first.clone()], vec![second.clone()]));
    assert_eq!(c.history(&first).await, json!({}));
    c.post("/interrupt", json!({"prompt_id": first})).await;
    hold.release();
    let (kind, data) = last_message(&c.finished(&first).await);
    assert_eq!(kind, "execution_interrupted");
    assert_eq!(
        (data["node_id"].clone(), data["executed"].clone()),
        (json!("2"), json!(["1"]))
    );
    // One step, once: the second prompt runs through.
    let (kind, _) = last_message(&c.finished(&second).await);
    assert_eq!(kind, "execution_success");
    emu.stop().await;
}

#[tokio::test]
async fn a_node_held_inside_runs_until_released_or_interrupted() {
    let emu = instant("0.26.0").await;
    let c = Client::new(&emu);
    let released = emu.hold(Breakpoint::in_node().node("3"));
    let first = c.submit(slow(1)).await;
    assert_eq!(reached(&released).await.class.as_deref(), Some("SaveImage"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.queue().await.0, std::slice::from_ref(&first));
    released.release();
    let (kind, _) = last_message(&c.finished(&first).await);
    assert_eq!(kind, "execution_success");

    // An interrupt ends a held node that checks for interrupts, unreleased.
    let interrupted = emu.hold(Breakpoint::in_node().class("SaveImage"));
    let second = c.submit(slow(2)).await;
    reached(&interrupted).await;
    c.post("/interrupt", json!({})).await;
    let (kind, data) = last_message(&c.finished(&second).await);
    assert_eq!(
        (kind.as_str(), &data["node_id"]),
        ("execution_interrupted", &json!("3"))
    );
    drop(interrupted);
    emu.stop().await;
}

#[tokio::test]
async fn a_prompt_held_before_its_history_entry_is_running_with_no_history() {
    let emu = instant("0.9.2").await;
    let c = Client::new(&emu);
    let hold = emu.hold(Breakpoint::before_history());
    let id = c.submit(slow(1)).await;
    let at = reached(&hold).await;
    assert_eq!((at.prompt.as_str(), at.node), (id.as_str(), None));
    assert_eq!(c.queue().await.0, std::slice::from_ref(&id));
    assert_eq!(c.history(&id).await, json!({}));
    hold.release();
    let (kind, _) = last_message(&c.finished(&id).await);
    assert_eq!(kind, "execution_success");
    emu.stop().await;
}

#[tokio::test]
async fn a_breakpoint_holds_only_what_it_names_and_not_once_released() {
    let emu = instant("0.11.1").await;
    let c = Client::new(&emu);
    let named = "fixture-held-prompt";
    let hold = emu.hold(Breakpoint::before_node().prompt(named).node("1"));
    let disarmed = emu.hold(Breakpoint::before_node());
    disarmed.release();
    let other = c.submit(slow(1)).await;
    c.finished(&other).await;
    assert_eq!(hold.stopped(), None);
    let mut body = slow(2);
    body["prompt_id"] = json!(named);
    c.submit(body).await;
    assert_eq!(reached(&hold).await.node.as_deref(), Some("1"));
    assert_eq!(c.queue().await.0, [named.to_owned()]);
    drop(hold);
    c.finished(named).await;
    emu.stop().await;
}

#[tokio::test]
async fn of_two_breakpoints_on_one_step_the_older_holds_it() {
    let emu = instant("0.33.0").await;
    let c = Client::new(&emu);
    let older = emu.hold(Breakpoint::before_node());
    let younger = emu.hold(Breakpoint::before_node().node("1"));
    let first = c.submit(slow(1)).await;
    let at = reached(&older).await;
    assert_eq!(
        (at.prompt.as_str(), at.node.as_deref()),
        (first.as_str(), Some("1"))
    );
    assert_eq!(younger.stopped(), None);
    older.release();
    c.finished(&first).await;
    assert_eq!(younger.stopped(), None);
    let second = c.submit(slow(2)).await;
    assert_eq!(reached(&younger).await.prompt, second);
    drop(younger);
    c.finished(&second).await;
    emu.stop().await;
}

#[tokio::test]
async fn a_node_that_ignores_the_interrupt_flag_runs_to_its_end() {
    let emu = instant("0.9.2").await;
    let c = Client::new(&emu);
    emu.set_uninterruptible_class(Some("SaveImage"));
    // The last node ignores the flag: the prompt succeeds with its outputs.
    let held = emu.hold(Breakpoint::in_node().class("SaveImage"));
    let first = c.submit(slow(1)).await;
    reached(&held).await;
    c.post("/interrupt", json!({"prompt_id": first})).await;
    assert_eq!(emu.interrupts(), 1);
    held.release();
    let entry = c.finished(&first).await;
    let (kind, _) = last_message(&entry);
    assert_eq!(kind, "execution_success", "{entry}");
    assert!(entry["outputs"]["3"]["images"].is_array(), "{entry}");

    // A node that ignores it lets the flag stand: the next node stops.
    emu.set_uninterruptible_class(Some("ImageInvert"));
    let held = emu.hold(Breakpoint::in_node().class("ImageInvert"));
    let second = c.submit(json!({"prompt": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 2}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
    }}))
    .await;
    reached(&held).await;
    c.post("/interrupt", json!({})).await;
    assert_eq!(emu.interrupts(), 2);
    held.release();
    let (kind, data) = last_message(&c.finished(&second).await);
    assert_eq!(
        (kind.as_str(), &data["node_id"], &data["executed"]),
        ("execution_interrupted", &json!("3"), &json!(["1", "2"]))
    );
    emu.stop().await;
}

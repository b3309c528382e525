//! The gateway end to end over HTTP and WebSocket, as a frontend calls it:
//! two users, each with their own emulated CPU ComfyUI (alice on 0.9.2, bob
//! on 0.33.0), one queue with auth on, one worker on an emulated GPU
//! ComfyUI 0.11.1. Alice's Run becomes a queue job that runs on the GPU
//! ComfyUI; her socket sees its events as ComfyUI's own messages, her queue
//! panel and history show it in 0.9.2's shapes, her `/view` gets its image;
//! bob sees none of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::*;
use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_gateway::{Config, Gateway};
use comfy_stack::{RunningQueue, start_queue};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const WORKER_TOKEN: &str = "gw-worker";
const ADMIN_TOKEN: &str = "gw-admin";
/// The one checkpoint the GPU ComfyUI has.
const POOL_CHECKPOINT: &str = "pool_sdxl.safetensors";

struct Platform {
    queue: RunningQueue,
    gpu: EmulatorHandle,
    alice_ui: EmulatorHandle,
    bob_ui: EmulatorHandle,
    worker: TestWorker,
    gateway: String,
    dir: tempfile::TempDir,
}

async fn platform() -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let o = authed_sqlite_options(dir.path(), WORKER_TOKEN, ADMIN_TOKEN);
    let queue = start_queue(o).await.unwrap();
    // The pool has one checkpoint; the users' CPU ComfyUIs have none.
    let gpu = Emulator::start(
        EmulatorConfig::new("0.11.1")
            .node_time(Duration::from_millis(60))
            .progress_steps(3)
            .models([("checkpoints".to_owned(), vec![POOL_CHECKPOINT.to_owned()])].into()),
    )
    .await
    .unwrap();
    let alice_ui = Emulator::start(EmulatorConfig::new("0.9.2")).await.unwrap();
    let bob_ui = Emulator::start(EmulatorConfig::new("0.33.0"))
        .await
        .unwrap();
    let key = dir.path().join("sealing.key");
    std::fs::write(&key, format!("{}\n", "5e".repeat(32))).unwrap();
    let mut cfg = worker_config(&queue.url(), &gpu.url(), "w-gw");
    cfg.worker_token = Some(WORKER_TOKEN.into());
    cfg.sealing_key_file = Some(key.clone());
    let worker = TestWorker::start(cfg);

    let toml = format!(
        r#"queue_url = "{}"
           state_dir = "{}"
           ws_ping_secs = 1
           sealing_key_file = "{}"
           [[users]]
           id = "alice"
           upstream = "{}"
           [[users]]
           id = "bob"
           upstream = "{}"
        "#,
        queue.url(),
        dir.path().display(),
        key.display(),
        alice_ui.url(),
        bob_ui.url()
    );
    let config: Config = toml::from_str(&toml).unwrap();
    config.validate().unwrap();
    let gw = Gateway::new(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(comfy_gateway::serve(listener, gw, std::future::pending()));
    Platform {
        queue,
        gpu,
        alice_ui,
        bob_ui,
        worker,
        gateway,
        dir,
    }
}

impl Platform {
    async fn stop(self) {
        self.worker.stop().await;
        self.gpu.stop().await;
        self.alice_ui.stop().await;
        self.bob_ui.stop().await;
        self.queue.stop().await;
    }
}

/// An HTTP client whose calls fail after a minute instead of hanging a test.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn as_user(req: reqwest::RequestBuilder, user: &str) -> reqwest::RequestBuilder {
    req.header("X-Forwarded-User", user)
}

async fn ws(gateway: &str, user: &str, path: &str) -> Ws {
    let url = format!("{}{path}", gateway.replace("http://", "ws://"));
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("x-forwarded-user", user.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Text messages as JSON until `stop` says one is the last wanted.
async fn read_until(ws: &mut Ws, mut stop: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap_or_else(|_| panic!("no message within 30 s; saw {seen:#?}"))
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            let last = stop(&v);
            seen.push(v);
            if last {
                return seen;
            }
        }
    }
}

/// `GET url` as `user`, the answer as JSON.
async fn get_json(http: &reqwest::Client, url: String, user: &str) -> Value {
    as_user(http.get(url), user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET url` as `user` every 100 ms, at most `tries` times, until `done`
/// holds; the last answer.
async fn poll(
    http: &reqwest::Client,
    url: String,
    user: &str,
    tries: usize,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..tries {
        last = get_json(http, url.clone(), user).await;
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Submits `body` through the gateway as `user`'s Run, waits until the job
/// has ended, checks it completed; its prompt id.
async fn run_to_the_end(http: &reqwest::Client, gw: &str, user: &str, body: &Value) -> String {
    let accepted: Value = as_user(http.post(format!("{gw}/{user}/api/prompt")), user)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["prompt_id"].as_str().unwrap().to_owned();
    let job = poll(http, format!("{gw}/{user}/api/jobs/{id}"), user, 300, |j| {
        j["status"] != "pending" && j["status"] != "in_progress"
    })
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    id
}

/// EmptyImage, `len - 2` ImageInverts in a chain, SaveImage: a prompt of
/// `len` nodes that runs a while (60 ms a node on the GPU emulator).
fn chain_prompt(len: usize, prefix: &str) -> Value {
    let mut prompt = serde_json::Map::new();
    prompt.insert(
        "1".into(),
        json!({"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}),
    );
    for i in 2..len {
        prompt.insert(
            i.to_string(),
            json!({"class_type": "ImageInvert", "inputs": {"image": [(i - 1).to_string(), 0]}}),
        );
    }
    prompt.insert(
        len.to_string(),
        json!({"class_type": "SaveImage", "inputs": {"images": [(len - 1).to_string(), 0], "filename_prefix": prefix}}),
    );
    Value::Object(prompt)
}

fn tiny_prompt(prefix: &str) -> Value {
    json!({
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_in_the_users_frontend_runs_on_the_pool_and_comes_back_as_comfyui_answers() {
    let p = platform().await;
    let http = client();
    let gw = &p.gateway;

    // The socket first, as the frontend opens it; its greeting is alice's own ComfyUI's.
    let mut sock = ws(gw, "alice", "/alice/ws?clientId=tab-1").await;
    let greeting = read_until(&mut sock, |m| m["type"] == "status").await;
    assert_eq!(
        greeting.last().unwrap()["data"]["sid"],
        "tab-1",
        "the sid is the one alice's ComfyUI issued"
    );

    let body = json!({
        "client_id": "tab-1",
        "prompt": tiny_prompt("gw"),
        "extra_data": {
            "extra_pnginfo": {"workflow": {"id": "wf-gw-1", "nodes": []}},
            "api_key_comfy_org": "secret-key",
        },
    });
    let resp = as_user(http.post(format!("{gw}/alice/api/prompt")), "alice")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let accepted: Value = resp.json().await.unwrap();
    let id = accepted["prompt_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["node_errors"], json!({}));
    assert!(accepted["number"].is_number());

    // The prompt id is the queue's job id; the secret never reached the queue.
    let job: Value = http
        .get(format!("{}/api/jobs/{id}", p.queue.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(job["user_id"], "alice");
    assert!(!job.to_string().contains("secret-key"));

    // ComfyUI's messages of the prompt, in ComfyUI's order, all naming the job.
    let seen = read_until(&mut sock, |m| m["type"] == "execution_success").await;
    let names: Vec<&str> = seen.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_in_order(
        &names,
        &[
            "status",
            "execution_start",
            "executing",
            "progress",
            "executed",
            "execution_success",
        ],
    );
    let queued = seen
        .iter()
        .find(|m| m["type"] == "status")
        .map(|m| m["data"]["status"]["exec_info"]["queue_remaining"].as_u64());
    assert_eq!(
        queued,
        Some(Some(1)),
        "the remote job counts in alice's queue: {seen:#?}"
    );
    for m in seen.iter().filter(|m| m["type"] != "status") {
        assert_eq!(m["data"]["prompt_id"], id.as_str(), "{m}");
    }
    let executed = seen.iter().find(|m| m["type"] == "executed").unwrap();
    assert_eq!(executed["data"]["node"], "3");
    let image = &executed["data"]["output"]["images"][0];
    assert_eq!(image["type"], "output");
    assert_eq!(image["subfolder"], format!("comfy-queue/{id}"));
    let filename = image["filename"].as_str().unwrap().to_owned();

    // /view of it: the PNG the GPU ComfyUI wrote, served through the queue.
    let view = as_user(http.get(format!("{gw}/alice/api/view")), "alice")
        .query(&[
            ("filename", filename.as_str()),
            ("subfolder", &format!("comfy-queue/{id}")),
            ("type", "output"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), 200);
    assert_eq!(view.headers()["content-type"], "image/png");
    let bytes = view.bytes().await.unwrap();
    let on_gpu = reqwest::get(format!(
        "{}/view?filename={filename}&type=output",
        p.gpu.url()
    ))
    .await
    .unwrap()
    .bytes()
    .await
    .unwrap();
    assert_eq!(bytes, on_gpu);

    // Alice's history, in 0.9.2's shape (five-element prompt tuple with create_time).
    let history: Value = get_json(
        &http,
        format!("{gw}/alice/api/history?max_items=64"),
        "alice",
    )
    .await;
    let entry = &history[&id];
    assert_eq!(entry["status"]["status_str"], "success");
    assert_eq!(entry["status"]["completed"], true);
    assert_eq!(entry["prompt"][1], id.as_str());
    assert_eq!(entry["prompt"][3]["client_id"], "tab-1");
    assert!(entry["prompt"][3]["create_time"].is_i64());
    assert_eq!(entry["prompt"][4], json!(["3"]));
    assert_eq!(
        entry["outputs"]["3"]["images"][0]["filename"],
        filename.as_str()
    );
    // And in the jobs API (0.9.2 has it; no previewable_outputs_count before 0.33).
    let jobs: Value = get_json(
        &http,
        format!("{gw}/alice/api/jobs?status=completed,failed,cancelled&limit=64&offset=0"),
        "alice",
    )
    .await;
    assert_eq!(jobs["pagination"]["total"], 1, "{jobs}");
    let item = &jobs["jobs"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["status"], "completed");
    assert_eq!(item["outputs_count"], 1);
    assert_eq!(item["workflow_id"], "wf-gw-1");
    assert!(item.get("previewable_outputs_count").is_none());
    assert_eq!(item["preview_output"]["mediaType"], "images");

    // Bob sees none of it, and cannot reach alice's prefix.
    let bobs: Value = get_json(&http, format!("{gw}/bob/api/jobs"), "bob").await;
    assert_eq!(bobs["jobs"], json!([]));
    let other = as_user(http.get(format!("{gw}/alice/api/history")), "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let bob_history: Value = get_json(&http, format!("{gw}/bob/api/history/{id}"), "bob").await;
    assert_eq!(bob_history, json!({}));
    let bob_view = as_user(http.get(format!("{gw}/bob/api/view")), "bob")
        .query(&[
            ("filename", filename.as_str()),
            ("subfolder", &format!("comfy-queue/{id}")),
            ("type", "output"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bob_view.status(), 404);

    // Deleting it from the history hides it from alice's panel.
    let del = as_user(http.post(format!("{gw}/alice/api/history")), "alice")
        .json(&json!({"delete": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    let history: Value = get_json(&http, format!("{gw}/alice/history"), "alice").await;
    assert_eq!(history, json!({}));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_else_passes_through_to_the_users_own_comfyui_byte_exact() {
    let p = platform().await;
    let http = client();
    let gw = &p.gateway;
    // Userdata with an encoded slash: ComfyUI answers 404 when it is decoded on the way.
    let post = as_user(
        http.post(format!(
            "{gw}/bob/api/userdata/workflows%2Fmine.json?overwrite=true"
        )),
        "bob",
    )
    .body(r#"{"nodes": []}"#)
    .send()
    .await
    .unwrap();
    assert_eq!(post.status(), 200, "{}", post.text().await.unwrap());
    let got = as_user(
        http.get(format!("{gw}/bob/api/userdata/workflows%2Fmine.json")),
        "bob",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.text().await.unwrap(), r#"{"nodes": []}"#);
    let direct = reqwest::get(format!(
        "{}/api/userdata/workflows%2Fmine.json",
        p.bob_ui.url()
    ))
    .await
    .unwrap();
    assert_eq!(direct.status(), 200, "it landed on bob's own ComfyUI");
    // Same call for alice: her own ComfyUI does not have bob's file.
    let alices = as_user(
        http.get(format!("{gw}/alice/api/userdata/workflows%2Fmine.json")),
        "alice",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(alices.status(), 404);
    // object_info comes from the user's own ComfyUI.
    let info: Value = get_json(&http, format!("{gw}/bob/api/object_info/SaveImage"), "bob").await;
    assert!(info.get("SaveImage").is_some());
    // No user header: 401; an unknown user: 403; the root goes to the user's prefix.
    let anon = http
        .get(format!("{gw}/bob/api/queue"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let stranger = as_user(http.get(format!("{gw}/bob/api/queue")), "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 403);
    let root = as_user(
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{gw}/")),
        "bob",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/bob/");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_cancels_only_the_users_own_running_job() {
    let p = platform().await;
    let http = client();
    let gw = &p.gateway;
    // A prompt long enough to be interrupted (many nodes at 60 ms each).
    let prompt = chain_prompt(40, "long");
    let accepted: Value = as_user(http.post(format!("{gw}/bob/api/prompt")), "bob")
        .json(&json!({"client_id": "b", "prompt": prompt}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["prompt_id"].as_str().unwrap().to_owned();
    // Wait until it runs (0.33.0's jobs API says in_progress).
    let q = poll(&http, format!("{gw}/bob/api/queue"), "bob", 100, |q| {
        q["queue_running"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert!(
        q["queue_running"].as_array().is_some_and(|r| !r.is_empty()),
        "the job never ran"
    );
    assert_eq!(q["queue_running"][0][1], id.as_str());
    // Alice's interrupt touches nothing of bob's.
    let r = as_user(http.post(format!("{gw}/alice/api/interrupt")), "alice")
        .json(&json!({"prompt_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job: Value = get_json(&http, format!("{gw}/bob/api/jobs/{id}"), "bob").await;
    assert_eq!(job["status"], "in_progress");
    // Bob's own interrupt (no body: whatever of his runs) cancels it.
    let r = as_user(http.post(format!("{gw}/bob/api/interrupt")), "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job = poll(&http, format!("{gw}/bob/api/jobs/{id}"), "bob", 100, |j| {
        j["status"] == "cancelled"
    })
    .await;
    let status = &job["status"];
    assert_eq!(
        status, "cancelled",
        "0.33.0 reports an interrupted job as cancelled"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_uploaded_to_the_users_comfyui_travels_with_the_job() {
    let p = platform().await;
    let http = client();
    let gw = &p.gateway;
    // The frontend uploads into its own ComfyUI (passed through).
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(b"alice's own photo".to_vec())
                .file_name("photo.png")
                .mime_str("image/png")
                .unwrap(),
        )
        .text("type", "input")
        .text("overwrite", "true");
    let up: Value = as_user(http.post(format!("{gw}/alice/api/upload/image")), "alice")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(up["name"], "photo.png");
    assert!(p.alice_ui.data_dir().join("input/photo.png").is_file());
    assert!(!p.gpu.data_dir().join("input/photo.png").exists());

    let body = json!({"client_id": "c", "prompt": {
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "from_upload"}},
    }});
    run_to_the_end(&http, gw, "alice", &body).await;
    // The GPU ComfyUI got alice's bytes under the worker's collision-free name.
    let placed: Vec<_> = walk(&p.gpu.data_dir().join("input/comfy-queue"));
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(std::fs::read(&placed[0]).unwrap(), b"alice's own photo");
    p.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gateway_restart_the_queue_panel_shows_the_users_jobs_again() {
    let p = platform().await;
    let http = client();
    // A prompt that runs a while.
    let prompt = chain_prompt(30, "restart");
    let accepted: Value = as_user(http.post(format!("{}/bob/api/prompt", p.gateway)), "bob")
        .json(&json!({"client_id": "b", "prompt": prompt}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["prompt_id"].as_str().unwrap().to_owned();

    // A second gateway process with the same configuration (the first one's
    // memory is gone): the job is in bob's panel while it runs and after.
    let toml = format!(
        "queue_url = \"{}\"\n[[users]]\nid = \"bob\"\nupstream = \"{}\"\n",
        p.queue.url(),
        p.bob_ui.url()
    );
    let config: Config = toml::from_str(&toml).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fresh = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(comfy_gateway::serve(
        listener,
        Gateway::new(config).unwrap(),
        std::future::pending(),
    ));
    let active: Value = get_json(
        &http,
        format!("{fresh}/bob/api/jobs?status=in_progress,pending&limit=200&offset=0"),
        "bob",
    )
    .await;
    assert_eq!(active["jobs"][0]["id"], id.as_str(), "{active}");
    let done = poll(
        &http,
        format!("{fresh}/bob/api/history/{id}"),
        "bob",
        200,
        |h| h.get(&id).is_some(),
    )
    .await;
    assert_eq!(done[&id]["status"]["status_str"], "success", "{done}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_socket_that_stops_answering_is_closed_and_a_live_one_is_kept() {
    let p = platform().await;
    let mut silent = ws(&p.gateway, "alice", "/alice/ws?clientId=gone").await;
    let mut live = ws(&p.gateway, "alice", "/alice/ws?clientId=here").await;
    read_until(&mut silent, |m| m["type"] == "status").await;
    read_until(&mut live, |m| m["type"] == "status").await;
    // `live` reads (and so answers the gateway's pings, once a second) for 5 s;
    // `silent` reads nothing for those 5 s, as a vanished client.
    let started = std::time::Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(Ok(Message::Ping(_)))) =
            tokio::time::timeout(Duration::from_millis(200), live.next()).await
        {
            pings += 1;
        }
    }
    assert!(pings >= 3, "the gateway pinged {pings} times in 5 s");
    // What the silent socket has left: the pings queued before, then the end.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match silent.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_))) => continue,
                _ => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the silent socket was never closed");
    // The live one still carries messages: a Run's status reaches it.
    let http = client();
    let r = as_user(
        http.post(format!("{}/alice/api/prompt", p.gateway)),
        "alice",
    )
    .json(&json!({"client_id": "here", "prompt": tiny_prompt("kept")}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    read_until(&mut live, |m| m["type"] == "execution_success").await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_provisioned_without_overwriting_what_the_user_changed() {
    let p = platform().await;
    let http = client();
    // Alice changed her copy of one template before.
    let mine = r#"{"nodes": [], "note": "alice's version"}"#;
    let r = http
        .post(format!(
            "{}/api/userdata/workflows%2Ftiny_bypass_mute.json?overwrite=true",
            p.alice_ui.url()
        ))
        .body(mine)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/ui");
    let toml = format!(
        "queue_url = \"{}\"\ntemplates_dir = {:?}\n[[users]]\nid = \"alice\"\nupstream = \"{}\"\n",
        p.queue.url(),
        templates.display().to_string(),
        p.alice_ui.url()
    );
    let gw = Gateway::new(toml::from_str(&toml).unwrap()).unwrap();
    let user = gw.config().users[0].clone();
    let done = comfy_gateway::templates::provision(&gw, &user)
        .await
        .unwrap();
    assert_eq!(done.kept, ["tiny_bypass_mute.json"]);
    assert_eq!(done.written.len(), 4, "{done:?}");
    let kept = reqwest::get(format!(
        "{}/api/userdata/workflows%2Ftiny_bypass_mute.json",
        p.alice_ui.url()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert_eq!(kept, mine);
    // Again: nothing written, nothing lost.
    let again = comfy_gateway::templates::provision(&gw, &user)
        .await
        .unwrap();
    assert!(again.written.is_empty());
    assert_eq!(again.kept.len(), 5);
    p.stop().await;
}

/// CheckpointLoaderSimple → KSampler → SaveImage, naming `ckpt`.
fn checkpoint_prompt(ckpt: &str) -> Value {
    json!({
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
        "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
              "latent_image": ["3", 0], "seed": 1, "steps": 2, "cfg": 1.0, "sampler_name": "euler",
              "scheduler": "simple", "denoise": 1.0}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "pool"}, "_meta": {"title": "Save"}},
    })
}

/// Waits until the pool's worker has published its catalogue to the queue.
async fn catalogue_published(http: &reqwest::Client, queue: &str) {
    let listed = poll(http, format!("{queue}/api/catalogues"), "alice", 100, |v| {
        v["catalogues"].as_array().is_some_and(|c| !c.is_empty())
    })
    .await;
    assert_eq!(
        listed["catalogues"][0]["comfyui_version"], "0.11.1",
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_the_pool_cannot_run_is_refused_as_comfyui_refuses_it_and_one_it_can_runs() {
    let p = platform().await;
    let http = client();
    let gw = &p.gateway;
    catalogue_published(&http, &p.queue.url()).await;
    let submit = |user: &'static str, prompt: Value| {
        as_user(http.post(format!("{gw}/{user}/api/prompt")), user)
            .json(&json!({"client_id": "c", "prompt": prompt}))
            .send()
    };

    // A checkpoint only the user's imagination has: refused before it is
    // queued, with the node the frontend highlights (alice's 0.9.2 wording).
    let resp = submit("alice", checkpoint_prompt("missing.safetensors"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["type"], "prompt_outputs_failed_validation",
        "{body}"
    );
    let err = &body["node_errors"]["1"];
    assert_eq!(err["class_type"], "CheckpointLoaderSimple", "{body}");
    assert_eq!(err["errors"][0]["type"], "value_not_in_list", "{body}");
    assert_eq!(err["errors"][0]["extra_info"]["input_name"], "ckpt_name");
    assert!(
        err["errors"][0]["details"]
            .as_str()
            .unwrap()
            .contains(POOL_CHECKPOINT),
        "the choices are the pool's: {body}"
    );
    assert_eq!(err["dependent_outputs"], json!(["6"]));
    // Nothing reached the queue.
    let jobs = get_json(
        &http,
        format!("{}/api/jobs?user_id=alice", p.queue.url()),
        "alice",
    )
    .await;
    assert_eq!(jobs, json!([]), "{jobs}");

    // The pool's checkpoint is valid there, though alice's CPU ComfyUI has
    // no model at all: queued, and it completes on the pool.
    let resp = submit("alice", checkpoint_prompt(POOL_CHECKPOINT))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let accepted: Value = resp.json().await.unwrap();
    assert_eq!(accepted["node_errors"], json!({}));
    let id = accepted["prompt_id"].as_str().unwrap().to_owned();
    let job = poll(
        &http,
        format!("{gw}/alice/api/jobs/{id}"),
        "alice",
        300,
        |j| j["status"] != "pending" && j["status"] != "in_progress",
    )
    .await;
    assert_eq!(job["status"], "completed", "{job}");

    // bob's line (0.33.0) words an unknown class its own way, with the title.
    let mut unknown = checkpoint_prompt(POOL_CHECKPOINT);
    unknown["6"]["class_type"] = json!("NoSuchSaver");
    let resp = submit("bob", unknown).await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "missing_node_type", "{body}");
    assert_eq!(body["error"]["extra_info"]["node_title"], "Save", "{body}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comfy_account_secrets_reach_the_gpu_comfyui_and_are_never_in_the_queue_in_clear() {
    const SECRET: &str = "comfyui-0123456789abcdef-secret";
    let p = platform().await;
    let http = client();
    let gw = &p.gateway;
    let body = json!({"client_id": "c", "prompt": tiny_prompt("signed_in"), "extra_data": {
        "api_key_comfy_org": SECRET,
        "extra_pnginfo": {"workflow": {"id": "wf-1"}},
    }});
    let id = run_to_the_end(&http, gw, "alice", &body).await;

    // The GPU ComfyUI got the key in extra_data, as a frontend would send it.
    let history = get_json(&http, format!("{}/history", p.gpu.url()), "alice").await;
    let got: Vec<&Value> = history
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["prompt"][3]["api_key_comfy_org"] == SECRET)
        .collect();
    assert_eq!(got.len(), 1, "{history}");
    assert_eq!(
        got[0]["prompt"][3]["extra_pnginfo"]["workflow"]["id"],
        "wf-1"
    );
    assert!(
        got[0]["prompt"][3]
            .get(comfy_sealed::SEALED_FIELD)
            .is_none()
    );

    // Not one byte of it in clear in the queue's files (database, WAL, blobs)…
    let files = walk(p.dir.path());
    assert!(files.iter().any(|f| f.ends_with("queue.db")), "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{} holds the secret in clear",
            f.display()
        );
    }
    // …nor in what alice's own queue panel shows.
    let shown = get_json(&http, format!("{gw}/alice/api/history/{id}"), "alice").await;
    let text = shown.to_string();
    assert!(!text.contains(SECRET), "{text}");
    assert!(!text.contains(comfy_sealed::SEALED_FIELD), "{text}");
    p.stop().await;
}

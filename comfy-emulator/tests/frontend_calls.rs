//! The calls the real frontend makes while it boots, replayed against the
//! emulated release it ran on (`fixtures/frontend/`): every one is answered
//! with the recorded status and content type, the small answers with the
//! recorded body; and a served frontend build: `/`, its files, its
//! extension list, nothing outside its folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};

/// Calls whose recorded body the emulator answers exactly (before any
/// prompt ran): everything but what depends on the real machine
/// (`system_stats`), on what the real server had installed (blueprints,
/// templates) or on its user folder (`/users`' `migrated`).
const EXACT: [&str; 13] = [
    "/api/features",
    "/api/i18n",
    "/api/settings",
    "/api/workflow_templates",
    "/api/experiment/models",
    "/api/node_replacements",
    "/api/queue",
    "/api/history",
    "/api/jobs",
    "/api/userdata",
    "/api/userdata/comfy.templates.json",
    "/templates/fuse_options.json",
    "/api/global_subgraphs",
];

fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn every_call_the_frontend_makes_while_booting_is_answered_as_recorded() {
    let client = reqwest::Client::new();
    for (fe, server) in common::PAIRS {
        let session = common::session(fe, server);
        let emu = Emulator::start(EmulatorConfig::new(server)).await.unwrap();
        let mut replayed = 0;
        for call in session.boot_calls() {
            let (method, path, query) = (
                call["method"].as_str().unwrap(),
                call["path"].as_str().unwrap(),
                call["query"].as_str().unwrap_or_default(),
            );
            let what = format!("{} {method} {path}?{query}", session.file);
            // 0.33's blueprints are not emulated (`/global_subgraphs` is
            // `{}`), so the frontend never asks for one.
            if path.starts_with("/api/global_subgraphs/") {
                continue;
            }
            let url = if query.is_empty() {
                format!("{}{path}", emu.url())
            } else {
                format!("{}{path}?{query}", emu.url())
            };
            let request = match method {
                "GET" => client.get(&url),
                "POST" => client.post(&url).body(call["request_body"].to_string()),
                other => panic!("{what}: unexpected method {other}"),
            };
            let response = request.send().await.unwrap();
            let status = u64::from(response.status().as_u16());
            let ct = content_type(&response);
            let body = response.bytes().await.unwrap();
            let mut recorded_status = call["status"].as_u64().unwrap();
            // 1.48.7's server had an (empty) workflows folder; the
            // emulator's user folder starts empty, as 1.58.1's server's did.
            if path == "/api/userdata" && query.starts_with("dir=workflows&") {
                assert!(status == 404 || status == 200, "{what}: {status}");
                recorded_status = status;
                if status == 200 {
                    assert_eq!(body.as_ref(), b"[]", "{what}");
                }
                replayed += 1;
                continue;
            }
            assert_eq!(status, recorded_status, "{what}: status");
            assert_eq!(
                ct,
                call["content_type"].as_str().unwrap_or_default(),
                "{what}: content type"
            );
            let recorded_body = &call["response_body"];
            let blueprints_of_0_33 = path == "/api/global_subgraphs" && server == "0.33.0";
            if EXACT.contains(&path) && !blueprints_of_0_33 && method == "GET" {
                let answered: Value = if ct.starts_with("application/json") {
                    serde_json::from_slice(&body).unwrap()
                } else if body.is_empty() {
                    Value::Null
                } else {
                    json!(String::from_utf8_lossy(&body))
                };
                assert_eq!(&answered, recorded_body, "{what}: body");
            }
            if blueprints_of_0_33 {
                assert_eq!(body.as_ref(), b"{}", "{what}");
            }
            replayed += 1;
        }
        assert!(replayed >= 18, "{}: only {replayed} calls", session.file);
        emu.stop().await;
    }
}

#[tokio::test]
async fn the_template_index_is_empty_but_valid_and_served_at_the_root_only() {
    let emu = Emulator::start(EmulatorConfig::new("0.33.0"))
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let get = |p: &str| client.get(format!("{}{p}", emu.url())).send();
    let index = get("/templates/index.json").await.unwrap();
    assert_eq!(content_type(&index), "application/json");
    assert_eq!(index.json::<Value>().await.unwrap(), json!([]));
    let logos = get("/templates/index_logo.json").await.unwrap();
    assert_eq!(logos.json::<Value>().await.unwrap(), json!({}));
    assert_eq!(
        get("/api/templates/index.json").await.unwrap().status(),
        404
    );
    assert_eq!(get("/templates/missing.json").await.unwrap().status(), 404);
    // Both spellings of every boot route, as ComfyUI routes them.
    for p in ["/i18n", "/global_subgraphs", "/workflow_templates"] {
        assert_eq!(
            get(p).await.unwrap().json::<Value>().await.unwrap(),
            json!({})
        );
    }
    assert_eq!(get("/global_subgraphs/abc").await.unwrap().status(), 404);
    assert_eq!(
        get("/experiment/models/checkpoints")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/api/experiment/models/configs")
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(get("/experiment/models/nope").await.unwrap().status(), 404);
    assert_eq!(get("/node_replacements").await.unwrap().status(), 200);
    emu.stop().await;
    // 0.11.1 does not say `node_replacements` in /features: no route.
    let old = Emulator::start(EmulatorConfig::new("0.11.1"))
        .await
        .unwrap();
    let r = client
        .get(format!("{}/api/node_replacements", old.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    old.stop().await;
}

/// A small frontend build (`build/` in the returned folder): `index.html`,
/// a script, a style sheet, extension scripts; and a file beside it.
fn fake_build() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("outside-secret.txt"), "secret").unwrap();
    let p = dir.path().join("build");
    let p = p.as_path();
    std::fs::create_dir_all(p.join("assets")).unwrap();
    std::fs::create_dir_all(p.join("extensions/core/sub")).unwrap();
    std::fs::write(p.join("index.html"), "<html>app</html>").unwrap();
    std::fs::write(p.join("assets/main.js"), "console.log(1)").unwrap();
    std::fs::write(p.join("assets/style.css"), "body{}").unwrap();
    std::fs::write(p.join("extensions/core/a.js"), "").unwrap();
    std::fs::write(p.join("extensions/core/sub/b.js"), "").unwrap();
    std::fs::write(p.join("extensions/core/readme.txt"), "").unwrap();
    std::fs::write(p.join("extensions/.hidden.js"), "").unwrap();
    let build = p.to_path_buf();
    (dir, build)
}

/// A raw request line, sent as written (no client normalises its path).
fn raw_get(addr: std::net::SocketAddr, target: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn a_frontend_build_is_served_with_its_types_and_nothing_outside_it() {
    let (_dir, build) = fake_build();
    let client = reqwest::Client::new();

    // Without a build, `/` is the usual 404.
    let bare = Emulator::start(EmulatorConfig::new("0.33.0"))
        .await
        .unwrap();
    let r = client.get(bare.url()).send().await.unwrap();
    assert_eq!(r.status(), 404);
    bare.stop().await;

    let emu = Emulator::start(EmulatorConfig::new("0.33.0").frontend_dir(&build))
        .await
        .unwrap();
    let get = |p: &str| client.get(format!("{}{p}", emu.url())).send();
    let index = get("/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert!(content_type(&index).starts_with("text/html"));
    assert_eq!(index.text().await.unwrap(), "<html>app</html>");
    let js = get("/assets/main.js").await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(content_type(&js).contains("javascript"), "{js:?}");
    let css = get("/assets/style.css").await.unwrap();
    assert!(content_type(&css).starts_with("text/css"));
    // Missing files are the emulator's 404 (as ComfyUI's `/user.css`).
    let missing = get("/user.css").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(content_type(&missing), "application/octet-stream");
    // API routes still win; an unknown `/api/...` is not a file either.
    let stats = get("/api/system_stats").await.unwrap();
    assert_eq!(stats.status(), 200);
    assert_eq!(get("/api/index.html").await.unwrap().status(), 404);
    // Only GET and HEAD read files.
    let post = client
        .post(format!("{}/index.html", emu.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);
    // `/extensions` lists the build's scripts, as ComfyUI globs its web root.
    let ext: Value = get("/extensions").await.unwrap().json().await.unwrap();
    assert_eq!(
        ext,
        json!(["/extensions/core/a.js", "/extensions/core/sub/b.js"])
    );

    // Nothing outside the folder, however the path is spelt.
    let addr = emu.addr();
    for target in [
        "/../outside-secret.txt",
        "/%2e%2e/outside-secret.txt",
        "/assets/..%2f..%2foutside-secret.txt",
        "/%2e%2e%2foutside-secret.txt",
        "//etc/passwd",
        "/..%5coutside-secret.txt",
    ] {
        let answer = tokio::task::spawn_blocking(move || raw_get(addr, target))
            .await
            .unwrap();
        assert!(!answer.contains("secret"), "{target}: {answer}");
        assert!(!answer.contains("root:"), "{target}: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 400"),
            "{target}: {answer}"
        );
    }
    emu.stop().await;
}

async fn next_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    within: std::time::Duration,
) -> Option<Value> {
    use futures_util::StreamExt as _;
    let msg = tokio::time::timeout(within, ws.next()).await.ok()??.ok()?;
    serde_json::from_str(msg.to_text().ok()?).ok()
}

/// The frontend sends its `feature_flags` first on `/ws`; ComfyUI answers
/// with its own (the `/features` body), once, as the sessions show.
#[tokio::test]
async fn the_first_feature_flags_message_on_ws_gets_the_servers_flags() {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let short = std::time::Duration::from_millis(300);
    let long = std::time::Duration::from_secs(5);
    let emu = Emulator::start(EmulatorConfig::new("0.33.0"))
        .await
        .unwrap();
    let features: Value = reqwest::get(format!("{}/features", emu.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let flags = json!({"type": "feature_flags", "data": {"supports_preview_metadata": true}});
    let url = format!("ws://{}/ws?clientId=abc", emu.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let greeting = next_text(&mut ws, long).await.unwrap();
    assert_eq!(greeting["type"], "status");
    assert_eq!(greeting["data"]["sid"], "abc");
    ws.send(Message::text(flags.to_string())).await.unwrap();
    let reply = next_text(&mut ws, long).await.unwrap();
    assert_eq!(reply, json!({"type": "feature_flags", "data": features}));
    assert_eq!(reply["data"]["node_replacements"], true);
    // Only the first message counts.
    ws.send(Message::text(flags.to_string())).await.unwrap();
    assert_eq!(next_text(&mut ws, short).await, None);

    // A first message of another kind: no flags, then or later.
    let (mut other, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(next_text(&mut other, long).await.unwrap()["type"], "status");
    other
        .send(Message::text(r#"{"type": "hello"}"#))
        .await
        .unwrap();
    other.send(Message::text(flags.to_string())).await.unwrap();
    assert_eq!(next_text(&mut other, short).await, None);
    emu.stop().await;
}

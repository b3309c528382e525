//! The real ComfyUI frontend (the `comfyui-frontend-package` builds the
//! recorded sessions ran, `fixtures/frontend/`) served by the emulated
//! release it ran on, in headless Chromium: it boots, no request it makes
//! fails unless the real server failed it too, and the recorded workflow
//! (`workflows/ui/tiny_bypass_mute.json`) loaded with `app.loadGraphData`
//! and queued with `app.queuePrompt(0, 1)` runs to success and shows its
//! output. One browser per test, one test at a time (two cores).
//!
//! Served under a gateway's path prefix (`/user001/`, through a test
//! proxy that strips it), the oldest and newest frontends do the same and
//! never ask for anything outside the prefix: the frontend takes its API
//! base from the page's path.
//!
//! A screenshot of each booted frontend goes to the target's temporary
//! folder; `UPDATE_SCREENSHOTS=1` also writes it to
//! `docs/screenshots/emulator-frontend-<version>.png`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_test_support::chromium::Browser;
use comfy_test_support::frontend;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One browser at a time: a frontend boot keeps both cores busy.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Polls `expression` in the page until it is `true`; panics after `within`.
async fn wait_until(browser: &Browser, expression: &str, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        if browser.eval(expression).await == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            let text = browser
                .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                .await;
            panic!("{what}: not within {within:?}; the page shows:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The failed requests (status ≥ 400) the emulator answered that the real
/// server did not fail in the recorded session, as `METHOD path?query`.
fn unexpected_failures(emu: &EmulatorHandle, allowed: &BTreeSet<(String, String)>) -> Vec<String> {
    emu.served()
        .into_iter()
        .filter(|s| s.status >= 400)
        .filter(|s| !allowed.contains(&(s.method.clone(), s.path.clone())))
        .map(|s| format!("{} {}?{} → {}", s.method, s.path, s.query, s.status))
        .collect()
}

/// The emulator's history entry of the only prompt, once it has a status.
async fn finished_history(emu: &EmulatorHandle) -> Value {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let history: Value = client
            .get(format!("{}/history", emu.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some((_, entry)) = history.as_object().and_then(|m| m.iter().next())
            && entry["status"]["completed"].is_boolean()
        {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no finished prompt in /history: {history}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gateway's path prefix, as a test proxy: `/PREFIX/x` is forwarded to
/// the emulator as `/x` (one request per connection: `Connection: close`,
/// WebSocket upgrades passed through); anything else is answered 404 here
/// and noted. Returns the proxy's address and the requests it refused.
async fn prefix_proxy(
    prefix: &'static str,
    upstream: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let noted = refused.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let noted = noted.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match client.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
                let mut parts = line.splitn(3, ' ');
                let (method, target, version) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let Some(stripped) = target.strip_prefix(prefix) else {
                    noted.lock().unwrap().push(format!("{method} {target}"));
                    let _ = client
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                };
                let upgrade = rest.to_ascii_lowercase().contains("upgrade: websocket");
                let headers: String = rest
                    .split("\r\n")
                    .filter(|h| upgrade || !h.to_ascii_lowercase().starts_with("connection:"))
                    .map(|h| format!("{h}\r\n"))
                    .collect::<String>();
                let headers = headers.trim_end_matches("\r\n");
                let close = if upgrade { "" } else { "connection: close\r\n" };
                let forwarded =
                    format!("{method} {stripped} {version}\r\n{close}{headers}\r\n\r\n");
                let body_start = text.find("\r\n\r\n").map_or(head.len(), |i| i + 4);
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if server.write_all(forwarded.as_bytes()).await.is_err()
                    || server.write_all(&head[body_start..]).await.is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr, refused)
}

async fn boot_and_run(fe: &str, server: &str) {
    boot_and_run_at(fe, server, None).await;
}

async fn boot_and_run_at(fe: &str, server: &str, prefix: Option<&'static str>) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let session = common::session(fe, server);
    let mut allowed: BTreeSet<(String, String)> =
        session.answered(|s| s >= 400).into_iter().collect();
    // The browser's own request (not the app's): no build has the file, so
    // a real server fails it too; the recording tool did not log it.
    allowed.insert(("GET".into(), "/favicon.ico".into()));
    let emu = Emulator::start(EmulatorConfig::new(server).frontend_dir(frontend::static_dir(fe)))
        .await
        .unwrap();
    let proxy = match prefix {
        Some(p) => Some(prefix_proxy(p, emu.addr()).await),
        None => None,
    };
    let page = match (&proxy, prefix) {
        (Some((addr, _)), Some(p)) => format!("http://{addr}{p}/"),
        _ => emu.url(),
    };
    let browser = Browser::launch().await;
    browser.client().goto(&page).await.unwrap();

    // Booted: the app made its graph and drew its canvas.
    wait_until(
        &browser,
        "!!(window.app && window.app.graph && document.querySelector('canvas'))",
        Duration::from_secs(45),
        &format!("frontend {fe} on {server} booted"),
    )
    .await;
    // The frontend's own version is the one served.
    let version = browser
        .eval("window.__COMFYUI_FRONTEND_VERSION__ || null")
        .await;
    assert_eq!(version, json!(fe), "the page runs another frontend");
    // Every non-static path of the recorded boot is asked for here too
    // (some only once the template browser is open: wait for them).
    let recorded: BTreeSet<String> = session
        .boot_calls()
        .into_iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        // No blueprints are emulated, so none is fetched.
        .filter(|p| !p.starts_with("/api/global_subgraphs/"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let asked: BTreeSet<String> = emu.served().into_iter().map(|s| s.path).collect();
        let missing: Vec<&String> = recorded.difference(&asked).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "frontend {fe}: the recorded boot asked for {missing:?}, this one did not"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let boot_failures = unexpected_failures(&emu, &allowed);
    assert!(
        boot_failures.is_empty(),
        "frontend {fe} on {server}: requests the real server answered but the emulator failed: {boot_failures:#?}"
    );

    // The recorded run: load the workflow, queue it as the session did.
    let workflow: Value = serde_json::from_slice(
        &std::fs::read(common::fixtures().join("../workflows/ui/tiny_bypass_mute.json")).unwrap(),
    )
    .unwrap();
    browser
        .client()
        .execute(
            "return Promise.resolve(window.app.loadGraphData(arguments[0])).then(() => true);",
            vec![workflow],
        )
        .await
        .unwrap();
    let nodes = browser.eval("window.app.graph.nodes.length").await;
    assert_eq!(
        nodes,
        json!(4),
        "the workflow's four nodes are on the graph"
    );
    browser
        .client()
        .execute(
            "return Promise.resolve(window.app.queuePrompt(0, 1)).then(() => true);",
            vec![],
        )
        .await
        .unwrap();

    let entry = finished_history(&emu).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    assert_eq!(
        entry["outputs"]["3"]["images"][0]["filename"], "tiny_00001_.png",
        "{entry}"
    );
    assert_eq!(emu.submitted(), 1);
    // The frontend shows the output: it has it among its node outputs and
    // fetched the image.
    wait_until(
        &browser,
        "JSON.stringify(window.app.nodeOutputs || {}).includes('tiny_00001_.png')",
        Duration::from_secs(15),
        &format!("frontend {fe} shows tiny_00001_.png"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !emu.served().iter().any(|s| {
        s.path == "/api/view" && s.query.contains("filename=tiny_00001_.png") && s.status == 200
    }) {
        assert!(
            Instant::now() < deadline,
            "frontend {fe} never fetched the output image"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failures = unexpected_failures(&emu, &allowed);
    assert!(
        failures.is_empty(),
        "frontend {fe} on {server}: failed requests during the run: {failures:#?}"
    );

    // Close what the first run opens (the template browser) to show the
    // graph: wait a little for it, then close it (its button or Escape).
    let dialog = "document.querySelectorAll('[role=dialog], .p-dialog').length > 0";
    for _ in 0..25 {
        if browser.eval(dialog).await == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..5 {
        let closed = browser
            .eval(
                "(() => { const ds = [...document.querySelectorAll('[role=dialog], .p-dialog')]; \
                 if (!ds.length) return true; \
                 for (const d of ds) for (const b of d.querySelectorAll('button')) \
                   if (/close/i.test((b.getAttribute('aria-label') || '') + ' ' + b.className) \
                       || b.querySelector('.pi-times')) b.click(); \
                 return false; })()",
            )
            .await;
        if closed == json!(true) {
            break;
        }
        if let Ok(active) = browser.client().active_element().await {
            let _ = active.send_keys("\u{e00c}").await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // Move the graph (drawn from the origin) clear of the menus.
    browser
        .eval("(() => { const ds = window.app.canvas && window.app.canvas.ds; if (ds) { ds.offset[0] = 120; ds.offset[1] = 160; window.app.canvas.setDirty(true, true); } return true; })()")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = browser.client().screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let name = match prefix {
        None => format!("emulator-frontend-{fe}.png"),
        Some(_) => format!("emulator-frontend-{fe}-under-prefix.png"),
    };
    std::fs::write(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name), &png).unwrap();
    if prefix.is_none() && std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&name), &png).unwrap();
    }
    if let Some((_, refused)) = &proxy {
        let refused = refused.lock().unwrap().clone();
        // Only icons are asked for at the origin's root: the browser's own
        // `/favicon.ico`, and the app's tab icons (the progress frames
        // `/assets/images/favicon_progress_16x16/frame_N.png`; 1.58.1 also
        // `/assets/favicon.ico` and `/assets/images/comfy-icon-192.png`),
        // which the frontend writes with root-absolute paths.
        let icon = |r: &str| {
            r == "GET /favicon.ico"
                || r == "GET /assets/favicon.ico"
                || (r.starts_with("GET /assets/images/") && r.ends_with(".png"))
        };
        let outside: Vec<&String> = refused.iter().filter(|r| !icon(r)).collect();
        assert!(
            outside.is_empty(),
            "frontend {fe} under {prefix:?} asked outside its prefix: {outside:?}"
        );
    }
    browser.close().await;
    emu.stop().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(90),
        "frontend {fe} took {took:?}"
    );
    eprintln!("frontend {fe} on {server}: booted and ran in {took:?}");
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_36_14_boots_and_runs_on_emulated_0_9_2() {
    boot_and_run("1.36.14", "0.9.2").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_37_11_boots_and_runs_on_emulated_0_11_1() {
    boot_and_run("1.37.11", "0.11.1").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_48_7_boots_and_runs_on_emulated_0_33_0() {
    boot_and_run("1.48.7", "0.33.0").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_58_1_boots_and_runs_on_emulated_0_33_0() {
    boot_and_run("1.58.1", "0.33.0").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_36_14_boots_and_runs_under_a_path_prefix() {
    boot_and_run_at("1.36.14", "0.9.2", Some("/user001")).await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_58_1_boots_and_runs_under_a_path_prefix() {
    boot_and_run_at("1.58.1", "0.33.0", Some("/user001")).await;
}

/// The headline templates from the frontend, as a demo runs them: frontend
/// 1.48.7 on emulated 0.33.0 with the models the templates name
/// (`template_models_in`), each template loaded with `app.loadGraphData`
/// and queued with `app.queuePrompt(0, 1)`: Flux.2 saves an image, LTX-2 a
/// video, and the frontend has both among its node outputs.
#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn the_flux2_and_ltx2_templates_run_from_the_frontend_given_their_models() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let ui = common::fixtures().join("../workflows/ui");
    let models = comfy_emulator::template_models_in(&ui).unwrap();
    let emu = Emulator::start(
        EmulatorConfig::new("0.33.0")
            .node_time(Duration::ZERO)
            .frontend_dir(frontend::static_dir("1.48.7"))
            .models(models),
    )
    .await
    .unwrap();
    let browser = Browser::launch().await;
    browser.client().goto(&emu.url()).await.unwrap();
    wait_until(
        &browser,
        "!!(window.app && window.app.graph && document.querySelector('canvas'))",
        Duration::from_secs(45),
        "frontend 1.48.7 booted",
    )
    .await;
    let client = reqwest::Client::new();
    for (n, (template, output, ext)) in [
        ("image_flux2_klein_text_to_image.json", "9", ".png"),
        ("video_ltx2_t2v.json", "75", ".mp4"),
    ]
    .into_iter()
    .enumerate()
    {
        let workflow: Value =
            serde_json::from_slice(&std::fs::read(ui.join(template)).unwrap()).unwrap();
        browser
            .client()
            .execute(
                "return Promise.resolve(window.app.loadGraphData(arguments[0])).then(() => true);",
                vec![workflow],
            )
            .await
            .unwrap();
        browser
            .client()
            .execute(
                "return Promise.resolve(window.app.queuePrompt(0, 1)).then(() => true);",
                vec![],
            )
            .await
            .unwrap();
        // The n-th prompt this emulator accepted, once it finished.
        let deadline = Instant::now() + Duration::from_secs(30);
        let entry = loop {
            let history: Value = client
                .get(format!("{}/history", emu.url()))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let done: Vec<&Value> = history
                .as_object()
                .unwrap()
                .values()
                .filter(|e| e["status"]["completed"].is_boolean())
                .collect();
            if done.len() > n {
                break done
                    .into_iter()
                    .find(|e| e["outputs"][output].is_object())
                    .cloned()
                    .unwrap_or_else(|| panic!("{template}: no output {output}: {history}"));
            }
            assert!(
                Instant::now() < deadline,
                "{template}: not run; {} accepted, failed requests: {:?}",
                emu.submitted(),
                emu.served()
                    .into_iter()
                    .filter(|s| s.status >= 400)
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(
            entry["status"]["status_str"], "success",
            "{template}: {entry}"
        );
        let file = entry["outputs"][output]["images"][0]["filename"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(file.ends_with(ext), "{template}: {file}");
        wait_until(
            &browser,
            &format!("JSON.stringify(window.app.nodeOutputs || {{}}).includes('{file}')"),
            Duration::from_secs(15),
            &format!("frontend shows {file}"),
        )
        .await;
    }
    assert_eq!(emu.submitted(), 2);
    let mut allowed: BTreeSet<(String, String)> = common::session("1.48.7", "0.33.0")
        .answered(|s| s >= 400)
        .into_iter()
        .collect();
    allowed.insert(("GET".into(), "/favicon.ico".into()));
    let failures = unexpected_failures(&emu, &allowed);
    assert!(failures.is_empty(), "failed requests: {failures:#?}");
    browser.close().await;
    emu.stop().await;
}

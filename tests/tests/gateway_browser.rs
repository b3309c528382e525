//! The issue's proof: each user's own, unchanged ComfyUI frontend, served
//! through `comfy-gateway`, runs its jobs on the GPU pool through the queue,
//! driven in headless Chromium as a user drives it. For each frontend and
//! the ComfyUI release that pins it (1.36.14 on 0.9.2, 1.37.11 on 0.11.1,
//! 1.48.7 and 1.58.1 on 0.33.0):
//!
//! - the platform in-process over HTTP: a queue with auth on, an emulated GPU
//!   ComfyUI 0.33.0 (300 ms per node, five progress steps) with a worker, alice's
//!   and bob's own emulated ComfyUIs of the pair's release serving the pair's
//!   frontend, and the gateway with the repository's `workflows/ui` templates
//!   provisioned into both users' workflows menus;
//! - the browser carries the identity header nginx would set
//!   ([`Browser::set_extra_headers`], which Chromium also sends on the
//!   socket's handshake: the gateway refuses a socket without it, and the
//!   progress below only reaches the page through that socket);
//! - as alice: the template `tiny_bypass_mute` opened from the workflows
//!   sidebar, Run clicked; the job the gateway created is in the frontend's
//!   queue store (fed by `/queue` + `/history` on 1.36/1.37, `/api/jobs` on
//!   1.48/1.58) and in its job queue panel, the SaveImage node's progress is
//!   shown while it runs, its output image is loaded from the gateway's
//!   `/view` (`subfolder=comfy-queue/<job>`), and it ran on the GPU ComfyUI,
//!   never on alice's own;
//! - a longer prompt (the same template made to render eight 4096² images)
//!   is cancelled with the frontend's "Cancel current run" button: the queue
//!   job ends `cancelled`;
//! - no request of the app fails but the userdata files a fresh user lacks
//!   (404 from the user's own ComfyUI, as from a real one), no console error;
//!   a socket opened from the page is accepted with the header and refused
//!   without it;
//! - bob, in a browser of his own, sees an empty queue panel, and his
//!   `/api/jobs`, `/history` and `/queue` hold nothing of alice's.
//!
//! A screenshot of each (the output on the graph, the job queue panel
//! open) goes to the target's temporary folder; `UPDATE_SCREENSHOTS=1` also
//! writes it to `docs/screenshots/gateway-<frontend>.png`. The emulator's
//! images are 1×1 PNGs, which the node shows as "1 × 1".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_e2e::*;
use comfy_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use comfy_gateway::{Config, Gateway};
use comfy_stack::{RunningQueue, start_queue};
use comfy_test_support::chromium::Browser;
use comfy_test_support::frontend;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const WORKER_TOKEN: &str = "gwb-worker";
const ADMIN_TOKEN: &str = "gwb-admin";

struct Platform {
    queue: RunningQueue,
    gpu: EmulatorHandle,
    alice_ui: EmulatorHandle,
    bob_ui: EmulatorHandle,
    worker: TestWorker,
    gateway: String,
    _dir: tempfile::TempDir,
}

async fn platform(fe: &str, server: &str) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let o = authed_sqlite_options(dir.path(), WORKER_TOKEN, ADMIN_TOKEN);
    let queue = start_queue(o).await.unwrap();
    let gpu = Emulator::start(
        EmulatorConfig::new("0.33.0")
            .node_time(Duration::from_millis(300))
            .progress_steps(5),
    )
    .await
    .unwrap();
    let ui = || EmulatorConfig::new(server).frontend_dir(frontend::static_dir(fe));
    let alice_ui = Emulator::start(ui()).await.unwrap();
    let bob_ui = Emulator::start(ui()).await.unwrap();
    let mut cfg = worker_config(&queue.url(), &gpu.url(), "w-gwb");
    cfg.worker_token = Some(WORKER_TOKEN.into());
    let worker = TestWorker::start(cfg);
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows/ui");
    let toml = format!(
        r#"queue_url = "{}"
           state_dir = "{}"
           templates_dir = "{}"
           [[users]]
           id = "alice"
           upstream = "{}"
           [[users]]
           id = "bob"
           upstream = "{}"
        "#,
        queue.url(),
        dir.path().display(),
        templates.display(),
        alice_ui.url(),
        bob_ui.url()
    );
    let config: Config = toml::from_str(&toml).unwrap();
    config.validate().unwrap();
    let gw = Gateway::new(config).unwrap();
    comfy_gateway::provision_all(&gw).await;
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
        _dir: dir,
    }
}

/// Fails a wait for `what`: says what the page shows, node 3's output and the
/// socket events the page received.
async fn give_up(browser: &Browser, what: &str, within: Duration) -> ! {
    let text = browser
        .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
        .await;
    let story = browser.eval(OUTPUT_STORY).await;
    panic!(
        "{what}: not within {within:?}; the page shows:\n{text}\nnode 3 and the events:\n{story:#}"
    );
}

async fn wait_until(browser: &Browser, expression: &str, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        if browser.eval(expression).await == json!(true) {
            return;
        }
        if Instant::now() > deadline {
            give_up(browser, what, within).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Marks the first element `finder` (a JS function body returning an
/// element or null) finds with `data-gwb-target`, for a WebDriver click.
async fn click(browser: &Browser, finder: &str, within: Duration, what: &str) {
    let mark = format!(
        "(() => {{ for (const e of document.querySelectorAll('[data-gwb-target]')) e.removeAttribute('data-gwb-target'); \
         const el = (() => {{ {finder} }})(); if (!el) return false; el.setAttribute('data-gwb-target', '1'); \
         el.scrollIntoView({{block: 'center'}}); return true; }})()"
    );
    wait_until(browser, &mark, within, what).await;
    let el = browser
        .client()
        .find(comfy_test_support::chromium::fantoccini::Locator::Css(
            "[data-gwb-target]",
        ))
        .await
        .unwrap();
    el.click()
        .await
        .unwrap_or_else(|e| panic!("{what}: click: {e}"));
}

/// JS: the first visible element matching `css` whose text or aria-label `test` accepts.
fn visible(css: &str, test: &str) -> String {
    format!(
        "return [...document.querySelectorAll({css:?})].find(e => {{ const r = e.getBoundingClientRect(); \
         const t = ((e.innerText || '') + ' ' + (e.getAttribute('aria-label') || '')).trim(); \
         return r.width > 0 && r.height > 0 && ({test})(t); }}) || null;"
    )
}

/// Closes what the first boot opens (the templates dialog).
async fn close_dialogs(browser: &Browser) {
    let dialog = "document.querySelectorAll('[role=dialog], .p-dialog').length > 0";
    for _ in 0..15 {
        if browser.eval(dialog).await == json!(true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..8 {
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
            return;
        }
        if let Ok(active) = browser.client().active_element().await {
            let _ = active.send_keys("\u{e00c}").await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

/// JS: the frontend's Pinia store `id`.
fn store(id: &str) -> String {
    format!(
        "document.getElementById('vue-app').__vue_app__.config.globalProperties.$pinia._s.get('{id}')"
    )
}

/// JS: the prompt ids in the frontend's queue store (running, pending, history).
fn queue_ids() -> String {
    format!(
        "(() => {{ const q = {}; if (!q) return null; const ids = k => [...(q[k] || [])].map(t => t.promptId || t.jobId || t.id || (t.job && t.job.id) || null); \
         return {{running: ids('runningTasks'), pending: ids('pendingTasks'), history: ids('historyTasks')}}; }})()",
        store("queue")
    )
}

async fn gateway_get(gw: &str, user: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{gw}/{user}{path}"))
        .header("X-Forwarded-User", user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

/// JS run before the page's own: notes every failed fetch the app makes
/// (`METHOD path → status`) and its console errors.
const WATCH_FAILURES: &str = "window.__gwbFailed = []; window.__gwbErrors = []; \
    const f = window.fetch; window.fetch = async function (input, init) { \
      const r = await f.apply(this, arguments); \
      if (r.status >= 400) { const u = new URL(typeof input === 'string' ? input : input.url, location.href); \
        window.__gwbFailed.push(((init && init.method) || (input && input.method) || 'GET') + ' ' + u.pathname + u.search + ' → ' + r.status); } \
      return r; }; \
    const e = console.error; console.error = function () { \
      window.__gwbErrors.push([...arguments].map(a => (a && a.stack) || String(a)).join(' ').slice(0, 300)); return e.apply(this, arguments); };";

/// Asserts the page saw no failure but the userdata files a fresh user does
/// not have (answered 404 by the user's own ComfyUI, as a real one does: no
/// `subgraphs/` folder, no `comfy.templates.json`, no `workflows/.index.json`),
/// and no console error but the one the tests' own early `app.graph` polls cause.
async fn assert_no_failures(browser: &Browser, fe: &str, user: &str) {
    let failed = browser.eval("window.__gwbFailed").await;
    let unexpected: Vec<&Value> = failed
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let f = f.as_str().unwrap_or("");
            !(f.starts_with(&format!("GET /{user}/api/userdata")) && f.ends_with("→ 404"))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "frontend {fe} as {user}: failed requests {unexpected:?}"
    );
    let errors = browser.eval("window.__gwbErrors").await;
    let unexpected: Vec<&Value> = errors
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.as_str() != Some("ComfyApp graph accessed before initialization"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "frontend {fe} as {user}: console errors {unexpected:?}"
    );
}

/// JS: opens a socket to the page's `/ws` as the app does and says whether
/// the gateway accepted it (`message`: ComfyUI's first status arrived) or not.
const WS_PROBE: &str = "return new Promise(done => { \
    const ws = new WebSocket(new URL('ws?clientId=gwb-probe', location.href).href.replace(/^http/, 'ws')); \
    ws.onmessage = () => { ws.close(); done('message'); }; ws.onerror = () => done('refused'); \
    setTimeout(() => done('timeout'), 5000); });";

async fn boot(browser: &Browser, gw: &str, user: &str, fe: &str) {
    browser
        .set_extra_headers(&[("X-Forwarded-User", user)])
        .await;
    browser
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": WATCH_FAILURES}),
        )
        .await;
    browser
        .client()
        .goto(&format!("{gw}/{user}/"))
        .await
        .unwrap();
    wait_until(
        browser,
        "!!(window.app && window.app.graph && document.querySelector('canvas'))",
        Duration::from_secs(45),
        &format!("frontend {fe} booted at /{user}/"),
    )
    .await;
    assert_eq!(
        browser
            .eval("window.__COMFYUI_FRONTEND_VERSION__ || null")
            .await,
        json!(fe)
    );
    close_dialogs(browser).await;
}

/// Opens the provisioned template `name` (without `.json`) from the workflows sidebar.
async fn open_template(browser: &Browser, name: &str) {
    click(
        browser,
        &visible("button", "t => /^Workflows\\b/.test(t)"),
        Duration::from_secs(10),
        "the workflows sidebar button",
    )
    .await;
    let item = visible(
        ".p-tree-node-content, .p-tree-node-label, [role=treeitem] *, li *, span, div",
        &format!("t => t === {name:?} || t === {:?}", format!("{name}.json")),
    );
    click(
        browser,
        &item,
        Duration::from_secs(10),
        &format!("{name} in the workflows sidebar"),
    )
    .await;
}

/// Polls `expression` until it is neither null nor false and returns it.
async fn wait_value(browser: &Browser, expression: &str, within: Duration, what: &str) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = browser.eval(expression).await;
        if !v.is_null() && v != json!(false) {
            return v;
        }
        if Instant::now() > deadline {
            give_up(browser, what, within).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The queue's record of job `id`, as an admin sees it.
async fn queue_job(p: &Platform, id: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/api/jobs/{id}", p.queue.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The ids of `user`'s jobs through the gateway's jobs API, newest first.
async fn job_ids(p: &Platform, user: &str) -> Vec<String> {
    let jobs = gateway_get(&p.gateway, user, "/api/jobs").await;
    jobs["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("{jobs}"))
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits for a job of alice's that `known` does not hold; returns its id.
async fn new_job(p: &Platform, known: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(id) = job_ids(p, "alice")
            .await
            .into_iter()
            .find(|i| !known.contains(i))
        {
            return id;
        }
        assert!(Instant::now() < deadline, "the Run made no queue job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// JS: the listing calls the page made through the gateway, as paths.
const LISTING_CALLS: &str = "performance.getEntriesByType('resource').map(e => new URL(e.name).pathname).filter(p => /\\/api\\/(queue|history|jobs)$/.test(p))";

/// JS: a sampler of what the frontend shows while a prompt runs (the
/// executing node and its progress, from its execution store), every 50 ms.
fn progress_sampler() -> String {
    format!(
        "(() => {{ window.__gwbSamples = []; clearInterval(window.__gwbSampler); \
         window.__gwbSampler = setInterval(() => {{ const e = {}; if (!e) return; \
         const p = e.executingNodeProgress ?? e._executingNodeProgress ?? null; \
         window.__gwbSamples.push({{node: e.executingNodeId ?? null, progress: typeof p === 'number' ? p : (p && p.max ? p.value / p.max : null)}}); }}, 50); \
         {EVENT_LOG} return true; }})()",
        store("execution")
    )
}

/// JS: records the socket events the frontend's api dispatched (type and a
/// prefix of the data) in `window.__gwbEvents`, to tell a failure's story.
const EVENT_LOG: &str = "if (!window.__gwbEvents) { window.__gwbEvents = []; \
    const a = (window.app && window.app.api) || (window.comfyAPI && window.comfyAPI.api && window.comfyAPI.api.api); \
    if (a) for (const t of ['status', 'execution_start', 'execution_cached', 'executing', 'progress', 'progress_state', 'executed', 'execution_success', 'execution_error', 'execution_interrupted']) \
    a.addEventListener(t, e => window.__gwbEvents.push(Math.round(performance.now()) + ' ' + t + ' ' + JSON.stringify(e.detail).slice(0, 300))); }";

/// JS: what the page knows of node 3's output: its image elements and the
/// socket events it received.
const OUTPUT_STORY: &str = "(() => { try { const n = window.app.graph.getNodeById(3); \
    return {imgs: n && n.imgs ? n.imgs.map(i => ({src: i.src, complete: i.complete, width: i.naturalWidth})) : null, \
    outputs: window.app.nodeOutputs ? window.app.nodeOutputs['3'] ?? null : 'no app.nodeOutputs', \
    events: window.__gwbEvents ?? null}; } catch (e) { return String(e); } })()";

/// JS: the button that opens and closes the job queue panel (all four
/// versions label it "Expand job queue"; 1.36.14 and 1.37.11 show "N job(s)
/// completed" on it once something finished).
const QUEUE_TOGGLE: &str = "return [...document.querySelectorAll('button')].find(e => e.getBoundingClientRect().width > 0 \
    && /job queue|jobs? (completed|queued)|\\d+ active/i.test((e.innerText || '') + ' ' + (e.getAttribute('aria-label') || ''))) || null;";

const RUN_BUTTON: &str = "const q = document.querySelector('[data-testid=queue-button]'); \
    return q && (q.tagName === 'BUTTON' ? q : q.querySelector('button'));";

async fn run_on_the_gateway(fe: &str, server: &str) {
    let started = Instant::now();
    let p = platform(fe, server).await;
    let browser = Browser::launch().await;
    boot(&browser, &p.gateway, "alice", fe).await;

    // The template, opened from the workflows sidebar as a user does.
    open_template(&browser, "tiny_bypass_mute").await;
    wait_until(
        &browser,
        "window.app.graph.nodes.map(n => n.type).sort().join() === 'EmptyImage,ImageInvert,PreviewImage,SaveImage'",
        Duration::from_secs(10),
        "the template's nodes on the graph",
    )
    .await;

    // Run, pressed as a user does.
    browser.eval(&progress_sampler()).await;
    click(
        &browser,
        RUN_BUTTON,
        Duration::from_secs(5),
        "the Run button",
    )
    .await;
    let id = new_job(&p, &[]).await;

    // The frontend's queue panel has the job the gateway returned, first
    // running, then in its history (read from the gateway's /queue and
    // /history, or /api/jobs).
    wait_until(
        &browser,
        &format!(
            "(() => {{ const q = {}; return !!q && q.history.includes('{id}'); }})()",
            queue_ids()
        ),
        Duration::from_secs(20),
        &format!("job {id} in the frontend's queue history"),
    )
    .await;
    let samples = browser.eval("window.__gwbSamples").await;
    let samples = samples.as_array().unwrap();
    assert!(
        samples.iter().any(|s| s["node"] == "3" && s["progress"].as_f64().is_some_and(|v| v > 0.0 && v < 1.0)),
        "no progress of the SaveImage node shown while it ran: {samples:?}"
    );
    let calls = browser.eval(LISTING_CALLS).await;
    let calls: Vec<&str> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let wanted: &[&str] = if fe.starts_with("1.3") {
        &["/alice/api/queue", "/alice/api/history"]
    } else {
        &["/alice/api/jobs"]
    };
    for w in wanted {
        assert!(
            calls.contains(w),
            "frontend {fe} never called {w}: {calls:?}"
        );
    }

    // The output image, shown on the SaveImage node from the gateway's /view.
    let src = wait_value(
        &browser,
        &format!(
            "(() => {{ const n = window.app.graph.getNodeById(3); const i = n && n.imgs && n.imgs[0]; \
             return i && i.complete && i.naturalWidth > 0 && i.src.includes('subfolder=comfy-queue%2F{id}') ? i.src : null; }})()"
        ),
        Duration::from_secs(15),
        "the output image on the SaveImage node",
    )
    .await;
    assert!(
        src.as_str()
            .unwrap()
            .starts_with(&format!("{}/alice/", p.gateway)),
        "{src}"
    );

    // It ran on the GPU ComfyUI, not on alice's own.
    let gpu_history: Value = reqwest::get(format!("{}/history", p.gpu.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        gpu_history.as_object().map(|h| h.len()),
        Some(1),
        "{gpu_history}"
    );
    assert!(
        gpu_history.to_string().contains("tiny_00001_.png"),
        "{gpu_history}"
    );
    let own: Value = reqwest::get(format!("{}/history", p.alice_ui.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own, json!({}), "alice's own ComfyUI ran something");
    assert_eq!(p.alice_ui.submitted(), 0);
    assert_eq!(queue_job(&p, &id).await["status"], "completed");

    // The screenshot: the sidebar closed, the graph clear of the menus.
    click(
        &browser,
        &visible("button", "t => /^Workflows\\b/.test(t)"),
        Duration::from_secs(5),
        "closing the sidebar",
    )
    .await;
    browser
        .eval("(() => { const ds = window.app.canvas && window.app.canvas.ds; if (ds) { ds.offset[0] = 120; ds.offset[1] = 160; window.app.canvas.setDirty(true, true); } return true; })()")
        .await;
    // The queue panel, opened as a user does, lists the finished job by its output.
    let before = browser.eval("document.body.innerText").await;
    assert!(
        !before.as_str().unwrap().contains("tiny_00001_.png"),
        "{before}"
    );
    click(
        &browser,
        QUEUE_TOGGLE,
        Duration::from_secs(5),
        "the job queue button",
    )
    .await;
    wait_until(
        &browser,
        "document.body.innerText.includes('Job Queue') && document.body.innerText.includes('tiny_00001_.png')",
        Duration::from_secs(10),
        "the finished job in the job queue panel",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = browser.client().screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let name = format!("gateway-{fe}.png");
    std::fs::write(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name), &png).unwrap();
    if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&name), &png).unwrap();
    }

    click(
        &browser,
        QUEUE_TOGGLE,
        Duration::from_secs(5),
        "closing the job queue",
    )
    .await;

    // Cancel: a longer prompt (eight 4096² images: seconds per node), Run,
    // then the frontend's cancel control while it runs.
    browser
        .eval(
            "(() => { const n = window.app.graph.getNodeById(1); for (const w of n.widgets) { \
             if (w.name === 'width' || w.name === 'height') w.value = 4096; if (w.name === 'batch_size') w.value = 8; } \
             window.app.graph.setDirtyCanvas(true, true); return true; })()",
        )
        .await;
    click(
        &browser,
        RUN_BUTTON,
        Duration::from_secs(5),
        "the Run button",
    )
    .await;
    let long = new_job(&p, std::slice::from_ref(&id)).await;
    wait_until(
        &browser,
        &format!(
            "(() => {{ const q = {}; return !!q && q.running.includes('{long}'); }})()",
            queue_ids()
        ),
        Duration::from_secs(15),
        &format!("job {long} running in the frontend's queue panel"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue_job(&p, &long).await["status"] != "running" {
        assert!(Instant::now() < deadline, "job {long} never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(
        &browser,
        &visible("button", "t => t === 'Cancel current run'"),
        Duration::from_secs(5),
        "the cancel button",
    )
    .await;
    let cancel_calls = wait_value(
        &browser,
        "(() => { const c = performance.getEntriesByType('resource').map(e => new URL(e.name).pathname) \
         .filter(p => /\\/api\\/(interrupt|jobs\\/.*cancel)$/.test(p)); return c.length ? c : null; })()",
        Duration::from_secs(5),
        "the frontend's cancel call",
    )
    .await;
    eprintln!("frontend {fe} cancels with {cancel_calls}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let job = queue_job(&p, &long).await;
        if job["status"] == "cancelled" {
            break;
        }
        assert!(Instant::now() < deadline, "job {long} not cancelled: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(
        &browser,
        &format!(
            "(() => {{ const q = {}; return !!q && !q.running.includes('{long}'); }})()",
            queue_ids()
        ),
        Duration::from_secs(15),
        &format!("job {long} no longer running in the frontend"),
    )
    .await;
    assert_no_failures(&browser, fe, "alice").await;
    // The identity header reaches the socket's handshake too: with it the
    // gateway accepts a socket, without it refuses one (401).
    let probe = |b: &Browser| {
        let c = b.client().clone();
        async move { c.execute(WS_PROBE, Vec::new()).await.unwrap() }
    };
    assert_eq!(probe(&browser).await, "message");
    browser.set_extra_headers(&[]).await;
    assert_eq!(probe(&browser).await, "refused");
    browser.close().await;

    // Bob, in a browser of his own, sees none of it.
    let browser = Browser::launch().await;
    boot(&browser, &p.gateway, "bob", fe).await;
    let wanted: Vec<String> = wanted
        .iter()
        .map(|w| w.replace("/alice/", "/bob/"))
        .collect();
    wait_until(
        &browser,
        &format!("(() => {{ const c = {LISTING_CALLS}; return {wanted:?}.every(w => c.includes(w)); }})()"),
        Duration::from_secs(15),
        "bob's frontend listed his queue",
    )
    .await;
    click(
        &browser,
        QUEUE_TOGGLE,
        Duration::from_secs(5),
        "bob's job queue button",
    )
    .await;
    wait_until(
        &browser,
        "document.body.innerText.includes('Job Queue')",
        Duration::from_secs(10),
        "bob's job queue panel",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let shown = browser.eval("document.body.innerText").await;
    assert!(
        !shown.as_str().unwrap().contains("tiny_"),
        "bob's panel shows alice's job: {shown}"
    );
    assert_eq!(
        browser.eval(&queue_ids()).await,
        json!({"running": [], "pending": [], "history": []}),
        "bob's queue panel"
    );
    let bobs = gateway_get(&p.gateway, "bob", "/api/jobs").await;
    assert_eq!(bobs["jobs"], json!([]), "{bobs}");
    let history = gateway_get(&p.gateway, "bob", "/api/history").await;
    assert_eq!(history, json!({}));
    let queue = gateway_get(&p.gateway, "bob", "/api/queue").await;
    for seen in [bobs, history, queue] {
        assert!(
            !seen.to_string().contains(&id) && !seen.to_string().contains(&long),
            "{seen}"
        );
    }
    // And alice's jobs are still hers.
    assert_eq!(job_ids(&p, "alice").await.len(), 2);

    assert_no_failures(&browser, fe, "bob").await;
    browser.close().await;
    p.stop().await;
    let took = started.elapsed();
    eprintln!("frontend {fe} on {server} through the gateway: {took:?}");
    assert!(
        took < Duration::from_secs(90),
        "frontend {fe} took {took:?}"
    );
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

/// One browser at a time: a frontend boot keeps both cores busy.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_36_14_on_0_9_2_runs_through_the_gateway() {
    let _turn = ONE_AT_A_TIME.lock().await;
    run_on_the_gateway("1.36.14", "0.9.2").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_37_11_on_0_11_1_runs_through_the_gateway() {
    let _turn = ONE_AT_A_TIME.lock().await;
    run_on_the_gateway("1.37.11", "0.11.1").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_48_7_on_0_33_0_runs_through_the_gateway() {
    let _turn = ONE_AT_A_TIME.lock().await;
    run_on_the_gateway("1.48.7", "0.33.0").await;
}

#[tokio::test]
#[cfg_attr(not(has_chromium), ignore = "chromium or chromedriver not installed")]
async fn frontend_1_58_1_on_0_33_0_runs_through_the_gateway() {
    let _turn = ONE_AT_A_TIME.lock().await;
    run_on_the_gateway("1.58.1", "0.33.0").await;
}

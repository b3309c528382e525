//! The emulator answers the static probes of every recorded fixture set
//! (the ones whose requests carry no ids made earlier in the run) with zero
//! differences as `comfy_adapter::diff` classifies them.
//!
//! The probes are replayed in file order against one fresh emulator per
//! version (the userdata probes build on each other), exactly as recorded:
//! method, raw percent-encoded path, query, JSON or text body. Each answer is
//! captured in fixture format and diffed against the recording as two
//! one-probe fixture sets.

#![cfg(feature = "emulator")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use comfy_adapter::diff::{FixtureSet, diff};
use comfy_adapter::emulator::{Emulator, EmulatorConfig};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{VERSIONS, all_fixtures};

/// Differences the emulator does not reproduce: (version or `*`, probe file
/// stem, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

/// The static probes by number: no ids created earlier in the run.
fn is_static(n: u32) -> bool {
    matches!(n, 1..=22 | 37..=45 | 89..=118)
}

/// A 1x1 PNG, the image probe 092 uploads.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// Sends the recorded request as recorded and captures the answer in
/// fixture format. (Stand-in for the shared recorder module.)
async fn capture(client: &reqwest::Client, base: &str, recorded: &Value) -> Value {
    let req = &recorded["request"];
    let method = req["method"].as_str().unwrap();
    let path = req["path"].as_str().unwrap();
    let mut url = reqwest::Url::parse(&format!("{base}{path}")).unwrap();
    if let Some(q) = req["query"].as_object().filter(|q| !q.is_empty()) {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            pairs.append_pair(k, v.as_str().unwrap());
        }
    }
    let mut rb = client.request(method.parse().unwrap(), url);
    rb = match &req["body"] {
        Value::Null => rb,
        Value::String(s) if path == "/upload/image" => {
            assert!(s.starts_with("multipart:"), "{s}");
            let part = reqwest::multipart::Part::bytes(PNG_1X1.to_vec())
                .file_name("fixture_upload.png")
                .mime_str("image/png")
                .unwrap();
            rb.multipart(
                reqwest::multipart::Form::new()
                    .part("image", part)
                    .text("type", "input")
                    .text("overwrite", "true"),
            )
        }
        Value::String(s) => rb.body(s.clone()),
        json => rb
            .header("content-type", "application/json")
            .body(serde_json::to_vec(json).unwrap()),
    };
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for name in ["content-type", "allow", "content-disposition"] {
        if let Some(v) = resp.headers().get(name) {
            headers.insert(name.into(), json!(v.to_str().unwrap()));
        }
    }
    let ct = headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let bytes = resp.bytes().await.unwrap();
    let binary = ["image/", "video/", "audio/", "application/octet-stream"]
        .iter()
        .any(|p| ct.starts_with(p))
        || std::str::from_utf8(&bytes).is_err();
    let body = if binary {
        json!({"_binary_bytes": bytes.len(), "_content_type": ct})
    } else {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    json!({
        "name": recorded["name"],
        "comfyui_version": recorded["comfyui_version"],
        "request": req,
        "response": {"status": status, "headers": headers, "body": body},
    })
}

/// Probe 016 is the recorder's summary of `GET /object_info`.
fn summarize_object_info(captured: &mut Value) {
    let body = &captured["response"]["body"];
    let classes = body.as_object().cloned().unwrap_or_default();
    let names: Vec<&String> = classes
        .keys()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let field_sets: BTreeSet<String> = classes
        .values()
        .filter_map(Value::as_object)
        .map(|d| {
            let keys: BTreeSet<&str> = d.keys().map(String::as_str).collect();
            keys.into_iter().collect::<Vec<_>>().join(",")
        })
        .collect();
    let summary =
        json!({"node_count": classes.len(), "node_classes": names, "field_sets": field_sets});
    captured["response"]["body"] = summary;
    captured["response"]["headers"] = json!({});
}

/// Runs the prompt of 023 and waits until its history entry is written.
async fn run_probe_023(client: &reqwest::Client, base: &str, fixtures: &[(String, Value)]) {
    let (_, submit) = fixtures
        .iter()
        .find(|(stem, _)| stem.starts_with("023-"))
        .unwrap();
    let answer: Value = client
        .post(format!("{base}/prompt"))
        .json(&submit["request"]["body"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["prompt_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h: Value = client
            .get(format!("{base}/history/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if h.get(&id).is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "023 prompt {id} did not finish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn excepted(version: &str, stem: &str) -> bool {
    EXCEPTIONS
        .iter()
        .any(|(v, p, _)| (*v == "*" || *v == version) && *p == stem)
}

#[tokio::test(flavor = "multi_thread")]
async fn static_probes_answer_as_recorded_on_every_version() {
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for version in VERSIONS {
        let emu = Emulator::start(EmulatorConfig::new(version).node_time(Duration::from_millis(1)))
            .await
            .unwrap();
        let base = emu.url();
        let fixtures = all_fixtures(version);
        let mut passed = Vec::new();
        let mut compared = 0;
        for (stem, recorded) in &fixtures {
            let n: u32 = stem[..3].parse().unwrap();
            if !is_static(n) || recorded.get("request").is_none() {
                continue;
            }
            if n == 89 {
                run_probe_023(&client, &base, &fixtures).await;
            }
            let mut captured = capture(&client, &base, recorded).await;
            if n == 16 {
                summarize_object_info(&mut captured);
            }
            let name = stem[4..].to_owned();
            let a = FixtureSet {
                label: format!("{version} recorded"),
                probes: vec![(name.clone(), recorded.clone())],
            };
            let b = FixtureSet {
                label: format!("{version} emulated"),
                probes: vec![(name, captured.clone())],
            };
            let d = diff(&a, &b);
            compared += 1;
            if d.changes.is_empty() {
                passed.push(n);
            } else if !excepted(version, stem) {
                let mut resp = captured["response"].to_string();
                resp.truncate(600);
                failures.push(format!(
                    "{version} {stem}: {}\n    emulated: {resp}",
                    d.changes
                        .iter()
                        .map(|c| format!(
                            "[{:?}] {} {} {:?} -> {:?}",
                            c.class, c.kind, c.path, c.before, c.after
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
        }
        eprintln!("{version}: {} static probes with zero diff", passed.len());
        assert_eq!(compared, 61, "{version}: static probes replayed");
        let dir = emu.data_dir().to_owned();
        assert!(
            dir.join("input/fixture_upload.png").is_file(),
            "{version}: upload stored"
        );
        emu.stop().await;
        assert!(!dir.exists(), "{version}: {} left behind", dir.display());
    }
    assert!(
        failures.is_empty(),
        "{} probes differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// ComfyUI's rules beyond the recorded requests: a second percent-decoding
/// of userdata names, a move to outside the user folder, upload renaming,
/// a `/view` subfolder outside the folder, settings, unknown model folders.
#[tokio::test]
async fn file_rules_beyond_the_recordings() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1"))
        .await
        .unwrap();
    let base = emu.url();
    let client = reqwest::Client::new();
    let status =
        |rb: reqwest::RequestBuilder| async move { rb.send().await.unwrap().status().as_u16() };

    assert_eq!(status(client.get(format!("{base}/users"))).await, 200);
    let users: Value = client
        .get(format!("{base}/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["migrated"], json!(false));

    // `%252F` arrives as `%2F`, which ComfyUI decodes once more.
    let post = client
        .post(format!("{base}/userdata/a%252Fb.json"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 200);
    assert_eq!(post.json::<Value>().await.unwrap(), json!("a/b.json"));
    assert!(emu.data_dir().join("user/default/a/b.json").is_file());
    assert_eq!(
        status(client.get(format!("{base}/userdata/..%252F..%252Fx.json"))).await,
        403
    );
    // ComfyUI carries on with the 403 answer as the destination and fails.
    assert_eq!(
        status(client.post(format!("{base}/userdata/a%2Fb.json/move/..%2F..%2Fx.json"))).await,
        500
    );
    assert_eq!(status(client.get(format!("{base}/userdata"))).await, 400);

    // Settings live in the user folder.
    assert_eq!(
        status(
            client
                .post(format!("{base}/settings/Comfy.Theme"))
                .json(&json!("dark"))
        )
        .await,
        200
    );
    let theme: Value = client
        .get(format!("{base}/settings/Comfy.Theme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theme, json!("dark"));
    let users: Value = client
        .get(format!("{base}/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["migrated"], json!(true));

    // Without overwrite, other bytes under the same name get ` (1)`; the
    // same bytes keep the name.
    let upload = |bytes: &'static [u8], overwrite: Option<&'static str>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let part = reqwest::multipart::Part::bytes(bytes).file_name("u.png");
            let mut form = reqwest::multipart::Form::new().part("image", part);
            if let Some(o) = overwrite {
                form = form.text("overwrite", o);
            }
            let v: Value = client
                .post(format!("{base}/upload/image"))
                .multipart(form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["name"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(upload(PNG_1X1, None).await, "u.png");
    assert_eq!(upload(PNG_1X1, None).await, "u.png");
    assert_eq!(upload(b"other", None).await, "u (1).png");
    assert_eq!(upload(b"other", Some("true")).await, "u.png");

    let view = |q: &'static str| client.get(format!("{base}/view?{q}"));
    assert_eq!(status(view("filename=u.png&type=input")).await, 200);
    assert_eq!(
        status(view("filename=u.png&type=input&subfolder=..")).await,
        403
    );
    assert_eq!(status(view("filename=u.png [input]")).await, 200);
    assert_eq!(status(view("filename=u.png")).await, 404);

    assert_eq!(
        status(client.get(format!("{base}/models/loras"))).await,
        200
    );
    assert_eq!(status(client.get(format!("{base}/models/nope"))).await, 404);
    emu.stop().await;
}

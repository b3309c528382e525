//! Loaders and the input folder: a LoadImage-like node whose file is not in
//! the folder fails validation (as ComfyUI's `VALIDATE_INPUTS` does), and
//! passes once `/upload/image` put it there; `/view` serves every kind of
//! output file the recordings show (images, temp previews, animated webp,
//! video, audio).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};
use std::time::Duration;

async fn submit(client: &reqwest::Client, base: &str, prompt: Value) -> (u16, Value) {
    let r = client
        .post(format!("{base}/prompt"))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn outputs_of(client: &reqwest::Client, base: &str, id: &str) -> Value {
    for _ in 0..200 {
        let h: Value = client
            .get(format!("{base}/history/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(o) = h.get(id).and_then(|e| e.get("outputs"))
            && h[id]["status"]["completed"] == json!(true)
        {
            return o.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("prompt {id} did not finish");
}

#[tokio::test]
async fn a_loader_needs_its_file_in_the_input_folder() {
    for version in ["0.3.64", "0.33.0"] {
        let emu = Emulator::start(EmulatorConfig::new(version)).await.unwrap();
        let base = emu.url();
        let client = reqwest::Client::new();
        let prompt = json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "comfy-queue/0123456789abcdef/photo.png"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        });
        let (status, answer) = submit(&client, &base, prompt.clone()).await;
        assert_eq!(status, 400, "{version}: {answer}");
        let err = &answer["node_errors"]["1"]["errors"][0];
        assert_eq!(
            err["type"], "custom_validation_failed",
            "{version}: {answer}"
        );
        assert_eq!(
            err["details"],
            "image - Invalid image file: comfy-queue/0123456789abcdef/photo.png"
        );
        assert_eq!(answer["node_errors"]["1"]["class_type"], "LoadImage");

        let part = reqwest::multipart::Part::bytes(b"photo".as_slice()).file_name("photo.png");
        let form = reqwest::multipart::Form::new()
            .part("image", part)
            .text("subfolder", "comfy-queue/0123456789abcdef")
            .text("overwrite", "true");
        let up: Value = client
            .post(format!("{base}/upload/image"))
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(up["subfolder"], "comfy-queue/0123456789abcdef");
        let (status, answer) = submit(&client, &base, prompt).await;
        assert_eq!(status, 200, "{version}: {answer}");
        // The annotated spelling names the same file.
        let annotated = json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "comfy-queue/0123456789abcdef/photo.png [input]"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        });
        assert_eq!(submit(&client, &base, annotated).await.0, 200, "{version}");
        // A recorded choice is still accepted.
        let listed = json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        });
        assert_eq!(submit(&client, &base, listed).await.0, 200, "{version}");
        emu.stop().await;
    }
}

#[tokio::test]
async fn view_serves_every_kind_of_output_the_recordings_show() {
    for version in ["0.3.64", "0.33.0"] {
        let emu = Emulator::start(EmulatorConfig::new(version)).await.unwrap();
        let base = emu.url();
        let client = reqwest::Client::new();
        let path = format!(
            "{}/../fixtures/comfyui-{version}/081-run-mixed-outputs-submit.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let recorded: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let (status, answer) = submit(
            &client,
            &base,
            recorded["request"]["body"]["prompt"].clone(),
        )
        .await;
        assert_eq!(status, 200, "{version}: {answer}");
        let id = answer["prompt_id"].as_str().unwrap().to_owned();
        let outputs = outputs_of(&client, &base, &id).await;
        let mut types = Vec::new();
        for (_, node) in outputs.as_object().unwrap() {
            for item in node
                .as_object()
                .unwrap()
                .values()
                .filter_map(Value::as_array)
                .flatten()
            {
                let Some(name) = item.get("filename").and_then(Value::as_str) else {
                    continue;
                };
                let r = client
                    .get(format!("{base}/view"))
                    .query(&[
                        ("filename", name),
                        ("subfolder", item["subfolder"].as_str().unwrap()),
                        ("type", item["type"].as_str().unwrap()),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 200, "{version}: {item}");
                let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
                assert!(!r.bytes().await.unwrap().is_empty(), "{version}: {item}");
                types.push(ct);
            }
        }
        types.sort();
        types.dedup();
        assert_eq!(
            types,
            ["audio/flac", "image/png", "image/webp", "video/mp4"],
            "{version}"
        );
        emu.stop().await;
    }
}

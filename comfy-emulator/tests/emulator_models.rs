//! Placeholder model lists (`EmulatorConfig::models`): the headline
//! templates (`workflows/ui/`, Flux.2 and LTX-2) validate and run on an
//! emulator given the models they name, with outputs of the right kind; a
//! model that is not listed still fails as a real server fails it; and the
//! one table of loader inputs agrees with the recorded catalogues and with
//! what the templates say each loader loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{
    Emulator, EmulatorConfig, EmulatorHandle, MODEL_INPUTS, ModelFiles, recorded_object_info,
    template_models,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../workflows")
}

fn read(path: PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Every UI workflow of `workflows/ui/`.
fn ui_workflows() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_dir(workflows().join("ui"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read(p),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn catalogue(version: &str) -> Value {
    let recorded: Value = serde_json::from_str(recorded_object_info(version).unwrap()).unwrap();
    recorded["response"]["body"].clone()
}

/// The choices of a combo input as the catalogue writes it.
fn choices(conf: &Value) -> Option<&Vec<Value>> {
    match conf.get(0) {
        Some(Value::Array(list)) => Some(list),
        Some(Value::String(t)) if t == "COMBO" => conf.get(1)?.get("options")?.as_array(),
        _ => None,
    }
}

fn input_conf<'a>(classes: &'a Value, class: &str, input: &str) -> Option<&'a Value> {
    let inputs = classes.get(class)?.get("input")?;
    inputs
        .get("required")
        .and_then(|s| s.get(input))
        .or_else(|| inputs.get("optional").and_then(|s| s.get(input)))
}

#[test]
fn the_loader_table_names_combo_inputs_of_the_recorded_catalogue() {
    let classes = catalogue("0.33.0");
    for (class, input, folder) in MODEL_INPUTS {
        let conf = input_conf(&classes, class, input)
            .unwrap_or_else(|| panic!("0.33.0 has no {class}.{input}"));
        let list = choices(conf).unwrap_or_else(|| panic!("{class}.{input} is no combo"));
        // The recording server had no models: no file is listed.
        assert!(
            list.iter()
                .all(|v| !v.as_str().unwrap_or_default().contains(".safetensors")),
            "{class}.{input} ({folder}) lists files: {list:?}"
        );
    }
}

#[test]
fn the_templates_models_are_what_the_table_says_their_loaders_load() {
    let workflows = ui_workflows();
    let mut checked = 0;
    for (file, wf) in &workflows {
        let mut graphs = vec![wf];
        graphs.extend(
            wf["definitions"]["subgraphs"]
                .as_array()
                .into_iter()
                .flatten(),
        );
        for node in graphs.iter().flat_map(|g| g["nodes"].as_array().unwrap()) {
            let class = node["type"].as_str().unwrap();
            for m in node["properties"]["models"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let (name, dir) = (
                    m["name"].as_str().unwrap(),
                    m["directory"].as_str().unwrap(),
                );
                let widgets = node["widgets_values"].as_array().unwrap();
                assert!(
                    widgets.iter().any(|w| w == name),
                    "{file}: {class} names {name} but its widgets are {widgets:?}"
                );
                assert!(
                    MODEL_INPUTS
                        .iter()
                        .any(|(c, _, f)| *c == class && *f == dir),
                    "{file}: {class} loads {name} from {dir}: not in MODEL_INPUTS"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} template models");
    let models = template_models(workflows.iter().map(|(_, w)| w));
    assert_eq!(
        comfy_emulator::template_models_in(&self::workflows().join("ui")).unwrap(),
        models
    );
    assert!(comfy_emulator::template_models_in(&self::workflows().join("missing")).is_err());
    assert_eq!(
        models["diffusion_models"],
        [
            "flux-2-klein-4b.safetensors",
            "flux-2-klein-9b-fp8.safetensors",
            "flux-2-klein-base-4b.safetensors",
            "flux-2-klein-base-9b-fp8.safetensors"
        ]
    );
    assert_eq!(
        models["checkpoints"],
        [
            "ltx-2-19b-dev-fp8.safetensors",
            "ltx-2-19b-distilled.safetensors"
        ]
    );
    assert_eq!(models["vae"], ["flux2-vae.safetensors"]);
    assert!(models["loras"].contains(&"ltx-2-19b-distilled-lora-384.safetensors".to_owned()));
    assert_eq!(
        models["latent_upscale_models"],
        ["ltx-2-spatial-upscaler-x2-1.0.safetensors"]
    );
}

async fn submit(client: &reqwest::Client, emu: &EmulatorHandle, prompt: &Value) -> (u16, Value) {
    let r = client
        .post(format!("{}/prompt", emu.url()))
        .json(&json!({"prompt": prompt}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn history_of(client: &reqwest::Client, emu: &EmulatorHandle, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h: Value = client
            .get(format!("{}/history/{id}", emu.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if h[id]["status"]["completed"].is_boolean() {
            return h[id].clone();
        }
        assert!(Instant::now() < deadline, "{id} did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ground_truth(fe: &str, name: &str) -> Value {
    read(workflows().join(format!("api-ground-truth/{fe}/{name}.api.json")))
}

#[tokio::test]
async fn flux2_and_ltx2_templates_run_given_their_models_and_fail_without() {
    let client = reqwest::Client::new();
    let models = template_models(ui_workflows().iter().map(|(_, w)| w));
    let emu = Emulator::start(
        EmulatorConfig::new("0.33.0")
            .node_time(Duration::ZERO)
            .models(models.clone()),
    )
    .await
    .unwrap();
    let get = |p: String| {
        let c = client.clone();
        async move {
            c.get(p)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // The catalogue offers the files, ahead of what the recording listed.
    let info = get(format!("{}/object_info/VAELoader", emu.url())).await;
    assert_eq!(
        info["VAELoader"]["input"]["required"]["vae_name"][0],
        json!(["flux2-vae.safetensors", "pixel_space"])
    );
    let all = get(format!("{}/api/object_info", emu.url())).await;
    let ckpt = input_conf(&all, "LTXVAudioVAELoader", "ckpt_name").unwrap();
    assert_eq!(
        choices(ckpt).unwrap(),
        &vec![
            json!("ltx-2-19b-dev-fp8.safetensors"),
            json!("ltx-2-19b-distilled.safetensors")
        ]
    );
    // The folder listings.
    assert_eq!(
        get(format!("{}/models/checkpoints", emu.url())).await,
        json!(models["checkpoints"])
    );
    assert_eq!(
        get(format!("{}/models/controlnet", emu.url())).await,
        json!([])
    );
    let listed = get(format!("{}/api/experiment/models/loras", emu.url())).await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, models["loras"]);
    assert_eq!(listed[0]["pathIndex"], 0);

    // Flux.2 (1.48.7's conversion): validates and saves an image.
    let (status, body) = submit(
        &client,
        &emu,
        &ground_truth("1.48.7", "image_flux2_klein_text_to_image"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node_errors"], json!({}));
    let id = body["prompt_id"].as_str().unwrap().to_owned();
    let entry = history_of(&client, &emu, &id).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    let images: Vec<&Value> = entry["outputs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|o| o["images"].as_array().into_iter().flatten())
        .collect();
    assert!(!images.is_empty(), "{entry}");
    assert!(
        images
            .iter()
            .all(|i| i["filename"].as_str().unwrap().ends_with(".png") && i["type"] == "output"),
        "{images:?}"
    );

    // LTX-2: validates and saves a video (SaveVideo, node 75).
    let (status, body) = submit(&client, &emu, &ground_truth("1.48.7", "video_ltx2_t2v")).await;
    assert_eq!(status, 200, "{body}");
    let id = body["prompt_id"].as_str().unwrap().to_owned();
    let entry = history_of(&client, &emu, &id).await;
    assert_eq!(entry["status"]["status_str"], "success", "{entry}");
    let video = &entry["outputs"]["75"]["images"][0];
    let file = video["filename"].as_str().unwrap();
    assert!(
        file.starts_with("LTX-2_") && file.ends_with(".mp4"),
        "{video}"
    );
    assert_eq!(video["subfolder"], "video");
    assert_eq!(entry["outputs"]["75"]["animated"], json!([true]));
    let view = client
        .get(format!(
            "{}/view?filename={file}&subfolder=video&type=output",
            emu.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), 200);

    // A model the list lacks fails as on a real server, naming the list.
    let mut wrong = ground_truth("1.48.7", "video_ltx2_t2v");
    wrong["92:1"]["inputs"]["ckpt_name"] = json!("ltx-2-19b-missing.safetensors");
    assert_eq!(wrong["92:1"]["class_type"], "CheckpointLoaderSimple");
    let (status, body) = submit(&client, &emu, &wrong).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "prompt_outputs_failed_validation");
    let error = &body["node_errors"]["92:1"]["errors"][0];
    assert_eq!(error["type"], "value_not_in_list");
    assert_eq!(
        error["details"],
        "ckpt_name: 'ltx-2-19b-missing.safetensors' not in ['ltx-2-19b-dev-fp8.safetensors', 'ltx-2-19b-distilled.safetensors']"
    );
    emu.stop().await;
}

/// ComfyUI checks a node's inputs in the order of a Python `set` (string
/// hashes, random per process), so the order of one node's errors is not
/// part of the answer: sorted by their details here.
fn errors_in_order(mut body: Value) -> Value {
    for node in body["node_errors"].as_object_mut().unwrap().values_mut() {
        if let Some(errors) = node["errors"].as_array_mut() {
            errors.sort_by_key(|e| e["details"].as_str().unwrap_or_default().to_owned());
        }
    }
    body
}

/// Without models the emulator rejects the templates exactly as the real
/// 0.11.1 did (`workflows/api-ground-truth/1.37.11/*.submit-response.json`).
#[tokio::test]
async fn without_models_the_templates_fail_as_recorded() {
    let client = reqwest::Client::new();
    let emu = Emulator::start(EmulatorConfig::new("0.11.1").models(ModelFiles::new()))
        .await
        .unwrap();
    for name in [
        "image_flux2_klein_text_to_image",
        "image_flux2_text_to_image_9b",
        "video_ltx2_t2v",
        "video_ltx2_t2v_distilled",
    ] {
        let recorded = read(workflows().join(format!(
            "api-ground-truth/1.37.11/{name}.submit-response.json"
        )));
        let (status, body) = submit(&client, &emu, &ground_truth("1.37.11", name)).await;
        assert_eq!(
            u64::from(status),
            recorded["status"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            errors_in_order(body),
            errors_in_order(recorded["body"].clone()),
            "{name}"
        );
    }
    emu.stop().await;
}

//! 037–045: every kind of validation failure.

use super::super::RecordError;
use super::super::capture::{Request, RequestBody};
use super::super::session::Session;
use super::prompts::image_prompt;
use super::submit;
use serde_json::json;

pub(super) async fn run(s: &mut Session<'_>) -> Result<(), RecordError> {
    s.probe("prompt-no-prompt", submit(json!({"client_id": "x"})))
        .await?;
    s.probe(
        "prompt-unknown-class",
        submit(json!({"prompt": {"1": {"class_type": "DoesNotExist", "inputs": {}}}})),
    )
    .await?;
    s.probe(
        "prompt-missing-class_type",
        submit(json!({"prompt": {"1": {"inputs": {}}}})),
    )
    .await?;
    s.probe(
        "prompt-no-outputs",
        submit(json!({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0}}}})),
    )
    .await?;
    let mut below_min = image_prompt(0, "fixture_bad");
    below_min["1"]["inputs"]["width"] = json!(0);
    s.probe(
        "prompt-value-smaller-than-min",
        submit(json!({"prompt": below_min})),
    )
    .await?;
    let mut missing = image_prompt(0, "fixture_bad2");
    if let Some(inputs) = missing["1"]["inputs"].as_object_mut() {
        inputs.shift_remove("height");
    }
    s.probe(
        "prompt-required-input-missing",
        submit(json!({"prompt": missing})),
    )
    .await?;
    s.probe(
        "prompt-model-not-found",
        submit(json!({"prompt": {
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux2_klein_9b.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "latent_image": ["3", 0], "seed": 1, "steps": 4, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}},
            "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "klein"}},
        }})),
    )
    .await?;
    let mut bad_link = image_prompt(0, "fixture_bad4");
    bad_link["2"]["inputs"]["images"] = json!(["99", 0]);
    s.probe(
        "prompt-bad-linked-input",
        submit(json!({"prompt": bad_link})),
    )
    .await?;
    s.probe(
        "prompt-malformed-json",
        Request::post("/prompt", RequestBody::Text("{not json".into())),
    )
    .await?;
    Ok(())
}

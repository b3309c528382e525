//! The GPU pool's node catalogues, as its workers published them to the
//! queue (`GET /api/catalogues`): listed at most every few seconds, each
//! fetched and parsed once per hash; and the verdict on a user's prompt
//! against them, so a prompt that would fail validation on the pool is
//! answered with ComfyUI's own 400 body before it is queued.
//!
//! Validation is best effort: with no catalogue published (workers or a
//! queue from before catalogues), or the queue unable to list them, the
//! prompt is checked against the user's own ComfyUI only (its classes and
//! output nodes) and any value errors surface as the job's failure.

use crate::queue::QueueClient;
use comfy_adapter::model::catalogue::FileName;
use comfy_adapter::validate::{self, Validated, Wording};
use comfy_queue_api::CatalogueInfo;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a listing of the pool's catalogues is used before it is asked
/// again (a new worker's catalogue counts within this long).
const LISTING_TTL: Duration = Duration::from_secs(5);

/// One published catalogue, parsed.
#[derive(Debug, Clone)]
pub struct PoolCatalogue {
    /// What the queue says of it (hash, release, workers).
    pub info: CatalogueInfo,
    /// Its classes (`/object_info` as the workers' ComfyUI answered it).
    pub classes: Arc<Map<String, Value>>,
}

/// The catalogues of the pool, cached.
#[derive(Debug, Default)]
pub struct Pool {
    listing: tokio::sync::Mutex<Option<(Instant, Vec<CatalogueInfo>)>>,
    parsed: Mutex<HashMap<String, Arc<Map<String, Value>>>>,
}

impl Pool {
    /// The catalogues of the workers alive now, newest release first (as the
    /// queue lists them). Empty when none is published or the queue could
    /// not say; a catalogue that cannot be fetched or parsed is left out.
    pub async fn catalogues(&self, queue: &QueueClient, user: &str) -> Vec<PoolCatalogue> {
        let infos = {
            let mut listing = self.listing.lock().await;
            match &*listing {
                Some((at, infos)) if at.elapsed() < LISTING_TTL => infos.clone(),
                _ => match queue.catalogues(user).await {
                    Ok(list) => {
                        *listing = Some((Instant::now(), list.catalogues.clone()));
                        list.catalogues
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the pool's catalogues could not be listed; prompts are checked against the user's ComfyUI only");
                        return Vec::new();
                    }
                },
            }
        };
        self.forget_all_but(&infos);
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            if let Some(classes) = self.parsed(queue, user, &info).await {
                out.push(PoolCatalogue { info, classes });
            }
        }
        out
    }

    fn forget_all_but(&self, infos: &[CatalogueInfo]) {
        self.parsed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|sha, _| infos.iter().any(|i| &i.sha256 == sha));
    }

    async fn parsed(
        &self,
        queue: &QueueClient,
        user: &str,
        info: &CatalogueInfo,
    ) -> Option<Arc<Map<String, Value>>> {
        if let Some(hit) = self
            .parsed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&info.sha256)
        {
            return Some(hit.clone());
        }
        let bytes = match queue.catalogue(user, &info.sha256).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(catalogue = %info.sha256, error = %e, "a worker catalogue could not be fetched");
                return None;
            }
        };
        // A catalogue is megabytes of JSON: parsed off the async threads.
        let parsed = tokio::task::spawn_blocking(move || {
            serde_json::from_slice::<Map<String, Value>>(&bytes)
        })
        .await;
        match parsed {
            Ok(Ok(classes)) => {
                let classes = Arc::new(classes);
                self.parsed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(info.sha256.clone(), classes.clone());
                Some(classes)
            }
            Ok(Err(e)) => {
                tracing::warn!(catalogue = %info.sha256, error = %e, "a worker catalogue is not a JSON object of classes");
                None
            }
            Err(e) => {
                tracing::warn!(catalogue = %info.sha256, error = %e, "parsing a worker catalogue failed");
                None
            }
        }
    }
}

/// What the pool makes of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No catalogue to check against.
    Unchecked,
    /// Valid on at least one catalogue (the first, in the queue's order):
    /// its outputs to run, and the errors of outputs that failed there.
    Passed(Validated),
    /// Valid on none: ComfyUI's 400 body from the first catalogue.
    Refused(Value),
}

/// Validates `prompt` on each catalogue in turn, worded as the user's
/// ComfyUI words it. `exists` says whether a file a loader names travels
/// with the job (or is on the pool already).
pub fn judge(
    wording: &Wording,
    catalogues: &[PoolCatalogue],
    prompt: &Map<String, Value>,
    targets: Option<&[String]>,
    exists: &dyn Fn(&FileName) -> bool,
) -> Verdict {
    let mut first_refusal = None;
    for c in catalogues {
        match validate::validate(wording, &c.classes, prompt, targets, exists) {
            Ok(v) => return Verdict::Passed(v),
            Err(body) => {
                first_refusal.get_or_insert(body);
            }
        }
    }
    first_refusal.map_or(Verdict::Unchecked, Verdict::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use comfy_adapter::Line;
    use serde_json::json;

    fn recorded_catalogue(version: &str) -> PoolCatalogue {
        let path = format!(
            "{}/../fixtures/comfyui-{version}/018-object_info-full.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let rec: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let classes = rec["response"]["body"]
            .as_object()
            .cloned()
            .unwrap_or_else(|| panic!("{path}: no object_info body"));
        PoolCatalogue {
            info: CatalogueInfo {
                sha256: "0".repeat(64),
                size: 0,
                comfyui_version: Some(version.into()),
                line: None,
                workers: vec!["w1".into()],
            },
            classes: Arc::new(classes),
        }
    }

    /// A checkpoint as the pool's workers would list it.
    fn with_checkpoint(mut c: PoolCatalogue, name: &str) -> PoolCatalogue {
        let mut classes = (*c.classes).clone();
        if let Some(list) = classes
            .get_mut("CheckpointLoaderSimple")
            .and_then(|n| n.pointer_mut("/input/required/ckpt_name/0"))
            .and_then(Value::as_array_mut)
        {
            list.push(json!(name));
        }
        c.classes = Arc::new(classes);
        c
    }

    fn sdxl_prompt() -> Map<String, Value> {
        json!({
            "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
            "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["1", 1]}},
            "3": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
            "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0],
                  "latent_image": ["3", 0], "seed": 1, "steps": 4, "cfg": 1.0, "sampler_name": "euler",
                  "scheduler": "simple", "denoise": 1.0}},
            "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
            "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "x"}},
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn wording(version: &str) -> Wording {
        let v =
            comfy_adapter::normalize::parse_version(version).unwrap_or_else(|| panic!("{version}"));
        Wording::of(Line::for_version(&v), &v)
    }

    #[test]
    fn no_catalogue_leaves_the_prompt_unchecked() {
        assert_eq!(
            judge(&wording("0.9.2"), &[], &sdxl_prompt(), None, &|_| false),
            Verdict::Unchecked
        );
    }

    #[test]
    fn a_model_no_worker_has_is_refused_with_the_node_to_highlight() {
        let pool = [recorded_catalogue("0.33.0")];
        let Verdict::Refused(body) =
            judge(&wording("0.9.2"), &pool, &sdxl_prompt(), None, &|_| false)
        else {
            panic!("accepted a checkpoint no worker has");
        };
        assert_eq!(body["error"]["type"], "prompt_outputs_failed_validation");
        let errors = &body["node_errors"]["1"]["errors"];
        assert_eq!(errors[0]["type"], "value_not_in_list");
        assert_eq!(errors[0]["extra_info"]["input_name"], "ckpt_name");
        assert_eq!(body["node_errors"]["1"]["dependent_outputs"], json!(["6"]));
    }

    #[test]
    fn a_prompt_valid_on_one_of_two_catalogues_passes() {
        let pool = [
            recorded_catalogue("0.33.0"),
            with_checkpoint(recorded_catalogue("0.11.1"), "sdxl.safetensors"),
        ];
        match judge(&wording("0.11.1"), &pool, &sdxl_prompt(), None, &|_| false) {
            Verdict::Passed(v) => assert_eq!(v.outputs, ["6"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_image_that_travels_with_the_job_counts_as_there() {
        let pool = [recorded_catalogue("0.33.0")];
        let prompt = json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let attached = |f: &FileName| f.relative() == "photo.png";
        assert!(matches!(
            judge(&wording("0.33.0"), &pool, &prompt, None, &attached),
            Verdict::Passed(_)
        ));
        let Verdict::Refused(body) = judge(&wording("0.33.0"), &pool, &prompt, None, &|_| false)
        else {
            panic!("accepted an image nobody has");
        };
        assert_eq!(
            body["node_errors"]["1"]["errors"][0]["type"],
            "custom_validation_failed"
        );
    }
}

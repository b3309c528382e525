//! The calls the real frontend makes while it boots that are not about
//! prompts: translations (`/i18n`), the subgraph blueprints
//! (`/global_subgraphs`), custom nodes' workflow templates
//! (`/workflow_templates`), the model folders of the model library
//! (`/experiment/models`), node replacements (`/node_replacements`, where
//! `/features` says so) and the template index ComfyUI serves from the
//! `comfyui-workflow-templates` package (`/templates/...`).
//!
//! Answers as the recorded sessions (`fixtures/frontend/`) show them, with
//! no translations, no blueprints and no templates: the emulator has no
//! templates package (an empty index boots the same, and the frontend asks
//! for no thumbnails), and `{}` stands in for the blueprints 0.33 lists
//! (the frontend boots without them).

use super::app::App;
use super::reply::{not_found, ok};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// `GET /i18n`: no custom node brings translations (as recorded).
pub(crate) async fn i18n() -> Response {
    ok(json!({}))
}

/// `GET /global_subgraphs`: no blueprints.
pub(crate) async fn global_subgraphs() -> Response {
    ok(json!({}))
}

/// `GET /global_subgraphs/{id}`: none is known.
pub(crate) async fn global_subgraph(Path(_id): Path<String>) -> Response {
    not_found().await
}

/// `GET /workflow_templates`: no custom node brings templates (as recorded).
pub(crate) async fn workflow_templates() -> Response {
    ok(json!({}))
}

/// `GET /node_replacements` (routed only when `/features` has
/// `node_replacements`): the recorded 0.33 list on 0.33 and later, none
/// before (nothing of an older release is recorded).
pub(crate) async fn node_replacements(State(app): State<App>) -> Response {
    if app.engine.profile.semver >= semver::Version::new(0, 33, 0) {
        match serde_json::from_str::<Value>(NODE_REPLACEMENTS_0_33) {
            Ok(v) => ok(v),
            Err(_) => ok(json!({})),
        }
    } else {
        ok(json!({}))
    }
}

/// Whether `/features` of this release says `node_replacements`.
pub(crate) fn has_node_replacements(app: &App) -> bool {
    app.engine.profile.features.get("node_replacements") == Some(&Value::Bool(true))
}

/// `GET /templates/index.json`: no templates package, no templates.
pub(crate) async fn templates_index() -> Response {
    static_json(json!([]))
}

/// `GET /templates/index_logo.json`: no logos either.
pub(crate) async fn templates_logos() -> Response {
    static_json(json!({}))
}

/// `GET /templates/fuse_options.json`: the search options the templates
/// package ships (as recorded on 0.11.1).
pub(crate) async fn templates_fuse_options() -> Response {
    static_json(json!({
        "keys": [
            {"name": "name", "weight": 0.3},
            {"name": "title", "weight": 0.3},
            {"name": "description", "weight": 0.1},
            {"name": "tags", "weight": 0.2},
            {"name": "models", "weight": 0.3},
        ],
        "threshold": 0.33,
        "includeScore": true,
        "includeMatches": true,
    }))
}

/// A static JSON file as aiohttp serves it: `application/json`, no charset.
fn static_json(body: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Where ComfyUI keeps a model folder's files, below its base folder
/// (`/opt/ComfyUI` in every recording), when not just `models/<name>`.
fn folder_paths(name: &str) -> Vec<String> {
    let listed: &[&str] = match name {
        "checkpoints" => &["models/checkpoints", "output/checkpoints"],
        "loras" => &["models/loras", "output/loras"],
        "vae" => &["models/vae", "output/vae"],
        "text_encoders" => &["models/text_encoders", "models/clip", "output/clip"],
        "diffusion_models" => &[
            "models/unet",
            "models/diffusion_models",
            "output/diffusion_models",
        ],
        "controlnet" => &["models/controlnet", "models/t2i_adapter"],
        "datasets" => &["datasets"],
        _ => &[],
    };
    if listed.is_empty() {
        vec![format!("{BASE}/models/{name}")]
    } else {
        listed.iter().map(|p| format!("{BASE}/{p}")).collect()
    }
}

/// The server's base folder as every recording shows it.
const BASE: &str = "/opt/ComfyUI";

/// The file extensions a model folder lists (0.33 says them).
fn folder_extensions(name: &str) -> Value {
    match name {
        "diffusers" => json!(["folder"]),
        "classifiers" => json!([""]),
        "datasets" => json!([]),
        _ => json!([
            ".bin",
            ".ckpt",
            ".pkl",
            ".pt",
            ".pt2",
            ".pth",
            ".safetensors",
            ".sft"
        ]),
    }
}

/// Folders `/models` lists that `/experiment/models` leaves out.
const NOT_MODEL_FOLDERS: [&str; 2] = ["configs", "custom_nodes"];

/// `GET /experiment/models`: every model folder of `/models` but `configs`
/// and `custom_nodes`, in that order, with where it lives and (0.33 and
/// later, as recorded; 0.11.1 does not) the extensions it lists.
pub(crate) async fn experiment_models(State(app): State<App>) -> Response {
    let profile = &app.engine.profile;
    let extensions = profile.semver >= semver::Version::new(0, 33, 0);
    let folders: Vec<Value> = profile
        .model_folders
        .iter()
        .filter(|f| !NOT_MODEL_FOLDERS.contains(&f.as_str()))
        .map(|name| {
            let mut entry = json!({"name": name, "folders": folder_paths(name)});
            if extensions && let Some(m) = entry.as_object_mut() {
                m.insert("extensions".into(), folder_extensions(name));
            }
            entry
        })
        .collect();
    ok(Value::Array(folders))
}

/// `GET /experiment/models/{folder}`: the files of a model folder (`name`,
/// `pathIndex`, times, size), 404 for a folder ComfyUI does not know.
pub(crate) async fn experiment_models_in(
    State(app): State<App>,
    Path(folder): Path<String>,
) -> Response {
    if NOT_MODEL_FOLDERS.contains(&folder.as_str())
        || !app.engine.profile.model_folders.contains(&folder)
    {
        return not_found().await;
    }
    let files: Vec<Value> = super::server_info::model_files(&app, &folder)
        .into_iter()
        .map(|name| {
            json!({"name": name, "pathIndex": 0, "modified": MODEL_TIME, "created": MODEL_TIME, "size": 0})
        })
        .collect();
    ok(Value::Array(files))
}

/// When every placeholder model was "modified" and "created" (seconds).
const MODEL_TIME: f64 = 1_767_225_600.0;

/// `GET /node_replacements` of 0.33.0 as recorded.
const NODE_REPLACEMENTS_0_33: &str = r#"{"ResizeImagesByLongerEdge": [{"new_node_id": "ImageScaleToMaxDimension", "old_node_id": "ResizeImagesByLongerEdge", "old_widget_ids": ["longer_edge"], "input_mapping": [{"new_id": "image", "old_id": "images"}, {"new_id": "largest_size", "old_id": "longer_edge"}, {"new_id": "upscale_method", "set_value": "lanczos"}], "output_mapping": [{"new_idx": 0, "old_idx": 0}]}], "ImageBatch": [{"new_node_id": "BatchImagesNode", "old_node_id": "ImageBatch", "old_widget_ids": null, "input_mapping": [{"new_id": "images.image0", "old_id": "image1"}, {"new_id": "images.image1", "old_id": "image2"}], "output_mapping": null}], "ImageScaleBy": [{"new_node_id": "ResizeImageMaskNode", "old_node_id": "ImageScaleBy", "old_widget_ids": ["upscale_method", "scale_by"], "input_mapping": [{"new_id": "input", "old_id": "image"}, {"new_id": "resize_type", "set_value": "scale by multiplier"}, {"new_id": "resize_type.multiplier", "old_id": "scale_by"}, {"new_id": "scale_method", "old_id": "upscale_method"}], "output_mapping": null}], "T2IAdapterLoader": [{"new_node_id": "ControlNetLoader", "old_node_id": "T2IAdapterLoader", "old_widget_ids": null, "input_mapping": [{"new_id": "control_net_name", "old_id": "t2i_adapter_name"}], "output_mapping": null}], "Load3DAnimation": [{"new_node_id": "Load3D", "old_node_id": "Load3DAnimation", "old_widget_ids": null, "input_mapping": null, "output_mapping": null}], "Preview3DAnimation": [{"new_node_id": "Preview3D", "old_node_id": "Preview3DAnimation", "old_widget_ids": null, "input_mapping": null, "output_mapping": null}], "SDV_img2vid_Conditioning": [{"new_node_id": "SVD_img2vid_Conditioning", "old_node_id": "SDV_img2vid_Conditioning", "old_widget_ids": null, "input_mapping": null, "output_mapping": null}], "ConditioningAverage ": [{"new_node_id": "ConditioningAverage", "old_node_id": "ConditioningAverage ", "old_widget_ids": null, "input_mapping": null, "output_mapping": null}]}"#;

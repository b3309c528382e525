//! The router of one emulated server: which handler answers which path
//! (each under `/api` too), which routes the emulated line has, and the
//! frontend build (if any) for every other `GET`.

use super::app::App;
use super::{boot, history, jobs, prompts, served, server_info, userdata, view, web_root, ws};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use comfy_adapter::Line;

/// The router of one emulated server.
pub(crate) fn router(app: App, log: served::Log) -> Router {
    let common = Router::new()
        .route("/system_stats", get(server_info::system_stats))
        .route("/features", get(server_info::features))
        .route("/object_info", get(server_info::object_info_all))
        .route("/object_info/{class}", get(server_info::object_info_one))
        .route("/prompt", post(prompts::submit).get(prompts::prompt_info))
        .route("/queue", get(prompts::queue).post(prompts::queue_control))
        .route(
            "/history",
            get(history::history_all).post(history::history_control),
        )
        .route("/history/{id}", get(history::history_one))
        .route("/interrupt", post(prompts::interrupt))
        .route("/free", post(server_info::free))
        .route("/view", get(view::view))
        .route(
            "/upload/image",
            post(view::upload_image).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/embeddings", get(server_info::embeddings))
        .route("/models", get(server_info::models))
        .route("/models/{folder}", get(server_info::models_in))
        .route("/extensions", get(server_info::extensions))
        .route("/users", get(userdata::users))
        .route(
            "/settings",
            get(userdata::settings).post(userdata::post_settings),
        )
        .route(
            "/settings/{id}",
            get(userdata::setting).post(userdata::post_setting),
        )
        .route("/userdata", get(userdata::list))
        .route(
            "/userdata/{file}",
            get(userdata::get)
                .post(userdata::post)
                .delete(userdata::delete)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/userdata/{file}/move/{dest}", post(userdata::move_file))
        .route("/v2/userdata", get(userdata::list_v2))
        .route("/i18n", get(boot::i18n))
        .route("/global_subgraphs", get(boot::global_subgraphs))
        .route("/global_subgraphs/{id}", get(boot::global_subgraph))
        .route("/workflow_templates", get(boot::workflow_templates))
        .route("/experiment/models", get(boot::experiment_models))
        .route(
            "/experiment/models/{folder}",
            get(boot::experiment_models_in),
        )
        .route("/ws", get(ws::upgrade));
    let common = if boot::has_node_replacements(&app) {
        common.route("/node_replacements", get(boot::node_replacements))
    } else {
        common
    };
    // What ComfyUI serves from the templates package, at the root only.
    let templates = Router::new()
        .route("/templates/index.json", get(boot::templates_index))
        .route("/templates/index_logo.json", get(boot::templates_logos))
        .route(
            "/templates/fuse_options.json",
            get(boot::templates_fuse_options),
        );
    let mut jobs_api = Router::new()
        .route("/api/jobs/cancel", post(jobs::cancel_batch))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel_one));
    if app.engine.profile.line != Line::Legacy {
        jobs_api = jobs_api
            .route("/api/jobs", get(jobs::jobs_list))
            .route("/api/jobs/{id}", get(jobs::job_by_id));
    }
    Router::new()
        .merge(common.clone())
        .nest("/api", common)
        .merge(jobs_api)
        .merge(templates)
        .fallback(web_root::fallback)
        .with_state(app)
        .layer(axum::middleware::from_fn_with_state(log, served::record))
}

/// `max_upload_size` of `/features`: 100 MiB.
const MAX_UPLOAD: usize = 104_857_600;

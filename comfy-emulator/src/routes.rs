//! The router of one emulated server: which handler answers which path
//! (each under `/api` too), and which routes the emulated line has.

use super::app::App;
use super::reply::not_found;
use super::{history, jobs, prompts, server_info, userdata, view, ws};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use comfy_adapter::Line;

/// The router of one emulated server.
pub(crate) fn router(app: App) -> Router {
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
        .route("/ws", get(ws::upgrade));
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
        .fallback(not_found)
        .with_state(app)
}

/// `max_upload_size` of `/features`: 100 MiB.
const MAX_UPLOAD: usize = 104_857_600;

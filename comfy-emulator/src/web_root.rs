//! The router's fallback: what no API route takes is a file of the served
//! frontend build, or the emulator's 404 without one.

use super::app::App;
use super::reply::not_found;
use axum::extract::{Request, State};
use axum::response::Response;

/// A file of the frontend build, or 404.
pub(crate) async fn fallback(State(app): State<App>, request: Request) -> Response {
    match app.frontend.as_ref() {
        Some(frontend) => frontend.serve(request).await,
        None => not_found().await,
    }
}

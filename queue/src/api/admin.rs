//! `/admin`: a single static page (vanilla JS) that watches the queue over `/ws`.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("admin.html");

/// The dashboard page.
pub async fn admin_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

//! Answers as aiohttp writes them: JSON, text, the empty 200, the 404 and
//! 405 of unknown routes and methods, the 500 of a handler that raised.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

pub(crate) fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

pub(crate) fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

pub(crate) fn server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "500 Internal Server Error\n\nServer got itself in trouble",
    )
        .into_response()
}

/// A `text/plain` answer, as aiohttp's `web.Response(text=…)`.
pub(crate) fn text_response(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

pub(crate) fn not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::ALLOW, "GET,HEAD"),
        ],
        "405: Method Not Allowed",
    )
        .into_response()
}

pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        "",
    )
        .into_response()
}

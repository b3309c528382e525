//! Pass-through: a request the gateway does not answer itself goes to the
//! user's own ComfyUI byte for byte — the path exactly as the browser sent it
//! (`%2F` stays encoded: the frontend's userdata calls depend on it), the
//! query, the headers minus hop-by-hop ones and minus anything that could
//! name another user, and the body streamed both ways.

use crate::config::User;
use crate::error::GatewayError;
use crate::state::Gateway;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use url::Url;

/// Headers that belong to one hop (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The upstream URL of `path_and_query` (which starts with `/`), keeping its
/// encoding exactly.
pub fn upstream_url(base: &Url, path_and_query: &str) -> Result<Url, GatewayError> {
    let root = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{root}{path_and_query}")).map_err(|e| GatewayError::BadRequest {
        kind: "invalid_path",
        message: format!("cannot pass {path_and_query:?} on: {e}"),
    })
}

/// Copies the headers a request may carry upstream.
pub fn request_headers(gw: &Gateway, user: &User, from: &HeaderMap) -> HeaderMap {
    let identity = gw.config().identity.header.to_ascii_lowercase();
    let mut out = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        let n = name.as_str();
        if HOP_BY_HOP.contains(name)
            || name == header::HOST
            || name == header::AUTHORIZATION
            || n == "comfy-user"
            || n == identity
            || n.starts_with("sec-websocket")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if gw.config().multi_user()
        && let Ok(v) = user.id.parse()
    {
        out.insert(HeaderName::from_static("comfy-user"), v);
    }
    out
}

/// Passes `req` to `user`'s ComfyUI as `path_and_query` and streams its answer back.
pub async fn pass(gw: &Gateway, user: &User, req: Request, path_and_query: &str) -> Response {
    match forward(gw, user, req, path_and_query).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn forward(
    gw: &Gateway,
    user: &User,
    req: Request,
    path_and_query: &str,
) -> Result<Response, GatewayError> {
    let base = gw.upstream(user)?;
    let url = upstream_url(&base, path_and_query)?;
    let (parts, body) = req.into_parts();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).map_err(|_| {
        GatewayError::BadRequest {
            kind: "invalid_method",
            message: format!("method {} cannot be passed on", parts.method),
        }
    })?;
    let headers = request_headers(gw, user, &parts.headers);
    let body = reqwest::Body::wrap_stream(body.into_data_stream());
    let resp = gw
        .http()
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| GatewayError::UpstreamDown {
            upstream: base.to_string(),
            reason: without_url(&e),
        })?;
    Ok(stream_back(resp))
}

/// An upstream answer as the browser's answer, body streamed.
pub fn stream_back(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut headers = HeaderMap::with_capacity(resp.headers().len());
    for (name, value) in resp.headers() {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut out = Response::new(Body::from_stream(resp.bytes_stream()));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// A reqwest error's text without its URL (which names an internal host).
pub fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection refused or unreachable"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    match last {
        Some(detail) => format!("{kind} ({detail})"),
        None => kind.to_owned(),
    }
}

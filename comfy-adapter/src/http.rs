//! The transport edge: one `reqwest::Client`, a base URL, timeouts, and the
//! mapping from HTTP outcomes to [`ComfyError`]. No ComfyUI knowledge here.

use crate::error::{ComfyError, Result};
use bytes::Bytes;
use reqwest::Method;
use serde::Serialize;
use std::time::Duration;
use url::Url;

/// Timeouts for every request. Nothing the crate does waits longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// A whole request (headers and body).
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
        }
    }
}

/// The request header naming a recorded probe (`comfyctl record`).
pub const PROBE_HEADER: &str = "comfyctl-probe";

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
    pub method: Method,
    pub path: String,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or a decode error naming what was expected.
    pub fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| ComfyError::Decode {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.body).into_owned();
        if s.len() > 2048 {
            let mut cut = 2048;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }

    /// Maps a non-2xx status to the matching error; 2xx passes through.
    pub fn ok(self, what: impl Into<String>) -> Result<Self> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.into_error(what))
        }
    }

    /// The error this (non-2xx) answer stands for.
    pub fn into_error(self, what: impl Into<String>) -> ComfyError {
        let what = what.into();
        let (method, path, body) = (self.method.to_string(), self.path.clone(), self.text());
        match self.status {
            404 => ComfyError::NotFound { what },
            409 => ComfyError::Conflict { what },
            403 => ComfyError::Forbidden { what },
            status if status >= 500 => ComfyError::Server {
                method,
                path,
                status,
                body,
            },
            status => ComfyError::UnexpectedStatus {
                method,
                path,
                status,
                body,
            },
        }
    }
}

/// A request body.
#[derive(Debug)]
pub enum Body {
    None,
    Json(serde_json::Value),
    Bytes(Bytes),
    Multipart(reqwest::multipart::Form),
}

impl Body {
    pub fn json<T: Serialize>(v: &T) -> Result<Body> {
        serde_json::to_value(v)
            .map(Body::Json)
            .map_err(|e| ComfyError::InvalidInput {
                field: "body",
                reason: e.to_string(),
            })
    }
}

/// The HTTP side of an adapter.
#[derive(Debug, Clone)]
pub struct HttpCore {
    base: Url,
    client: reqwest::Client,
    user: Option<String>,
    timeouts: Timeouts,
}

impl HttpCore {
    /// A transport for `base` (`http://host:8188`, optionally with a path
    /// prefix). `user` is sent as `comfy-user` (multi-user servers).
    pub fn new(base: &str, timeouts: Timeouts, user: Option<String>) -> Result<Self> {
        let mut url = Url::parse(base).map_err(|e| ComfyError::InvalidUrl {
            url: base.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ComfyError::InvalidUrl {
                url: base.to_owned(),
                reason: "scheme must be http or https".into(),
            });
        }
        if url.cannot_be_a_base() || url.host().is_none() {
            return Err(ComfyError::InvalidUrl {
                url: base.to_owned(),
                reason: "no host".into(),
            });
        }
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        url.set_query(None);
        url.set_fragment(None);
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.request)
            .build()
            .map_err(|e| ComfyError::Transport {
                url: base.to_owned(),
                source: e,
            })?;
        Ok(HttpCore {
            base: url,
            client,
            user,
            timeouts,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// `base` + an already-encoded path (`/userdata/a%2Fb.json`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// The ws:// (or wss://) URL for `path`.
    pub fn ws_url(&self, path: &str) -> String {
        let http = self.url(path);
        match http.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", http.strip_prefix("http://").unwrap_or(&http)),
        }
    }

    /// Sends a request and reads the whole answer. `path` must already be
    /// percent-encoded; `query` pairs are encoded here.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
    ) -> Result<Response> {
        self.send_tagged(method, path, query, body, None).await
    }

    /// [`send`](Self::send), naming the probe in a `comfyctl-probe` header
    /// (ComfyUI ignores it; replaying test servers and logs use it).
    pub async fn send_tagged(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Body,
        probe: Option<&str>,
    ) -> Result<Response> {
        let url = self.url(path);
        let mut req = self.client.request(method.clone(), &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(user) = &self.user {
            req = req.header("comfy-user", user);
        }
        if let Some(probe) = probe {
            req = req.header(PROBE_HEADER, probe);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Bytes(b) => req.body(b),
            Body::Multipart(form) => req.multipart(form),
        };
        let resp = req.send().await.map_err(|e| transport_error(&url, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| transport_error(&url, e))?;
        Ok(Response {
            status,
            headers,
            body,
            method,
            path: path.to_owned(),
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Response> {
        self.send(Method::GET, path, query, Body::None).await
    }

    pub async fn post(&self, path: &str, query: &[(&str, &str)], body: Body) -> Result<Response> {
        self.send(Method::POST, path, query, body).await
    }
}

fn transport_error(url: &str, e: reqwest::Error) -> ComfyError {
    let url = url.to_owned();
    if e.is_timeout() {
        ComfyError::Timeout { url }
    } else if e.is_connect() {
        ComfyError::Connect { url, source: e }
    } else {
        ComfyError::Transport { url, source: e }
    }
}

//! The load tool's HTTP/1.1 transport: keep-alive connections driven by hyper directly,
//! kept in a small pool per target. The tool shares the machine's cores with the server it measures, so the CPU it
//! spends per call is taken from that server (docs/benchmarks.md has what this saved).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one call may take before the tool gives up (a long poll asks for at most 5 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: its status and whole body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// Connections to one `http://host:port[/prefix]`, opened as needed and reused.
pub(crate) struct Pool {
    addr: String,
    host: HeaderValue,
    prefix: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("addr", &self.addr).finish()
    }
}

impl Pool {
    /// A pool for `base` (`http://` only: the tool measures servers on this machine).
    pub(crate) fn new(base: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(base).with_context(|| format!("--url {base:?}"))?;
        if url.scheme() != "http" {
            bail!("--url {base:?}: only http:// is supported (the tool measures a local server)");
        }
        let host = url.host_str().context("--url names no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Self {
            addr: format!(
                "{}:{port}",
                host.trim_start_matches('[').trim_end_matches(']')
            ),
            host: HeaderValue::from_str(&authority)?,
            prefix: url.path().trim_end_matches('/').to_owned(),
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn open(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to {} (is the queue running?)", self.addr))?;
        tcp.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // Ends when the server closes the connection or the pool drops its sender.
            let _ = conn.await;
        });
        Ok(send)
    }

    /// A ready connection: an idle one that is still open, else a new one.
    async fn checkout(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
            let Some(mut send) = idle else {
                return self.open().await;
            };
            if send.ready().await.is_ok() {
                return Ok(send);
            }
        }
    }

    /// One request: `path_and_query` below the base URL's path, an optional JSON body and
    /// bearer token.
    pub(crate) async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        json: Option<Bytes>,
        bearer: Option<&HeaderValue>,
    ) -> anyhow::Result<Answer> {
        let mut send = self.checkout().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.prefix))
            .header(HOST, self.host.clone());
        if let Some(t) = bearer {
            req = req.header(AUTHORIZATION, t.clone());
        }
        let body = match json {
            Some(b) => {
                req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                b
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body))?;
        let answer = tokio::time::timeout(CALL_TIMEOUT, async {
            let resp = send.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        })
        .await
        .with_context(|| format!("{path_and_query}: no answer in {CALL_TIMEOUT:?}"))??;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(send);
        }
        Ok(answer)
    }
}

/// `Authorization: Bearer <token>`, built once.
pub(crate) fn bearer(token: &str) -> anyhow::Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}"))?;
    v.set_sensitive(true);
    Ok(v)
}

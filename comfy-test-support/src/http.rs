//! HTTP requests to a running queue as one of its callers: a user (the
//! identity header nginx fills in, `X-Forwarded-User` by default), a worker
//! or an admin (`Authorization: Bearer <token>`), or anonymous, which a queue
//! without tokens treats as an admin. Generic: URLs in, status, headers, text
//! and JSON out; nothing here links the queue.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The header the queue reads a user's identity from unless configured otherwise.
pub const USER_HEADER: &str = "X-Forwarded-User";

/// Who a request is made as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No identity at all.
    Anonymous,
    /// A user, named in `header` (normally [`USER_HEADER`]).
    User {
        /// The header name.
        header: String,
        /// The user id.
        name: String,
    },
    /// A worker presenting its token.
    Worker(String),
    /// An admin presenting its token.
    Admin(String),
}

impl Identity {
    /// A user named in [`USER_HEADER`].
    pub fn user(name: &str) -> Identity {
        Identity::User {
            header: USER_HEADER.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A worker with `token`.
    pub fn worker(token: &str) -> Identity {
        Identity::Worker(token.to_owned())
    }

    /// An admin with `token`.
    pub fn admin(token: &str) -> Identity {
        Identity::Admin(token.to_owned())
    }

    /// The headers that say who the caller is.
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Identity::Anonymous => Vec::new(),
            Identity::User { header, name } => vec![(header.clone(), name.clone())],
            Identity::Worker(t) | Identity::Admin(t) => {
                vec![("authorization".to_owned(), format!("Bearer {t}"))]
            }
        }
    }
}

/// An answer, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Its status code.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body as text (lossy UTF-8).
    pub text: String,
    /// Its body as JSON, `Null` when it is not JSON.
    pub json: Value,
}

/// Requests to one server as one [`Identity`].
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    who: Identity,
    http: reqwest::Client,
}

impl Client {
    /// Anonymous requests to `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: impl Into<String>) -> Client {
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            who: Identity::Anonymous,
            http: reqwest::Client::new(),
        }
    }

    /// The same server (and connection pool) as `who`.
    pub fn as_identity(&self, who: Identity) -> Client {
        Client {
            who,
            ..self.clone()
        }
    }

    /// The same server as user `name`.
    pub fn as_user(&self, name: &str) -> Client {
        self.as_identity(Identity::user(name))
    }

    /// The same server as a worker with `token`.
    pub fn as_worker(&self, token: &str) -> Client {
        self.as_identity(Identity::worker(token))
    }

    /// The same server as an admin with `token`.
    pub fn as_admin(&self, token: &str) -> Client {
        self.as_identity(Identity::admin(token))
    }

    /// Who it acts as.
    pub fn identity(&self) -> &Identity {
        &self.who
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` (`/api/jobs?x=1`) on the server; an absolute URL is kept as is.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request with an optional JSON body; a transport error (refused,
    /// reset) is returned, any HTTP answer is `Ok`.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self.http.request(method, self.url(path));
        for (k, v) in self.who.headers() {
            req = req.header(k, v);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await?;
        Ok(Resp {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// Like [`Client::try_send`], panicking on a transport error.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let what = format!("{method} {}", self.url(path));
        self.try_send(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{what} as {:?}: {e}", self.who))
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None).await
    }
}

/// Waits until a server just started at `base` answers `GET /health` (any answer counts),
/// polling every 20 ms; panics naming `what` when it has not within `within`.
pub async fn wait_until_up(base: &str, within: std::time::Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    let url = format!("{}/health", base.trim_end_matches('/'));
    while reqwest::get(&url).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not answer {url} within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

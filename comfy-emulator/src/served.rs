//! The emulator's request log: every request it answered (method, path,
//! query, status), in the order the answers were made, for tests that check
//! what a client such as the real frontend asked and what it got.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path as requested (`/api/userdata`).
    pub path: String,
    /// The query string as requested, without `?` (empty when none).
    pub query: String,
    /// The status answered (101 for a WebSocket upgrade).
    pub status: u16,
}

/// How many answers the log keeps (the oldest go first).
const KEPT: usize = 10_000;

/// The log shared by the router and the handle.
#[derive(Debug, Clone, Default)]
pub(crate) struct Log(Arc<Mutex<VecDeque<Served>>>);

impl Log {
    fn push(&self, s: Served) {
        if let Ok(mut log) = self.0.lock() {
            if log.len() == KEPT {
                log.pop_front();
            }
            log.push_back(s);
        }
    }

    /// The answers so far, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Served> {
        self.0
            .lock()
            .map(|log| log.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Middleware: answers the request, then logs it.
pub(crate) async fn record(State(log): State<Log>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let response = next.run(request).await;
    log.push(Served {
        method,
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

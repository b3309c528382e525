//! A WebSocket trace: every message a client id receives, in arrival order,
//! as the recorded `NNN-ws-*.json` files hold them.

use comfy_adapter::error::Result;
use comfy_adapter::http::HttpCore;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// An open socket whose messages are being collected.
pub(crate) struct Trace {
    rx: mpsc::UnboundedReceiver<Value>,
    reader: JoinHandle<()>,
    messages: Vec<Value>,
}

impl Drop for Trace {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How a wait on a trace ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The awaited message arrived.
    Seen,
    /// The socket closed first.
    Closed,
    /// The time ran out first.
    TimedOut,
}

impl Trace {
    /// Connects `/ws?clientId=` and starts collecting.
    pub(crate) async fn open(core: &HttpCore, client_id: &str) -> Result<Trace> {
        let (socket, _) = comfy_adapter::ws::open(core, client_id).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let (_, mut read) = socket.split();
            while let Some(Ok(msg)) = read.next().await {
                let recorded = match msg {
                    Message::Text(t) => serde_json::from_str(t.as_str())
                        .unwrap_or_else(|_| Value::String(t.as_str().to_owned())),
                    Message::Binary(b) => binary_marker(&b),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if tx.send(recorded).is_err() {
                    break;
                }
            }
        });
        Ok(Trace {
            rx,
            reader,
            messages: Vec::new(),
        })
    }

    /// Collects until a message satisfies `done` (it is kept), the socket
    /// closes or `within` passes.
    pub(crate) async fn until(&mut self, within: Duration, done: impl Fn(&Value) -> bool) -> Ended {
        if self.messages.iter().any(&done) {
            return Ended::Seen;
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => return Ended::TimedOut,
                Ok(None) => return Ended::Closed,
                Ok(Some(m)) => {
                    let hit = done(&m);
                    self.messages.push(m);
                    if hit {
                        return Ended::Seen;
                    }
                }
            }
        }
    }

    /// The messages collected so far, ending the trace.
    pub(crate) fn finish(self) -> Vec<Value> {
        let mut this = self;
        std::mem::take(&mut this.messages)
    }
}

/// The recorded form of a binary frame: its size and its event type (the
/// first four bytes, big-endian).
fn binary_marker(b: &[u8]) -> Value {
    let event = b
        .get(..4)
        .and_then(|h| <[u8; 4]>::try_from(h).ok())
        .map(u32::from_be_bytes);
    json!({"_binary": b.len(), "_event_type": event})
}

/// `executing` with `node: null` for `prompt_id`: the server is done with it.
pub(crate) fn is_finished(m: &Value, prompt_id: &str) -> bool {
    let data = &m["data"];
    match m["type"].as_str() {
        Some("executing") => data["node"].is_null() && data["prompt_id"] == prompt_id,
        Some("execution_interrupted") => data["prompt_id"] == prompt_id,
        _ => false,
    }
}

/// `executing` of `node` in `prompt_id`.
pub(crate) fn is_executing(m: &Value, prompt_id: &str, node: &str) -> bool {
    m["type"] == "executing" && m["data"]["prompt_id"] == prompt_id && m["data"]["node"] == node
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_frame_is_recorded_by_size_and_event_type() {
        assert_eq!(
            binary_marker(&[0, 0, 0, 1, 9, 9]),
            json!({"_binary": 6, "_event_type": 1})
        );
        assert_eq!(
            binary_marker(&[1]),
            json!({"_binary": 1, "_event_type": null})
        );
    }

    #[test]
    fn the_end_of_a_prompt_is_executing_null_or_an_interrupt() {
        let id = "p1";
        assert!(is_finished(
            &json!({"type": "executing", "data": {"node": null, "prompt_id": "p1"}}),
            id
        ));
        assert!(!is_finished(
            &json!({"type": "executing", "data": {"node": "3", "prompt_id": "p1"}}),
            id
        ));
        assert!(!is_finished(
            &json!({"type": "executing", "data": {"node": null, "prompt_id": "p2"}}),
            id
        ));
        assert!(is_finished(
            &json!({"type": "execution_interrupted", "data": {"prompt_id": "p1", "node_id": "3"}}),
            id
        ));
    }
}

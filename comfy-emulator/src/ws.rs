//! `/ws?clientId=`: the greeting, then every message addressed to this
//! client or to all, until the client leaves or the emulator stops. A
//! client whose first message is its `feature_flags` gets the server's
//! (the `/features` body) back, as ComfyUI answers it: the frontend reads
//! `node_replacements` and the upload limit from that reply, not from
//! `/features`.

use super::app::App;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::json;
use std::collections::HashMap;

pub(super) async fn upgrade(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let sid = q
        .get("clientId")
        .cloned()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    // Listen before the handshake completes, as a real server registers the
    // socket before a client can submit: nothing sent after it is missed.
    let rx = app.engine.ws.subscribe();
    let remaining = app.engine.lock().remaining();
    ws.on_upgrade(move |socket| serve(app, sid, socket, rx, remaining))
}

async fn serve(
    app: App,
    sid: String,
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<super::engine::WsMessage>,
    remaining: usize,
) {
    let mut shutdown = app.shutdown.clone();
    let mut first_message = true;
    let greeting = json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}, "sid": sid}});
    if socket
        .send(Message::Text(greeting.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(Message::Text(text))) => {
                    let flags = std::mem::take(&mut first_message)
                        && serde_json::from_str::<serde_json::Value>(&text)
                            .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("feature_flags"));
                    if flags {
                        let reply = json!({"type": "feature_flags", "data": app.engine.profile.features});
                        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
            msg = rx.recv() => match msg {
                Ok(m) => {
                    if m.to.as_deref().is_some_and(|to| to != sid) {
                        continue;
                    }
                    let (silent, delay) = {
                        let faults = &app.engine.lock().faults;
                        (faults.silent_ws, faults.ws_delay)
                    };
                    if silent {
                        continue;
                    }
                    if let Some(d) = delay {
                        // From when the server sent it: messages queued behind a late one
                        // are not delayed again.
                        tokio::time::sleep_until(tokio::time::Instant::from_std(m.at + d)).await;
                    }
                    if socket.send(Message::Text(m.text.to_string().into())).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

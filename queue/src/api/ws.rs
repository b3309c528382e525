//! `WS /ws`: live job events. Text frames from the client are answered `pong: <text>`.
//!
//! With auth on, an admin (bearer header, or `?token=` since browsers cannot set headers on
//! a WebSocket) sees every event; a user (trusted header) sees only events of their own
//! jobs; anyone else is refused. Events never carry workflows.
//!
//! `comfy_event` messages (live ComfyUI events of running jobs) follow the same rule. Their
//! preview images (`data.preview_base64`) are sent only on sockets opened with
//! `?previews=true`.

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use super::QueryMap;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::events::Event;
use crate::state::AppState;
use serde_json::Value;

/// Upgrade to a WebSocket. A request that is not a WebSocket upgrade, or has a malformed
/// query, gets the JSON error shape like every other route.
pub async fn ws_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let q = match super::query_map(query) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let caller = state
        .settings
        .auth
        .identify(&headers, q.get("token").map(String::as_str));
    let scope = match caller {
        Caller::Admin => None,
        Caller::User(u) => Some(u),
        Caller::BadToken => return ApiError::unauthorized("invalid token").into_response(),
        Caller::Worker | Caller::Anonymous => {
            return ApiError::unauthorized("admin token or user identity required").into_response();
        }
    };
    let previews = match q.get("previews").map(|v| super::parse_flag("previews", v)) {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(e)) => return e.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => return ApiError::websocket_required(e.body_text()).into_response(),
    };
    upgrade.on_upgrade(move |socket| serve(socket, state, scope, previews))
}

/// The text of `ev` for a socket that does (or does not) want preview images.
fn frame_text(ev: &Event, previews: bool) -> Option<String> {
    match &ev.preview {
        Some(p) if previews => {
            let mut data = ev.data.clone();
            if let Some(obj) = data.as_object_mut() {
                obj.insert("preview_base64".into(), Value::String(p.to_string()));
            }
            let with = Event {
                kind: ev.kind,
                data,
                timestamp: ev.timestamp.clone(),
                user_id: None,
                preview: None,
            };
            serde_json::to_string(&with).ok()
        }
        _ => serde_json::to_string(ev).ok(),
    }
}

async fn serve(mut socket: WebSocket, state: AppState, scope: Option<String>, previews: bool) {
    let mut events = state.events.subscribe();
    // Held for as long as the connection lives (AppState::websockets_closed waits for it).
    let mut stop = state.shutdown.subscribe();
    if *stop.borrow_and_update() {
        going_away(socket).await;
        return;
    }
    loop {
        tokio::select! {
            _ = stop.changed() => {
                going_away(socket).await;
                return;
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let reply = format!("pong: {}", text.as_str());
                    if socket.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            event = events.recv() => match event {
                Ok(ev) => {
                    if scope.as_ref().is_some_and(|u| ev.user_id.as_ref() != Some(u)) {
                        continue;
                    }
                    let Some(text) = frame_text(&ev, previews) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "slow websocket client skipped events");
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
}

/// The server is stopping: say so with a close frame (1001) and end the connection.
async fn going_away(mut socket: WebSocket) {
    let frame = CloseFrame {
        code: close_code::AWAY,
        reason: "server shutting down".into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    // The client answers with its own close frame; stop reading after it (or an error).
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Close(_)) {
            break;
        }
    }
}

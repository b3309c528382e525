//! `WS /ws`: live job events. Text frames from the client are answered `pong: <text>`.
//!
//! With auth on, an admin (bearer header, or `?token=` since browsers cannot set headers on
//! a WebSocket) sees every event; a user (trusted header) sees only events of their own
//! jobs; anyone else is refused. Events never carry workflows.

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Upgrade to a WebSocket.
pub async fn ws_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
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
    upgrade.on_upgrade(move |socket| serve(socket, state, scope))
}

async fn serve(mut socket: WebSocket, state: AppState, scope: Option<String>) {
    let mut events = state.events.subscribe();
    loop {
        tokio::select! {
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
                    let Ok(text) = serde_json::to_string(&ev) else { continue };
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

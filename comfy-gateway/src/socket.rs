//! The frontend's `/ws`: proxied to its own ComfyUI (so the session id the
//! browser gets is the one its ComfyUI issued, and everything that ComfyUI
//! sends arrives as sent), with the events of the user's remote jobs added
//! in ComfyUI's own messages and order, from the queue's `/ws`:
//! `execution_start`, `execution_cached`, `executing`, `progress`,
//! `progress_state`, `executed` (outputs under the gateway's `/view`),
//! `execution_success` / `execution_error` / `execution_interrupted`, binary
//! previews, and `status` whose `queue_remaining` counts the user's remote
//! jobs too.

use crate::config::User;
use crate::error::GatewayError;
use crate::listing::queue_remaining;
use crate::query::Query;
use crate::shapes::{ComfyMeta, remote_subfolder};
use crate::state::Gateway;
use axum::extract::FromRequestParts;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use url::Url;
use uuid::Uuid;

/// Messages buffered towards one browser before the slowest source waits.
const OUTBOX: usize = 256;

/// Upgrades the frontend's socket after its ComfyUI accepted one.
pub async fn upgrade(gw: &Gateway, user: &User, req: Request, path_and_query: &str) -> Response {
    let (mut parts, _) = req.into_parts();
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let client_id = Query::parse(parts.uri.query())
        .get("clientId")
        .map(str::to_owned);
    let upstream = match connect_upstream(gw, user, path_and_query).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let gw = gw.clone();
    let user = user.clone();
    ws.on_upgrade(move |socket| session(gw, user, client_id, socket, upstream))
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `url` (its `http` scheme becomes `ws`) with one
/// header set, within the connect bound. The error says what failed.
async fn handshake(mut url: Url, header: Option<(&str, &str)>) -> Result<Upstream, String> {
    let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
    url.set_scheme(scheme)
        .map_err(|()| "its URL cannot carry a WebSocket".to_owned())?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some((name, value)) = header {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| e.to_string())?;
        let value = value
            .parse()
            .map_err(|_| format!("{value:?} is not a header value"))?;
        request.headers_mut().insert(name, value);
    }
    let (stream, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .map_err(|_| "the WebSocket handshake timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(stream)
}

async fn connect_upstream(
    gw: &Gateway,
    user: &User,
    path_and_query: &str,
) -> Result<Upstream, GatewayError> {
    let base = gw.upstream(user)?;
    let url = crate::proxy::upstream_url(&base, path_and_query)?;
    let header = gw
        .config()
        .multi_user()
        .then_some(("comfy-user", user.id.as_str()));
    handshake(url, header)
        .await
        .map_err(|reason| GatewayError::UpstreamDown {
            upstream: base.to_string(),
            reason,
        })
}

/// What one browser socket knows.
#[derive(Debug)]
struct Session {
    user: User,
    client_id: Option<String>,
    /// The last `queue_remaining` the user's own ComfyUI reported.
    upstream_remaining: AtomicU64,
    /// The user's remote jobs that wait or run.
    remote_remaining: AtomicU64,
    /// The client asked for previews with metadata (`feature_flags`).
    preview_metadata: AtomicBool,
    /// When the browser last sent anything (a pong included), ms since `opened`.
    last_heard_ms: AtomicU64,
    opened: tokio::time::Instant,
}

impl Session {
    fn heard(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_heard_ms.store(ms, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.opened.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_heard_ms.load(Ordering::Relaxed)))
    }
}

async fn session(
    gw: Gateway,
    user: User,
    client_id: Option<String>,
    browser: WebSocket,
    upstream: Upstream,
) {
    let s = Arc::new(Session {
        user,
        client_id,
        upstream_remaining: AtomicU64::new(0),
        remote_remaining: AtomicU64::new(0),
        preview_metadata: AtomicBool::new(false),
        last_heard_ms: AtomicU64::new(0),
        opened: tokio::time::Instant::now(),
    });
    if let Ok(n) = queue_remaining(&gw, &s.user).await {
        s.remote_remaining.store(n as u64, Ordering::Relaxed);
    }
    let (mut to_browser, mut from_browser) = browser.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(OUTBOX);

    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if to_browser.send(m).await.is_err() {
                break;
            }
        }
    });

    // Browser → its ComfyUI.
    let up_session = s.clone();
    let browser_to_upstream = async move {
        while let Some(Ok(m)) = from_browser.next().await {
            up_session.heard();
            let forward = match m {
                Message::Text(t) => {
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                        && v.get("type").and_then(Value::as_str) == Some("feature_flags")
                    {
                        let wants = v
                            .pointer("/data/supports_preview_metadata")
                            .and_then(Value::as_bool);
                        up_session
                            .preview_metadata
                            .store(wants == Some(true), Ordering::Relaxed);
                    }
                    tungstenite::Message::text(t.as_str())
                }
                Message::Binary(b) => tungstenite::Message::binary(b),
                Message::Ping(p) => tungstenite::Message::Ping(p),
                Message::Pong(p) => tungstenite::Message::Pong(p),
                Message::Close(_) => break,
            };
            if to_upstream.send(forward).await.is_err() {
                break;
            }
        }
        let _ = to_upstream.close().await;
    };

    // Its ComfyUI → browser (status counts the remote jobs too).
    let tx = out_tx.clone();
    let down_session = s.clone();
    let upstream_to_browser = async move {
        while let Some(Ok(m)) = from_upstream.next().await {
            let forward = match m {
                tungstenite::Message::Text(t) => {
                    Message::Text(rewrite_status(&down_session, t.as_str()).into())
                }
                tungstenite::Message::Binary(b) => Message::Binary(b),
                tungstenite::Message::Ping(p) => Message::Ping(p),
                tungstenite::Message::Pong(p) => Message::Pong(p),
                tungstenite::Message::Close(_) => break,
                tungstenite::Message::Frame(_) => continue,
            };
            if tx.send(forward).await.is_err() {
                break;
            }
        }
    };

    // The queue → browser.
    let remote = remote_events(gw.clone(), s.clone(), out_tx.clone());

    // Pings the browser; a socket silent for three periods is gone.
    let period = Duration::from_secs(gw.config().ws_ping_secs);
    let ping_tx = out_tx.clone();
    let ping_session = s.clone();
    let keepalive = async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            if ping_session.silent_for() >= period * 3 {
                tracing::info!(user = %ping_session.user.id, "browser socket silent; closing it");
                return;
            }
            if ping_tx
                .send(Message::Ping(bytes::Bytes::new()))
                .await
                .is_err()
            {
                return;
            }
        }
    };

    tokio::select! {
        () = browser_to_upstream => {}
        () = upstream_to_browser => {}
        () = remote => {}
        () = keepalive => {}
    }
    drop(out_tx);
    writer.abort();
}

fn status_message(s: &Session, sid: Option<&str>) -> Value {
    let n =
        s.upstream_remaining.load(Ordering::Relaxed) + s.remote_remaining.load(Ordering::Relaxed);
    let mut data = json!({"status": {"exec_info": {"queue_remaining": n}}});
    if let Some(sid) = sid {
        data["sid"] = json!(sid);
    }
    json!({"type": "status", "data": data})
}

/// A `status` from the user's ComfyUI, its count raised by the remote jobs.
fn rewrite_status(s: &Session, text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return text.to_owned();
    };
    if v.get("type").and_then(Value::as_str) != Some("status") {
        return text.to_owned();
    }
    let Some(n) = v
        .pointer("/data/status/exec_info/queue_remaining")
        .and_then(Value::as_u64)
    else {
        return text.to_owned();
    };
    s.upstream_remaining.store(n, Ordering::Relaxed);
    let sid = v.pointer("/data/sid").and_then(Value::as_str);
    status_message(s, sid).to_string()
}

/// Whose a job is, as far as this socket needs to know.
#[derive(Debug, Clone)]
struct Owner {
    mine: bool,
    client_id: Option<String>,
}

/// Follows the queue's `/ws` as the user (reconnecting), and sends the
/// user's remote job events to the browser.
async fn remote_events(gw: Gateway, s: Arc<Session>, tx: mpsc::Sender<Message>) {
    let mut owners: HashMap<Uuid, Owner> = HashMap::new();
    loop {
        match connect_queue(&gw, &s.user).await {
            Ok(mut stream) => {
                while let Some(Ok(m)) = stream.next().await {
                    let tungstenite::Message::Text(t) = m else {
                        continue;
                    };
                    let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                        continue;
                    };
                    for out in translate(&gw, &s, &mut owners, &v).await {
                        if tx.send(out).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, user = %s.user.id, "queue WebSocket unavailable; retrying");
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn connect_queue(gw: &Gateway, user: &User) -> Result<Upstream, GatewayError> {
    let url = gw
        .queue()
        .base()
        .join("/ws?previews=true")
        .map_err(|e| GatewayError::QueueDown(e.to_string()))?;
    let header = Some((gw.queue().user_header(), user.id.as_str()));
    handshake(url, header)
        .await
        .map_err(GatewayError::QueueDown)
}

async fn owner(gw: &Gateway, s: &Session, owners: &mut HashMap<Uuid, Owner>, id: Uuid) -> Owner {
    if let Some(o) = owners.get(&id) {
        return o.clone();
    }
    let o = match gw.queue().job(&s.user.id, id).await {
        Ok(Some(job)) => Owner {
            mine: true,
            client_id: ComfyMeta::of(&job).client_id,
        },
        Ok(None) => Owner {
            mine: false,
            client_id: None,
        },
        // Not known now: ask again on the next event.
        Err(_) => {
            return Owner {
                mine: false,
                client_id: None,
            };
        }
    };
    owners.insert(id, o.clone());
    o
}

/// The browser messages one queue message becomes for this socket.
async fn translate(
    gw: &Gateway,
    s: &Session,
    owners: &mut HashMap<Uuid, Owner>,
    v: &Value,
) -> Vec<Message> {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    match kind {
        "job_created" | "job_updated" | "job_deleted" => {
            let id = data
                .get("id")
                .or_else(|| data.get("job_id"))
                .and_then(Value::as_str)
                .and_then(|i| Uuid::parse_str(i).ok());
            if let (Some(id), Some(u)) = (id, data.get("user_id").and_then(Value::as_str)) {
                let client_id = data
                    .pointer("/metadata/comfy/client_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                owners.insert(
                    id,
                    Owner {
                        mine: u == s.user.id,
                        client_id,
                    },
                );
            }
            let mine = match id {
                Some(id) => owner(gw, s, owners, id).await.mine,
                None => false,
            };
            if !mine {
                return Vec::new();
            }
            match queue_remaining(gw, &s.user).await {
                Ok(n) => {
                    let old = s.remote_remaining.swap(n as u64, Ordering::Relaxed);
                    if old == n as u64 && kind == "job_updated" {
                        return Vec::new();
                    }
                    vec![Message::Text(status_message(s, None).to_string().into())]
                }
                Err(_) => Vec::new(),
            }
        }
        "comfy_event" => {
            let Some(id) = data
                .get("job_id")
                .and_then(Value::as_str)
                .and_then(|i| Uuid::parse_str(i).ok())
            else {
                return Vec::new();
            };
            let o = owner(gw, s, owners, id).await;
            if !o.mine {
                return Vec::new();
            }
            // ComfyUI sends a prompt's events to the socket that submitted it.
            if let (Some(job_client), Some(mine)) = (&o.client_id, &s.client_id)
                && job_client != mine
            {
                return Vec::new();
            }
            let event = data.get("event").cloned().unwrap_or(Value::Null);
            let preview = data.get("preview_base64").and_then(Value::as_str);
            comfy_message(
                id,
                &event,
                preview,
                s.preview_metadata.load(Ordering::Relaxed),
            )
            .into_iter()
            .collect()
        }
        _ => Vec::new(),
    }
}

fn text(kind: &str, data: Value) -> Message {
    Message::Text(json!({"type": kind, "data": data}).to_string().into())
}

/// ComfyUI's `output` of an `executed`, from the adapter's outputs, with the
/// files under the gateway's `/view` of job `id`.
fn executed_output(id: Uuid, outputs: &[Value]) -> Value {
    let mut out: Map<String, Value> = Map::new();
    for o in outputs {
        let key = o
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or("images")
            .to_owned();
        let item = match o.get("file") {
            Some(f) if f.is_object() => json!({
                "filename": f.get("filename").cloned().unwrap_or(Value::Null),
                "subfolder": remote_subfolder(id, f.get("subfolder").and_then(Value::as_str).unwrap_or("")),
                "type": f.get("folder").and_then(Value::as_str).unwrap_or("output"),
            }),
            _ => match o.get("raw") {
                Some(raw) if !raw.is_null() => raw.clone(),
                _ => o.get("text").cloned().unwrap_or(Value::Null),
            },
        };
        if let Some(items) = out.entry(key).or_insert_with(|| json!([])).as_array_mut() {
            items.push(item);
        }
        if o.get("animated").and_then(Value::as_bool) == Some(true) {
            out.insert("animated".into(), json!([true]));
        }
    }
    Value::Object(out)
}

/// One adapter event of remote job `id` as the message ComfyUI sends.
pub fn comfy_message(
    id: Uuid,
    e: &Value,
    preview_base64: Option<&str>,
    preview_metadata: bool,
) -> Option<Message> {
    let pid = id.to_string();
    let get = |k: &str| e.get(k).cloned().unwrap_or(Value::Null);
    let kind = e.get("event").and_then(Value::as_str)?;
    Some(match kind {
        "execution_start" => text(
            kind,
            json!({"prompt_id": pid, "timestamp": get("timestamp_ms")}),
        ),
        "execution_cached" => text(
            kind,
            json!({"nodes": get("nodes"), "prompt_id": pid, "timestamp": get("timestamp_ms")}),
        ),
        "executing" => {
            let node = get("node");
            let display = match get("display_node") {
                Value::Null => node.clone(),
                d => d,
            };
            if node.is_null() {
                text(kind, json!({"node": null, "prompt_id": pid}))
            } else {
                text(
                    kind,
                    json!({"node": node, "display_node": display, "prompt_id": pid}),
                )
            }
        }
        "progress" => text(
            kind,
            json!({"value": get("value"), "max": get("max"), "prompt_id": pid, "node": get("node")}),
        ),
        "progress_state" => {
            let mut nodes = Map::new();
            for (n, p) in e
                .get("nodes")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let or_n = |k: &str| match p.get(k) {
                    Some(Value::Null) | None => json!(n),
                    Some(v) => v.clone(),
                };
                nodes.insert(
                    n.clone(),
                    json!({
                        "value": p.get("value").cloned().unwrap_or(json!(0.0)),
                        "max": p.get("max").cloned().unwrap_or(json!(1.0)),
                        "state": p.get("state").cloned().unwrap_or(json!("running")),
                        "node_id": n,
                        "prompt_id": pid,
                        "display_node_id": or_n("display_node_id"),
                        "parent_node_id": p.get("parent_node_id").cloned().unwrap_or(Value::Null),
                        "real_node_id": or_n("real_node_id"),
                    }),
                );
            }
            text(kind, json!({"prompt_id": pid, "nodes": nodes}))
        }
        "executed" => {
            let node = get("node");
            let display = match get("display_node") {
                Value::Null => node.clone(),
                d => d,
            };
            let outputs = e
                .get("outputs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            text(
                kind,
                json!({"node": node, "display_node": display, "output": executed_output(id, &outputs), "prompt_id": pid}),
            )
        }
        "execution_success" => text(
            kind,
            json!({"prompt_id": pid, "timestamp": get("timestamp_ms")}),
        ),
        "execution_error" => {
            let f = e.get("failure").cloned().unwrap_or(Value::Null);
            let fget = |k: &str| f.get(k).cloned().unwrap_or(Value::Null);
            text(
                kind,
                json!({
                    "prompt_id": pid,
                    "node_id": fget("node_id"),
                    "node_type": fget("node_type"),
                    "executed": f.get("executed").cloned().unwrap_or(json!([])),
                    "exception_message": fget("exception_message"),
                    "exception_type": fget("exception_type"),
                    "traceback": f.get("traceback").cloned().unwrap_or(json!([])),
                    "current_inputs": f.get("current_inputs").cloned().unwrap_or(json!({})),
                    "current_outputs": {},
                    "timestamp": fget("timestamp_ms"),
                }),
            )
        }
        "execution_interrupted" => {
            let i = e.get("interruption").cloned().unwrap_or(Value::Null);
            let iget = |k: &str| i.get(k).cloned().unwrap_or(Value::Null);
            text(
                kind,
                json!({
                    "prompt_id": pid,
                    "node_id": iget("node_id"),
                    "node_type": iget("node_type"),
                    "executed": i.get("executed").cloned().unwrap_or(json!([])),
                    "timestamp": iget("timestamp_ms"),
                }),
            )
        }
        "preview" => {
            let image = base64::engine::general_purpose::STANDARD
                .decode(preview_base64?)
                .ok()?;
            let mime = e
                .get("mime")
                .and_then(Value::as_str)
                .unwrap_or("image/jpeg");
            let mut frame = Vec::with_capacity(image.len() + 256);
            if preview_metadata {
                let node = get("node_id");
                let meta = json!({
                    "node_id": node, "display_node_id": node, "parent_node_id": null,
                    "real_node_id": node, "prompt_id": pid, "image_type": mime,
                })
                .to_string();
                frame.extend_from_slice(&4u32.to_be_bytes());
                frame.extend_from_slice(&(meta.len() as u32).to_be_bytes());
                frame.extend_from_slice(meta.as_bytes());
            } else {
                let format: u32 = if mime == "image/png" { 2 } else { 1 };
                frame.extend_from_slice(&1u32.to_be_bytes());
                frame.extend_from_slice(&format.to_be_bytes());
            }
            frame.extend_from_slice(&image);
            Message::Binary(frame.into())
        }
        "text" => {
            let node = e.get("node_id").and_then(Value::as_str).unwrap_or("");
            let body = e.get("text").and_then(Value::as_str).unwrap_or("");
            let mut frame = Vec::with_capacity(12 + node.len() + body.len());
            frame.extend_from_slice(&3u32.to_be_bytes());
            frame.extend_from_slice(&(node.len() as u32).to_be_bytes());
            frame.extend_from_slice(node.as_bytes());
            frame.extend_from_slice(body.as_bytes());
            Message::Binary(frame.into())
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(m: Option<Message>) -> Vec<u8> {
        match m {
            Some(Message::Binary(b)) => b.to_vec(),
            other => panic!("not a binary frame: {other:?}"),
        }
    }

    #[test]
    fn previews_are_comfyuis_binary_frames_with_or_without_metadata() {
        let id = Uuid::nil();
        let e = json!({"event": "preview", "mime": "image/png", "node_id": "3", "bytes": 3});
        let b64 = base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3]);
        let plain = binary(comfy_message(id, &e, Some(&b64), false));
        assert_eq!(
            plain,
            [0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3],
            "type 1, PNG, the image"
        );
        let with_meta = binary(comfy_message(id, &e, Some(&b64), true));
        assert_eq!(&with_meta[..4], &[0, 0, 0, 4]);
        let len =
            u32::from_be_bytes([with_meta[4], with_meta[5], with_meta[6], with_meta[7]]) as usize;
        let meta: Value = serde_json::from_slice(&with_meta[8..8 + len]).expect("metadata JSON");
        assert_eq!(meta["prompt_id"], id.to_string());
        assert_eq!(meta["node_id"], "3");
        assert_eq!(meta["image_type"], "image/png");
        assert_eq!(&with_meta[8 + len..], &[1, 2, 3]);
        // What the adapter reads back is what was sent.
        let back = comfy_adapter::normalize::parse_binary_frame(&with_meta).expect("parses");
        assert!(matches!(
            back,
            comfy_adapter::model::event::Event::Preview { bytes: 3, .. }
        ));
        assert!(
            comfy_message(id, &e, None, false).is_none(),
            "no image, no frame"
        );
    }

    #[test]
    fn executed_outputs_point_at_the_gateways_view_of_the_job() {
        let id = Uuid::from_u128(7);
        let e = json!({"event": "executed", "prompt_id": "worker-side", "node": "9", "display_node": null,
        "outputs": [
            {"node_id": "9", "kind": "video", "key": "images", "file": {"filename": "a.mp4", "subfolder": "video", "folder": "output"}, "animated": false},
            {"node_id": "9", "kind": "text", "key": "text", "text": "hello", "raw": "hello"},
        ]});
        let Some(Message::Text(t)) = comfy_message(id, &e, None, false) else {
            panic!("not text")
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        assert_eq!(v["type"], "executed");
        assert_eq!(
            v["data"]["prompt_id"],
            id.to_string(),
            "the job id, not the worker's prompt id"
        );
        assert_eq!(v["data"]["display_node"], "9");
        assert_eq!(
            v["data"]["output"]["images"][0],
            json!({"filename": "a.mp4", "subfolder": format!("comfy-queue/{id}/video"), "type": "output"})
        );
        assert_eq!(v["data"]["output"]["text"], json!(["hello"]));
    }
}

//! `/history`: listing, one entry, deletion.

use super::app::App;
use super::reply::{empty_ok, ok, server_error};
use super::request::{Q, id_list, parse_object};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Map, Value};

pub(crate) async fn history_all(State(app): State<App>, Query(q): Q) -> Response {
    let max = match q.get("max_items") {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return server_error(),
        },
    };
    let st = app.engine.lock();
    let len = st.history.len();
    // Python's `list(history)[-max_items:]` (0 keeps everything).
    let skip = match max {
        Some(m) if m > 0 => len.saturating_sub(usize::try_from(m).unwrap_or(usize::MAX)),
        Some(m) if m < 0 => usize::try_from(m.unsigned_abs())
            .unwrap_or(usize::MAX)
            .min(len),
        _ => 0,
    };
    let map: Map<String, Value> = st
        .history
        .iter()
        .skip(skip)
        .map(|d| (d.entry.id.clone(), d.history_item()))
        .collect();
    ok(Value::Object(map))
}

pub(crate) async fn history_one(State(app): State<App>, Path(id): Path<String>) -> Response {
    let st = app.engine.lock();
    let mut map = Map::new();
    if let Some(d) = st.done(&id) {
        map.insert(id, d.history_item());
    }
    ok(Value::Object(map))
}

pub(crate) async fn history_control(State(app): State<App>, body: Bytes) -> Response {
    let Some(body) = parse_object(&body) else {
        return server_error();
    };
    let mut st = app.engine.lock();
    if body.get("clear").and_then(Value::as_bool) == Some(true) {
        st.history.clear();
    }
    let ids = id_list(body.get("delete"));
    st.history.retain(|d| !ids.contains(&d.entry.id));
    drop(st);
    empty_ok()
}

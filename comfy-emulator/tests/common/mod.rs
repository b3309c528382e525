//! The recorded sessions of the real frontend against real ComfyUI
//! (`fixtures/frontend/`), read for the frontend tests.

#![allow(dead_code, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;

/// One recorded session: which frontend ran on which server, and every
/// event in order.
#[derive(Debug)]
pub(crate) struct Session {
    /// The file name.
    pub(crate) file: String,
    /// The ComfyUI release.
    pub(crate) server: String,
    /// The frontend that ran.
    pub(crate) frontend: String,
    /// `http`, `ws`, `ws_open`, `console` and `mark` events.
    pub(crate) events: Vec<Value>,
}

/// The four sessions, as (frontend, server) pairs in the README's order.
pub(crate) const PAIRS: [(&str, &str); 4] = [
    ("1.36.14", "0.9.2"),
    ("1.37.11", "0.11.1"),
    ("1.48.7", "0.33.0"),
    ("1.58.1", "0.33.0"),
];

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The session of frontend `fe` on server `server`.
pub(crate) fn session(fe: &str, server: &str) -> Session {
    let file = format!("frontend-{fe}-on-{server}.json");
    let path = fixtures().join("frontend").join(&file);
    let text = std::fs::read(&path).expect("recorded session");
    let mut v: Value = serde_json::from_slice(&text).expect("session JSON");
    let events = v["events"]
        .as_array_mut()
        .map(std::mem::take)
        .expect("events");
    Session {
        file,
        server: v["comfyui_version"].as_str().expect("server").to_owned(),
        frontend: v["frontend_version_global"]
            .as_str()
            .expect("fe")
            .to_owned(),
        events,
    }
}

impl Session {
    /// The HTTP calls (not static files) made before the `booted` mark.
    pub(crate) fn boot_calls(&self) -> Vec<&Value> {
        self.events
            .iter()
            .take_while(|e| !(e["kind"] == "mark" && e["what"] == "booted"))
            .filter(|e| e["kind"] == "http" && e["static"] != true)
            .collect()
    }

    /// Every HTTP request (static or not) that the real server answered
    /// with `status`, as (method, path).
    pub(crate) fn answered(&self, status: impl Fn(u64) -> bool) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e["kind"] == "http" && e["status"].as_u64().is_some_and(&status))
            .map(|e| {
                (
                    e["method"].as_str().unwrap_or_default().to_owned(),
                    e["path"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

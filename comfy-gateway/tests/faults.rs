//! Bad input and faults, through the gateway's router without a socket
//! (`app()` with the peer address a real connection would give): a forged
//! user header, paths outside the user's prefix, malformed and oversize
//! submits, a user's ComfyUI that is down, a queue that is down. The user's
//! ComfyUI is wiremock answering with the recorded 0.9.2 `/system_stats`
//! and `/object_info`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use comfy_gateway::{Config, Gateway, app};
use comfy_test_support::replay;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn comfyui_092() -> MockServer {
    let server = MockServer::start().await;
    for (route, fixture) in [
        ("/system_stats", "001-"),
        ("/object_info", "018-"),
        ("/api/object_info", "018-"),
    ] {
        let (_, ex) = replay::read_fixture("0.9.2", fixture);
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(&ex["response"]["body"]))
            .mount(&server)
            .await;
    }
    server
}

fn config(queue: &str, upstream: &str) -> Config {
    let text = format!(
        r#"queue_url = "{queue}"
           max_submit_bytes = 4096
           [identity]
           trusted_proxies = ["10.0.0.1/32"]
           [[users]]
           id = "alice"
           upstream = "{upstream}"
           [[users]]
           id = "bob"
           upstream = "{upstream}"
        "#
    );
    let c: Config = toml::from_str(&text).unwrap();
    c.validate().unwrap();
    c
}

/// The router as a connection from `peer` would reach it.
fn router(config: Config, peer: &str) -> axum::Router {
    let peer: SocketAddr = format!("{peer}:5000").parse().unwrap();
    app(Gateway::new(config).unwrap()).layer(MockConnectInfo(peer))
}

async fn call(r: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(uri: &str, user: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(u) = user {
        b = b.header("X-Forwarded-User", u);
    }
    b.body(Body::empty()).unwrap()
}

fn post(uri: &str, user: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("X-Forwarded-User", user)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap()
}

/// A queue address nothing listens on.
fn dead_queue() -> String {
    let port = comfy_test_support::ports::free_port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_user_header_from_outside_the_trusted_proxies_is_refused() {
    let ui = comfyui_092().await;
    let outside = router(config(&dead_queue(), &ui.uri()), "192.168.7.7");
    let (status, body) = call(&outside, get("/alice/api/object_info", Some("alice"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["type"], "forged_identity");
    assert!(
        ui.received_requests().await.unwrap().is_empty(),
        "nothing reached ComfyUI"
    );

    let proxy = router(config(&dead_queue(), &ui.uri()), "10.0.0.1");
    let (status, body) = call(&proxy, get("/alice/api/object_info", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call(&proxy, get("/alice/api/object_info", Some("alice"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn paths_outside_the_users_prefix_are_refused() {
    let ui = comfyui_092().await;
    let r = router(config(&dead_queue(), &ui.uri()), "10.0.0.1");
    for (uri, want) in [
        ("/bob/api/object_info", StatusCode::FORBIDDEN),
        ("/bob/ws", StatusCode::FORBIDDEN),
        ("/nobody/api/object_info", StatusCode::NOT_FOUND),
        ("/aliceX/api/object_info", StatusCode::NOT_FOUND),
    ] {
        let (status, _) = call(&r, get(uri, Some("alice"))).await;
        assert_eq!(status, want, "{uri}");
    }
    let requests = ui.received_requests().await.unwrap();
    assert!(requests.is_empty(), "{requests:?}");
}

#[tokio::test]
async fn malformed_and_oversize_submits_get_comfyuis_answers_and_reach_nobody() {
    let ui = comfyui_092().await;
    let r = router(config(&dead_queue(), &ui.uri()), "10.0.0.1");
    let (status, body) = call(&r, post("/alice/api/prompt", "alice", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "invalid_json");
    let (status, body) = call(&r, post("/alice/prompt", "alice", r#"{"client_id": "x"}"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}),
        "fixture 037's body"
    );
    let big = format!(
        r#"{{"prompt": {{"1": {{"class_type": "{}"}}}}}}"#,
        "x".repeat(5000)
    );
    let (status, body) = call(&r, post("/alice/api/prompt", "alice", big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["type"], "payload_too_large");
    // An unknown class is refused in 0.9.2's words (fixture 038).
    let unknown = json!({"prompt": {"1": {"class_type": "DoesNotExist", "inputs": {}}}});
    let (status, body) = call(&r, post("/alice/api/prompt", "alice", unknown.to_string())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        json!({"type": "invalid_prompt", "message": "Cannot execute because node DoesNotExist does not exist.", "details": "Node ID '#1'", "extra_info": {}})
    );
    let no_outputs = json!({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}}});
    let (status, body) = call(
        &r,
        post("/alice/api/prompt", "alice", no_outputs.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["type"], "prompt_no_outputs");
}

#[tokio::test]
async fn a_comfyui_that_is_down_is_a_clear_502_not_a_hang() {
    let port = comfy_test_support::ports::free_port();
    let r = router(
        config(&dead_queue(), &format!("http://127.0.0.1:{port}")),
        "10.0.0.1",
    );
    let started = std::time::Instant::now();
    let (status, body) = call(&r, get("/alice/api/object_info", Some("alice"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body["error"]["type"], "upstream_unavailable");
    assert!(
        body["node_errors"].is_object(),
        "ComfyUI's error shape: {body}"
    );
    assert!(started.elapsed().as_secs() < 10);
}

#[tokio::test]
async fn a_queue_that_is_down_answers_the_submit_with_comfyuis_error_body() {
    let ui = comfyui_092().await;
    let r = router(config(&dead_queue(), &ui.uri()), "10.0.0.1");
    let prompt = json!({"prompt": {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }});
    let (status, body) = call(&r, post("/alice/api/prompt", "alice", prompt.to_string())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "queue_unavailable");
    assert!(body["error"]["message"].as_str().unwrap().contains("queue"));
    // The panel's reads say the same instead of an empty list that would look like "no jobs".
    let (status, body) = call(&r, get("/alice/api/queue", Some("alice"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["type"], "queue_unavailable");
}

#[tokio::test]
async fn in_multi_user_mode_the_gateway_names_the_user_to_comfyui_and_a_forged_name_is_dropped() {
    let ui = comfyui_092().await;
    Mock::given(method("GET"))
        .and(path("/api/settings"))
        .and(wiremock::matchers::header("comfy-user", "alice"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Comfy.Theme": "dark"})))
        .expect(1)
        .mount(&ui)
        .await;
    let text = format!(
        r#"queue_url = "{}"
           multi_user_upstream = "{}"
           [identity]
           trusted_proxies = ["10.0.0.1/32"]
           [[users]]
           id = "alice"
           [[users]]
           id = "bob"
        "#,
        dead_queue(),
        ui.uri()
    );
    let c: Config = toml::from_str(&text).unwrap();
    c.validate().unwrap();
    let r = router(c, "10.0.0.1");
    let req = Request::get("/alice/api/settings")
        .header("X-Forwarded-User", "alice")
        .header("comfy-user", "bob")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&r, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Comfy.Theme"], "dark");
    let seen = ui.received_requests().await.unwrap();
    let settings = seen
        .iter()
        .find(|q| q.url.path() == "/api/settings")
        .unwrap();
    let names: Vec<_> = settings.headers.get_all("comfy-user").iter().collect();
    assert_eq!(names, ["alice"], "exactly the gateway's own comfy-user");
    assert!(settings.headers.get("x-forwarded-user").is_none());
}

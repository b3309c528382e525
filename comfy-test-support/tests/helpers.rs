//! The shared helpers against the real programs they start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;

use comfy_test_support::http::{Client, Identity, USER_HEADER};
use comfy_test_support::ports::free_port;
use comfy_test_support::redis::RedisServer;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ping(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[test]
fn free_ports_are_bindable() {
    let p = free_port();
    assert_ne!(p, 0);
    std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
}

#[test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
fn redis_server_answers_restarts_and_stops_on_drop() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert_ne!(port, 6379, "never the machine's own server");
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(ping(port).unwrap(), "+PONG\r\n");
    server.restart();
    assert_eq!(ping(port).unwrap(), "+PONG\r\n");
    drop(server);
    assert!(ping(port).is_err(), "still running after drop");
}

#[tokio::test]
async fn callers_send_the_identity_the_queue_expects() {
    let mock = MockServer::start().await;
    for (who, name, value) in [
        ("user", USER_HEADER, "alice"),
        ("worker", "authorization", "Bearer w-tok"),
        ("admin", "authorization", "Bearer a-tok"),
    ] {
        Mock::given(method("POST"))
            .and(path(format!("/as/{who}")))
            .and(header(name, value))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"who": who})))
            .expect(1)
            .mount(&mock)
            .await;
    }
    let anonymous = Client::new(mock.uri());
    assert_eq!(anonymous.identity(), &Identity::Anonymous);
    let body = json!({"x": 1});
    let r = anonymous.as_user("alice").post("/as/user", &body).await;
    assert_eq!((r.status, r.json["who"].as_str()), (201, Some("user")));
    let r = anonymous.as_worker("w-tok").post("/as/worker", &body).await;
    assert_eq!(r.json["who"], "worker");
    let r = anonymous.as_admin("a-tok").post("/as/admin", &body).await;
    assert_eq!(r.json["who"], "admin");
    // No identity header matches none of the mocks.
    assert_eq!(anonymous.post("/as/admin", &body).await.status, 404);
    mock.verify().await;
}

#[tokio::test]
async fn a_refused_connection_is_an_error_not_an_answer() {
    let c = Client::new(format!("http://127.0.0.1:{}", free_port()));
    assert!(
        c.try_send(reqwest::Method::GET, "/health", None)
            .await
            .is_err()
    );
}

//! The adapter's real WebSocket client against a local server that replays a
//! recorded trace frame by frame.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use comfy_test_support::replay as support;

use comfy_adapter::model::event::Event;
use comfy_adapter::{Capabilities, ComfyError, Line, Timeouts, connect};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

fn trace(version: &str, prefix: &str) -> Value {
    support::read_fixture(version, prefix).1
}

/// Serves one WebSocket connection: checks the path and client id, sends the
/// trace's messages, one binary preview, one unknown type, then closes.
async fn replay_server(messages: Vec<Value>, expect_client: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let check = move |req: &Request, resp: Response| {
            assert_eq!(req.uri().path(), "/ws");
            assert_eq!(
                req.uri().query(),
                Some(format!("clientId={expect_client}").as_str())
            );
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, check)
            .await
            .unwrap();
        for m in messages {
            ws.send(Message::text(m.to_string())).await.unwrap();
        }
        let mut preview = 1u32.to_be_bytes().to_vec();
        preview.extend_from_slice(&2u32.to_be_bytes());
        preview.extend_from_slice(b"\x89PNG");
        ws.send(Message::binary(preview)).await.unwrap();
        ws.send(Message::text(
            r#"{"type":"custom.node.event","data":{"x":1}}"#,
        ))
        .await
        .unwrap();
        ws.send(Message::Close(None)).await.unwrap();
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn events_stream_a_recorded_run_then_ends_on_close() {
    for version in ["0.3.64", "0.11.1", "0.33.0"] {
        let t = trace(version, "082-");
        let client_id = t["client_id"].as_str().unwrap().to_owned();
        let messages = t["messages"].as_array().unwrap().clone();
        let url = replay_server(messages.clone(), client_id.clone()).await;
        let adapter = connect(
            &url,
            Line::JobsApi,
            Capabilities::for_line(Line::JobsApi, None),
            Timeouts::default(),
            None,
        )
        .unwrap();
        let events: Vec<Event> = adapter
            .events(&client_id)
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
            .await;
        assert_eq!(
            events.len(),
            messages.len() + 2,
            "{version}: every frame, nothing after close"
        );
        assert!(
            matches!(events[0], Event::Status { sid: Some(_), .. }),
            "{version}"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::ExecutionSuccess { .. })),
            "{version}"
        );
        let executed = events
            .iter()
            .filter(|e| matches!(e, Event::Executed { .. }))
            .count();
        assert_eq!(executed, 5, "{version}: five nodes return UI output");
        assert!(
            matches!(&events[messages.len()], Event::Preview { mime: Some(m), bytes: 4, .. } if m == "image/png"),
            "{version}"
        );
        assert!(
            matches!(&events[messages.len() + 1], Event::Unknown { kind, .. } if kind == "custom.node.event"),
            "{version}"
        );
    }
}

#[tokio::test]
async fn a_silent_server_times_out_instead_of_hanging() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts TCP but never answers the WebSocket handshake.
    let hold = tokio::spawn(async move {
        let (_tcp, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let timeouts = Timeouts {
        connect: Duration::from_millis(300),
        request: Duration::from_secs(1),
    };
    let adapter = connect(
        &format!("http://{addr}"),
        Line::CancelApi,
        Capabilities::for_line(Line::CancelApi, None),
        timeouts,
        None,
    )
    .unwrap();
    let err = adapter.events("me").await.err().unwrap();
    assert!(matches!(err, ComfyError::Timeout { .. }), "{err}");
    hold.abort();
}

#[tokio::test]
async fn refused_websocket_is_a_typed_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let adapter = connect(
        &format!("http://127.0.0.1:{port}"),
        Line::Legacy,
        Capabilities::for_line(Line::Legacy, None),
        Timeouts::default(),
        None,
    )
    .unwrap();
    let err = adapter.events("me").await.err().unwrap();
    assert!(matches!(err, ComfyError::WebSocket { .. }), "{err}");
    assert!(err.is_retryable());
}

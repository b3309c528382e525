//! The WebSocket edge: connect to `/ws?clientId=` and parse every frame.

use crate::adapter::EventStream;
use crate::error::{ComfyError, Result};
use crate::http::HttpCore;
use crate::normalize::{parse_binary_frame, parse_text_frame};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

/// Opens the socket (bounded by the connect timeout) and returns the parsed
/// event stream. Pings, pongs and raw frames are skipped; a close ends it.
pub async fn connect(core: &HttpCore, client_id: &str) -> Result<EventStream> {
    let (socket, url) = open(core, client_id).await?;
    let stream = socket
        .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
        .filter_map(move |msg| {
            let url = url.clone();
            std::future::ready(match msg {
                Ok(Message::Text(text)) => {
                    Some(parse_text_frame(text.as_str()).map_err(|e| decode(e.to_string())))
                }
                Ok(Message::Binary(bytes)) => {
                    Some(parse_binary_frame(&bytes).map_err(|e| decode(e.to_string())))
                }
                Ok(_) => None,
                Err(e) => Some(Err(ComfyError::WebSocket {
                    url,
                    reason: e.to_string(),
                })),
            })
        });
    Ok(stream.boxed())
}

fn decode(reason: String) -> ComfyError {
    ComfyError::Decode {
        what: "websocket frame".into(),
        reason,
    }
}

/// An open socket as it comes off the wire.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/ws?clientId=` within the connect timeout; returns the socket and
/// its URL (for errors).
pub async fn open(core: &HttpCore, client_id: &str) -> Result<(Socket, String)> {
    let mut url = core.ws_url("/ws");
    url.push_str("?clientId=");
    url.push_str(&crate::endpoints::encode_segment(client_id));
    let connecting = tokio_tungstenite::connect_async(url.as_str());
    let (socket, _) = tokio::time::timeout(core.timeouts().connect, connecting)
        .await
        .map_err(|_| ComfyError::Timeout { url: url.clone() })?
        .map_err(|e| ComfyError::WebSocket {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    Ok((socket, url))
}

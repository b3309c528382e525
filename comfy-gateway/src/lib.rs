//! `comfy-gateway`: each user's own, unchanged ComfyUI frontend on top of the
//! central queue, with no custom node in the user's ComfyUI.
//!
//! A reverse proxy between the users' browsers (behind the platform's nginx)
//! and their CPU ComfyUIs. Everything the frontend needs from its own
//! ComfyUI passes through unchanged ([`proxy`]); what would run a prompt or
//! show the queue is answered from the queue for that user only, in the
//! shapes the user's ComfyUI line answers ([`submit`], [`listing`],
//! [`control`], [`view`], [`shapes`]); the socket carries the remote jobs'
//! events as ComfyUI's own messages ([`socket`]). See `docs/gateway.md`.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the TOML file: queue, identity, users and their upstreams |
//! | [`app`] | the router: prefixes, intercepted or passed through |
//! | [`identity`] | who calls: trusted header, own basic auth, demo user |
//! | [`state`] | clients, what each upstream is, remembered prompts, deleted history |
//! | [`queue`] | the queue's HTTP API as the gateway calls it, per user |
//! | [`shapes`] | queue jobs as `/queue`, `/history` and `/api/jobs` answers per line |
//! | [`submit`] | `POST /prompt` → a queue job (inputs attached, secrets removed) |
//! | [`listing`] | `GET /prompt`, `/queue`, `/history`, `/api/jobs` |
//! | [`control`] | delete/clear, interrupt, the cancel routes |
//! | [`view`] | `/view` of remote outputs, from the queue's file store |
//! | [`socket`] | `/ws`: the user's ComfyUI socket plus remote job events |
//! | [`templates`] | template workflows into userdata; `/api/default_workflow` |
//! | [`proxy`] | byte-exact pass-through to the user's ComfyUI |
//! | [`query`] | a request's query string, decoded once |
//! | [`error`] | failures in ComfyUI's error shape |

pub mod app;
pub mod config;
pub mod control;
pub mod error;
pub mod identity;
pub mod listing;
pub mod pool;
pub mod proxy;
pub mod query;
pub mod queue;
pub mod shapes;
pub mod socket;
pub mod state;
pub mod submit;
pub mod templates;
pub mod view;

pub use app::app;
pub use config::Config;
pub use error::GatewayError;
pub use state::Gateway;

/// Serves `gateway` on `listener` until `shutdown` completes; the peer
/// address of each connection is what the identity check trusts or not.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // TCP_NODELAY: a `/view` streamed after its head would otherwise wait for the
    // browser's delayed ACK (about 40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    axum::serve(
        listener,
        app(gateway).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Provisions the templates into every user's userdata, logging what it did.
pub async fn provision_all(gateway: &Gateway) {
    for user in &gateway.config().users {
        match templates::provision(gateway, user).await {
            Ok(p) if !p.written.is_empty() || !p.kept.is_empty() => {
                tracing::info!(user = %user.id, written = ?p.written, kept = ?p.kept, "templates provisioned");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(user = %user.id, error = %e, "templates not provisioned"),
        }
    }
}

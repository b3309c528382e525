//! What every HTTP handler shares: the engine and the served port.

use super::engine::Engine;
use std::sync::Arc;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// The engine.
    pub(crate) engine: Arc<Engine>,
    /// The port served (for `argv`).
    pub(crate) port: u16,
    /// Ends WebSockets on stop.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

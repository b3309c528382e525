//! What every HTTP handler shares: the engine, the served port and the
//! frontend build.

use super::engine::Engine;
use std::sync::Arc;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub(crate) struct App {
    /// The engine.
    pub(crate) engine: Arc<Engine>,
    /// The port served (for `argv`).
    pub(crate) port: u16,
    /// The frontend build served for paths no API route takes.
    pub(crate) frontend: Option<super::frontend::Frontend>,
    /// The placeholder model files, by folder.
    pub(crate) models: Arc<super::models::ModelFiles>,
    /// Ends WebSockets on stop.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

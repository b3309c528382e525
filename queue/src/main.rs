//! The `comfy-queue` server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use comfy_queue::clock::SystemClock;
use comfy_queue::config::Config;
use comfy_queue::store::Store;
use comfy_queue::store::redis::RedisStore;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, app};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let settings = config.settings();

    let store: Arc<dyn Store> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisStore::connect(url, &config.redis_prefix)
                .await
                .context("connecting to Redis")?,
        ),
        None => Arc::new(
            SqliteStore::open(&config.db)
                .with_context(|| format!("opening {}", config.db.display()))?,
        ),
    };
    if !settings.auth.enabled() {
        tracing::warn!(
            "authentication is OFF: no --worker-token or --admin-token set; anyone who can reach \
             {} can submit, read, cancel and complete any job",
            config.listen
        );
    }
    tracing::info!(backend = store.name(), listen = %config.listen, "starting comfy-queue");

    let state = AppState::new(store, Arc::new(SystemClock), settings);
    let reap_every = Duration::from_secs_f64(config.reap_interval_secs.clamp(0.05, 3600.0));
    let _reaper = state.spawn_reaper(reap_every);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        })
        .await
        .context("serving")?;
    Ok(())
}

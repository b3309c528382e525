//! The `comfy-queue` server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use comfy_artifacts::{BlobStore, LocalStore, S3Config, S3Store};
use comfy_queue::clock::{SharedClock, SystemClock};
use comfy_queue::config::Config;
use comfy_queue::replicas;
use comfy_queue::store::Store;
use comfy_queue::store::redis::{RedisBus, RedisStore};
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, app};
use tracing_subscriber::EnvFilter;

/// jemalloc, with its background threads purging freed pages: RSS comes back after bursts
/// of large submits, where glibc's allocator kept more after each (`docs/benchmarks.md`).
/// Only this binary; the library and its tests keep the system allocator.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let settings = config.settings();

    let (store, bus): (Arc<dyn Store>, Option<RedisBus>) = match &config.redis_url {
        Some(url) => {
            let store = RedisStore::connect(url, &config.redis_prefix)
                .await
                .context("connecting to Redis")?;
            match store.persistence().await {
                Ok(persistence) => {
                    persistence.check(config.allow_volatile_redis)?;
                    let window = persistence.loss_window();
                    if persistence.is_durable() {
                        tracing::info!(appendfsync = %persistence.appendfsync, "Redis persistence: {window}");
                    } else {
                        tracing::warn!(save = %persistence.save, "Redis has no append-only file (--allow-volatile-redis): {window}");
                    }
                }
                Err(e) if config.allow_volatile_redis => {
                    tracing::warn!(error = %e, "cannot read Redis' persistence settings; running anyway (--allow-volatile-redis)");
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(
                        "reading Redis' persistence settings (CONFIG GET appendonly, appendfsync, \
                         save); where CONFIG is not allowed, start with --allow-volatile-redis",
                    ));
                }
            }
            let bus = RedisBus::connect(url, &config.redis_prefix)
                .await
                .context("connecting to Redis for the replicas' channel")?;
            (Arc::new(store), Some(bus))
        }
        None => (
            Arc::new(
                SqliteStore::open(&config.db)
                    .with_context(|| format!("opening {}", config.db.display()))?,
            ),
            None,
        ),
    };
    let files = file_store(&config).await?;
    if !settings.auth.enabled() {
        tracing::warn!(
            "authentication is OFF: no --worker-token or --admin-token set; anyone who can reach \
             {} can submit, read, cancel and complete any job",
            config.listen
        );
    }
    tracing::info!(backend = store.name(), file_store = files.name(), listen = %config.listen, "starting comfy-queue");

    // On Redis every replica reads the server's clock; SQLite serves one process.
    let (clock, _clock_task): (SharedClock, _) = match &bus {
        Some(bus) => {
            let (clock, task) = replicas::server_clock(bus)
                .await
                .context("reading Redis' TIME")?;
            (clock, Some(task))
        }
        None => (Arc::new(SystemClock), None),
    };
    let state = AppState::new(store, files, clock, settings);
    let _replica = match bus {
        Some(bus) => Some(
            replicas::join(&state, bus)
                .await
                .context("listening on the replicas' channel")?,
        ),
        None => None,
    };
    let reap_every = Duration::from_secs_f64(config.reap_interval_secs.clamp(0.05, 3600.0));
    let _reaper = state.spawn_reaper(reap_every);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let stopping = state.clone();
    axum::serve(comfy_queue::no_delay(listener), app(state.clone()))
        .with_graceful_shutdown(async move {
            stop_signal().await;
            tracing::info!("shutting down: answering long-polls, closing /ws, finishing requests");
            stopping.begin_shutdown();
        })
        .await
        .context("serving")?;
    // Upgraded /ws connections are not part of the graceful shutdown: give them a moment to
    // send their close frames (and hear the clients' answers) before the process exits.
    if tokio::time::timeout(Duration::from_secs(5), state.websockets_closed())
        .await
        .is_err()
    {
        tracing::warn!("some /ws clients did not answer the close frame within 5 s");
    }
    Ok(())
}

/// The file store the configuration names: a local directory, or an S3 bucket.
async fn file_store(config: &Config) -> anyhow::Result<Arc<dyn BlobStore>> {
    if let Some(bucket) = &config.files_s3_bucket {
        let mut s3 = S3Config::from_env(bucket.clone());
        if let Some(endpoint) = &config.files_s3_endpoint {
            s3.endpoint = Some(endpoint.clone());
        }
        if let Some(region) = &config.files_s3_region {
            s3.region = region.clone();
        }
        s3.prefix = config.files_s3_prefix.clone();
        s3.allow_http = s3.allow_http || config.files_s3_allow_http;
        let store =
            S3Store::new(&s3).with_context(|| format!("S3 file store in bucket {bucket}"))?;
        tracing::info!(bucket = %bucket, endpoint = ?s3.endpoint, prefix = %s3.prefix, "files kept in S3");
        return Ok(Arc::new(store));
    }
    let dir = config.files_dir();
    let local = LocalStore::open(&dir)
        .await
        .with_context(|| format!("opening the file store at {}", dir.display()))?;
    tracing::info!(dir = %dir.display(), "files kept in a local directory");
    Ok(Arc::new(local))
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

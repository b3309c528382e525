//! The `comfy-worker` process.

use anyhow::Context;
use clap::Parser;
use comfy_worker::Worker;
use comfy_worker::config::Config;
use tracing_subscriber::EnvFilter;

/// Resolves on SIGTERM or SIGINT.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
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

/// SIGUSR1 asks the queue to drain this worker (it finishes its job and takes no new one:
/// then it can be stopped and upgraded), SIGUSR2 puts it back.
#[cfg(unix)]
fn drain_on_signals(queue: comfy_worker::queue_client::QueueClient) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut usr1 = signal(SignalKind::user_defined1()).context("listening for SIGUSR1")?;
    let mut usr2 = signal(SignalKind::user_defined2()).context("listening for SIGUSR2")?;
    tokio::spawn(async move {
        loop {
            let drain = tokio::select! {
                Some(()) = usr1.recv() => true,
                Some(()) = usr2.recv() => false,
                else => return,
            };
            let what = if drain { "drain" } else { "undrain" };
            match queue.set_drain(drain).await {
                Ok(()) => tracing::info!("signal: asked the queue to {what} this worker"),
                Err(e) => tracing::warn!(error = %e, "signal: could not {what} this worker"),
            }
        }
    });
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = Config::parse();
    let health_addr = config.health_addr().map_err(anyhow::Error::msg)?;
    let worker = Worker::new(config).context("building the worker")?;
    if let Some(addr) = health_addr {
        let bound = comfy_worker::health::serve(addr, worker.health())
            .await
            .with_context(|| format!("serving /health on {addr}"))?;
        tracing::info!(%bound, "health and metrics at http://{bound}/health and /metrics");
    }
    #[cfg(unix)]
    drain_on_signals(worker.queue())?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signalled().await;
        tracing::info!("signal received: no new jobs; finishing the current one");
        let _ = tx.send(true);
    });
    worker.run(rx).await
}

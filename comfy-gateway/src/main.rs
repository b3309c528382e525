//! `comfy-gateway`: serve the users' own ComfyUI frontends on top of the queue.

use clap::Parser;
use comfy_gateway::{Config, Gateway};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Puts each user's own, unchanged ComfyUI frontend on top of the central
/// queue: the frontend's calls pass to its own ComfyUI, its Run, queue
/// panel, progress and outputs come from the GPU pool. See docs/gateway.md.
#[derive(Debug, Parser)]
#[command(name = "comfy-gateway", version)]
struct Args {
    /// The configuration file (TOML): queue, identity, users and upstreams.
    #[arg(long, env = "COMFY_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Where to listen.
    #[arg(long, env = "COMFY_GATEWAY_LISTEN", default_value = "127.0.0.1:8190")]
    listen: SocketAddr,
    /// Do not copy the template workflows into the users' userdata at start.
    #[arg(long)]
    no_provision: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,comfy_gateway=info".into()),
        )
        .init();
    let args = Args::parse();
    let config = Config::load(&args.config)?;
    if let Some(a) = &config.identity.anonymous_user
        && !args.listen.ip().is_loopback()
    {
        anyhow::bail!(
            "anonymous_user {a:?} would let anyone who reaches {} act as {a}: it is for a local demo on a loopback address only",
            args.listen
        );
    }
    let users = config.users.len();
    let gateway = Gateway::new(config)?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, users, "gateway listening");
    if !args.no_provision {
        let g = gateway.clone();
        tokio::spawn(async move { comfy_gateway::provision_all(&g).await });
    }
    comfy_gateway::serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

//! Load tool: drives full job lifecycles (submit → next-job → complete) over HTTP against a
//! running queue and prints lifecycles/s and p50/p99 per call for each concurrency, then
//! how fast an idle long-polling worker receives a freshly submitted job. With `--depth` it
//! measures instead what reads and submits cost with that many jobs pending.
//!
//! ```text
//! queue-load --url http://127.0.0.1:3000 --concurrency 1,8,32 --seconds 5
//! queue-load --url http://127.0.0.1:3000 --contract        # any server of the original API
//! queue-load --url http://127.0.0.1:3000 --depth 0,10000,100000 --server-pid PID
//! queue-load --url http://127.0.0.1:3001,http://127.0.0.1:3002 --concurrency 32   # replicas
//! ```
//! Only point it at a server on this machine that you started for the purpose: it leaves
//! its jobs behind (completed or cancelled).

mod client;
mod conn;
mod depth;
mod lifecycles;
mod stats;

use std::sync::Arc;

use clap::Parser;

use crate::client::{Client, Dialect};

#[derive(Debug, Parser)]
#[command(
    name = "queue-load",
    about = "Drive job lifecycles against a running queue, or measure it at depth"
)]
struct Args {
    /// Base URL of the queue; several (comma-separated) for replicas of one queue: the
    /// lifecycles and the hand-off then cross replicas (the depth benchmark uses the first).
    #[arg(long, default_value = "http://127.0.0.1:3000", value_delimiter = ',')]
    url: Vec<String>,
    /// Speak only the platform's original queue contract: no tokens, no long polls, no
    /// lease tokens (drives the original queue manager or any other implementation of it).
    #[arg(long)]
    contract: bool,
    /// Comma-separated concurrency levels.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Seconds to run each level.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Hand-offs to time in the idle long-poll phase (0 skips it).
    #[arg(long, default_value_t = 200)]
    handoffs: usize,
    /// Instead of lifecycles: fill the queue to each of these numbers of pending jobs and
    /// time status, job reads, submits and claims there (e.g. 0,10000,100000). The server
    /// should run with no pending cap (`--max-pending 0`).
    #[arg(long, value_delimiter = ',')]
    depth: Vec<usize>,
    /// Depth benchmark: timed calls per figure.
    #[arg(long, default_value_t = 500)]
    samples: usize,
    /// Depth benchmark: seconds of submits (8 at a time) for the submit rate.
    #[arg(long, default_value_t = 3.0)]
    rate_seconds: f64,
    /// Depth benchmark: seed of the random choice of jobs to read.
    #[arg(long, default_value_t = 20_261_202)]
    seed: u64,
    /// Depth benchmark: the server's process id, to print its resident memory (Linux).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Depth benchmark: the server's Redis, to print its memory per pending job.
    #[arg(long)]
    redis_url: Option<String>,
    /// Admin token (if the server has auth on; not sent with --contract).
    #[arg(long, env = "QUEUE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Worker token (if the server has auth on; not sent with --contract).
    #[arg(long, env = "QUEUE_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Option<String>,
}

// One thread: the tool then takes at most one of the machine's cores and leaves the rest to
// the servers it measures, and no request hops between threads on its way.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dialect = if args.contract {
        Dialect::Contract
    } else {
        Dialect::Native
    };
    let mut clients = Vec::new();
    for url in &args.url {
        clients.push(Arc::new(Client::new(
            url,
            dialect,
            args.admin_token.clone(),
            args.worker_token.clone(),
        )?));
    }
    let Some(client) = clients.first().cloned() else {
        anyhow::bail!("--url names no queue");
    };
    for other in &clients[1..] {
        other.health().await?;
    }
    let health = client.health().await?;
    let backend = health
        .get("backend")
        .and_then(|b| b.as_str())
        .unwrap_or("not said");
    println!(
        "target {} (backend {backend}, {} dialect)",
        args.url.join(", "),
        if args.contract { "contract" } else { "native" },
    );
    if !args.depth.is_empty() {
        let d = depth::DepthArgs {
            depths: args.depth.clone(),
            samples: args.samples.max(1),
            rate_seconds: args.rate_seconds,
            seed: args.seed,
            server_pid: args.server_pid,
            redis_url: args.redis_url.clone(),
        };
        return depth::run(&client, &d).await;
    }
    println!("{} s per level", args.seconds);
    lifecycles::print_header();
    for n in &args.concurrency {
        lifecycles::run_level(&clients, (*n).max(1), args.seconds).await?;
    }
    if args.handoffs > 0 {
        lifecycles::handoff(&clients, args.handoffs).await?;
    }
    Ok(())
}

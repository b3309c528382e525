//! Load tool: drives full job lifecycles (submit → next-job → complete) over HTTP against a
//! running comfy-queue and prints lifecycles/s and p50/p99 per call, for each concurrency.
//! It then measures how fast an idle long-polling worker receives a freshly submitted job.
//!
//! ```text
//! queue-load --url http://127.0.0.1:3000 --concurrency 1,8,32 --seconds 5
//! ```
//! Only point it at a server on this machine that you started for the purpose.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "queue-load",
    about = "Drive job lifecycles against a running comfy-queue"
)]
struct Args {
    /// Base URL of the queue.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Comma-separated concurrency levels.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Seconds to run each level.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Hand-offs to time in the idle long-poll phase (0 skips it).
    #[arg(long, default_value_t = 200)]
    handoffs: usize,
    /// Admin token (if the server has auth on).
    #[arg(long, env = "QUEUE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Worker token (if the server has auth on).
    #[arg(long, env = "QUEUE_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Option<String>,
}

#[derive(Default)]
struct Samples {
    submit: Vec<Duration>,
    claim: Vec<Duration>,
    complete: Vec<Duration>,
}

struct Ctx {
    http: reqwest::Client,
    url: String,
    admin: Option<String>,
    worker: Option<String>,
}

impl Ctx {
    fn auth(&self, rb: reqwest::RequestBuilder, token: Option<&String>) -> reqwest::RequestBuilder {
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn submit(&self, user: &str) -> anyhow::Result<String> {
        let rb = self
            .http
            .post(format!("{}/api/jobs", self.url))
            .json(&json!({
                "user_id": user,
                "workflow": {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}},
                "priority": 2,
                "metadata": {"batch_index": 0, "batch_total": 1},
            }));
        let r = self.auth(rb, self.admin.as_ref()).send().await?;
        if r.status() != 201 {
            bail!(
                "submit answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let v: Value = r.json().await?;
        v["id"].as_str().map(str::to_owned).context("submit: no id")
    }

    async fn claim(&self, worker: &str, wait: f64) -> anyhow::Result<Option<(String, String)>> {
        let rb = self
            .http
            .get(format!("{}/api/workers/next-job", self.url))
            .query(&[("worker_id", worker), ("wait", &wait.to_string())]);
        let r = self.auth(rb, self.worker.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("next-job answered {}", r.status());
        }
        let v: Value = r.json().await?;
        let job = &v["job"];
        if job.is_null() {
            return Ok(None);
        }
        let id = job["id"].as_str().context("no id")?.to_owned();
        let token = job["lease_token"]
            .as_str()
            .context("no lease token")?
            .to_owned();
        Ok(Some((id, token)))
    }

    async fn complete(&self, id: &str, token: &str) -> anyhow::Result<()> {
        let rb = self
            .http
            .post(format!("{}/api/workers/complete-job", self.url))
            .query(&[("job_id", id), ("lease_token", token)])
            .json(&json!({"result": {"images": ["out.png"], "execution_time": 0.0}}));
        let r = self.auth(rb, self.worker.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("complete-job answered {}", r.status());
        }
        Ok(())
    }
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1000.0
}

async fn run_level(ctx: &std::sync::Arc<Ctx>, n: usize, seconds: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..n {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let user = format!("user{:03}", t % 20 + 1);
            let worker = format!("load-w{t}");
            let mut done = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                ctx.submit(&user).await?;
                let t1 = Instant::now();
                let Some((id, token)) = ctx.claim(&worker, 5.0).await? else {
                    continue;
                };
                let t2 = Instant::now();
                ctx.complete(&id, &token).await?;
                let t3 = Instant::now();
                s.submit.push(t1 - t0);
                s.claim.push(t2 - t1);
                s.complete.push(t3 - t2);
                done += 1;
            }
            anyhow::Ok((done, s))
        }));
    }
    let mut total = 0u64;
    let mut all = Samples::default();
    for t in tasks {
        let (done, s) = t.await??;
        total += done;
        all.submit.extend(s.submit);
        all.claim.extend(s.claim);
        all.complete.extend(s.complete);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{:>11} {:>10} {:>13.0} {:>9.2}/{:<8.2} {:>9.2}/{:<8.2} {:>9.2}/{:<8.2}",
        n,
        total,
        total as f64 / secs,
        pct(&mut all.submit, 0.5),
        pct(&mut all.submit, 0.99),
        pct(&mut all.claim, 0.5),
        pct(&mut all.claim, 0.99),
        pct(&mut all.complete, 0.5),
        pct(&mut all.complete, 0.99),
    );
    Ok(())
}

async fn handoff(ctx: &std::sync::Arc<Ctx>, rounds: usize) -> anyhow::Result<()> {
    // Drain anything left over.
    while ctx.claim("handoff-drain", 0.0).await?.is_some() {}
    let mut lat = Vec::with_capacity(rounds);
    let mut after_ack = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let poller = {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let got = ctx.claim("handoff-w", 10.0).await?;
                anyhow::Ok((got, Instant::now()))
            })
        };
        // Let the worker reach its wait.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        ctx.submit("user001").await?;
        let acked = Instant::now();
        let (got, received) = poller.await??;
        let (id, token) = got.context("the waiting worker got no job")?;
        lat.push(received.saturating_duration_since(sent));
        after_ack.push(received.saturating_duration_since(acked));
        ctx.complete(&id, &token).await?;
    }
    println!(
        "idle long-poll hand-off over {rounds} jobs: submit sent -> worker has job p50 {:.2} ms, p99 {:.2} ms \
         (after the submit's own 201: p50 {:.2} ms, p99 {:.2} ms)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut after_ack, 0.5),
        pct(&mut after_ack, 0.99),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()?;
    let ctx = std::sync::Arc::new(Ctx {
        http,
        url: args.url.trim_end_matches('/').to_owned(),
        admin: args.admin_token.clone(),
        worker: args.worker_token.clone(),
    });
    let health: Value = ctx
        .http
        .get(format!("{}/health", ctx.url))
        .send()
        .await
        .context("is the queue running?")?
        .json()
        .await?;
    println!(
        "target {} (backend {}), {} s per level",
        ctx.url, health["backend"], args.seconds
    );
    println!(
        "{:>11} {:>10} {:>13} {:>18} {:>18} {:>18}",
        "concurrency",
        "lifecycles",
        "lifecycles/s",
        "submit p50/p99 ms",
        "next-job p50/p99",
        "complete p50/p99"
    );
    for n in &args.concurrency {
        run_level(&ctx, (*n).max(1), args.seconds).await?;
    }
    if args.handoffs > 0 {
        handoff(&ctx, args.handoffs).await?;
    }
    Ok(())
}

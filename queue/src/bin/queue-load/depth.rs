//! Cost at depth: the queue is filled to each depth (pending jobs from 20 users), then the
//! reads and writes a platform makes all the time are timed one after another: the
//! dashboard's `GET /api/queue/status`, a user's `GET /api/jobs/{id}` of a random pending
//! job (its position is part of the answer), a submit's answer, a worker's next-job +
//! complete-job; then submits per second at concurrency 8. The jobs those steps add are
//! cancelled again, so each depth is measured at the depth it names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::Client;
use crate::stats::{Rng, p50_p99, time_each};

/// What the depth benchmark measures, and where.
pub(crate) struct DepthArgs {
    pub(crate) depths: Vec<usize>,
    pub(crate) samples: usize,
    pub(crate) rate_seconds: f64,
    pub(crate) seed: u64,
    pub(crate) server_pid: Option<u32>,
    pub(crate) redis_url: Option<String>,
}

/// The ids of the pending jobs this run submitted, removable in O(1).
#[derive(Default)]
struct Pending {
    ids: Vec<String>,
    at: HashMap<String, usize>,
}

impl Pending {
    fn add(&mut self, id: String) {
        self.at.insert(id.clone(), self.ids.len());
        self.ids.push(id);
    }

    fn remove(&mut self, id: &str) {
        if let Some(i) = self.at.remove(id) {
            self.ids.swap_remove(i);
            if let Some(moved) = self.ids.get(i) {
                self.at.insert(moved.clone(), i);
            }
        }
    }
}

fn user(i: usize) -> String {
    format!("user{:03}", i % 20 + 1)
}

/// Submits from `conc` tasks at once, task `t` going on while `more(t, submitted so far)`;
/// the ids, in no particular order. Users go round robin over tasks and submits.
async fn submit_from<F>(client: &Arc<Client>, conc: usize, more: F) -> anyhow::Result<Vec<String>>
where
    F: Fn(usize, usize) -> bool + Clone + Send + 'static,
{
    let mut tasks = Vec::new();
    for t in 0..conc {
        let (client, more) = (client.clone(), more.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while more(t, ids.len()) {
                ids.push(client.submit(&user(t + ids.len() * conc)).await?);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await??);
    }
    Ok(out)
}

/// Submit `n` jobs, `conc` at a time; their ids.
async fn submit_many(client: &Arc<Client>, n: usize, conc: usize) -> anyhow::Result<Vec<String>> {
    submit_from(client, conc, move |t, done| {
        done < n / conc + usize::from(t < n % conc)
    })
    .await
}

/// Cancel `ids`, 8 at a time.
async fn cancel_all(client: &Arc<Client>, ids: Vec<String>) -> anyhow::Result<()> {
    let chunks: Vec<Vec<String>> = ids
        .chunks(ids.len().div_ceil(8).max(1))
        .map(<[String]>::to_vec)
        .collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                client.cancel(&id).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Submits per second, 8 at a time, for `seconds`; the ids submitted.
async fn submit_rate(client: &Arc<Client>, seconds: f64) -> anyhow::Result<(f64, Vec<String>)> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let ids = submit_from(client, 8, move |_, _| Instant::now() < deadline).await?;
    Ok((ids.len() as f64 / started.elapsed().as_secs_f64(), ids))
}

/// Resident memory of process `pid` in MB (Linux).
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Redis `used_memory` in bytes.
async fn redis_used(url: &str) -> anyhow::Result<u64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

pub(crate) async fn run(client: &Arc<Client>, args: &DepthArgs) -> anyhow::Result<()> {
    let mut rng = Rng::new(args.seed);
    println!(
        "depth benchmark: {} samples per figure, submit rate over {} s, job picks seeded {}",
        args.samples, args.rate_seconds, args.seed
    );
    println!(
        "{:>8} {:>8} {:>16} {:>16} {:>16} {:>18} {:>10} {:>8} {:>12}",
        "pending",
        "fill/s",
        "status p50/p99",
        "job p50/p99",
        "submit p50/p99",
        "claim+done p50/p99",
        "submits/s",
        "RSS MB",
        "redis B/job"
    );
    let mut pending = Pending::default();
    let mut depths = args.depths.clone();
    depths.sort_unstable();
    for &depth in &depths {
        let missing = depth.saturating_sub(pending.ids.len());
        let before_fill = match &args.redis_url {
            Some(u) => Some(redis_used(u).await?),
            None => None,
        };
        let t = Instant::now();
        for id in submit_many(client, missing, 16).await? {
            pending.add(id);
        }
        // Redis memory per pending job: what the fill added (only pending jobs) over how many.
        let per_job = match (&args.redis_url, before_fill) {
            (Some(u), Some(before)) if missing > 0 => {
                let used = redis_used(u).await?;
                format!("{:.0}", used.saturating_sub(before) as f64 / missing as f64)
            }
            _ => "-".into(),
        };
        let fill = if missing > 0 {
            format!("{:.0}", missing as f64 / t.elapsed().as_secs_f64())
        } else {
            "-".into()
        };

        let mut status =
            time_each(args.samples, |_| async { client.status().await.map(drop) }).await?;
        let picks: Vec<String> = if pending.ids.is_empty() {
            Vec::new()
        } else {
            (0..args.samples)
                .map(|_| pending.ids[rng.below(pending.ids.len())].clone())
                .collect()
        };
        let mut job = time_each(picks.len(), |i| {
            let id = picks[i].clone();
            async move { client.job(&id).await.map(drop) }
        })
        .await?;
        let mut added = Vec::with_capacity(args.samples);
        let mut submit = Vec::with_capacity(args.samples);
        for i in 0..args.samples {
            let t = Instant::now();
            added.push(client.submit(&user(i)).await?);
            submit.push(t.elapsed());
        }
        let mut lifecycle = Vec::with_capacity(args.samples);
        for _ in 0..args.samples {
            let t = Instant::now();
            let leased = client.claim_one("depth-w").await?;
            client.complete(&leased).await?;
            lifecycle.push(t.elapsed());
            pending.remove(&leased.id);
            if let Some(i) = added.iter().position(|a| *a == leased.id) {
                added.swap_remove(i);
            }
        }
        let (rate, more) = submit_rate(client, args.rate_seconds).await?;
        added.extend(more);
        let rss = args
            .server_pid
            .and_then(rss_mb)
            .map_or_else(|| "-".into(), |m| format!("{m:.1}"));
        // The jobs this level added leave the queue (cancelled), so the next level starts
        // from the depth it names. Jobs claimed above were some of the pending ones: top up.
        cancel_all(client, added).await?;
        println!(
            "{:>8} {:>8} {:>16} {:>16} {:>16} {:>18} {:>10.0} {:>8} {:>12}",
            depth,
            fill,
            p50_p99(&mut status),
            p50_p99(&mut job),
            p50_p99(&mut submit),
            p50_p99(&mut lifecycle),
            rate,
            rss,
            per_job
        );
    }
    Ok(())
}

//! Whole job lifecycles (submit → next-job → complete-job) at several concurrencies, and
//! the hand-off to an idle long-polling worker. Given several replicas, task `t` submits
//! through replica `t mod n` and claims and completes through the next one, and the
//! hand-off's worker waits on one replica while the job is submitted on another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::{Client, Dialect};
use crate::stats::{p50_p99, pct};

#[derive(Default)]
struct Samples {
    lifecycle: Vec<Duration>,
    submit: Vec<Duration>,
    claim: Vec<Duration>,
    complete: Vec<Duration>,
}

pub(crate) fn print_header() {
    println!(
        "{:>11} {:>10} {:>13} {:>18} {:>18} {:>18} {:>18}",
        "concurrency",
        "lifecycles",
        "lifecycles/s",
        "lifecycle p50/p99",
        "submit p50/p99 ms",
        "next-job p50/p99",
        "complete p50/p99"
    );
}

/// `n` tasks, each running lifecycles one after another until `seconds` have passed.
pub(crate) async fn run_level(
    clients: &[Arc<Client>],
    n: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..n {
        let client = clients[t % clients.len()].clone();
        let worker_side = clients[(t + 1) % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Samples::default();
            let user = format!("user{:03}", t % 20 + 1);
            let worker = format!("load-w{t}");
            let mut done = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                client.submit(&user).await?;
                let t1 = Instant::now();
                let job = worker_side.claim_one(&worker).await?;
                let t2 = Instant::now();
                worker_side.complete(&job).await?;
                let t3 = Instant::now();
                s.lifecycle.push(t3 - t0);
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
        all.lifecycle.extend(s.lifecycle);
        all.submit.extend(s.submit);
        all.claim.extend(s.claim);
        all.complete.extend(s.complete);
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = total as f64 / secs;
    println!(
        "{:>11} {:>10} {:>13.0} {:>18} {:>18} {:>18} {:>18}",
        n,
        total,
        rate,
        p50_p99(&mut all.lifecycle),
        p50_p99(&mut all.submit),
        p50_p99(&mut all.claim),
        p50_p99(&mut all.complete),
    );
    Ok(rate)
}

/// How fast a worker waiting in a long poll receives a job submitted while it waits.
pub(crate) async fn handoff(clients: &[Arc<Client>], rounds: usize) -> anyhow::Result<()> {
    let (worker_side, client) = (&clients[0], &clients[clients.len() - 1]);
    if client.dialect() == Dialect::Contract {
        println!("idle long-poll hand-off: skipped (the contract's next-job does not wait)");
        return Ok(());
    }
    // Drain anything left over.
    while worker_side.claim("handoff-drain", 0.0).await?.is_some() {}
    let mut lat = Vec::with_capacity(rounds);
    let mut after_ack = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let poller = {
            let worker_side = worker_side.clone();
            tokio::spawn(async move {
                let got = worker_side.claim("handoff-w", 10.0).await?;
                anyhow::Ok((got, Instant::now()))
            })
        };
        // Let the worker reach its wait.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        client.submit("user001").await?;
        let acked = Instant::now();
        let (got, received) = poller.await??;
        let job = got.context("the waiting worker got no job")?;
        lat.push(received.saturating_duration_since(sent));
        after_ack.push(received.saturating_duration_since(acked));
        worker_side.complete(&job).await?;
    }
    let across = if clients.len() > 1 {
        " (worker and submit on different replicas)"
    } else {
        ""
    };
    println!(
        "idle long-poll hand-off{across} over {rounds} jobs: submit sent -> worker has job p50 {:.2} ms, p99 {:.2} ms \
         (after the submit's own 201: p50 {:.2} ms, p99 {:.2} ms)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut after_ack, 0.5),
        pct(&mut after_ack, 0.99),
    );
    Ok(())
}

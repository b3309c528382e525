//! SQLite only: the tallies that let reads skip scans (schema v6: jobs per status, active
//! jobs per user, pending jobs per (priority, user) and per position bucket, all kept by
//! triggers) agree with a recount of the jobs table after random operations; positions
//! agree with the brute-force rank; and each claim takes the job the scan-based order of
//! earlier versions would have taken. A v5 file migrates to v6 with its counters built.
//!
//! The operations are random: the seed is printed (`COUNTERS_SEED=<n>` repeats a run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_queue::lifecycle::{Failure, LeaseKind};
use comfy_queue::model::{Job, Status};
use comfy_queue::scheduler::WorkerInfo;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::store::{Store, SubmitLimits};
use rusqlite::Connection;
use uuid::Uuid;

/// Random operations per run: about 1,700 submits, so positions cross several buckets of
/// 512 sequence numbers.
const STEPS: usize = 3_200;

const LIMITS: SubmitLimits = SubmitLimits {
    max_pending: 0,
    max_per_user: 0,
    max_attempts: 3,
};

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn new_job(user: &str, priority: u64) -> comfy_queue::model::NewJob {
    comfy_queue::model::validate_submit(
        &serde_json::json!({"user_id": user, "workflow": {"1": {}}, "priority": priority}),
        None,
    )
    .unwrap()
}

fn worker(name: &str) -> WorkerInfo {
    WorkerInfo {
        worker_id: name.into(),
        ..Default::default()
    }
}

/// The job the claim order of schema v5 and earlier took (a sort over every pending job).
fn expected_claim(conn: &Connection, now: i64) -> Option<String> {
    conn.query_row(
        "SELECT j.id FROM jobs j LEFT JOIN user_sched u ON u.user_id = j.user_id \
         WHERE j.status = 'pending' AND (j.not_before IS NULL OR j.not_before <= ?1) \
         ORDER BY j.priority, COALESCE(u.last_served, 0), j.user_id, j.seq LIMIT 1",
        [now],
        |r| r.get(0),
    )
    .ok()
}

/// Compare every counter table with a recount, and pending jobs' positions (all of them
/// when `all`) with their rank by (priority, seq).
async fn check(store: &SqliteStore, conn: &Connection, seed: u64, step: usize, all: bool) {
    let ctx = format!("seed {seed}, step {step}");
    let recount = |sql: &str| -> Vec<(String, String, i64)> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, rusqlite::types::Value>(0)
                        .map(|v| format!("{v:?}"))?,
                    r.get::<_, rusqlite::types::Value>(1)
                        .map(|v| format!("{v:?}"))?,
                    r.get(2)?,
                ))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let pairs = [
        (
            "SELECT a, b, n FROM tallies WHERE kind = 'status' AND n > 0 ORDER BY 1",
            "SELECT status, '', COUNT(*) FROM jobs GROUP BY status ORDER BY 1",
        ),
        (
            "SELECT a, b, n FROM tallies WHERE kind = 'active' ORDER BY 1, 2",
            "SELECT user_id, status, COUNT(*) FROM jobs WHERE status IN ('pending', 'running') \
             GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        (
            "SELECT a, b, n FROM tallies WHERE kind = 'pending' ORDER BY 1, 2",
            "SELECT priority, user_id, COUNT(*) FROM jobs WHERE status = 'pending' \
             GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        (
            "SELECT a, b, n FROM tallies WHERE kind = 'bucket' ORDER BY 1, 2",
            "SELECT priority, seq >> 9, COUNT(*) FROM jobs WHERE status = 'pending' \
             GROUP BY 1, 2 ORDER BY 1, 2",
        ),
    ];
    for (kept, counted) in pairs {
        assert_eq!(recount(kept), recount(counted), "{kept} ({ctx})");
    }
    let counts = store.counts().await.unwrap();
    let pending: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM jobs WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        counts.get(Status::Pending),
        u64::try_from(pending).unwrap(),
        "{ctx}"
    );
    let ranked: Vec<(String, i64)> = {
        let mut stmt = conn
            .prepare("SELECT id, seq FROM jobs WHERE status = 'pending' ORDER BY priority, seq")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    for (i, (id, seq)) in ranked.iter().enumerate() {
        // Every job at the end; in between every fifth and those at a bucket's edges.
        let edge = matches!(seq % 512, 0 | 1 | 511);
        if !(all || edge || i % 5 == 0) {
            continue;
        }
        let id = Uuid::parse_str(id).unwrap();
        assert_eq!(
            store.position(id).await.unwrap(),
            Some(i as u64 + 1),
            "position of {id} (seq {seq}, {ctx})"
        );
    }
}

#[tokio::test]
async fn counters_positions_and_claims_agree_with_a_recount() {
    let seed = std::env::var("COUNTERS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("COUNTERS_SEED={seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let store = SqliteStore::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    let users = ["ann", "bob", "cy", "dee", "007"];
    let mut jobs: Vec<Uuid> = Vec::new();
    let mut running: Vec<(Uuid, String)> = Vec::new();
    let mut now = 1_000;
    for step in 0..STEPS {
        now += 1;
        match rng.below(13) {
            0..=6 => {
                let user = users[rng.below(5) as usize];
                let s = store
                    .submit(new_job(user, rng.below(4)), LIMITS, now)
                    .await
                    .unwrap();
                jobs.push(s.job.id);
            }
            7 | 8 => {
                let want = expected_claim(&conn, now);
                let got = store
                    .claim(&worker("w"), 60_000, LeaseKind::Fenced, now)
                    .await
                    .unwrap();
                assert_eq!(
                    got.as_ref().map(|c| c.job.id.to_string()),
                    want,
                    "claim order (seed {seed}, step {step})"
                );
                if let Some(c) = got {
                    running.push((c.job.id, c.lease_token));
                }
            }
            9 if !running.is_empty() => {
                let (id, token) = running.swap_remove(rng.below(running.len() as u64) as usize);
                store
                    .complete(id, Some(&token), serde_json::json!({}), now)
                    .await
                    .unwrap();
            }
            10 if !running.is_empty() => {
                let (id, token) = running.swap_remove(rng.below(running.len() as u64) as usize);
                let failure = Failure {
                    error: "boom".into(),
                    retry: rng.below(2) == 0,
                    cancelled: false,
                    retry_delay_ms: rng.below(3) as i64 * 5,
                };
                store.fail(id, Some(&token), failure, now).await.unwrap();
            }
            11 if !jobs.is_empty() => {
                let id = jobs[rng.below(jobs.len() as u64) as usize];
                // Finished jobs refuse: only the counters' agreement matters here.
                let _ = store.cancel(id, now).await;
                running.retain(|(r, _)| *r != id);
            }
            12 if !jobs.is_empty() => {
                let id = jobs[rng.below(jobs.len() as u64) as usize];
                let _ = store.set_priority(id, rng.below(4) as u8).await;
            }
            _ => {
                // Leases run out: the reaper puts them back or ends them.
                if rng.below(4) == 0 {
                    now += 120_000;
                    store.reap(now).await.unwrap();
                    running.clear();
                }
            }
        }
        if step % 250 == 249 {
            check(&store, &conn, seed, step, false).await;
        }
    }
    check(&store, &conn, seed, STEPS, true).await;
    let pending: Vec<Job> = {
        let mut out = Vec::new();
        for id in &jobs {
            if let Some(j) = store.get(*id).await.unwrap()
                && j.status == Status::Pending
            {
                out.push(j);
            }
        }
        out
    };
    assert!(
        !pending.is_empty(),
        "the run should leave pending jobs (seed {seed})"
    );
}

/// A v5 file (no counters, no triggers) opens as v6 with counters equal to a recount.
#[tokio::test]
async fn sqlite_v5_file_migrates_to_v6_with_its_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let mut ids = Vec::new();
    {
        let store = SqliteStore::open(&path).unwrap();
        for (i, user) in ["ann", "bob", "ann", "cy", "bob", "ann"].iter().enumerate() {
            let s = store
                .submit(new_job(user, (i % 3) as u64), LIMITS, i as i64)
                .await
                .unwrap();
            ids.push(s.job.id);
        }
        let c = store
            .claim(&worker("w"), 60_000, LeaseKind::Fenced, 10)
            .await
            .unwrap()
            .unwrap();
        store
            .complete(c.job.id, Some(&c.lease_token), serde_json::json!({}), 11)
            .await
            .unwrap();
        store
            .claim(&worker("w"), 60_000, LeaseKind::Fenced, 12)
            .await
            .unwrap()
            .unwrap();
    }
    // Make it the file a v5 build wrote.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER jobs_tally_insert; DROP TRIGGER jobs_tally_delete; \
         DROP TRIGGER jobs_tally_update; DROP TABLE tallies; DROP INDEX jobs_by_user_queue; \
         CREATE INDEX jobs_by_user ON jobs(user_id, status); \
         ALTER TABLE workers DROP COLUMN drain; PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, comfy_queue::store::sqlite::SCHEMA_VERSION);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(Status::Pending), 4);
    assert_eq!(counts.get(Status::Running), 1);
    assert_eq!(counts.get(Status::Completed), 1);
    check(&store, &conn, 0, 0, true).await;
    // The triggers work on the migrated file too.
    store.submit(new_job("dee", 0), LIMITS, 20).await.unwrap();
    check(&store, &conn, 0, 1, true).await;
}

//! Differential property test: random operation sequences run against the SQLite and the
//! Redis backend side by side; after every step both must give the same answer and hold
//! the same jobs (ids and tokens aside). This holds the Lua scripts and the Rust state
//! machine (`lifecycle.rs`) to the same behaviour beyond the hand-written suite, and checks
//! that no acknowledged job is ever lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use comfy_queue::lifecycle::{Failure, LeaseKind};
use comfy_queue::model::{Job, NewJob};
use comfy_queue::scheduler::{Requirements, WorkerInfo};
use comfy_queue::store::redis::RedisStore;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::store::{ListFilter, Store, StoreError, SubmitLimits};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::json;
use uuid::Uuid;

const LEASE: i64 = 60_000;

#[derive(Debug, Clone)]
enum Op {
    Submit {
        user: u8,
        prio: u8,
        key: Option<u8>,
    },
    Claim {
        worker: u8,
    },
    Heartbeat {
        job: usize,
        token: u8,
    },
    Complete {
        job: usize,
        token: u8,
    },
    Fail {
        job: usize,
        token: u8,
        retry: bool,
        cancelled: bool,
    },
    Cancel {
        job: usize,
    },
    SetPriority {
        job: usize,
        prio: u8,
    },
    Advance {
        ms: i64,
    },
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..4, proptest::option::of(0u8..3))
            .prop_map(|(user, prio, key)| Op::Submit { user, prio, key }),
        4 => (0u8..3).prop_map(|worker| Op::Claim { worker }),
        2 => (0usize..12, 0u8..3).prop_map(|(job, token)| Op::Heartbeat { job, token }),
        3 => (0usize..12, 0u8..3).prop_map(|(job, token)| Op::Complete { job, token }),
        2 => (0usize..12, 0u8..3, any::<bool>(), any::<bool>())
            .prop_map(|(job, token, retry, cancelled)| Op::Fail { job, token, retry, cancelled }),
        1 => (0usize..12).prop_map(|job| Op::Cancel { job }),
        1 => (0usize..12, 0u8..4).prop_map(|(job, prio)| Op::SetPriority { job, prio }),
        2 => prop_oneof![Just(1_000i64), Just(30_000), Just(61_000)].prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::Reap),
    ]
}

/// One backend plus what the test knows about its ids and tokens.
struct Side {
    store: Arc<dyn Store>,
    ids: Vec<Uuid>,
    /// Every lease token ever given per job index (last = current).
    tokens: Vec<Vec<String>>,
}

impl Side {
    fn index(&self, id: Uuid) -> usize {
        self.ids.iter().position(|x| *x == id).expect("unknown id")
    }

    /// token kind: 0 = current lease, 1 = the first (possibly stale) lease, 2 = none.
    fn token(&self, job: usize, kind: u8) -> Option<String> {
        let t = &self.tokens[job];
        match kind {
            0 => Some(t.last().cloned().unwrap_or_else(|| "never-leased".into())),
            1 => Some(t.first().cloned().unwrap_or_else(|| "never-leased".into())),
            _ => None,
        }
    }
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::NotFound => "not_found",
        StoreError::InvalidState(_) => "invalid_state",
        StoreError::LeaseConflict(_) => "lease_conflict",
        StoreError::QueueFull(_) => "queue_full",
        StoreError::UserLimit(_) => "user_limit",
        StoreError::UnknownFile(_) => "unknown_file",
        StoreError::Backend(m) => panic!("backend error: {m}"),
    }
}

/// A job without what differs between backends by construction (id).
fn normal(j: &Job) -> serde_json::Value {
    json!({
        "user": j.user_id, "status": j.status, "priority": j.priority, "created": j.created_at,
        "started": j.started_at, "completed": j.completed_at, "worker": j.worker_id,
        "result": j.result, "error": j.error, "metadata": j.metadata, "attempts": j.attempts,
        "max": j.max_attempts, "cancel": j.cancel_requested, "lease": j.lease_expires_at,
        "not_before": j.not_before,
        "history": serde_json::to_value(&j.history).unwrap(),
    })
}

async fn step(side: &mut Side, op: &Op, now: i64) -> String {
    let limits = SubmitLimits {
        max_pending: 0,
        max_per_user: 3,
        max_attempts: 2,
    };
    let s = side.store.clone();
    match op {
        Op::Submit { user, prio, key } => {
            let job = NewJob {
                user_id: format!("u{user}"),
                workflow: json!({"1": {"n": user}}),
                priority: *prio,
                metadata: json!({"p": prio}),
                idempotency_key: key.map(|k| format!("k{k}")),
                requirements: Requirements::default(),
                inputs: Vec::new(),
            };
            match s.submit(job, limits, now).await {
                Ok(sub) => {
                    if sub.created {
                        side.ids.push(sub.job.id);
                        side.tokens.push(Vec::new());
                    }
                    format!(
                        "ok {} {} {:?}",
                        side.index(sub.job.id),
                        sub.created,
                        sub.position
                    )
                }
                Err(e) => kind(&e).into(),
            }
        }
        Op::Claim { worker } => {
            let w = WorkerInfo {
                worker_id: format!("w{worker}"),
                ..WorkerInfo::default()
            };
            // w0 never registered (legacy lease); w1 and w2 did (fenced).
            let lease = if *worker == 0 {
                LeaseKind::Legacy
            } else {
                LeaseKind::Fenced
            };
            match s.claim(&w, LEASE, lease, now).await {
                Ok(Some(c)) => {
                    let i = side.index(c.job.id);
                    side.tokens[i].push(c.lease_token);
                    format!("claimed {i}")
                }
                Ok(None) => "none".into(),
                Err(e) => kind(&e).into(),
            }
        }
        _ if side.ids.is_empty() => "no jobs".into(),
        Op::Heartbeat { job, token } => {
            let i = job % side.ids.len();
            let t = side.token(i, *token).unwrap_or_default();
            match s.heartbeat(side.ids[i], &t, LEASE, now).await {
                Ok(l) => format!("ok {} {}", l.lease_expires_at, l.cancel_requested),
                Err(e) => kind(&e).into(),
            }
        }
        Op::Complete { job, token } => {
            let i = job % side.ids.len();
            let t = side.token(i, *token);
            match s
                .complete(side.ids[i], t.as_deref(), json!({"r": i}), now)
                .await
            {
                Ok(j) => format!("ok {}", serde_json::to_string(&normal(&j)).unwrap()),
                Err(e) => kind(&e).into(),
            }
        }
        Op::Fail {
            job,
            token,
            retry,
            cancelled,
        } => {
            let i = job % side.ids.len();
            let t = side.token(i, *token);
            let f = Failure {
                error: format!("e{i}"),
                retry: *retry,
                cancelled: *cancelled,
                retry_delay_ms: 5_000,
            };
            match s.fail(side.ids[i], t.as_deref(), f, now).await {
                Ok(j) => format!("ok {}", serde_json::to_string(&normal(&j)).unwrap()),
                Err(e) => kind(&e).into(),
            }
        }
        Op::Cancel { job } => {
            let i = job % side.ids.len();
            match s.cancel(side.ids[i], now).await {
                Ok(j) => format!("ok {}", serde_json::to_string(&normal(&j)).unwrap()),
                Err(e) => kind(&e).into(),
            }
        }
        Op::SetPriority { job, prio } => {
            let i = job % side.ids.len();
            match s.set_priority(side.ids[i], *prio).await {
                Ok(j) => format!("ok {}", j.priority),
                Err(e) => kind(&e).into(),
            }
        }
        Op::Advance { .. } => "advanced".into(),
        Op::Reap => match s.reap(now).await {
            Ok(r) => {
                let idx = |v: &[Uuid]| v.iter().map(|id| side.index(*id)).collect::<Vec<_>>();
                format!(
                    "reaped {:?} {:?} {:?}",
                    idx(&r.requeued),
                    idx(&r.dead),
                    idx(&r.cancelled)
                )
            }
            Err(e) => kind(&e).into(),
        },
    }
}

/// Invariants every stored job must satisfy, whatever happened before.
fn check_invariants(j: &Job) {
    use comfy_queue::model::{AttemptOutcome, Status};
    assert_eq!(
        j.attempts as usize,
        j.history.len(),
        "one history entry per attempt: {j:?}"
    );
    assert!(
        j.attempts <= j.max_attempts,
        "attempts within the limit: {j:?}"
    );
    let running_attempts = j
        .history
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Running)
        .count();
    if j.status == Status::Running {
        assert!(
            j.lease_expires_at.is_some(),
            "a running job is leased: {j:?}"
        );
        assert_eq!(
            running_attempts, 1,
            "exactly the last attempt is running: {j:?}"
        );
        assert_eq!(
            j.history.last().map(|a| a.outcome),
            Some(AttemptOutcome::Running)
        );
    } else {
        assert!(
            j.lease_expires_at.is_none(),
            "only running jobs hold a lease: {j:?}"
        );
        assert_eq!(running_attempts, 0, "no attempt left open: {j:?}");
    }
    assert_eq!(j.status.is_terminal(), j.completed_at.is_some(), "{j:?}");
    assert!(
        j.not_before.is_none() || j.status == Status::Pending,
        "{j:?}"
    );
    assert_eq!(j.status == Status::Completed, j.result.is_some(), "{j:?}");
}

async fn snapshot(side: &Side) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for id in &side.ids {
        let j = side
            .store
            .get(*id)
            .await
            .unwrap()
            .expect("an acknowledged job vanished");
        check_invariants(&j);
        let pos = side.store.position(*id).await.unwrap();
        out.push(json!({"job": normal(&j), "position": pos}));
    }
    let listed = side
        .store
        .list(&ListFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), side.ids.len(), "list shows every job");
    let counts = side.store.counts().await.unwrap();
    assert_eq!(
        counts.by_status.values().sum::<u64>(),
        side.ids.len() as u64,
        "every job is in exactly one status"
    );
    out.push(json!({"counts": format!("{counts:?}")}));
    out
}

/// Random histories come from one seed, printed; `COMFY_TEST_SEED=<seed>`
/// replays the same ones (proptest then shrinks a failure as usual).
#[test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
fn sqlite_and_redis_agree_on_random_histories() {
    let server = common::RedisServer::start();
    let seed = comfy_test_support::seed::seed("sqlite_and_redis_agree_on_random_histories");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let sqlite = SqliteStore::open(dir.path().join(format!("case{case}.db"))).unwrap();
            let redis =
                RedisStore::connect(&server.url(), &format!("case{case}-{}", Uuid::new_v4()))
                    .await
                    .unwrap();
            let mut a = Side {
                store: Arc::new(sqlite),
                ids: Vec::new(),
                tokens: Vec::new(),
            };
            let mut b = Side {
                store: Arc::new(redis),
                ids: Vec::new(),
                tokens: Vec::new(),
            };
            let mut now = 1_767_225_600_000i64;
            for (n, op) in ops.iter().enumerate() {
                if let Op::Advance { ms } = op {
                    now += ms;
                }
                let ra = step(&mut a, op, now).await;
                let rb = step(&mut b, op, now).await;
                prop_assert_eq!(&ra, &rb, "step {} {:?}", n, op);
                let sa = snapshot(&a).await;
                let sb = snapshot(&b).await;
                prop_assert_eq!(sa, sb, "state after step {} {:?}", n, op);
                now += 1;
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{e} (seed {seed}: rerun with COMFY_TEST_SEED={seed})");
    }
}

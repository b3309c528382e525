//! The Redis key layout (issue 13): a Redis written by the layout-1 scripts (an `id` field
//! in every job, each workflow inline, `P:status:pending` and `P:all` ZSETs) keeps working
//! after the queue restarts on layout 2, and a layout-2 pending job keeps its hash compact
//! (listpack, the workflow beside it when long) and sits in three sorted sets, not five.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_queue::lifecycle::LeaseKind;
use comfy_queue::model::{NewJob, Status};
use comfy_queue::scheduler::{Requirements, WorkerInfo};
use comfy_queue::store::redis::{LAYOUT, RedisStore};
use comfy_queue::store::{ListFilter, Store, SubmitLimits};
use comfy_test_support::redis::RedisServer;
use serde_json::{Value, json};
use uuid::Uuid;

const PRIO_SHIFT: u64 = 1 << 40;

const LIMITS: SubmitLimits = SubmitLimits {
    max_pending: 0,
    max_per_user: 0,
    max_attempts: 3,
};

fn worker(id: &str) -> WorkerInfo {
    WorkerInfo {
        worker_id: id.into(),
        ..WorkerInfo::default()
    }
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn cmd<T: redis::FromRedisValue>(
    c: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await.unwrap()
}

fn ids(jobs: &[comfy_queue::model::Job]) -> Vec<Uuid> {
    jobs.iter().map(|j| j.id).collect()
}

async fn list(store: &RedisStore, status: Option<Status>, limit: u32, offset: u32) -> Vec<Uuid> {
    ids(&store
        .list(&ListFilter {
            status,
            user_id: None,
            limit,
            offset,
        })
        .await
        .unwrap())
}

/// Layout-1 keys as its submit, claim and complete scripts left them: alice's job `a`
/// pending at priority 2 (seq 1, a 100-byte workflow inline), bob's `b` completed (seq 2),
/// bob's `c` pending at priority 1 (seq 3).
async fn write_layout_1(c: &mut redis::aio::MultiplexedConnection, a: &str, b: &str, cc: &str) {
    let wf_a = format!(
        r#"{{"1":{{"class_type":"SaveImage","inputs":{{"note":"{}"}}}}}}"#,
        "x".repeat(47)
    );
    assert_eq!(wf_a.len(), 100);
    let p2 = (2 * PRIO_SHIFT + 1).to_string();
    let p1 = (PRIO_SHIFT + 3).to_string();
    let history_b = r#"[{"attempt":1,"worker_id":"w0","started_at":1002,"ended_at":1003,"outcome":"completed","error":null}]"#;
    let jobs: [Vec<&str>; 3] = [
        vec![
            "HSET",
            "",
            "id",
            a,
            "seq",
            "1",
            "user_id",
            "alice",
            "status",
            "pending",
            "priority",
            "2",
            "created_at",
            "1000",
            "workflow",
            &wf_a,
            "metadata",
            r#"{"k":1}"#,
            "attempts",
            "0",
            "max_attempts",
            "3",
            "cancel_requested",
            "0",
            "req_class",
            "",
            "history",
            "[]",
        ],
        vec![
            "HSET",
            "",
            "id",
            b,
            "seq",
            "2",
            "user_id",
            "bob",
            "status",
            "completed",
            "priority",
            "2",
            "created_at",
            "1001",
            "workflow",
            r#"{"1":{}}"#,
            "metadata",
            "{}",
            "attempts",
            "1",
            "max_attempts",
            "3",
            "cancel_requested",
            "0",
            "req_class",
            "",
            "history",
            history_b,
            "started_at",
            "1002",
            "completed_at",
            "1003",
            "worker_id",
            "w0",
            "result",
            r#"{"ok":true}"#,
            "lease_token",
            "t0",
            "lease_fenced",
            "1",
        ],
        vec![
            "HSET",
            "",
            "id",
            cc,
            "seq",
            "3",
            "user_id",
            "bob",
            "status",
            "pending",
            "priority",
            "1",
            "created_at",
            "1004",
            "workflow",
            r#"{"2":{}}"#,
            "metadata",
            "{}",
            "attempts",
            "0",
            "max_attempts",
            "3",
            "cancel_requested",
            "0",
            "req_class",
            "",
            "history",
            "[]",
        ],
    ];
    for (mut job, id) in jobs.into_iter().zip([a, b, cc]) {
        let key = format!("v1:job:{id}");
        job[1] = &key;
        let _: i64 = cmd(c, &job).await;
    }
    for args in [
        &["ZADD", "v1:all", "1", a][..],
        &["ZADD", "v1:all", "2", b],
        &["ZADD", "v1:all", "3", cc],
        &["ZADD", "v1:user:alice", "1", a],
        &["ZADD", "v1:user:bob", "2", b],
        &["ZADD", "v1:user:bob", "3", cc],
        &["ZADD", "v1:status:pending", "1", a],
        &["ZADD", "v1:status:pending", "3", cc],
        &["ZADD", "v1:status:completed", "2", b],
        &["ZADD", "v1:pending", &p2, a],
        &["ZADD", "v1:pending", &p1, cc],
        &["ZADD", "v1:ready:2:alice", "1", a],
        &["ZADD", "v1:ready:1:bob", "3", cc],
        &["ZADD", "v1:users:2", "0", "alice"],
        &["ZADD", "v1:users:1", "1", "bob"],
        &["HSET", "v1:served", "bob", "1"],
        &["HSET", "v1:upending", "alice", "1", "bob", "1"],
        &["SET", "v1:seq", "3"],
        &["SET", "v1:serve_seq", "1"],
    ] {
        let _: redis::Value = cmd(c, args).await;
    }
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_redis_written_by_layout_1_keeps_working() {
    let server = RedisServer::start();
    let mut c = raw(&server.url()).await;
    let (a, b, cc) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    write_layout_1(&mut c, &a.to_string(), &b.to_string(), &cc.to_string()).await;

    let store = RedisStore::connect(&server.url(), "v1").await.unwrap();
    // Migrated: the two indexes layout 2 does without are gone, the layout is recorded.
    let gone: i64 = cmd(&mut c, &["EXISTS", "v1:status:pending", "v1:all"]).await;
    assert_eq!(gone, 0);
    let layout: String = cmd(&mut c, &["GET", "v1:layout"]).await;
    assert_eq!(layout, LAYOUT.to_string());

    let ja = store.get(a).await.unwrap().unwrap();
    assert_eq!((ja.status, ja.attempts, ja.seq), (Status::Pending, 0, 1));
    assert_eq!(ja.metadata, json!({"k": 1}));
    let jb = store.get(b).await.unwrap().unwrap();
    assert_eq!(jb.status, Status::Completed);
    assert_eq!(jb.result, Some(json!({"ok": true})));
    assert_eq!(jb.history.len(), 1);

    assert_eq!(
        list(&store, None, 100, 0).await,
        vec![cc, b, a],
        "newest first"
    );
    assert_eq!(list(&store, None, 1, 1).await, vec![b]);
    assert_eq!(
        list(&store, Some(Status::Pending), 100, 0).await,
        vec![cc, a]
    );
    assert_eq!(list(&store, Some(Status::Pending), 5, 1).await, vec![a]);
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.get(Status::Pending), 2);
    assert_eq!(counts.get(Status::Completed), 1);
    assert_eq!(counts.by_user.get("alice").map(|u| u.pending), Some(1));
    assert_eq!(store.position(cc).await.unwrap(), Some(1));
    assert_eq!(store.position(a).await.unwrap(), Some(2));

    // Priority 1 first; then alice's job with its inline layout-1 workflow.
    let w = worker("w1");
    let first = store
        .claim(&w, 60_000, LeaseKind::Fenced, 2000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.job.id, cc);
    let second = store
        .claim(&w, 60_000, LeaseKind::Fenced, 2001)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.job.id, a);
    assert_eq!(
        second.workflow["1"]["inputs"]["note"],
        Value::from("x".repeat(47))
    );
    assert!(
        store
            .claim(&w, 60_000, LeaseKind::Fenced, 2002)
            .await
            .unwrap()
            .is_none()
    );
    let done = store
        .complete(a, Some(&second.lease_token), json!({"images": []}), 2003)
        .await
        .unwrap();
    assert_eq!((done.status, done.attempts), (Status::Completed, 1));
    assert_eq!(
        list(&store, Some(Status::Completed), 100, 0).await,
        vec![b, a],
        "by seq"
    );
    assert_eq!(list(&store, None, 100, 0).await, vec![cc, b, a]);

    // A second start finds layout 2 and changes nothing.
    drop(store);
    let again = RedisStore::connect(&server.url(), "v1").await.unwrap();
    let counts = again.counts().await.unwrap();
    assert_eq!(counts.get(Status::Running), 1);
    assert_eq!(counts.get(Status::Completed), 2);
    assert_eq!(counts.get(Status::Pending), 0);
}

fn job(user: &str, workflow: Value) -> NewJob {
    NewJob {
        user_id: user.into(),
        workflow,
        priority: 2,
        metadata: json!({"batch_index": 0, "batch_total": 1}),
        idempotency_key: None,
        requirements: Requirements::default(),
        inputs: Vec::new(),
    }
}

/// A workflow of about 2 kB (14 KSampler nodes).
fn large_workflow() -> Value {
    let nodes: serde_json::Map<String, Value> = (0..14)
        .map(|i| {
            (
                i.to_string(),
                json!({"class_type": "KSampler", "inputs": {"seed": i, "steps": 20, "cfg": 7.5,
                    "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                    "model": ["4", 0]}}),
            )
        })
        .collect();
    Value::Object(nodes)
}

#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn a_pending_job_is_a_listpack_hash_in_three_sorted_sets() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "m").await.unwrap();
    let mut c = raw(&server.url()).await;
    let small = json!({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}});
    let large = large_workflow();
    assert!(
        large.to_string().len() > 1900,
        "{}",
        large.to_string().len()
    );
    let s = store
        .submit(job("alice", small), LIMITS, 1)
        .await
        .unwrap()
        .job
        .id;
    let l = store
        .submit(job("alice", large.clone()), LIMITS, 2)
        .await
        .unwrap()
        .job
        .id;
    for (id, separate) in [(s, 0), (l, 1)] {
        let enc: String = cmd(&mut c, &["OBJECT", "ENCODING", &format!("m:job:{id}")]).await;
        assert_eq!(enc, "listpack", "job {id}");
        let wf: i64 = cmd(&mut c, &["EXISTS", &format!("m:wf:{id}")]).await;
        assert_eq!(wf, separate, "job {id}");
        let keys: Vec<String> = cmd(&mut c, &["KEYS", "m:*"]).await;
        let mut in_sets = Vec::new();
        for k in keys {
            let t: String = cmd(&mut c, &["TYPE", &k]).await;
            if t == "zset" {
                let score: Option<f64> = cmd(&mut c, &["ZSCORE", &k, &id.to_string()]).await;
                if score.is_some() {
                    in_sets.push(k);
                }
            }
        }
        in_sets.sort();
        assert_eq!(
            in_sets,
            ["m:pending", "m:ready:2:alice", "m:user:alice"],
            "job {id}"
        );
    }
    let w = worker("w");
    let first = store
        .claim(&w, 60_000, LeaseKind::Fenced, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.job.id, s);
    let second = store
        .claim(&w, 60_000, LeaseKind::Fenced, 4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.job.id, l);
    assert_eq!(
        second.workflow, large,
        "the workflow kept beside the hash comes back whole"
    );
}

//! One behavioural suite for every `Store` backend (apalis `generic_storage_test!` style):
//! each `async fn` in `suite` runs once per backend through the `conformance!` macro.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Harness;

mod suite {
    use comfy_queue::clock::Clock;
    use comfy_queue::lifecycle::{Failure, LeaseKind};
    use comfy_queue::model::{AttemptOutcome, NewJob, Status};
    use comfy_queue::scheduler::{Requirements, WorkerInfo};
    use comfy_queue::store::{ListFilter, StoreError, SubmitLimits};
    use serde_json::{Value, json};
    use uuid::Uuid;

    use super::Harness;

    const LEASE: i64 = 60_000;
    const FENCED: LeaseKind = LeaseKind::Fenced;

    fn limits() -> SubmitLimits {
        SubmitLimits {
            max_pending: 0,
            max_per_user: 0,
            max_attempts: 3,
        }
    }

    fn new_job(user: &str, priority: u8) -> NewJob {
        NewJob {
            user_id: user.into(),
            workflow: json!({"3": {"class_type": "KSampler", "inputs": {"seed": 1}}}),
            priority,
            metadata: json!({"batch_index": 0}),
            idempotency_key: None,
            requirements: Requirements::default(),
            inputs: Vec::new(),
        }
    }

    fn worker(id: &str) -> WorkerInfo {
        WorkerInfo {
            worker_id: id.into(),
            ..WorkerInfo::default()
        }
    }

    async fn submit(h: &Harness, user: &str, priority: u8) -> Uuid {
        let now = h.clock.now_ms();
        h.clock.advance(1);
        h.store
            .submit(new_job(user, priority), limits(), now)
            .await
            .unwrap()
            .job
            .id
    }

    async fn claim_user(h: &Harness) -> Option<String> {
        h.store
            .claim(&worker("w1"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .map(|c| c.job.user_id)
    }

    pub(crate) async fn submit_and_get(h: Harness) {
        let now = h.clock.now_ms();
        let s = h
            .store
            .submit(new_job("alice", 1), limits(), now)
            .await
            .unwrap();
        assert!(s.created);
        assert_eq!(s.position, Some(1));
        let got = h.store.get(s.job.id).await.unwrap().unwrap();
        assert_eq!(got, s.job);
        assert_eq!(got.status, Status::Pending);
        assert_eq!(got.user_id, "alice");
        assert_eq!(got.priority, 1);
        assert_eq!(got.created_at, now);
        assert_eq!(got.metadata, json!({"batch_index": 0}));
        assert_eq!(got.attempts, 0);
        assert_eq!(got.max_attempts, 3);
        assert!(got.history.is_empty());
        assert_eq!(h.store.get(Uuid::new_v4()).await.unwrap(), None);
        assert!(h.store.ping().await);
    }

    pub(crate) async fn idempotency_key_returns_the_same_job(h: Harness) {
        let mut j = new_job("alice", 2);
        j.idempotency_key = Some("k-1".into());
        let a = h.store.submit(j.clone(), limits(), 1).await.unwrap();
        let b = h.store.submit(j.clone(), limits(), 2).await.unwrap();
        assert!(a.created);
        assert!(!b.created);
        assert_eq!(a.job.id, b.job.id);
        assert_eq!(b.position, Some(1));
        // The key is scoped to the user.
        let mut other = j.clone();
        other.user_id = "bob".into();
        let c = h.store.submit(other, limits(), 3).await.unwrap();
        assert!(c.created);
        assert_ne!(c.job.id, a.job.id);
        let all = h
            .store
            .list(&ListFilter {
                limit: 100,
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
    }

    pub(crate) async fn caps_are_enforced(h: Harness) {
        let caps = SubmitLimits {
            max_pending: 2,
            max_per_user: 0,
            max_attempts: 3,
        };
        let mut keyed = new_job("alice", 2);
        keyed.idempotency_key = Some("same".into());
        h.store.submit(keyed.clone(), caps, 1).await.unwrap();
        h.store.submit(new_job("bob", 2), caps, 2).await.unwrap();
        let e = h
            .store
            .submit(new_job("carol", 2), caps, 3)
            .await
            .unwrap_err();
        assert_eq!(e, StoreError::QueueFull(2));
        // A replay of an accepted submit is still answered at the cap.
        assert!(!h.store.submit(keyed, caps, 4).await.unwrap().created);

        let per_user = SubmitLimits {
            max_pending: 0,
            max_per_user: 2,
            max_attempts: 3,
        };
        h.store
            .submit(new_job("dave", 2), per_user, 5)
            .await
            .unwrap();
        h.store
            .submit(new_job("dave", 2), per_user, 6)
            .await
            .unwrap();
        let e = h
            .store
            .submit(new_job("dave", 2), per_user, 7)
            .await
            .unwrap_err();
        assert_eq!(e, StoreError::UserLimit(2));
        h.store
            .submit(new_job("erin", 2), per_user, 8)
            .await
            .unwrap();
        let counts = h.store.counts().await.unwrap();
        assert_eq!(counts.get(Status::Pending), 5);
    }

    pub(crate) async fn claim_marks_running_with_a_lease(h: Harness) {
        assert!(
            h.store
                .claim(&worker("w1"), LEASE, FENCED, 0)
                .await
                .unwrap()
                .is_none()
        );
        let id = submit(&h, "alice", 2).await;
        let now = h.clock.now_ms();
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, id);
        assert_eq!(c.job.status, Status::Running);
        assert_eq!(c.job.worker_id.as_deref(), Some("w1"));
        assert_eq!(c.job.started_at, Some(now));
        assert_eq!(c.job.lease_expires_at, Some(now + LEASE));
        assert_eq!(c.job.attempts, 1);
        assert_eq!(c.workflow["3"]["class_type"], "KSampler");
        assert!(!c.lease_token.is_empty());
        assert_eq!(c.job.history.len(), 1);
        assert_eq!(c.job.history[0].outcome, AttemptOutcome::Running);
        assert_eq!(c.job.history[0].worker_id, "w1");
        let stored = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(stored, c.job);
        // Nothing else to claim.
        assert!(
            h.store
                .claim(&worker("w2"), LEASE, FENCED, now)
                .await
                .unwrap()
                .is_none()
        );
        // An unregistered worker that claims is recorded as seen.
        let w = h.store.get_worker("w1").await.unwrap().unwrap();
        assert_eq!(w.last_seen, now);
    }

    pub(crate) async fn priority_first_then_fifo(h: Harness) {
        let p2a = submit(&h, "alice", 2).await;
        let p0 = submit(&h, "alice", 0).await;
        let p3 = submit(&h, "alice", 3).await;
        let p2b = submit(&h, "alice", 2).await;
        let p1 = submit(&h, "alice", 1).await;
        let mut order = Vec::new();
        while let Some(c) = h
            .store
            .claim(&worker("w"), LEASE, FENCED, 10)
            .await
            .unwrap()
        {
            order.push(c.job.id);
        }
        assert_eq!(order, vec![p0, p1, p2a, p2b, p3]);
    }

    pub(crate) async fn fair_share_across_users(h: Harness) {
        for _ in 0..50 {
            submit(&h, "alice", 2).await;
        }
        submit(&h, "bob", 2).await;
        submit(&h, "carol", 2).await;
        let mut first = Vec::new();
        for _ in 0..5 {
            first.push(claim_user(&h).await.unwrap());
        }
        assert_eq!(first, vec!["alice", "bob", "carol", "alice", "alice"]);
        // A user who arrives later is served next, not after alice's backlog.
        submit(&h, "dave", 2).await;
        assert_eq!(claim_user(&h).await.as_deref(), Some("dave"));
        assert_eq!(claim_user(&h).await.as_deref(), Some("alice"));
    }

    pub(crate) async fn priority_beats_fairness(h: Harness) {
        submit(&h, "alice", 1).await;
        submit(&h, "alice", 1).await;
        submit(&h, "bob", 2).await;
        assert_eq!(claim_user(&h).await.as_deref(), Some("alice"));
        // alice was just served, but her next job has a better priority than bob's.
        assert_eq!(claim_user(&h).await.as_deref(), Some("alice"));
        assert_eq!(claim_user(&h).await.as_deref(), Some("bob"));
    }

    pub(crate) async fn heartbeat_renews_the_lease(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        for _ in 0..3 {
            h.clock.advance(LEASE - 1_000);
            let st = h
                .store
                .heartbeat(id, &c.lease_token, LEASE, h.clock.now_ms())
                .await
                .unwrap();
            assert_eq!(st.lease_expires_at, h.clock.now_ms() + LEASE);
            assert!(!st.cancel_requested);
            let r = h.store.reap(h.clock.now_ms()).await.unwrap();
            assert!(r.requeued.is_empty() && r.dead.is_empty());
        }
        assert_eq!(
            h.store.get(id).await.unwrap().unwrap().status,
            Status::Running
        );
        let e = h
            .store
            .heartbeat(id, "not-the-token", LEASE, h.clock.now_ms())
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
        assert_eq!(
            h.store
                .heartbeat(Uuid::new_v4(), "t", LEASE, 0)
                .await
                .unwrap_err(),
            StoreError::NotFound
        );
    }

    pub(crate) async fn expired_lease_is_requeued_and_fenced(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        let first = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        h.clock.advance(LEASE + 1);
        let now = h.clock.now_ms();
        // Expired but not yet reaped: the old holder is already fenced off.
        let e = h
            .store
            .complete(id, Some(&first.lease_token), json!({}), now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
        let r = h.store.reap(now).await.unwrap();
        assert_eq!(r.requeued, vec![id]);
        let job = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(job.status, Status::Pending);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.history[0].outcome, AttemptOutcome::LeaseExpired);
        assert_eq!(job.history[0].ended_at, Some(now));
        assert!(job.history[0].error.as_deref().unwrap().contains("w1"));
        // Reaping again changes nothing.
        assert_eq!(h.store.reap(now).await.unwrap(), Default::default());

        let second = h
            .store
            .claim(&worker("w2"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.job.id, id);
        assert_eq!(second.job.attempts, 2);
        assert_ne!(second.lease_token, first.lease_token);
        // The first worker comes back: it must not complete or heartbeat the re-leased job.
        let e = h
            .store
            .complete(id, Some(&first.lease_token), json!({}), now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
        let e = h
            .store
            .heartbeat(id, &first.lease_token, LEASE, now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
        let done = h
            .store
            .complete(
                id,
                Some(&second.lease_token),
                json!({"images": ["a.png"]}),
                now,
            )
            .await
            .unwrap();
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.worker_id.as_deref(), Some("w2"));
        assert_eq!(done.result, Some(json!({"images": ["a.png"]})));
        assert_eq!(done.history.len(), 2);
        assert_eq!(done.history[1].outcome, AttemptOutcome::Completed);
    }

    pub(crate) async fn out_of_attempts_becomes_a_dead_letter(h: Harness) {
        let caps = SubmitLimits {
            max_attempts: 2,
            ..limits()
        };
        let id = h
            .store
            .submit(new_job("alice", 2), caps, 0)
            .await
            .unwrap()
            .job
            .id;
        for n in 1..=2u32 {
            let c = h
                .store
                .claim(&worker(&format!("w{n}")), LEASE, FENCED, h.clock.now_ms())
                .await
                .unwrap();
            assert_eq!(c.unwrap().job.attempts, n);
            h.clock.advance(LEASE + 1);
            h.store.reap(h.clock.now_ms()).await.unwrap();
        }
        let job = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(job.status, Status::Failed);
        assert_eq!(job.completed_at, Some(h.clock.now_ms()));
        assert!(
            job.error
                .as_deref()
                .unwrap()
                .contains("gave up after 2 attempts")
        );
        assert_eq!(job.history.len(), 2);
        assert!(
            job.history
                .iter()
                .all(|a| a.outcome == AttemptOutcome::LeaseExpired)
        );
        assert!(
            h.store
                .claim(&worker("w3"), LEASE, FENCED, h.clock.now_ms())
                .await
                .unwrap()
                .is_none()
        );
        let dead = h
            .store
            .list(&ListFilter {
                status: Some(Status::Failed),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
    }

    pub(crate) async fn complete_is_fenced_and_replay_safe(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        let now = h.clock.now_ms();
        // Never claimed: refused.
        let e = h
            .store
            .complete(id, None, json!({}), now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
        assert_eq!(
            h.store
                .complete(Uuid::new_v4(), None, json!({}), now)
                .await
                .unwrap_err(),
            StoreError::NotFound
        );
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        let e = h
            .store
            .complete(id, Some("wrong"), json!({}), now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
        // An empty token is a wrong token, not "no token".
        let e = h
            .store
            .complete(id, Some(""), json!({}), now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
        let e = h.store.heartbeat(id, "", LEASE, now).await.unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
        let done = h
            .store
            .complete(id, Some(&c.lease_token), json!({"ok": 1}), now + 5)
            .await
            .unwrap();
        assert_eq!(done.completed_at, Some(now + 5));
        // The same call again (its reply was lost) succeeds without changing anything.
        let again = h
            .store
            .complete(id, Some(&c.lease_token), json!({"ok": 2}), now + 9)
            .await
            .unwrap();
        assert_eq!(again, done);
        // But a fail with that token is refused.
        let e = h
            .store
            .fail(
                id,
                Some(&c.lease_token),
                Failure {
                    error: "x".into(),
                    retry: false,
                    cancelled: false,
                    retry_delay_ms: 0,
                },
                now,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
    }

    pub(crate) async fn tokenless_complete_for_old_workers(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        h.store
            .claim(&worker("w1"), LEASE, LeaseKind::Legacy, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        let done = h
            .store
            .complete(id, None, json!({"outputs": {}}), h.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(done.status, Status::Completed);
        let e = h
            .store
            .complete(id, None, json!({}), h.clock.now_ms())
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)));
    }

    /// Issue 12 item 1: an old worker whose legacy lease expired and was re-leased to a
    /// registered worker comes back without a token. It must not overwrite the job.
    pub(crate) async fn tokenless_calls_cannot_touch_a_fenced_lease(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        h.store
            .claim(&worker("old"), LEASE, LeaseKind::Legacy, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        h.clock.advance(LEASE + 1);
        assert_eq!(
            h.store.reap(h.clock.now_ms()).await.unwrap().requeued,
            vec![id]
        );
        let c = h
            .store
            .claim(&worker("new"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, id);
        let now = h.clock.now_ms();
        let e = h
            .store
            .complete(id, None, json!({"stale": true}), now)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
        for (retry, cancelled) in [(false, false), (true, false), (false, true)] {
            let failure = Failure {
                error: "stale".into(),
                retry,
                cancelled,
                retry_delay_ms: 0,
            };
            let e = h.store.fail(id, None, failure, now).await.unwrap_err();
            assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
        }
        let job = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(job.status, Status::Running);
        assert_eq!(job.worker_id.as_deref(), Some("new"));
        assert_eq!(job.result, None);
        assert_eq!(job.history.last().unwrap().outcome, AttemptOutcome::Running);
        // The registered holder still reports with its token.
        let done = h
            .store
            .complete(id, Some(&c.lease_token), json!({"images": 1}), now)
            .await
            .unwrap();
        assert_eq!(done.result, Some(json!({"images": 1})));
        // And a legacy lease of a later job still takes tokenless calls.
        let id2 = submit(&h, "bob", 2).await;
        h.store
            .claim(&worker("old"), LEASE, LeaseKind::Legacy, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        let failure = Failure {
            error: "node error".into(),
            retry: false,
            cancelled: false,
            retry_delay_ms: 0,
        };
        let job = h
            .store
            .fail(id2, None, failure, h.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(job.status, Status::Failed);
    }

    /// Issue 12 item 7: a job that succeeds on a retry has no top-level `error` (the failed
    /// attempts keep theirs in `history`), whether the retry came from a fail or a lease expiry.
    pub(crate) async fn success_on_a_retry_clears_the_error(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        let failure = Failure {
            error: "CUDA out of memory".into(),
            retry: true,
            cancelled: false,
            retry_delay_ms: 0,
        };
        let job = h
            .store
            .fail(id, Some(&c.lease_token), failure, h.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(job.error.as_deref(), Some("CUDA out of memory"));
        let c = h
            .store
            .claim(&worker("w2"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        h.clock.advance(LEASE + 1);
        h.store.reap(h.clock.now_ms()).await.unwrap();
        assert!(h.store.get(id).await.unwrap().unwrap().error.is_some());
        let third = h
            .store
            .claim(&worker("w3"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(third.lease_token, c.lease_token);
        let done = h
            .store
            .complete(
                id,
                Some(&third.lease_token),
                json!({"ok": true}),
                h.clock.now_ms(),
            )
            .await
            .unwrap();
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.error, None);
        assert_eq!(h.store.get(id).await.unwrap().unwrap(), done);
        assert_eq!(done.history.len(), 3);
        assert_eq!(done.history[0].error.as_deref(), Some("CUDA out of memory"));
        assert!(
            done.history[1]
                .error
                .as_deref()
                .unwrap()
                .contains("lease expired")
        );
        assert_eq!(done.history[2].error, None);
    }

    pub(crate) async fn fail_retry_and_cancelled(h: Harness) {
        let a = submit(&h, "alice", 2).await;
        let now = h.clock.now_ms();
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        let failed = h
            .store
            .fail(
                a,
                Some(&c.lease_token),
                Failure {
                    error: "out of memory".into(),
                    retry: true,
                    cancelled: false,
                    retry_delay_ms: 0,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(failed.status, Status::Pending);
        assert_eq!(failed.error.as_deref(), Some("out of memory"));
        assert_eq!(failed.history[0].outcome, AttemptOutcome::Failed);
        assert_eq!(failed.history[0].error.as_deref(), Some("out of memory"));

        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, a);
        let failed = h
            .store
            .fail(
                a,
                Some(&c.lease_token),
                Failure {
                    error: "bad node".into(),
                    retry: false,
                    cancelled: false,
                    retry_delay_ms: 0,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.completed_at, Some(now));
        assert_eq!(failed.history.len(), 2);

        let b = submit(&h, "bob", 2).await;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, b);
        let cancelled = h
            .store
            .fail(
                b,
                Some(&c.lease_token),
                Failure {
                    error: "cancelled by user".into(),
                    retry: false,
                    cancelled: true,
                    retry_delay_ms: 0,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(cancelled.status, Status::Cancelled);
        assert_eq!(cancelled.history[0].outcome, AttemptOutcome::Cancelled);
    }

    pub(crate) async fn retry_stops_at_max_attempts(h: Harness) {
        let caps = SubmitLimits {
            max_attempts: 1,
            ..limits()
        };
        let id = h
            .store
            .submit(new_job("alice", 2), caps, 0)
            .await
            .unwrap()
            .job
            .id;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, 0)
            .await
            .unwrap()
            .unwrap();
        let job = h
            .store
            .fail(
                id,
                Some(&c.lease_token),
                Failure {
                    error: "boom".into(),
                    retry: true,
                    cancelled: false,
                    retry_delay_ms: 0,
                },
                1,
            )
            .await
            .unwrap();
        assert_eq!(job.status, Status::Failed);
    }

    pub(crate) async fn retry_waits_out_its_backoff(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        let other = submit(&h, "bob", 3).await;
        let t0 = h.clock.now_ms();
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, t0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, id);
        let failure = |e: &str| Failure {
            error: e.into(),
            retry: true,
            cancelled: false,
            retry_delay_ms: 10_000,
        };
        let j = h
            .store
            .fail(id, Some(&c.lease_token), failure("oom"), t0)
            .await
            .unwrap();
        assert_eq!(j.status, Status::Pending);
        assert_eq!(j.not_before, Some(t0 + 10_000));
        assert_eq!(
            h.store.get(id).await.unwrap().unwrap().not_before,
            Some(t0 + 10_000)
        );
        // While it waits, the next job (even a lower priority one) is served instead.
        let c2 = h
            .store
            .claim(&worker("w2"), LEASE, FENCED, t0 + 9_999)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c2.job.id, other);
        assert!(
            h.store
                .claim(&worker("w2"), LEASE, FENCED, t0 + 9_999)
                .await
                .unwrap()
                .is_none()
        );
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, t0 + 10_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, id);
        assert_eq!(c.job.not_before, None);
        // The second retry waits twice as long.
        let j = h
            .store
            .fail(id, Some(&c.lease_token), failure("oom again"), t0 + 10_000)
            .await
            .unwrap();
        assert_eq!(j.not_before, Some(t0 + 30_000));
    }

    pub(crate) async fn cancel_pending_and_running(h: Harness) {
        let pending = submit(&h, "alice", 2).await;
        let running = submit(&h, "bob", 1).await;
        let now = h.clock.now_ms();
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, running);

        let j = h.store.cancel(pending, now).await.unwrap();
        assert_eq!(j.status, Status::Cancelled);
        assert_eq!(j.completed_at, Some(now));
        assert!(
            h.store
                .claim(&worker("w2"), LEASE, FENCED, now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            h.store.cancel(pending, now).await.unwrap_err(),
            StoreError::InvalidState(_)
        ));
        assert_eq!(
            h.store.cancel(Uuid::new_v4(), now).await.unwrap_err(),
            StoreError::NotFound
        );

        let j = h.store.cancel(running, now).await.unwrap();
        assert_eq!(j.status, Status::Running);
        assert!(j.cancel_requested);
        let st = h
            .store
            .heartbeat(running, &c.lease_token, LEASE, now)
            .await
            .unwrap();
        assert!(st.cancel_requested);
        // Asking twice is harmless.
        assert!(h.store.cancel(running, now).await.unwrap().cancel_requested);
        let done = h
            .store
            .fail(
                running,
                Some(&c.lease_token),
                Failure {
                    error: "cancelled".into(),
                    retry: false,
                    cancelled: true,
                    retry_delay_ms: 0,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(done.status, Status::Cancelled);
    }

    pub(crate) async fn cancel_requested_job_is_not_requeued(h: Harness) {
        let id = submit(&h, "alice", 2).await;
        h.store
            .claim(&worker("w1"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        h.store.cancel(id, h.clock.now_ms()).await.unwrap();
        h.clock.advance(LEASE + 1);
        let r = h.store.reap(h.clock.now_ms()).await.unwrap();
        assert_eq!(r.cancelled, vec![id]);
        assert_eq!(
            h.store.get(id).await.unwrap().unwrap().status,
            Status::Cancelled
        );
    }

    pub(crate) async fn reprioritise_pending_only(h: Harness) {
        let a = submit(&h, "alice", 2).await;
        let b = submit(&h, "alice", 2).await;
        let j = h.store.set_priority(b, 0).await.unwrap();
        assert_eq!(j.priority, 0);
        let c = h
            .store
            .claim(&worker("w"), LEASE, FENCED, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, b);
        assert!(matches!(
            h.store.set_priority(b, 1).await.unwrap_err(),
            StoreError::InvalidState(_)
        ));
        assert_eq!(
            h.store.set_priority(Uuid::new_v4(), 1).await.unwrap_err(),
            StoreError::NotFound
        );
        assert_eq!(h.store.get(a).await.unwrap().unwrap().priority, 2);
    }

    pub(crate) async fn routing_by_version_and_capabilities(h: Harness) {
        let mut needs = new_job("alice", 0);
        needs.metadata = json!({"requires": {"comfyui": ">=0.9", "capabilities": ["jobs_api"]}});
        needs.requirements = Requirements::from_metadata(&needs.metadata).unwrap();
        let special = h.store.submit(needs, limits(), 0).await.unwrap().job.id;
        let plain = h
            .store
            .submit(new_job("bob", 2), limits(), 1)
            .await
            .unwrap()
            .job
            .id;

        let old = WorkerInfo {
            worker_id: "old".into(),
            comfyui_version: Some("0.3.40".into()),
            line: None,
            capabilities: vec!["jobs_api".into()],
            catalogue: None,
        };
        let new = WorkerInfo {
            worker_id: "new".into(),
            comfyui_version: Some("0.11.1".into()),
            line: Some("stable".into()),
            capabilities: vec!["jobs_api".into()],
            catalogue: None,
        };
        // The old worker skips the job it cannot run and gets the next one.
        let c = h
            .store
            .claim(&old, LEASE, FENCED, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, plain);
        assert!(
            h.store
                .claim(&old, LEASE, FENCED, 5)
                .await
                .unwrap()
                .is_none()
        );
        let c = h
            .store
            .claim(&new, LEASE, FENCED, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, special);
    }

    pub(crate) async fn list_filters_and_position(h: Harness) {
        let a1 = submit(&h, "alice", 2).await;
        let b1 = submit(&h, "bob", 2).await;
        let a2 = submit(&h, "alice", 1).await;
        let all = h
            .store
            .list(&ListFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let ids: Vec<Uuid> = all.iter().map(|j| j.id).collect();
        assert_eq!(ids, vec![a2, b1, a1], "newest first");
        let alice = h
            .store
            .list(&ListFilter {
                user_id: Some("alice".into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(alice.len(), 2);
        let page = h
            .store
            .list(&ListFilter {
                limit: 1,
                offset: 1,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page[0].id, b1);
        assert_eq!(h.store.position(a2).await.unwrap(), Some(1));
        assert_eq!(h.store.position(a1).await.unwrap(), Some(2));
        assert_eq!(h.store.position(b1).await.unwrap(), Some(3));
        h.store
            .claim(&worker("w"), LEASE, FENCED, 10)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(h.store.position(a2).await.unwrap(), None);
        assert_eq!(h.store.position(a1).await.unwrap(), Some(1));
        let running = h
            .store
            .list(&ListFilter {
                status: Some(Status::Running),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(running.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a2]);
    }

    pub(crate) async fn counts_by_status_and_user(h: Harness) {
        submit(&h, "alice", 2).await;
        submit(&h, "alice", 2).await;
        let b = submit(&h, "bob", 2).await;
        h.store.cancel(b, 0).await.unwrap();
        h.store
            .claim(&worker("w"), LEASE, FENCED, h.clock.now_ms())
            .await
            .unwrap()
            .unwrap();
        let c = h.store.counts().await.unwrap();
        assert_eq!(c.get(Status::Pending), 1);
        assert_eq!(c.get(Status::Running), 1);
        assert_eq!(c.get(Status::Cancelled), 1);
        assert_eq!(c.get(Status::Completed), 0);
        let alice = c.by_user.get("alice").copied().unwrap();
        assert_eq!((alice.pending, alice.running), (1, 1));
        assert!(!c.by_user.contains_key("bob"));
    }

    pub(crate) async fn workers_register_and_list(h: Harness) {
        let info = WorkerInfo {
            worker_id: "gpu-1".into(),
            comfyui_version: Some("0.9.2".into()),
            line: Some("stable".into()),
            capabilities: vec!["jobs_api".into(), "video".into()],
            catalogue: None,
        };
        let rec = h.store.register_worker(info.clone(), 100).await.unwrap();
        assert_eq!(rec.info, info);
        assert_eq!((rec.registered_at, rec.last_seen), (100, 100));
        h.store.touch_worker("gpu-1", 200).await.unwrap();
        let mut again = info.clone();
        again.comfyui_version = Some("0.11.1".into());
        let rec = h.store.register_worker(again.clone(), 300).await.unwrap();
        assert_eq!(rec.info, again);
        // Issue 12 item 7: registered_at is the registration in effect (what version and
        // capabilities are from), not the first one.
        assert_eq!((rec.registered_at, rec.last_seen), (300, 300));
        assert_eq!(h.store.get_worker("gpu-1").await.unwrap(), Some(rec));
        // A worker first seen by a claim or a keep-alive gets registered_at at its
        // registration, not at that first sighting.
        h.store.touch_worker("gpu-2", 350).await.unwrap();
        let later = WorkerInfo {
            worker_id: "gpu-2".into(),
            ..info.clone()
        };
        let rec = h.store.register_worker(later, 360).await.unwrap();
        assert_eq!((rec.registered_at, rec.last_seen), (360, 360));
        h.store.touch_worker("gpu-0", 400).await.unwrap();
        let all = h.store.list_workers().await.unwrap();
        let ids: Vec<&str> = all.iter().map(|w| w.info.worker_id.as_str()).collect();
        assert_eq!(ids, vec!["gpu-0", "gpu-1", "gpu-2"]);
        assert_eq!(all[1].last_seen, 300);
        assert_eq!(h.store.get_worker("nope").await.unwrap(), None);
    }

    pub(crate) async fn workers_keep_their_catalogue_and_the_sweep_spares_it(h: Harness) {
        let info = WorkerInfo {
            worker_id: "gpu-1".into(),
            comfyui_version: Some("0.33.0".into()),
            line: Some("cancel-api".into()),
            capabilities: vec!["jobs_api".into()],
            catalogue: Some(sha(7)),
        };
        let rec = h.store.register_worker(info.clone(), 100).await.unwrap();
        assert_eq!(rec.info.catalogue, Some(sha(7)));
        // Claims and keep-alives leave the registration's catalogue alone.
        h.store.touch_worker("gpu-1", 150).await.unwrap();
        assert!(
            h.store
                .claim(&info, LEASE, FENCED, 160)
                .await
                .unwrap()
                .is_none()
        );
        let got = h.store.get_worker("gpu-1").await.unwrap().unwrap();
        assert_eq!(got.info.catalogue, Some(sha(7)));
        assert_eq!(got.last_seen, 160);
        // A second worker on the same ComfyUI names the same catalogue; a third none.
        let twin = WorkerInfo {
            worker_id: "gpu-2".into(),
            ..info.clone()
        };
        h.store.register_worker(twin, 170).await.unwrap();
        h.store.touch_worker("gpu-3", 180).await.unwrap();
        let all = h.store.list_workers().await.unwrap();
        let catalogues: Vec<Option<&str>> =
            all.iter().map(|w| w.info.catalogue.as_deref()).collect();
        assert_eq!(
            catalogues,
            vec![Some(sha(7).as_str()), Some(sha(7).as_str()), None]
        );
        // The file sweep keeps what a registration names.
        let want: std::collections::BTreeSet<String> = [sha(7)].into();
        assert_eq!(h.store.referenced_blobs().await.unwrap(), want);
        // Re-registering with another catalogue (models were added) names that one; the
        // old one stays referenced while the twin still names it.
        let changed = WorkerInfo {
            catalogue: Some(sha(8)),
            ..info.clone()
        };
        let rec = h.store.register_worker(changed, 200).await.unwrap();
        assert_eq!(rec.info.catalogue, Some(sha(8)));
        let want: std::collections::BTreeSet<String> = [sha(7), sha(8)].into();
        assert_eq!(h.store.referenced_blobs().await.unwrap(), want);
        // A registration without one (an older worker) clears it.
        let bare = |id: &str| WorkerInfo {
            worker_id: id.into(),
            catalogue: None,
            ..info.clone()
        };
        h.store.register_worker(bare("gpu-1"), 300).await.unwrap();
        h.store.register_worker(bare("gpu-2"), 300).await.unwrap();
        assert_eq!(
            h.store
                .get_worker("gpu-1")
                .await
                .unwrap()
                .unwrap()
                .info
                .catalogue,
            None
        );
        assert!(h.store.referenced_blobs().await.unwrap().is_empty());
    }

    pub(crate) async fn json_values_round_trip(h: Harness) {
        let mut j = new_job("alice", 2);
        j.metadata = json!({"nested": {"list": [1, 2.5, null, true, "é"]}, "z": 1, "a": 2});
        let id = h.store.submit(j.clone(), limits(), 0).await.unwrap().job.id;
        let got = h.store.get(id).await.unwrap().unwrap();
        assert_eq!(got.metadata, j.metadata);
        let keys: Vec<&String> = got.metadata.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["nested", "z", "a"], "key order preserved");
        let c = h
            .store
            .claim(&worker("w"), LEASE, FENCED, 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.workflow, j.workflow);
        let big: Value = json!({"text": "x".repeat(100_000)});
        let done = h
            .store
            .complete(id, Some(&c.lease_token), big.clone(), 1)
            .await
            .unwrap();
        assert_eq!(done.result, Some(big));
    }

    // ---- files ------------------------------------------------------------------------

    fn sha(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn upload(user: &str, n: u8, at: i64) -> comfy_queue::model::Upload {
        comfy_queue::model::Upload {
            user_id: user.into(),
            sha256: sha(n),
            filename: format!("f{n}.png"),
            content_type: "image/png".into(),
            size: 100 + u64::from(n),
            uploaded_at: at,
        }
    }

    fn input(n: u8, path: (&str, &str)) -> comfy_queue::model::InputFile {
        comfy_queue::model::InputFile {
            sha256: sha(n),
            subfolder: path.0.into(),
            filename: path.1.into(),
        }
    }

    fn output(name: &str, n: u8) -> comfy_queue::model::FileRecord {
        comfy_queue::model::FileRecord {
            role: comfy_queue::model::FileRole::Output,
            subfolder: String::new(),
            filename: name.into(),
            sha256: sha(n),
            size: 10 * u64::from(n),
            content_type: "image/png".into(),
            node_id: Some("9".into()),
            kind: Some("image".into()),
            position: 0,
            created_at: 0,
        }
    }

    pub(crate) async fn uploads_are_per_user_and_refreshed(h: Harness) {
        assert!(h.store.record_upload(upload("alice", 1, 10)).await.unwrap());
        let mut again = upload("alice", 1, 20);
        again.filename = "renamed.png".into();
        again.content_type = "image/webp".into();
        assert!(!h.store.record_upload(again).await.unwrap());
        let got = h.store.upload("alice", &sha(1)).await.unwrap().unwrap();
        assert_eq!(got.filename, "renamed.png");
        assert_eq!(got.content_type, "image/webp");
        assert_eq!(got.uploaded_at, 20);
        assert_eq!(got.size, 101);
        // An older time never moves it back.
        h.store.record_upload(upload("alice", 1, 5)).await.unwrap();
        let got = h.store.upload("alice", &sha(1)).await.unwrap().unwrap();
        assert_eq!(got.uploaded_at, 20);
        assert_eq!(h.store.upload("bob", &sha(1)).await.unwrap(), None);
        assert_eq!(h.store.upload("alice", &sha(2)).await.unwrap(), None);
    }

    pub(crate) async fn submit_attaches_inputs_or_names_the_unknown_one(h: Harness) {
        h.store.record_upload(upload("alice", 1, 1)).await.unwrap();
        h.store.record_upload(upload("alice", 2, 1)).await.unwrap();
        h.store.record_upload(upload("bob", 3, 1)).await.unwrap();
        let mut job = new_job("alice", 2);
        job.inputs = vec![input(2, ("pasted", "b.png")), input(1, ("", "a.png"))];
        let s = h.store.submit(job.clone(), limits(), 50).await.unwrap();
        let files = h.store.files(&[s.job.id, Uuid::new_v4()]).await.unwrap();
        assert_eq!(files.len(), 1, "jobs without files are left out");
        let mine = &files[&s.job.id];
        let names: Vec<(&str, &str, u64)> = mine
            .iter()
            .map(|f| (f.subfolder.as_str(), f.filename.as_str(), f.size))
            .collect();
        assert_eq!(
            names,
            [("pasted", "b.png", 102), ("", "a.png", 101)],
            "submit order"
        );
        assert!(
            mine.iter()
                .all(|f| f.role == comfy_queue::model::FileRole::Input)
        );
        assert!(
            mine.iter()
                .all(|f| f.content_type == "image/png" && f.created_at == 50)
        );
        // Naming an upload keeps it usable.
        assert_eq!(
            h.store
                .upload("alice", &sha(1))
                .await
                .unwrap()
                .unwrap()
                .uploaded_at,
            50
        );
        // Bob's upload is not Alice's, and an unknown hash is named by its index.
        let mut bad = new_job("alice", 2);
        bad.inputs = vec![input(1, ("", "a.png")), input(3, ("", "c.png"))];
        assert_eq!(
            h.store.submit(bad.clone(), limits(), 51).await.unwrap_err(),
            StoreError::UnknownFile(1)
        );
        bad.inputs = vec![input(9, ("", "z.png"))];
        assert_eq!(
            h.store.submit(bad, limits(), 52).await.unwrap_err(),
            StoreError::UnknownFile(0)
        );
        let all = h
            .store
            .list(&ListFilter {
                limit: 100,
                ..ListFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "a refused submit stores nothing");
        // One input, found by its role and path.
        let found = h
            .store
            .find_file(
                s.job.id,
                comfy_queue::model::FileRole::Input,
                "pasted",
                "b.png",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.sha256, sha(2));
        for (role, sub, name) in [
            (comfy_queue::model::FileRole::Output, "pasted", "b.png"),
            (comfy_queue::model::FileRole::Input, "", "b.png"),
            (comfy_queue::model::FileRole::Input, "pasted", "a.png"),
        ] {
            assert_eq!(
                h.store.find_file(s.job.id, role, sub, name).await.unwrap(),
                None
            );
        }
    }

    pub(crate) async fn claim_gives_inputs_and_outputs_are_fenced(h: Harness) {
        h.store.record_upload(upload("alice", 1, 1)).await.unwrap();
        let mut job = new_job("alice", 2);
        job.inputs = vec![input(1, ("", "in.png"))];
        let id = h.store.submit(job, limits(), 1).await.unwrap().job.id;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(c.inputs[0].filename, "in.png");
        assert_eq!(c.inputs[0].size, 101);
        let t = c.lease_token.clone();
        h.store.check_lease(id, &t, 3).await.unwrap();
        assert!(matches!(
            h.store.check_lease(id, "stale", 3).await,
            Err(StoreError::LeaseConflict(_))
        ));
        assert_eq!(
            h.store.check_lease(Uuid::new_v4(), &t, 3).await,
            Err(StoreError::NotFound)
        );
        let a = h
            .store
            .add_file(id, &t, output("a.png", 5), 4)
            .await
            .unwrap();
        let b = h
            .store
            .add_file(id, &t, output("b.png", 6), 5)
            .await
            .unwrap();
        assert!(a.position < b.position);
        assert_eq!((a.created_at, b.created_at), (4, 5));
        // The same name again replaces it and keeps its place.
        let a2 = h
            .store
            .add_file(id, &t, output("a.png", 7), 6)
            .await
            .unwrap();
        assert_eq!(a2.position, a.position);
        let files = h.store.files(&[id]).await.unwrap().remove(&id).unwrap();
        let got: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.filename.as_str(), f.sha256.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("in.png", sha(1).as_str()),
                ("a.png", sha(7).as_str()),
                ("b.png", sha(6).as_str())
            ]
        );
        assert_eq!(files[1].node_id.as_deref(), Some("9"));
        assert_eq!(files[1].kind.as_deref(), Some("image"));
        assert_eq!(files[1].size, 70);
        // A temp file of the same name is another file.
        let mut temp = output("a.png", 8);
        temp.role = comfy_queue::model::FileRole::Temp;
        temp.subfolder = "p/q".into();
        h.store.add_file(id, &t, temp, 7).await.unwrap();
        assert_eq!(h.store.files(&[id]).await.unwrap()[&id].len(), 4);
        // Fenced: a stale token, an unknown job, an expired lease, a finished job.
        for (job, token, now) in [(id, "stale", 8), (id, t.as_str(), 2 + LEASE + 1)] {
            assert!(
                matches!(
                    h.store.add_file(job, token, output("x.png", 9), now).await,
                    Err(StoreError::LeaseConflict(_))
                ),
                "{token} at {now}"
            );
        }
        assert_eq!(
            h.store
                .add_file(Uuid::new_v4(), &t, output("x.png", 9), 8)
                .await
                .unwrap_err(),
            StoreError::NotFound
        );
        h.store.complete(id, Some(&t), json!({}), 9).await.unwrap();
        assert!(matches!(
            h.store.add_file(id, &t, output("x.png", 9), 10).await,
            Err(StoreError::LeaseConflict(_))
        ));
        assert_eq!(h.store.files(&[id]).await.unwrap()[&id].len(), 4);
    }

    pub(crate) async fn a_new_attempt_drops_the_earlier_outputs(h: Harness) {
        h.store.record_upload(upload("alice", 1, 1)).await.unwrap();
        let mut job = new_job("alice", 2);
        job.inputs = vec![input(1, ("", "in.png"))];
        let id = h.store.submit(job, limits(), 1).await.unwrap().job.id;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, 2)
            .await
            .unwrap()
            .unwrap();
        h.store
            .add_file(id, &c.lease_token, output("half.png", 5), 3)
            .await
            .unwrap();
        h.store.reap(2 + LEASE + 1).await.unwrap();
        let c = h
            .store
            .claim(&worker("w2"), LEASE, FENCED, 3 + LEASE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.inputs.len(), 1);
        let files = &h.store.files(&[id]).await.unwrap()[&id];
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].filename, "in.png");
        let refs = h.store.referenced_blobs().await.unwrap();
        assert!(!refs.contains(&sha(5)), "{refs:?}");
    }

    pub(crate) async fn expiry_forgets_old_files_and_references_follow(h: Harness) {
        h.store
            .record_upload(upload("alice", 1, 100))
            .await
            .unwrap();
        h.store
            .record_upload(upload("alice", 2, 100))
            .await
            .unwrap();
        h.store.record_upload(upload("bob", 2, 300)).await.unwrap();
        let mut job = new_job("alice", 2);
        job.inputs = vec![input(1, ("", "in.png"))];
        let done = h.store.submit(job, limits(), 100).await.unwrap().job.id;
        let c = h
            .store
            .claim(&worker("w1"), LEASE, FENCED, 110)
            .await
            .unwrap()
            .unwrap();
        h.store
            .add_file(done, &c.lease_token, output("o.png", 3), 120)
            .await
            .unwrap();
        h.store
            .complete(done, Some(&c.lease_token), json!({}), 130)
            .await
            .unwrap();
        let mut job = new_job("carol", 2);
        job.inputs = vec![];
        let pending = h.store.submit(job, limits(), 140).await.unwrap().job.id;
        let refs = h.store.referenced_blobs().await.unwrap();
        let want: std::collections::BTreeSet<String> = [sha(1), sha(2), sha(3)].into();
        assert_eq!(refs, want);

        // Nothing is old enough.
        let e = h.store.expire_files(130, 100).await.unwrap();
        assert_eq!((e.jobs, e.uploads), (0, 0));
        // Alice's uploads (last used at 100) go; Bob's (300) stays; the job ended at 130.
        let e = h.store.expire_files(130, 200).await.unwrap();
        assert_eq!((e.jobs, e.uploads), (0, 2));
        assert_eq!(h.store.upload("alice", &sha(1)).await.unwrap(), None);
        assert!(h.store.upload("bob", &sha(2)).await.unwrap().is_some());
        assert_eq!(
            h.store.referenced_blobs().await.unwrap(),
            want,
            "still referenced"
        );
        // The job's files go once it ended before the cutoff.
        let e = h.store.expire_files(131, 200).await.unwrap();
        assert_eq!((e.jobs, e.uploads), (1, 0));
        assert!(h.store.files(&[done, pending]).await.unwrap().is_empty());
        let want: std::collections::BTreeSet<String> = [sha(2)].into();
        assert_eq!(h.store.referenced_blobs().await.unwrap(), want);
        let e = h.store.expire_files(1000, 1000).await.unwrap();
        assert_eq!((e.jobs, e.uploads), (0, 1));
        assert!(h.store.referenced_blobs().await.unwrap().is_empty());
        // The job itself is kept.
        assert!(h.store.get(done).await.unwrap().is_some());
    }

    /// A worker gives a job back unrun: pending again at once, the attempt not counted,
    /// the history saying so; with its catalogue named, the job is not offered to a worker
    /// with that catalogue again, but still to others. A repeat answers the same; a stale
    /// token is refused.
    pub(crate) async fn hand_back_gives_the_attempt_back_and_refuses_the_catalogue(h: Harness) {
        let id = submit(&h, "alice", 1).await;
        let a = WorkerInfo {
            catalogue: Some("a".repeat(64)),
            ..worker("wa")
        };
        let b = WorkerInfo {
            catalogue: Some("b".repeat(64)),
            ..worker("wb")
        };
        let now = h.clock.now_ms();
        let c = h
            .store
            .claim(&a, LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.attempts, 1);
        let err = h
            .store
            .hand_back(id, "stale", "x".into(), None, now)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
        let back = h
            .store
            .hand_back(
                id,
                &c.lease_token,
                "no node class Foo".into(),
                a.catalogue.clone(),
                now + 1,
            )
            .await
            .unwrap();
        assert_eq!(back.status, Status::Pending);
        assert_eq!(back.attempts, 0);
        assert_eq!(back.not_before, None);
        assert_eq!(back.history.len(), 1);
        assert_eq!(back.history[0].outcome, AttemptOutcome::HandedBack);
        assert_eq!(back.history[0].error.as_deref(), Some("no node class Foo"));
        let again = h
            .store
            .hand_back(
                id,
                &c.lease_token,
                "again".into(),
                a.catalogue.clone(),
                now + 2,
            )
            .await
            .unwrap();
        assert_eq!(again, back, "a repeat changes nothing");
        assert_eq!(h.store.position(id).await.unwrap(), Some(1));
        let front = h.store.pending_front(10).await.unwrap();
        assert_eq!(front.len(), 1);
        let class = Requirements::from_class_key(&front[0].class).unwrap();
        assert_eq!(class.not_on, ["a".repeat(64)]);
        // Not to a worker with the refused catalogue; to another one.
        assert!(
            h.store
                .claim(&a, LEASE, FENCED, now + 3)
                .await
                .unwrap()
                .is_none()
        );
        let c = h
            .store
            .claim(&b, LEASE, FENCED, now + 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, id);
        assert_eq!(c.job.attempts, 1);
        // Handed back by the second for its requirements only: its catalogue is not refused.
        let back = h
            .store
            .hand_back(id, &c.lease_token, "needs <0.10".into(), None, now + 5)
            .await
            .unwrap();
        assert_eq!(
            (back.status, back.attempts, back.history.len()),
            (Status::Pending, 0, 2)
        );
        assert!(
            h.store
                .claim(&b, LEASE, FENCED, now + 6)
                .await
                .unwrap()
                .is_some()
        );
    }

    /// A cancel asked for while a job runs wins over its hand-back.
    pub(crate) async fn a_handed_back_job_with_a_cancel_request_is_cancelled(h: Harness) {
        let id = submit(&h, "alice", 1).await;
        let now = h.clock.now_ms();
        let c = h
            .store
            .claim(&worker("w"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        h.store.cancel(id, now).await.unwrap();
        let back = h
            .store
            .hand_back(id, &c.lease_token, "unfit".into(), None, now + 1)
            .await
            .unwrap();
        assert_eq!(back.status, Status::Cancelled);
        assert_eq!(h.store.counts().await.unwrap().get(Status::Running), 0);
    }

    /// Only a pending job is failed for having no capable worker; a repeat, a running job
    /// and an unknown id change nothing.
    pub(crate) async fn fail_pending_fails_only_pending_jobs(h: Harness) {
        let waiting = submit(&h, "alice", 1).await;
        let running = submit(&h, "bob", 1).await;
        let now = h.clock.now_ms();
        let c = h
            .store
            .claim(&worker("w"), LEASE, FENCED, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.job.id, waiting, "alice's is first");
        let (waiting, running) = (running, waiting);
        let failed = h
            .store
            .fail_pending(waiting, "no_capable_worker: none".into(), now + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.error.as_deref(), Some("no_capable_worker: none"));
        assert_eq!(failed.completed_at, Some(now + 1));
        assert_eq!(h.store.position(waiting).await.unwrap(), None);
        for id in [waiting, running, Uuid::new_v4()] {
            let again = h
                .store
                .fail_pending(id, "again".into(), now + 2)
                .await
                .unwrap();
            assert_eq!(again, None);
        }
        let counts = h.store.counts().await.unwrap();
        assert_eq!(
            (
                counts.get(Status::Pending),
                counts.get(Status::Running),
                counts.get(Status::Failed)
            ),
            (0, 1, 1)
        );
        assert!(h.store.pending_front(10).await.unwrap().is_empty());
        assert!(
            h.store
                .claim(&worker("w2"), LEASE, FENCED, now + 3)
                .await
                .unwrap()
                .is_none()
        );
    }

    /// The front of the queue in queue order (priority, then submission), with classes and
    /// workflows as stored.
    pub(crate) async fn pending_front_is_in_queue_order(h: Harness) {
        let low = submit(&h, "alice", 2).await;
        let first = submit(&h, "bob", 1).await;
        let mut needs = new_job("carol", 1);
        needs.metadata = json!({"requires": {"comfyui": "<0.10"}});
        needs.requirements = Requirements::from_metadata(&needs.metadata).unwrap();
        let big = json!({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x".repeat(200)}}});
        needs.workflow = big.clone();
        let pinned = h
            .store
            .submit(needs, limits(), h.clock.now_ms())
            .await
            .unwrap()
            .job
            .id;
        let front = h.store.pending_front(10).await.unwrap();
        let ids: Vec<Uuid> = front.iter().map(|p| p.id).collect();
        assert_eq!(ids, [first, pinned, low]);
        assert_eq!(front[0].class, "");
        assert_eq!(front[1].class, r#"{"comfyui":"<0.10"}"#);
        assert_eq!(h.store.pending_front(1).await.unwrap().len(), 1);
        let text = h.store.workflow_text(pinned).await.unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), big);
        let small = h.store.workflow_text(first).await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&small).unwrap()["3"]["class_type"],
            "KSampler"
        );
        assert_eq!(h.store.workflow_text(Uuid::new_v4()).await.unwrap(), None);
    }
}

macro_rules! conformance {
    ($backend:ident, $setup:path, $attrs:tt, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(conformance!(@test $setup, $attrs, $test);)*
        }
    };
    (@test $setup:path, [$(#[$attr:meta])*], $test:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $test() {
            super::suite::$test($setup().await).await;
        }
    };
}

macro_rules! all_backends {
    ($($test:ident),* $(,)?) => {
        conformance!(sqlite, crate::common::sqlite_harness, [], [$($test),*]);
        conformance!(
            redis,
            crate::common::redis_harness,
            [#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]],
            [$($test),*]
        );
    };
}

all_backends!(
    submit_and_get,
    idempotency_key_returns_the_same_job,
    caps_are_enforced,
    claim_marks_running_with_a_lease,
    priority_first_then_fifo,
    fair_share_across_users,
    priority_beats_fairness,
    heartbeat_renews_the_lease,
    expired_lease_is_requeued_and_fenced,
    out_of_attempts_becomes_a_dead_letter,
    complete_is_fenced_and_replay_safe,
    tokenless_complete_for_old_workers,
    tokenless_calls_cannot_touch_a_fenced_lease,
    success_on_a_retry_clears_the_error,
    fail_retry_and_cancelled,
    retry_stops_at_max_attempts,
    retry_waits_out_its_backoff,
    cancel_pending_and_running,
    cancel_requested_job_is_not_requeued,
    reprioritise_pending_only,
    routing_by_version_and_capabilities,
    list_filters_and_position,
    counts_by_status_and_user,
    workers_register_and_list,
    workers_keep_their_catalogue_and_the_sweep_spares_it,
    json_values_round_trip,
    uploads_are_per_user_and_refreshed,
    submit_attaches_inputs_or_names_the_unknown_one,
    claim_gives_inputs_and_outputs_are_fenced,
    a_new_attempt_drops_the_earlier_outputs,
    expiry_forgets_old_files_and_references_follow,
    hand_back_gives_the_attempt_back_and_refuses_the_catalogue,
    a_handed_back_job_with_a_cancel_request_is_cancelled,
    fail_pending_fails_only_pending_jobs,
    pending_front_is_in_queue_order,
);

/// SQLite only: what was acknowledged is on disk, the schema version is recorded, and a
/// running job survives a restart with its lease.
#[tokio::test]
async fn sqlite_survives_reopen() {
    use comfy_queue::model::Status;
    use comfy_queue::scheduler::WorkerInfo;
    use comfy_queue::store::sqlite::SqliteStore;
    use comfy_queue::store::{Store, SubmitLimits};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let (id, token) = {
        let store = SqliteStore::open(&path).unwrap();
        let job = comfy_queue::model::validate_submit(
            &serde_json::json!({"user_id": "alice", "workflow": {"1": {}}}),
            None,
        )
        .unwrap();
        let limits = SubmitLimits {
            max_pending: 0,
            max_per_user: 0,
            max_attempts: 3,
        };
        let id = store.submit(job, limits, 0).await.unwrap().job.id;
        let w = WorkerInfo {
            worker_id: "w".into(),
            ..Default::default()
        };
        let c = store
            .claim(&w, 60_000, comfy_queue::lifecycle::LeaseKind::Fenced, 1)
            .await
            .unwrap()
            .unwrap();
        (id, c.lease_token)
    };
    let store = SqliteStore::open(&path).unwrap();
    let job = store.get(id).await.unwrap().unwrap();
    assert_eq!(job.status, Status::Running);
    store.heartbeat(id, &token, 60_000, 2).await.unwrap();
    let conn = rusqlite_version(&path);
    assert_eq!(conn, comfy_queue::store::sqlite::SCHEMA_VERSION);
}

/// SQLite only: a v2 file (before `lease_fenced`) opens as v3, and a lease it holds keeps
/// taking tokenless calls as it did before the upgrade.
#[tokio::test]
async fn sqlite_v2_file_migrates_to_v3() {
    use comfy_queue::lifecycle::LeaseKind;
    use comfy_queue::model::Status;
    use comfy_queue::scheduler::WorkerInfo;
    use comfy_queue::store::sqlite::SqliteStore;
    use comfy_queue::store::{Store, SubmitLimits};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let id = {
        let store = SqliteStore::open(&path).unwrap();
        let job = comfy_queue::model::validate_submit(
            &serde_json::json!({"user_id": "alice", "workflow": {"1": {}}}),
            None,
        )
        .unwrap();
        let limits = SubmitLimits {
            max_pending: 0,
            max_per_user: 0,
            max_attempts: 3,
        };
        let id = store.submit(job, limits, 0).await.unwrap().job.id;
        let w = WorkerInfo {
            worker_id: "w".into(),
            ..Default::default()
        };
        store
            .claim(&w, 60_000, LeaseKind::Fenced, 1)
            .await
            .unwrap()
            .unwrap();
        id
    };
    // Make it the file a v2 build wrote.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE jobs DROP COLUMN lease_fenced; ALTER TABLE workers DROP COLUMN catalogue; \
         ALTER TABLE workers DROP COLUMN drain; PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(conn);
    assert_eq!(rusqlite_version(&path), 2);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        rusqlite_version(&path),
        comfy_queue::store::sqlite::SCHEMA_VERSION
    );
    let job = store
        .complete(id, None, serde_json::json!({}), 2)
        .await
        .unwrap();
    assert_eq!(job.status, Status::Completed);
}

fn rusqlite_version(path: &std::path::Path) -> i64 {
    let out = std::process::Command::new("sqlite3")
        .arg(path)
        .arg("PRAGMA user_version")
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().parse().unwrap(),
        // No sqlite3 CLI: read the header field directly (offset 60, big-endian u32).
        _ => {
            let bytes = std::fs::read(path).unwrap();
            i64::from(u32::from_be_bytes([
                bytes[60], bytes[61], bytes[62], bytes[63],
            ]))
        }
    }
}

/// Redis only: after `redis-server` restarts, the connection manager reconnects, the
/// scripts reload themselves (NOSCRIPT) and calls that are safe to repeat are retried.
#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn redis_reconnects_after_restart() {
    use comfy_queue::scheduler::WorkerInfo;
    use comfy_queue::store::redis::RedisStore;
    use comfy_queue::store::{Store, SubmitLimits};

    let mut server = common::RedisServer::start();
    let store = RedisStore::connect(&server.url(), "rc").await.unwrap();
    let limits = SubmitLimits {
        max_pending: 0,
        max_per_user: 0,
        max_attempts: 3,
    };
    let job = || {
        let mut j = comfy_queue::model::validate_submit(
            &serde_json::json!({"user_id": "alice", "workflow": {"1": {}}}),
            None,
        )
        .unwrap();
        j.idempotency_key = Some(uuid::Uuid::new_v4().to_string());
        j
    };
    store.submit(job(), limits, 0).await.unwrap();
    server.restart();
    // A read right after the restart is retried over the reconnect.
    assert_eq!(store.get(uuid::Uuid::new_v4()).await.unwrap(), None);
    assert!(store.ping().await);
    // Scripts were flushed by the restart: they are reloaded transparently.
    let id = store.submit(job(), limits, 1).await.unwrap().job.id;
    let w = WorkerInfo {
        worker_id: "w".into(),
        ..Default::default()
    };
    let c = store
        .claim(&w, 60_000, comfy_queue::lifecycle::LeaseKind::Fenced, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.job.id, id);
    store
        .complete(id, Some(&c.lease_token), serde_json::json!({}), 3)
        .await
        .unwrap();
}

/// SQLite only: a v3 file (before files) opens as v4 with its jobs, and takes files.
#[tokio::test]
async fn sqlite_v3_file_migrates_to_v4() {
    use comfy_queue::model::Upload;
    use comfy_queue::store::sqlite::SqliteStore;
    use comfy_queue::store::{Store, SubmitLimits};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let limits = SubmitLimits {
        max_pending: 0,
        max_per_user: 0,
        max_attempts: 3,
    };
    let id = {
        let store = SqliteStore::open(&path).unwrap();
        let job = comfy_queue::model::validate_submit(
            &serde_json::json!({"user_id": "alice", "workflow": {"1": {}}}),
            None,
        )
        .unwrap();
        store.submit(job, limits, 0).await.unwrap().job.id
    };
    // Make it the file a v3 build wrote.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE job_files; DROP TABLE uploads; ALTER TABLE workers DROP COLUMN catalogue; \
         ALTER TABLE workers DROP COLUMN drain; PRAGMA user_version = 3;",
    )
    .unwrap();
    drop(conn);
    assert_eq!(rusqlite_version(&path), 3);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        rusqlite_version(&path),
        comfy_queue::store::sqlite::SCHEMA_VERSION
    );
    assert!(store.get(id).await.unwrap().is_some());
    let sha = "ab".repeat(32);
    let upload = Upload {
        user_id: "alice".into(),
        sha256: sha.clone(),
        filename: "a.png".into(),
        content_type: "image/png".into(),
        size: 1,
        uploaded_at: 1,
    };
    assert!(store.record_upload(upload).await.unwrap());
    assert_eq!(
        store.referenced_blobs().await.unwrap(),
        std::collections::BTreeSet::from([sha])
    );
}

/// SQLite only: a v4 file (before worker catalogues) opens as v5 with its workers, which
/// read as having published no catalogue, and takes catalogues.
#[tokio::test]
async fn sqlite_v4_file_migrates_to_v5() {
    use comfy_queue::scheduler::WorkerInfo;
    use comfy_queue::store::Store;
    use comfy_queue::store::sqlite::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let info = WorkerInfo {
        worker_id: "gpu-1".into(),
        comfyui_version: Some("0.11.1".into()),
        line: Some("jobs-api".into()),
        capabilities: vec!["jobs_api".into()],
        catalogue: None,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store.register_worker(info.clone(), 5).await.unwrap();
    }
    // Make it the file a v4 build wrote.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "ALTER TABLE workers DROP COLUMN catalogue; ALTER TABLE workers DROP COLUMN drain; \
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);
    assert_eq!(rusqlite_version(&path), 4);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        rusqlite_version(&path),
        comfy_queue::store::sqlite::SCHEMA_VERSION
    );
    let rec = store.get_worker("gpu-1").await.unwrap().unwrap();
    assert_eq!(rec.info, info);
    assert_eq!(rec.registered_at, 5);
    let sha = "cd".repeat(32);
    let with = WorkerInfo {
        catalogue: Some(sha.clone()),
        ..info
    };
    assert_eq!(
        store.register_worker(with, 6).await.unwrap().info.catalogue,
        Some(sha.clone())
    );
    assert_eq!(
        store.referenced_blobs().await.unwrap(),
        std::collections::BTreeSet::from([sha])
    );
}

//! Issue 12 item 8: a store error after the write (Redis ran the submit script, its reply
//! was lost) answers 503 although the job is stored. A submit with an `Idempotency-Key`
//! stays idempotent across that: repeating it answers 200 with the stored job and creates
//! nothing; without a key, a repeat makes a second job. `LostReply` is a store that writes
//! and then fails, as Redis does when the connection drops between script and reply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use axum::http::StatusCode;
use comfy_queue::Settings;
use comfy_queue::clock::Millis;
use comfy_queue::lifecycle::{Failure, LeaseKind, LeaseState};
use comfy_queue::model::{FileRecord, FileRole, Job, NewJob, Upload, WorkerRecord};
use comfy_queue::scheduler::WorkerInfo;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::store::{
    BackendError, Claimed, Counts, FileExpiry, ListFilter, PendingJob, ReapReport, Store,
    StoreError, SubmitLimits, Submitted,
};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug)]
struct LostReply {
    inner: SqliteStore,
    /// The next submit is stored, then answered with a backend error.
    lose_next_submit: AtomicBool,
}

#[async_trait]
impl Store for LostReply {
    fn name(&self) -> &'static str {
        "lost-reply"
    }
    async fn ping(&self) -> bool {
        self.inner.ping().await
    }
    async fn submit(
        &self,
        job: NewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError> {
        let done = self.inner.submit(job, limits, now).await?;
        if self.lose_next_submit.swap(false, Ordering::SeqCst) {
            return Err(BackendError::UnexpectedReply("connection dropped".into()).into());
        }
        Ok(done)
    }
    async fn get(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        self.inner.get(id).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        self.inner.list(filter).await
    }
    async fn position(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.inner.position(id).await
    }
    async fn cancel(&self, id: Uuid, now: Millis) -> Result<Job, StoreError> {
        self.inner.cancel(id, now).await
    }
    async fn set_priority(&self, id: Uuid, priority: u8) -> Result<Job, StoreError> {
        self.inner.set_priority(id, priority).await
    }
    async fn claim(
        &self,
        worker: &WorkerInfo,
        lease_ms: Millis,
        kind: LeaseKind,
        now: Millis,
    ) -> Result<Option<Claimed>, StoreError> {
        self.inner.claim(worker, lease_ms, kind, now).await
    }
    async fn heartbeat(
        &self,
        id: Uuid,
        lease_token: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<LeaseState, StoreError> {
        self.inner.heartbeat(id, lease_token, lease_ms, now).await
    }
    async fn complete(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        result: Value,
        now: Millis,
    ) -> Result<Job, StoreError> {
        self.inner.complete(id, lease_token, result, now).await
    }
    async fn fail(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        failure: Failure,
        now: Millis,
    ) -> Result<Job, StoreError> {
        self.inner.fail(id, lease_token, failure, now).await
    }
    async fn hand_back(
        &self,
        id: Uuid,
        lease_token: &str,
        reason: String,
        not_on: Option<String>,
        now: Millis,
    ) -> Result<Job, StoreError> {
        self.inner
            .hand_back(id, lease_token, reason, not_on, now)
            .await
    }
    async fn fail_pending(
        &self,
        id: Uuid,
        error: String,
        now: Millis,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.fail_pending(id, error, now).await
    }
    async fn pending_front(&self, limit: u32) -> Result<Vec<PendingJob>, StoreError> {
        self.inner.pending_front(limit).await
    }
    async fn workflow_text(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.inner.workflow_text(id).await
    }
    async fn reap(&self, now: Millis) -> Result<ReapReport, StoreError> {
        self.inner.reap(now).await
    }
    async fn counts(&self) -> Result<Counts, StoreError> {
        self.inner.counts().await
    }
    async fn register_worker(
        &self,
        info: WorkerInfo,
        now: Millis,
    ) -> Result<WorkerRecord, StoreError> {
        self.inner.register_worker(info, now).await
    }
    async fn touch_worker(&self, worker_id: &str, now: Millis) -> Result<(), StoreError> {
        self.inner.touch_worker(worker_id, now).await
    }
    async fn set_drain(
        &self,
        worker_id: &str,
        drain: bool,
    ) -> Result<Option<WorkerRecord>, StoreError> {
        self.inner.set_drain(worker_id, drain).await
    }
    async fn get_worker(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        self.inner.get_worker(worker_id).await
    }
    async fn list_workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.inner.list_workers().await
    }
    async fn record_upload(&self, upload: Upload) -> Result<bool, StoreError> {
        self.inner.record_upload(upload).await
    }
    async fn upload(&self, user_id: &str, sha256: &str) -> Result<Option<Upload>, StoreError> {
        self.inner.upload(user_id, sha256).await
    }
    async fn add_file(
        &self,
        id: Uuid,
        lease_token: &str,
        file: FileRecord,
        now: Millis,
    ) -> Result<FileRecord, StoreError> {
        self.inner.add_file(id, lease_token, file, now).await
    }
    async fn files(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, Vec<FileRecord>>, StoreError> {
        self.inner.files(ids).await
    }
    async fn find_file(
        &self,
        id: Uuid,
        role: FileRole,
        subfolder: &str,
        filename: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        self.inner.find_file(id, role, subfolder, filename).await
    }
    async fn check_lease(
        &self,
        id: Uuid,
        lease_token: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.inner.check_lease(id, lease_token, now).await
    }
    async fn expire_files(
        &self,
        ended_before: Millis,
        uploaded_before: Millis,
    ) -> Result<FileExpiry, StoreError> {
        self.inner.expire_files(ended_before, uploaded_before).await
    }
    async fn referenced_blobs(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.inner.referenced_blobs().await
    }
}

fn app() -> (common::TestApp, Arc<LostReply>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LostReply {
        inner: SqliteStore::open(dir.path().join("q.db")).unwrap(),
        lose_next_submit: AtomicBool::new(false),
    });
    let a = common::test_app_with(store.clone(), Settings::default(), Box::new(dir));
    (a, store)
}

fn body() -> Vec<u8> {
    serde_json::to_vec(&json!({"user_id": "alice", "workflow": {"1": {"class_type": "X"}}}))
        .unwrap()
}

#[tokio::test]
async fn a_keyed_submit_stays_idempotent_across_a_lost_reply() {
    let (a, store) = app();
    store.lose_next_submit.store(true, Ordering::SeqCst);
    let key = [("idempotency-key", "batch-7-item-0")];
    let r = a.req("POST", "/api/jobs", &key, Some(body())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "store_unavailable");
    // The client repeats it with the same key: the stored job, 200, nothing new.
    let r = a.req("POST", "/api/jobs", &key, Some(body())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let again = a.req("POST", "/api/jobs", &key, Some(body())).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["id"], id.as_str());
    let all = a.get("/api/jobs").await;
    assert_eq!(all.json.as_array().unwrap().len(), 1, "{}", all.text);
}

/// What the docs say of a submit without a key: after a 503 it may be stored, and a
/// repeat cannot tell, so it makes a second job.
#[tokio::test]
async fn an_unkeyed_submit_repeated_after_a_lost_reply_is_stored_twice() {
    let (a, store) = app();
    store.lose_next_submit.store(true, Ordering::SeqCst);
    let r = a.req("POST", "/api/jobs", &[], Some(body())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{}",
        r.text
    );
    let r = a.req("POST", "/api/jobs", &[], Some(body())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let all = a.get("/api/jobs").await;
    assert_eq!(all.json.as_array().unwrap().len(), 2, "{}", all.text);
}

//! Redis backend. Every state change is ONE Lua script (`store/redis/*.lua`, loaded with
//! `include_str!`) that checks the lease token itself, so a change is all-or-nothing and a
//! fenced call repeated after a lost reply is harmless. Scripts take "now" from the caller's
//! [`crate::clock::Clock`]; several queue processes on one Redis share one (the server's
//! `TIME`, `crate::replicas::server_clock`) and tell each other what they hold in memory
//! through `bus.rs` (`crate::replicas`).
//!
//! The `ConnectionManager` reconnects after Redis restarts and `Script` reloads itself on
//! `NOSCRIPT`; calls that are safe to repeat are retried on connection errors. The parts:
//!
//! - `scripts.rs`: the Lua scripts and how their token argument is spelled;
//! - `retry.rs`: which errors are transient and the retry policy (`backon`);
//! - `bus.rs`: the replicas' pub/sub channel and the server's clock;
//! - `decode.rs`: script and command replies into jobs, workers and store errors;
//! - this file: [`RedisStore`], its connection, and the [`Store`] operations.

mod bus;
mod decode;
mod persistence;
mod retry;
mod scripts;

pub use bus::RedisBus;
pub use persistence::{Persistence, VolatileRedis};

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;
use uuid::Uuid;

use self::decode::{FIELD_COUNT, FIELDS, corrupt, job_reply, opt_num, parse_job, worker_from_hash};
use self::scripts::{Scripts, token_arg};
use super::{
    BackendError, Claimed, Counts, FileExpiry, ListFilter, PendingJob, ReapReport, Store,
    StoreError, SubmitLimits, Submitted, UserCounts, sort_files,
};
use crate::clock::Millis;
use crate::lifecycle::{Failure, LeaseKind, LeaseState};
use crate::model::{FileRecord, FileRole, Job, NewJob, RawNewJob, Status, Upload, WorkerRecord};
use crate::scheduler::{Requirements, WorkerInfo};

/// The key layout the scripts write (`P:layout`; see the top of `common.lua`).
/// [`RedisStore::connect`] brings an older one up to it (`migrate.lua`).
pub const LAYOUT: u32 = 2;

/// The Redis store.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    /// `prefix:layout`, the one key each script declares.
    route_key: String,
    scripts: Scripts,
    /// Requirement classes already parsed.
    classes: Mutex<HashMap<String, Option<Requirements>>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Whether `prefix` holds a Redis Cluster hash tag: a `{…}` with something inside, the
/// first `{` of the key and the first `}` after it (every key then hashes by it alone).
pub fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .find('{')
        .and_then(|open| prefix[open + 1..].find('}'))
        .is_some_and(|len| len > 0)
}

impl RedisStore {
    /// Connect to `url`, keeping every key under `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::from)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(4);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(StoreError::from)?;
        let store = Self {
            conn,
            prefix: prefix.to_owned(),
            route_key: format!("{prefix}:layout"),
            scripts: Scripts::load(),
            classes: Mutex::new(HashMap::new()),
        };
        let mut c = store.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut c)
            .await
            .map_err(StoreError::from)?;
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut c)
            .await
            .map_err(StoreError::from)?;
        if info.lines().any(|l| l.trim() == "cluster_enabled:1") && !has_hash_tag(prefix) {
            return Err(BackendError::ClusterPrefix {
                prefix: prefix.to_owned(),
            }
            .into());
        }
        let found: u32 = store.eval(&store.scripts.migrate, &[], true).await?;
        if found < LAYOUT {
            tracing::info!(
                prefix,
                from = found,
                to = LAYOUT,
                "redis key layout migrated"
            );
        }
        Ok(store)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    fn class_lists(&self, worker: &WorkerInfo) -> (String, String) {
        let mut ok = Vec::new();
        let mut no = Vec::new();
        if let Ok(classes) = self.classes.lock() {
            for (class, req) in classes.iter() {
                if req
                    .as_ref()
                    .is_some_and(|r| r.satisfied_by(&worker.server()))
                {
                    ok.push(class.clone());
                } else {
                    no.push(class.clone());
                }
            }
        }
        (
            serde_json::to_string(&ok).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&no).unwrap_or_else(|_| "[]".into()),
        )
    }
}

#[async_trait]
impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> bool {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .is_ok()
    }

    async fn submit(
        &self,
        new: NewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError> {
        self.submit_raw(new.into_raw()?, limits, now).await
    }

    async fn submit_raw(
        &self,
        new: RawNewJob,
        limits: SubmitLimits,
        now: Millis,
    ) -> Result<Submitted, StoreError> {
        let id = Uuid::new_v4().to_string();
        // The workflow is stored as the text it was sent in.
        let workflow = new.workflow.get();
        let metadata = serde_json::to_string(&new.metadata)?;
        let idem = new.idempotency_key.clone().unwrap_or_default();
        let inputs = serde_json::to_string(&new.inputs)?;
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.submit,
                &[
                    &id,
                    &new.user_id,
                    &new.priority.to_string(),
                    &now.to_string(),
                    workflow,
                    &metadata,
                    &limits.max_attempts.max(1).to_string(),
                    &new.requirements.class_key(),
                    &idem,
                    &limits.max_pending.to_string(),
                    &limits.max_per_user.to_string(),
                    &inputs,
                ],
                // Repeating a submit is only harmless when a key makes it idempotent.
                !idem.is_empty(),
            )
            .await?;
        let (code, job) = job_reply(&v)?;
        let position = v
            .get(1 + FIELD_COUNT)
            .cloned()
            .flatten()
            .and_then(|p| p.parse().ok());
        Ok(Submitted {
            job,
            created: code == "OK",
            position,
        })
    }

    async fn get(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let key = self.key(&format!("job:{id}"));
        let v: Vec<Option<String>> = self
            .read(|mut c| {
                let key = key.clone();
                async move {
                    redis::cmd("HMGET")
                        .arg(&key)
                        .arg(&FIELDS[..])
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        // No `id` field since layout 2: `seq` says the job is there, the key has its id.
        let mut v = v;
        if v.get(1).is_none_or(Option::is_none) {
            return Ok(None);
        }
        if let Some(first) = v.first_mut() {
            *first = Some(id.to_string());
        }
        parse_job(&v).map(Some)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<Vec<Option<String>>> = self
            .eval(
                &self.scripts.list,
                &[
                    filter.status.map_or("", Status::as_str),
                    filter.user_id.as_deref().unwrap_or(""),
                    &filter.limit.to_string(),
                    &filter.offset.to_string(),
                ],
                true,
            )
            .await?;
        rows.iter().map(|r| parse_job(r)).collect()
    }

    async fn position(&self, id: Uuid) -> Result<Option<u64>, StoreError> {
        self.eval(&self.scripts.position, &[&id.to_string()], true)
            .await
    }

    async fn cancel(&self, id: Uuid, now: Millis) -> Result<Job, StoreError> {
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.cancel,
                &[&id.to_string(), &now.to_string()],
                false,
            )
            .await?;
        job_reply(&v).map(|(_, j)| j)
    }

    async fn set_priority(&self, id: Uuid, priority: u8) -> Result<Job, StoreError> {
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.set_priority,
                &[&id.to_string(), &priority.to_string()],
                true,
            )
            .await?;
        job_reply(&v).map(|(_, j)| j)
    }

    async fn claim(
        &self,
        worker: &WorkerInfo,
        lease_ms: Millis,
        kind: LeaseKind,
        now: Millis,
    ) -> Result<Option<Claimed>, StoreError> {
        let fenced = if kind == LeaseKind::Fenced { "1" } else { "0" };
        for _ in 0..32 {
            let (ok, no) = self.class_lists(worker);
            let token = Uuid::new_v4().simple().to_string();
            // Not retried: a lost reply leaves a lease nobody holds, which the reaper
            // takes back (at-least-once).
            let v: Vec<Option<String>> = self
                .eval(
                    &self.scripts.claim,
                    &[
                        &worker.worker_id,
                        &now.to_string(),
                        &lease_ms.to_string(),
                        &token,
                        &ok,
                        &no,
                        fenced,
                    ],
                    false,
                )
                .await?;
            match v.first().cloned().flatten().as_deref() {
                Some("NONE") => return Ok(None),
                Some("UNKNOWN") => {
                    let class = v.get(1).cloned().flatten().unwrap_or_default();
                    if let Ok(mut classes) = self.classes.lock() {
                        let req = Requirements::from_class_key(&class);
                        classes.insert(class, req);
                    }
                }
                Some("OK") => {
                    let job = parse_job(&v[1..])?;
                    let workflow = v
                        .get(1 + FIELD_COUNT)
                        .cloned()
                        .flatten()
                        .ok_or_else(|| corrupt("workflow"))?;
                    let workflow =
                        serde_json::from_str(&workflow).map_err(|_| corrupt("workflow"))?;
                    let mut inputs = v
                        .get(2 + FIELD_COUNT..)
                        .unwrap_or_default()
                        .iter()
                        .flatten()
                        .map(|f| decode_file(f))
                        .collect::<Result<Vec<_>, _>>()?;
                    sort_files(&mut inputs);
                    return Ok(Some(Claimed {
                        job,
                        workflow,
                        lease_token: token,
                        inputs,
                    }));
                }
                other => {
                    return Err(BackendError::UnexpectedReply(format!("claim {other:?}")).into());
                }
            }
        }
        Err(BackendError::TooManyClasses.into())
    }

    async fn heartbeat(
        &self,
        id: Uuid,
        lease_token: &str,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<LeaseState, StoreError> {
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.heartbeat,
                &[
                    &id.to_string(),
                    &token_arg(Some(lease_token)),
                    &now.to_string(),
                    &lease_ms.to_string(),
                ],
                true,
            )
            .await?;
        match v.first().cloned().flatten().as_deref() {
            Some("OK") => Ok(LeaseState {
                lease_expires_at: opt_num(v.get(1).unwrap_or(&None))
                    .ok_or_else(|| corrupt("lease"))?,
                cancel_requested: v.get(2).cloned().flatten().as_deref() == Some("1"),
            }),
            _ => job_reply(&v).map(|_| LeaseState {
                lease_expires_at: 0,
                cancel_requested: false,
            }),
        }
    }

    async fn complete(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        result: Value,
        now: Millis,
    ) -> Result<Job, StoreError> {
        let result_text = serde_json::to_string(&result)?;
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.complete,
                &[
                    &id.to_string(),
                    &token_arg(lease_token),
                    &now.to_string(),
                    &result_text,
                ],
                // With a token a repeat is recognised as a replay.
                lease_token.is_some(),
            )
            .await?;
        let (_, mut job) = job_reply(&v)?;
        // The script does not send the result back unless this was a replay.
        if job.result.is_none() {
            job.result = Some(result);
        }
        Ok(job)
    }

    async fn fail(
        &self,
        id: Uuid,
        lease_token: Option<&str>,
        failure: Failure,
        now: Millis,
    ) -> Result<Job, StoreError> {
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.fail,
                &[
                    &id.to_string(),
                    &token_arg(lease_token),
                    &now.to_string(),
                    &failure.error,
                    if failure.retry { "1" } else { "0" },
                    if failure.cancelled { "1" } else { "0" },
                    &failure.retry_delay_ms.to_string(),
                ],
                lease_token.is_some(),
            )
            .await?;
        job_reply(&v).map(|(_, j)| j)
    }

    async fn hand_back(
        &self,
        id: Uuid,
        lease_token: &str,
        reason: String,
        not_on: Option<String>,
        now: Millis,
    ) -> Result<Job, StoreError> {
        let token = token_arg(Some(lease_token));
        for _ in 0..8 {
            // The new class is made from the one read here; the script refuses the change
            // if the job's class moved on meanwhile, and the whole step is tried again.
            let (was, class) = match &not_on {
                None => (String::new(), String::new()),
                Some(sha) => {
                    let mut c = self.conn.clone();
                    let was: Option<String> = redis::cmd("HGET")
                        .arg(self.key(&format!("job:{id}")))
                        .arg("req_class")
                        .query_async(&mut c)
                        .await
                        .map_err(StoreError::from)?;
                    let was = was.unwrap_or_default();
                    match Requirements::from_class_key(&was) {
                        Some(req) => {
                            let class = req.not_on(sha).class_key();
                            (was, class)
                        }
                        None => (String::new(), String::new()),
                    }
                }
            };
            let v: Vec<Option<String>> = self
                .eval(
                    &self.scripts.hand_back,
                    &[
                        &id.to_string(),
                        &token,
                        &now.to_string(),
                        &reason,
                        &was,
                        &class,
                    ],
                    true,
                )
                .await?;
            if v.first().cloned().flatten().as_deref() == Some("RETRY") {
                continue;
            }
            return job_reply(&v).map(|(_, j)| j);
        }
        Err(BackendError::UnexpectedReply("the job's class kept changing".into()).into())
    }

    async fn fail_pending(
        &self,
        id: Uuid,
        error: String,
        now: Millis,
    ) -> Result<Option<Job>, StoreError> {
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.fail_pending,
                &[&id.to_string(), &now.to_string(), &error],
                true,
            )
            .await?;
        if v.first().cloned().flatten().as_deref() == Some("SKIP") {
            return Ok(None);
        }
        job_reply(&v).map(|(_, j)| Some(j))
    }

    async fn pending_front(&self, limit: u32) -> Result<Vec<PendingJob>, StoreError> {
        let flat: Vec<String> = self
            .eval(&self.scripts.pending_front, &[&limit.to_string()], true)
            .await?;
        flat.chunks(2)
            .map(|pair| {
                let [id, class] = pair else {
                    return Err(corrupt("pending front"));
                };
                Ok(PendingJob {
                    id: Uuid::parse_str(id).map_err(|_| corrupt("job id"))?,
                    class: class.clone(),
                })
            })
            .collect()
    }

    async fn workflow_text(&self, id: Uuid) -> Result<Option<String>, StoreError> {
        self.eval(&self.scripts.workflow, &[&id.to_string()], true)
            .await
    }

    async fn reap(&self, now: Millis) -> Result<ReapReport, StoreError> {
        let v: Vec<String> = self
            .eval(&self.scripts.reap, &[&now.to_string()], true)
            .await?;
        let mut report = ReapReport::default();
        for pair in v.chunks(2) {
            let [kind, id] = pair else { continue };
            let Ok(id) = Uuid::parse_str(id) else {
                continue;
            };
            match kind.as_str() {
                "requeued" => report.requeued.push(id),
                "dead" => report.dead.push(id),
                _ => report.cancelled.push(id),
            }
        }
        Ok(report)
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        // Pending jobs are counted in `P:pending` (there is no `P:status:pending`).
        let status_keys: Vec<String> = Status::ALL
            .iter()
            .map(|s| match s {
                Status::Pending => self.key("pending"),
                s => self.key(&format!("status:{}", s.as_str())),
            })
            .collect();
        let upending = self.key("upending");
        let urunning = self.key("urunning");
        let (cards, pending, running): (Vec<u64>, HashMap<String, u64>, HashMap<String, u64>) =
            self.read(|mut c| {
                let mut pipe = redis::pipe();
                for k in &status_keys {
                    pipe.zcard(k);
                }
                pipe.hgetall(&upending).hgetall(&urunning);
                async move {
                    let (a, b, c2, d, e, pending, running): (
                        u64,
                        u64,
                        u64,
                        u64,
                        u64,
                        HashMap<String, u64>,
                        HashMap<String, u64>,
                    ) = pipe.query_async(&mut c).await?;
                    Ok((vec![a, b, c2, d, e], pending, running))
                }
            })
            .await?;
        let mut counts = Counts::default();
        for (st, n) in Status::ALL.iter().zip(cards) {
            counts.by_status.insert(st.as_str(), n);
        }
        for (user, n) in pending.into_iter().filter(|(_, n)| *n > 0) {
            counts
                .by_user
                .entry(user)
                .or_insert_with(UserCounts::default)
                .pending = n;
        }
        for (user, n) in running.into_iter().filter(|(_, n)| *n > 0) {
            counts
                .by_user
                .entry(user)
                .or_insert_with(UserCounts::default)
                .running = n;
        }
        Ok(counts)
    }

    async fn register_worker(
        &self,
        info: WorkerInfo,
        now: Millis,
    ) -> Result<WorkerRecord, StoreError> {
        let key = self.key(&format!("worker:{}", info.worker_id));
        let caps = serde_json::to_string(&info.capabilities)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[
                    ("worker_id", info.worker_id.as_str()),
                    ("capabilities", caps.as_str()),
                    ("last_seen", now.to_string().as_str()),
                    // The registration in effect, not the first one.
                    ("registered_at", now.to_string().as_str()),
                ],
            )
            .ignore()
            .sadd(self.key("workers"), &info.worker_id)
            .ignore();
        match &info.comfyui_version {
            Some(v) => pipe.hset(&key, "comfyui_version", v).ignore(),
            None => pipe.hdel(&key, "comfyui_version").ignore(),
        };
        match &info.line {
            Some(l) => pipe.hset(&key, "line", l).ignore(),
            None => pipe.hdel(&key, "line").ignore(),
        };
        match &info.catalogue {
            Some(c) => pipe.hset(&key, "catalogue", c).ignore(),
            None => pipe.hdel(&key, "catalogue").ignore(),
        };
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await.map_err(StoreError::from)?;
        self.get_worker(&info.worker_id)
            .await?
            .ok_or_else(|| BackendError::WorkerVanished.into())
    }

    async fn touch_worker(&self, worker_id: &str, now: Millis) -> Result<(), StoreError> {
        let key = self.key(&format!("worker:{worker_id}"));
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                &key,
                &[("worker_id", worker_id), ("last_seen", &now.to_string())],
            )
            .ignore()
            .hset_nx(&key, "registered_at", now)
            .ignore()
            .hset_nx(&key, "capabilities", "[]")
            .ignore()
            .sadd(self.key("workers"), worker_id)
            .ignore();
        let mut c = self.conn.clone();
        let () = pipe.query_async(&mut c).await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn set_drain(
        &self,
        worker_id: &str,
        drain: bool,
    ) -> Result<Option<WorkerRecord>, StoreError> {
        let key = self.key(&format!("worker:{worker_id}"));
        let mut c = self.conn.clone();
        // Only a worker that exists: HSET on a missing key would create a bare one.
        let known: bool = c.exists(&key).await.map_err(StoreError::from)?;
        if !known {
            return Ok(None);
        }
        let () = if drain {
            c.hset(&key, "drain", "1").await
        } else {
            c.hdel(&key, "drain").await
        }
        .map_err(StoreError::from)?;
        self.get_worker(worker_id).await
    }

    async fn get_worker(&self, worker_id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        let key = self.key(&format!("worker:{worker_id}"));
        let h: HashMap<String, String> = self
            .read(|mut c| {
                let key = key.clone();
                async move { c.hgetall(&key).await }
            })
            .await?;
        worker_from_hash(h)
    }

    async fn list_workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        let set = self.key("workers");
        let mut ids: Vec<String> = self
            .read(|mut c| {
                let set = set.clone();
                async move { c.smembers(&set).await }
            })
            .await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(w) = self.get_worker(&id).await? {
                out.push(w);
            }
        }
        Ok(out)
    }

    async fn record_upload(&self, upload: Upload) -> Result<bool, StoreError> {
        let json = serde_json::to_string(&upload)?;
        let created: i64 = self
            .eval(
                &self.scripts.record_upload,
                &[
                    &upload.user_id,
                    &upload.sha256,
                    &json,
                    &upload.uploaded_at.to_string(),
                ],
                true,
            )
            .await?;
        Ok(created == 1)
    }

    async fn upload(&self, user_id: &str, sha256: &str) -> Result<Option<Upload>, StoreError> {
        let hash = self.key(&format!("upload:{user_id}"));
        let zset = self.key("uploads");
        let member = format!("{user_id}\0{sha256}");
        let (json, at): (Option<String>, Option<f64>) = self
            .read(|mut c| {
                let mut pipe = redis::pipe();
                pipe.hget(&hash, sha256).zscore(&zset, &member);
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        let Some(json) = json else {
            return Ok(None);
        };
        let mut upload: Upload =
            serde_json::from_str(&json).map_err(|_| corrupt("upload record"))?;
        if let Some(at) = at {
            upload.uploaded_at = at as Millis;
        }
        Ok(Some(upload))
    }

    async fn add_file(
        &self,
        id: Uuid,
        lease_token: &str,
        file: FileRecord,
        now: Millis,
    ) -> Result<FileRecord, StoreError> {
        let json = serde_json::to_string(&file)?;
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.add_file,
                &[
                    &id.to_string(),
                    &token_arg(Some(lease_token)),
                    &now.to_string(),
                    file.role.as_str(),
                    &file.subfolder,
                    &file.filename,
                    &json,
                ],
                // Fenced by the token and replacing by name: a repeat changes nothing more.
                true,
            )
            .await?;
        match v.first().cloned().flatten().as_deref() {
            Some("OK") => {
                let position = v
                    .get(1)
                    .cloned()
                    .flatten()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| corrupt("file position"))?;
                Ok(FileRecord {
                    position,
                    created_at: now,
                    ..file
                })
            }
            _ => job_reply(&v).map(|_| file),
        }
    }

    async fn files(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<FileRecord>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .map(|id| self.key(&format!("files:{id}")))
            .collect();
        let values: Vec<Vec<String>> = self
            .read(|mut c| {
                let mut pipe = redis::pipe();
                for k in &keys {
                    pipe.hvals(k);
                }
                async move { pipe.query_async(&mut c).await }
            })
            .await?;
        let mut out = HashMap::new();
        for (id, vals) in ids.iter().zip(values) {
            if vals.is_empty() {
                continue;
            }
            let mut files = vals
                .iter()
                .map(|f| decode_file(f))
                .collect::<Result<Vec<_>, _>>()?;
            sort_files(&mut files);
            out.insert(*id, files);
        }
        Ok(out)
    }

    async fn find_file(
        &self,
        id: Uuid,
        role: FileRole,
        subfolder: &str,
        filename: &str,
    ) -> Result<Option<FileRecord>, StoreError> {
        let key = self.key(&format!("files:{id}"));
        let field = format!("{}\0{subfolder}\0{filename}", role.as_str());
        let v: Option<String> = self
            .read(|mut c| {
                let (key, field) = (key.clone(), field.clone());
                async move { c.hget(&key, &field).await }
            })
            .await?;
        v.map(|f| decode_file(&f)).transpose()
    }

    async fn check_lease(
        &self,
        id: Uuid,
        lease_token: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        let v: Vec<Option<String>> = self
            .eval(
                &self.scripts.check_lease,
                &[
                    &id.to_string(),
                    &token_arg(Some(lease_token)),
                    &now.to_string(),
                ],
                true,
            )
            .await?;
        match v.first().cloned().flatten().as_deref() {
            Some("OK") => Ok(()),
            _ => job_reply(&v).map(|_| ()),
        }
    }

    async fn expire_files(
        &self,
        ended_before: Millis,
        uploaded_before: Millis,
    ) -> Result<FileExpiry, StoreError> {
        let mut report = FileExpiry::default();
        let set = self.key("fjobs");
        let mut cursor: u64 = 0;
        loop {
            let (next, ids): (u64, Vec<String>) = self
                .read(|mut c| {
                    let set = set.clone();
                    async move {
                        redis::cmd("SSCAN")
                            .arg(&set)
                            .arg(cursor)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            if !ids.is_empty() {
                let mut args: Vec<&str> = Vec::with_capacity(ids.len() + 1);
                let cutoff = ended_before.to_string();
                args.push(&cutoff);
                args.extend(ids.iter().map(String::as_str));
                let n: u64 = self
                    .eval(&self.scripts.expire_job_files, &args, true)
                    .await?;
                report.jobs += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        const BATCH: u64 = 500;
        loop {
            let n: u64 = self
                .eval(
                    &self.scripts.expire_uploads,
                    &[&uploaded_before.to_string(), &BATCH.to_string()],
                    true,
                )
                .await?;
            report.uploads += n;
            if n < BATCH {
                break;
            }
        }
        Ok(report)
    }

    async fn referenced_blobs(&self) -> Result<BTreeSet<String>, StoreError> {
        let key = self.key("blobrefs");
        let keys: Vec<String> = self
            .read(|mut c| {
                let key = key.clone();
                async move { c.hkeys(&key).await }
            })
            .await?;
        let mut out: BTreeSet<String> = keys.into_iter().collect();
        // The node catalogues workers registered with (`catalogue` of `P:worker:<id>`).
        let set = self.key("workers");
        let ids: Vec<String> = self
            .read(|mut c| {
                let set = set.clone();
                async move { c.smembers(&set).await }
            })
            .await?;
        if !ids.is_empty() {
            let worker_keys: Vec<String> = ids
                .iter()
                .map(|id| self.key(&format!("worker:{id}")))
                .collect();
            let catalogues: Vec<Option<String>> = self
                .read(|mut c| {
                    let mut pipe = redis::pipe();
                    for k in &worker_keys {
                        pipe.hget(k, "catalogue");
                    }
                    async move { pipe.query_async(&mut c).await }
                })
                .await?;
            out.extend(catalogues.into_iter().flatten());
        }
        Ok(out)
    }
}

/// A file's JSON as the scripts keep it.
fn decode_file(json: &str) -> Result<FileRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(&format!("file record: {e}")))
}

#[cfg(test)]
mod cluster_tests {
    use super::has_hash_tag;

    #[test]
    fn a_prefix_is_a_hash_tag_only_with_something_between_the_braces() {
        assert!(has_hash_tag("{comfy-queue}"));
        assert!(has_hash_tag("site:{q}"));
        assert!(!has_hash_tag("comfy-queue"));
        assert!(!has_hash_tag("{}q"));
        assert!(!has_hash_tag("q{"));
    }
}

//! Reading script and command replies: jobs from the field list the scripts return
//! (`FIELDS`, as in `common.lua`), `{code, ...}` replies into store errors, worker hashes.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use crate::model::{Job, Status, WorkerRecord};
use crate::scheduler::WorkerInfo;
use crate::store::{BackendError, StoreError};

pub(super) const FIELD_COUNT: usize = 19;

pub(super) const FIELDS: [&str; FIELD_COUNT] = [
    "id",
    "seq",
    "user_id",
    "status",
    "priority",
    "created_at",
    "started_at",
    "completed_at",
    "worker_id",
    "metadata",
    "result",
    "error",
    "attempts",
    "max_attempts",
    "cancel_requested",
    "lease_token",
    "lease_until",
    "history",
    "not_before",
];

pub(super) fn corrupt(what: &str) -> StoreError {
    BackendError::Corrupt(format!("redis job {what}")).into()
}

fn num<T: std::str::FromStr>(v: &Option<String>, what: &str) -> Result<T, StoreError> {
    v.as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| corrupt(what))
}

pub(super) fn opt_num(v: &Option<String>) -> Option<i64> {
    v.as_deref()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|f| f as i64)
}

/// Build a job from the script's field list (see `FIELDS` in common.lua).
pub(super) fn parse_job(f: &[Option<String>]) -> Result<Job, StoreError> {
    if f.len() < FIELD_COUNT {
        return Err(corrupt("short reply"));
    }
    let id = f[0]
        .as_deref()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| corrupt("id"))?;
    let status = f[3]
        .as_deref()
        .and_then(Status::parse)
        .ok_or_else(|| corrupt("status"))?;
    let metadata: Value =
        serde_json::from_str(f[9].as_deref().unwrap_or("{}")).map_err(|_| corrupt("metadata"))?;
    let result = match &f[10] {
        Some(r) => Some(serde_json::from_str(r).map_err(|_| corrupt("result"))?),
        None => None,
    };
    let history = serde_json::from_str(f[17].as_deref().unwrap_or("[]"))
        .map_err(|e| corrupt(&format!("history: {e}")))?;
    Ok(Job {
        id,
        seq: num(&f[1], "seq")?,
        user_id: f[2].clone().ok_or_else(|| corrupt("user_id"))?,
        status,
        priority: num(&f[4], "priority")?,
        created_at: opt_num(&f[5]).ok_or_else(|| corrupt("created_at"))?,
        started_at: opt_num(&f[6]),
        completed_at: opt_num(&f[7]),
        worker_id: f[8].clone(),
        metadata,
        result,
        error: f[11].clone(),
        // Left out of the hash while 0 (layout 2).
        attempts: match &f[12] {
            None => 0,
            v => num(v, "attempts")?,
        },
        max_attempts: num(&f[13], "max_attempts")?,
        cancel_requested: f[14].as_deref() == Some("1"),
        lease_expires_at: if status == Status::Running {
            opt_num(&f[16])
        } else {
            None
        },
        history,
        not_before: if status == Status::Pending {
            opt_num(&f[18])
        } else {
            None
        },
    })
}

/// Turn a `{code, ...}` reply into the job or the store error it names.
pub(super) fn job_reply(v: &[Option<String>]) -> Result<(String, Job), StoreError> {
    let code = v.first().cloned().flatten().unwrap_or_default();
    let msg = || v.get(1).cloned().flatten().unwrap_or_default();
    match code.as_str() {
        "OK" | "EXISTS" => Ok((code, parse_job(&v[1..])?)),
        "NOT_FOUND" => Err(StoreError::NotFound),
        "CONFLICT" => Err(StoreError::LeaseConflict(msg())),
        "INVALID_STATE" => Err(StoreError::InvalidState(msg())),
        "QUEUE_FULL" => Err(StoreError::QueueFull(msg().parse().unwrap_or(0))),
        "USER_LIMIT" => Err(StoreError::UserLimit(msg().parse().unwrap_or(0))),
        "UNKNOWN_FILE" => Err(StoreError::UnknownFile(msg().parse().unwrap_or(0))),
        other => Err(BackendError::UnexpectedReply(format!("{other:?}")).into()),
    }
}

pub(super) fn worker_from_hash(
    h: HashMap<String, String>,
) -> Result<Option<WorkerRecord>, StoreError> {
    let Some(worker_id) = h.get("worker_id").cloned() else {
        return Ok(None);
    };
    let capabilities = serde_json::from_str(h.get("capabilities").map_or("[]", String::as_str))
        .map_err(|_| corrupt("worker capabilities"))?;
    Ok(Some(WorkerRecord {
        info: WorkerInfo {
            worker_id,
            comfyui_version: h.get("comfyui_version").cloned(),
            line: h.get("line").cloned(),
            capabilities,
            catalogue: h.get("catalogue").cloned(),
        },
        registered_at: h
            .get("registered_at")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        last_seen: h.get("last_seen").and_then(|s| s.parse().ok()).unwrap_or(0),
        drain: h.get("drain").is_some_and(|d| d == "1"),
    }))
}

//! The job state machine, as pure functions over a stored job. The SQLite backend applies
//! them inside its write transaction; the Redis Lua scripts (`store/redis/*.lua`) implement
//! the same rules, and the shared conformance suite holds both to them.
//!
//! ```text
//! pending --claim--> running --complete--> completed
//!    ^                  |  \--fail--------> failed          (or pending with retry=true
//!    |                  |   \--fail(cancelled)--> cancelled   while attempts remain)
//!    +--lease expired---+  (failed once attempts run out: dead letter)
//! pending --cancel--> cancelled;  running --cancel--> running + cancel_requested
//! ```

use serde_json::Value;

use crate::clock::Millis;
use crate::model::{Attempt, AttemptOutcome, Job, Status};

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The job's status does not allow this change.
    #[error("{0}")]
    InvalidState(String),
    /// The caller does not hold the live lease (stale token, expired, not running).
    #[error("{0}")]
    LeaseConflict(String),
}

/// State of a lease after a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseState {
    /// New expiry.
    pub lease_expires_at: Millis,
    /// A cancel was asked for: the worker should stop and report `cancelled`.
    pub cancel_requested: bool,
}

/// How a worker ends an attempt unsuccessfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub error: String,
    /// Put the job back in the queue if it has attempts left.
    pub retry: bool,
    /// The worker stopped because of a cancel request: the job becomes `cancelled`.
    pub cancelled: bool,
    /// Base delay before a retried job may run again: attempt n waits
    /// `base × 2^(n-1)`, at most `base × 32` (0 = at once).
    pub retry_delay_ms: Millis,
}

/// Who holds a lease, which decides whether complete and fail may come without its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// A registered worker: it got the token and reports with it, so a call without the
    /// token is refused (it can only come from an old holder of an earlier lease).
    Fenced,
    /// A worker that never registered (the original worker): it does not know the token,
    /// so complete and fail without one are accepted while the lease is live.
    Legacy,
}

/// A job with the fields the store keeps but never shows.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    /// The visible job.
    pub job: Job,
    /// Token of the current (or last) lease.
    pub lease_token: Option<String>,
    /// The current (or last) lease needs its token on every call ([`LeaseKind::Fenced`]).
    /// Leases stored before this field existed read as `false` (legacy).
    pub lease_fenced: bool,
}

/// What the reaper did to one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Back to pending.
    Requeued,
    /// Out of attempts: failed for good.
    Dead,
    /// A cancel had been asked for: cancelled.
    Cancelled,
}

fn end_attempt(job: &mut Job, now: Millis, outcome: AttemptOutcome, error: Option<String>) {
    if let Some(last) = job.history.last_mut()
        && last.outcome == AttemptOutcome::Running
    {
        last.ended_at = Some(now);
        last.outcome = outcome;
        last.error = error;
    }
}

/// Lease a pending job to `worker_id`.
pub fn claim(
    s: &mut StoredJob,
    worker_id: &str,
    token: &str,
    kind: LeaseKind,
    lease_ms: Millis,
    now: Millis,
) {
    let job = &mut s.job;
    job.status = Status::Running;
    job.attempts += 1;
    job.started_at = Some(now);
    job.completed_at = None;
    job.worker_id = Some(worker_id.to_owned());
    job.not_before = None;
    job.lease_expires_at = Some(now.saturating_add(lease_ms));
    job.history.push(Attempt {
        attempt: job.attempts,
        worker_id: worker_id.to_owned(),
        started_at: now,
        ended_at: None,
        outcome: AttemptOutcome::Running,
        error: None,
    });
    s.lease_token = Some(token.to_owned());
    s.lease_fenced = kind == LeaseKind::Fenced;
}

/// Check that the caller holds the live lease. `token: None` (old workers) only requires
/// the job to be running with an unexpired lease that an unregistered worker took
/// ([`LeaseKind::Legacy`]); a lease taken by a registered worker needs its token.
pub fn fence(s: &StoredJob, token: Option<&str>, now: Millis) -> Result<(), TransitionError> {
    if s.job.status != Status::Running {
        return Err(TransitionError::LeaseConflict(format!(
            "job is {}, not running",
            s.job.status.as_str()
        )));
    }
    match token {
        Some(t) if s.lease_token.as_deref() != Some(t) => {
            return Err(TransitionError::LeaseConflict(
                "lease token does not match: the job was leased again".into(),
            ));
        }
        None if s.lease_fenced => {
            return Err(TransitionError::LeaseConflict(
                "the job is leased to a registered worker: report with its lease token".into(),
            ));
        }
        _ => {}
    }
    if s.job.lease_expires_at.is_some_and(|until| until < now) {
        return Err(TransitionError::LeaseConflict("lease expired".into()));
    }
    Ok(())
}

/// Renew the lease.
pub fn heartbeat(
    s: &mut StoredJob,
    token: &str,
    lease_ms: Millis,
    now: Millis,
) -> Result<LeaseState, TransitionError> {
    fence(s, Some(token), now)?;
    let until = now.saturating_add(lease_ms);
    s.job.lease_expires_at = Some(until);
    Ok(LeaseState {
        lease_expires_at: until,
        cancel_requested: s.job.cancel_requested,
    })
}

/// A repeat of a fenced call that already took effect (the reply was lost): `true` means
/// answer success without changing anything.
fn is_replay(s: &StoredJob, token: Option<&str>, done: &[AttemptOutcome]) -> bool {
    token.is_some()
        && s.job.status != Status::Running
        && s.lease_token.as_deref() == token
        && s.job
            .history
            .last()
            .is_some_and(|a| done.contains(&a.outcome))
}

/// Finish with a result. Returns false for a harmless replay.
pub fn complete(
    s: &mut StoredJob,
    token: Option<&str>,
    result: Value,
    now: Millis,
) -> Result<bool, TransitionError> {
    if is_replay(s, token, &[AttemptOutcome::Completed]) {
        return Ok(false);
    }
    fence(s, token, now)?;
    let job = &mut s.job;
    job.status = Status::Completed;
    job.completed_at = Some(now);
    job.result = Some(result);
    // The job succeeded: an earlier attempt's error stays in its history entry only.
    job.error = None;
    job.lease_expires_at = None;
    end_attempt(job, now, AttemptOutcome::Completed, None);
    Ok(true)
}

/// End the attempt with an error. Returns false for a harmless replay.
pub fn fail(
    s: &mut StoredJob,
    token: Option<&str>,
    failure: Failure,
    now: Millis,
) -> Result<bool, TransitionError> {
    if is_replay(
        s,
        token,
        &[AttemptOutcome::Failed, AttemptOutcome::Cancelled],
    ) {
        return Ok(false);
    }
    fence(s, token, now)?;
    let job = &mut s.job;
    job.lease_expires_at = None;
    job.error = Some(failure.error.clone());
    if failure.cancelled {
        end_attempt(job, now, AttemptOutcome::Cancelled, Some(failure.error));
        job.status = Status::Cancelled;
        job.completed_at = Some(now);
    } else {
        end_attempt(job, now, AttemptOutcome::Failed, Some(failure.error));
        if failure.retry && job.attempts < job.max_attempts && !job.cancel_requested {
            job.status = Status::Pending;
            let delay = retry_delay(failure.retry_delay_ms, job.attempts);
            job.not_before = (delay > 0).then(|| now.saturating_add(delay));
        } else {
            job.status = Status::Failed;
            job.completed_at = Some(now);
        }
    }
    Ok(true)
}

/// Give a job back unrun (the worker's ComfyUI cannot run it): pending again at once, the
/// attempt not counted (a cancel asked for meanwhile cancels it). Only with the lease
/// token. Returns false for a harmless replay.
pub fn hand_back(
    s: &mut StoredJob,
    token: &str,
    reason: String,
    now: Millis,
) -> Result<bool, TransitionError> {
    if is_replay(s, Some(token), &[AttemptOutcome::HandedBack]) {
        return Ok(false);
    }
    fence(s, Some(token), now)?;
    let job = &mut s.job;
    job.lease_expires_at = None;
    end_attempt(job, now, AttemptOutcome::HandedBack, Some(reason));
    job.attempts = job.attempts.saturating_sub(1);
    job.not_before = None;
    if job.cancel_requested {
        job.status = Status::Cancelled;
        job.completed_at = Some(now);
    } else {
        job.status = Status::Pending;
    }
    Ok(true)
}

/// Fail a pending job that no worker can run. Returns false (nothing changed) for a job
/// that is not pending any more.
pub fn fail_pending(s: &mut StoredJob, error: String, now: Millis) -> bool {
    let job = &mut s.job;
    if job.status != Status::Pending {
        return false;
    }
    job.status = Status::Failed;
    job.completed_at = Some(now);
    job.not_before = None;
    job.error = Some(error);
    true
}

/// Delay before attempt `attempts + 1`: `base × 2^(attempts-1)`, at most `base × 32`.
pub fn retry_delay(base: Millis, attempts: u32) -> Millis {
    let exp = attempts.saturating_sub(1).min(5);
    base.max(0).saturating_mul(1 << exp)
}

/// Whether a pending job may be claimed at `now`.
pub fn is_due(job: &Job, now: Millis) -> bool {
    job.not_before.is_none_or(|t| t <= now)
}

/// Whether the lease of a running job ran out before `now`.
pub fn lease_expired(s: &StoredJob, now: Millis) -> bool {
    s.job.status == Status::Running && s.job.lease_expires_at.is_some_and(|u| u < now)
}

/// Take back a job whose lease ran out.
pub fn expire(s: &mut StoredJob, now: Millis) -> Expired {
    let job = &mut s.job;
    let worker = job.worker_id.clone().unwrap_or_default();
    let msg = format!("lease expired: worker {worker} stopped heartbeating");
    end_attempt(job, now, AttemptOutcome::LeaseExpired, Some(msg.clone()));
    job.lease_expires_at = None;
    if job.cancel_requested {
        job.status = Status::Cancelled;
        job.completed_at = Some(now);
        Expired::Cancelled
    } else if job.attempts < job.max_attempts {
        job.status = Status::Pending;
        job.error = Some(msg);
        Expired::Requeued
    } else {
        job.status = Status::Failed;
        job.completed_at = Some(now);
        job.error = Some(format!("{msg}; gave up after {} attempts", job.attempts));
        Expired::Dead
    }
}

/// Cancel: pending → cancelled; running → cancel requested. Returns true if the job is now
/// cancelled (false: a cancel request was recorded).
pub fn cancel(s: &mut StoredJob, now: Millis) -> Result<bool, TransitionError> {
    let job = &mut s.job;
    match job.status {
        Status::Pending => {
            job.status = Status::Cancelled;
            job.completed_at = Some(now);
            job.not_before = None;
            Ok(true)
        }
        Status::Running => {
            job.cancel_requested = true;
            Ok(false)
        }
        st => Err(TransitionError::InvalidState(format!(
            "job is already {}",
            st.as_str()
        ))),
    }
}

/// Change the priority of a pending job.
pub fn set_priority(s: &mut StoredJob, priority: u8) -> Result<(), TransitionError> {
    if s.job.status != Status::Pending {
        return Err(TransitionError::InvalidState(format!(
            "only pending jobs can be reprioritised; job is {}",
            s.job.status.as_str()
        )));
    }
    s.job.priority = priority;
    Ok(())
}

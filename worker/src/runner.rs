//! One job end to end: submit through the adapter, follow it, heartbeat the
//! lease with progress, report outputs or a classified error.

use crate::classify::{ErrorClass, JobError};
use crate::files::OutputUploads;
use crate::follow::{Follow, FollowEnd, FollowOptions, ProgressTracker, Stop};
use crate::health::{CurrentJob, Health, Outcome};
use crate::queue_client::{FailRequest, LeasedJob, Progress, QueueClient, QueueError};
use crate::relay::Relay;
use comfy_adapter::ComfyAdapter;
use comfy_adapter::model::job::{JobState, JobStatus};
use comfy_adapter::model::output::Output;
use comfy_adapter::model::prompt::PromptRequest;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::Instrument;

/// What a job runs against.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The queue.
    pub queue: QueueClient,
    /// The ComfyUI server.
    pub adapter: Arc<dyn ComfyAdapter>,
    /// Its version string.
    pub comfyui_version: Option<String>,
    /// Its node catalogue (which prompt inputs name files).
    pub catalogue: Arc<crate::files::CatalogueCache>,
    /// This worker's WebSocket client id.
    pub client_id: String,
    /// The worker's socket to ComfyUI (`None`: jobs are followed by polling only).
    pub socket: Option<crate::socket::SocketHandle>,
    /// Watch timings.
    pub follow: FollowOptions,
    /// Heartbeat period override.
    pub heartbeat: Option<Duration>,
    /// Health record.
    pub health: Arc<Health>,
    /// Forwarding of live events to the queue (`None`: off).
    pub relay: Option<crate::relay::RelayOptions>,
    /// Opens the Comfy account secrets a job carries sealed.
    pub sealing_key: Option<comfy_sealed::SealKey>,
}

/// How the job ended for the worker.
#[derive(Debug)]
pub enum JobEnd {
    /// Reported complete.
    Completed,
    /// Reported failed (`retry` says whether the queue requeues it).
    Failed(JobError),
    /// Reported cancelled.
    Cancelled,
    /// Handed back on shutdown.
    HandedBack,
    /// The lease was lost; nothing reported.
    LeaseLost,
}

impl JobEnd {
    /// The health counter this end maps to.
    pub fn outcome(&self) -> Outcome {
        match self {
            JobEnd::Completed => Outcome::Completed,
            JobEnd::Failed(e) if e.retryable => Outcome::Retried,
            JobEnd::Failed(_) => Outcome::Failed,
            JobEnd::Cancelled => Outcome::Cancelled,
            JobEnd::HandedBack => Outcome::HandedBack,
            JobEnd::LeaseLost => Outcome::LeaseLost,
        }
    }
}

fn node_classes(prompt: &Map<String, Value>) -> HashMap<String, String> {
    prompt
        .iter()
        .map(|(id, n)| {
            let class = n
                .get("class_type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            (id.clone(), class)
        })
        .collect()
}

fn output_json(adapter: &dyn ComfyAdapter, o: &Output) -> Value {
    let view_url = match (&o.view_url, &o.file) {
        (Some(u), _) if u.starts_with("http") => Some(u.clone()),
        (_, Some(f)) => Some(adapter.view_url(f)),
        (u, None) => u.clone(),
    };
    json!({
        "node_id": o.node_id,
        "kind": o.kind,
        "key": o.key,
        "filename": o.file.as_ref().map(|f| f.filename.clone()),
        "subfolder": o.file.as_ref().map(|f| f.subfolder.clone()),
        "type": o.file.as_ref().map(|f| f.folder.as_str().to_owned()),
        "view_url": view_url,
        "text": o.text,
        "cached": o.cached,
    })
}

fn ms_since_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Where the per-stage times of each job are logged (at debug).
pub const TIMING_TARGET: &str = "comfy_worker::timing";

/// How long a job waits for the worker's socket while it is being opened.
const GREETING_WAIT: Duration = Duration::from_secs(2);

/// The time each stage of one job took, logged at debug (target [`TIMING_TARGET`], field
/// `stages`: `name=<µs>us` pairs in order) when the job has been reported.
#[derive(Debug)]
struct Stages {
    last: Instant,
    spent: Vec<(&'static str, Duration)>,
}

impl Stages {
    fn new() -> Self {
        Stages {
            last: Instant::now(),
            spent: Vec::with_capacity(10),
        }
    }

    /// `stage` ended now (it began where the previous one ended).
    fn mark(&mut self, stage: &'static str) {
        let now = Instant::now();
        self.spent.push((stage, now - self.last));
        self.last = now;
    }

    fn log(&self) {
        if tracing::enabled!(target: TIMING_TARGET, tracing::Level::DEBUG) {
            let stages = self
                .spent
                .iter()
                .map(|(n, d)| format!("{n}={}us", d.as_micros()))
                .collect::<Vec<_>>()
                .join(" ");
            tracing::debug!(target: TIMING_TARGET, %stages, "job stages");
        }
    }
}

/// Runs `job` to its end and reports it. `hand_back` turning true asks to
/// interrupt the prompt and give the job back (shutdown past the grace period).
pub async fn run_job(ctx: &RunContext, job: LeasedJob, hand_back: watch::Receiver<bool>) -> JobEnd {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        user_id = %job.user_id,
        prompt_id = tracing::field::Empty,
        attempt = job.attempt,
    );
    run_job_inner(ctx, job, hand_back).instrument(span).await
}

async fn run_job_inner(
    ctx: &RunContext,
    job: LeasedJob,
    mut hand_back: watch::Receiver<bool>,
) -> JobEnd {
    let leased_at = Instant::now();
    let mut stages = Stages::new();
    let prompt_id = uuid::Uuid::new_v4().to_string();
    tracing::Span::current().record("prompt_id", prompt_id.as_str());
    tracing::info!("job leased; running");
    ctx.health.set_job(Some(CurrentJob {
        job_id: job.id.to_string(),
        user_id: job.user_id.clone(),
        attempt: job.attempt,
        progress: Progress {
            prompt_id: Some(prompt_id.clone()),
            ..Progress::default()
        },
    }));

    let (stop_tx, mut stop_rx) = watch::channel(None::<Stop>);
    let (progress_tx, progress_rx) = watch::channel(Progress {
        prompt_id: Some(prompt_id.clone()),
        ..Progress::default()
    });

    // Heartbeats: renew the lease with progress; a cancel request or a lost
    // lease stops the prompt; so does a hand-back on shutdown.
    let every = ctx.heartbeat.unwrap_or_else(|| {
        Duration::from_secs_f64(job.heartbeat_interval_seconds.clamp(0.1, 300.0))
    });
    let heartbeat = {
        let queue = ctx.queue.clone();
        let health = ctx.health.clone();
        let (job_id, token) = (job.id, job.lease_token.clone());
        let stop_tx = stop_tx.clone();
        let progress_rx = progress_rx.clone();
        tokio::spawn(
            async move {
                let mut watching_hand_back = true;
                // A hand-back (shutdown) stops the prompt; the lease is still renewed
                // while it is being stopped.
                macro_rules! or_hand_back {
                    ($fut:expr) => {
                        tokio::select! {
                            r = $fut => Some(r),
                            r = hand_back.wait_for(|v| *v), if watching_hand_back => {
                                watching_hand_back = false;
                                if r.is_ok() {
                                    stop_tx.send_replace(Some(Stop::HandBack));
                                }
                                None
                            }
                        }
                    };
                }
                loop {
                    let started = tokio::time::Instant::now();
                    let p = progress_rx.borrow().clone();
                    health.set_progress(p.clone());
                    // Each heartbeat renews the lease and then waits up to one period
                    // for a cancel request, so a cancel arrives at once (pushed), not
                    // at the next period.
                    match or_hand_back!(queue.heartbeat(job_id, &token, &p, every)) {
                        Some(Ok(r)) if r.cancel_requested => {
                            tracing::info!("cancel requested through the queue");
                            stop_tx.send_if_modified(|s| {
                                if s.is_none() {
                                    *s = Some(Stop::Cancel);
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                        Some(Ok(_)) | None => {}
                        Some(Err(QueueError::LeaseLost(why))) => {
                            tracing::warn!(%why, "lease lost; abandoning the job");
                            stop_tx.send_replace(Some(Stop::Abandon));
                            return;
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                    // Keep the period when the answer came early (a failure, a
                    // cancel already seen, a queue that does not wait).
                    let _ = or_hand_back!(tokio::time::sleep_until(started + every));
                }
            }
            .in_current_span(),
        )
    };

    let end = execute(
        ctx,
        &job,
        &prompt_id,
        &mut stop_rx,
        &progress_tx,
        &mut stages,
    )
    .await;
    heartbeat.abort();
    let total_ms = leased_at.elapsed().as_millis() as u64;
    let reported = report(ctx, &job, end, total_ms).await;
    stages.mark("report");
    stages.log();
    ctx.health.set_job(None);
    ctx.health.record(reported.outcome(), total_ms);
    reported
}

/// What the prompt came to, before reporting.
enum Ran {
    Succeeded(Value),
    Failed(JobError),
    Stopped(Stop),
}

/// What a job's `workflow` asks ComfyUI to run: an API-format prompt, or
/// the whole body of ComfyUI's `POST /prompt` as a frontend sent it
/// (`{"prompt": {...}, "extra_data": {...}, "partial_execution_targets": [...]}`,
/// what the gateway submits), whose `extra_data` (`extra_pnginfo` with the UI
/// workflow, which SaveImage embeds in the PNG) and output targets are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptBody {
    /// The API-format graph.
    pub prompt: Map<String, Value>,
    /// `extra_data` (empty for a bare prompt).
    pub extra_data: Map<String, Value>,
    /// Output nodes to run, when only some.
    pub partial_execution_targets: Option<Vec<String>>,
}

impl PromptBody {
    /// Reads a job's workflow; `None` when it is not a JSON object.
    pub fn of(workflow: &Value) -> Option<PromptBody> {
        let map = workflow.as_object()?;
        if !comfy_routing::is_prompt_body(map) {
            return Some(PromptBody {
                prompt: map.clone(),
                extra_data: Map::new(),
                partial_execution_targets: None,
            });
        }
        Some(PromptBody {
            prompt: map.get("prompt")?.as_object()?.clone(),
            extra_data: map
                .get("extra_data")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            partial_execution_targets: map
                .get("partial_execution_targets")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                }),
        })
    }
}

async fn execute(
    ctx: &RunContext,
    job: &LeasedJob,
    prompt_id: &str,
    stop: &mut watch::Receiver<Option<Stop>>,
    progress: &watch::Sender<Progress>,
    stages: &mut Stages,
) -> Ran {
    let Some(body) = PromptBody::of(&job.workflow) else {
        return Ran::Failed(JobError::new(
            ErrorClass::ValidationError,
            "the workflow is not an API-format prompt (a JSON object of nodes)",
        ));
    };
    let PromptBody {
        prompt,
        mut extra_data,
        partial_execution_targets,
    } = body;
    // The account secrets exist in clear only here, on their way to ComfyUI.
    if let Err(e) = comfy_sealed::open(&mut extra_data, ctx.sealing_key.as_ref(), &job.user_id) {
        tracing::warn!(error = %e, "the job's Comfy account secrets were not opened: API nodes run signed out");
    }
    if prompt.contains_key("nodes") && prompt.contains_key("links") {
        return Ran::Failed(JobError::new(
            ErrorClass::ValidationError,
            "the workflow is in UI (graph) format; submit the API format (graphToPrompt().output)",
        ));
    }
    let mut prompt = prompt;
    if let Err(e) = crate::files::prepare_inputs(
        &ctx.queue,
        ctx.adapter.as_ref(),
        &ctx.catalogue,
        job,
        &mut prompt,
    )
    .await
    {
        return files_failed(e);
    }
    stages.mark("prepare");
    let classes = node_classes(&prompt);
    let mut request = PromptRequest::new(prompt)
        .with_client_id(&ctx.client_id)
        .with_prompt_id(prompt_id);
    request.extra_data = extra_data;
    request.partial_execution_targets = partial_execution_targets;

    // Take the socket's events before submitting, so no event of this prompt is missed.
    // The socket was greeted (registered by ComfyUI) when it opened; it is waited for only
    // while it is being opened (the first job after detection, or after a reconnect).
    let events = match &ctx.socket {
        Some(socket) => {
            let events = socket.subscribe();
            if socket.wait_open(GREETING_WAIT).await.is_none() {
                tracing::debug!(link = ?socket.link(), "WebSocket not open; following by polling until it is");
            }
            Some(events)
        }
        None => None,
    };
    stages.mark("events");
    let submitted_ms = ms_since_epoch();
    let submitted = Instant::now();
    if let Err(e) = ctx.adapter.submit(&request).await {
        let err = JobError::from_comfy(&e);
        tracing::warn!(error = %err, "submission failed");
        return Ran::Failed(err);
    }
    tracing::info!("prompt submitted");
    stages.mark("submit");
    let relay = ctx.relay.map(|o| {
        let token = job.lease_token.as_str();
        Relay::start(ctx.queue.clone(), job.id, token, job.attempt, prompt_id, o)
    });
    // Each output is stored in the queue the moment ComfyUI announces it.
    let uploads = OutputUploads::start(ctx.queue.clone(), ctx.adapter.clone(), job);
    let follow = Follow {
        adapter: &ctx.adapter,
        prompt_id,
        options: ctx.follow,
        tap: relay.as_ref().and_then(Relay::tap),
        uploads: &uploads,
    };
    let mut tracker = ProgressTracker::new(prompt_id, classes);
    let followed = follow.run(events, &mut tracker, progress, stop).await;
    stages.mark("follow");
    // The last events (execution_success) reach watchers before the job's report: the
    // relay is flushed while the outputs are stored, and both end before the report.
    let flushed = async {
        if let Some(r) = relay {
            ctx.health.count_events(&r.finish().await);
        }
    };
    let ran = match followed {
        FollowEnd::Stopped(s) => {
            flushed.await;
            return Ran::Stopped(s);
        }
        FollowEnd::Failed(e) => {
            flushed.await;
            return Ran::Failed(e);
        }
        FollowEnd::Finished {
            status,
            cancel_requested,
        } => {
            let ended = Ended {
                submitted_ms,
                submitted,
                cancel_requested,
                uploads,
            };
            let (ran, ()) = tokio::join!(finished(ctx, job, *status, ended, stages), flushed);
            ran
        }
    };
    // Whatever the flush took beyond the outputs.
    stages.mark("relay");
    ran
}

/// A file step that ended the job.
fn files_failed(e: crate::files::FilesError) -> Ran {
    match e {
        crate::files::FilesError::LeaseLost(why) => {
            tracing::warn!(%why, "lease lost while moving files; abandoning the job");
            Ran::Stopped(Stop::Abandon)
        }
        crate::files::FilesError::Job(err) => Ran::Failed(err),
    }
}

/// When the prompt was submitted, and whether a cancel was requested
/// before it ended.
struct Ended {
    submitted_ms: i64,
    submitted: Instant,
    cancel_requested: bool,
    /// The outputs stored (or being stored) so far.
    uploads: OutputUploads,
}

/// What the job's result says about a cancel ComfyUI did not carry out.
const CANCEL_TOO_LATE: &str = "the cancel came too late: ComfyUI was asked to interrupt the prompt, but it checks for interrupts only between nodes (and in nodes that report progress), and the prompt ran to its end and wrote its outputs";

async fn finished(
    ctx: &RunContext,
    job: &LeasedJob,
    mut status: JobStatus,
    ended: Ended,
    stages: &mut Stages,
) -> Ran {
    let Ended {
        submitted_ms,
        submitted,
        cancel_requested,
        uploads,
    } = ended;
    match status.state {
        JobState::Succeeded => {}
        JobState::Failed => {
            let mut err = match &status.failure {
                Some(f) => JobError::from_failure(f),
                None => JobError::new(ErrorClass::ExecutionError, "ComfyUI says the prompt failed"),
            };
            // Cancelled by its user: not worth another attempt.
            err.retryable &= !cancel_requested;
            return Ran::Failed(err);
        }
        // ComfyUI interrupted (or dropped) the prompt as asked.
        _ if cancel_requested => return Ran::Stopped(Stop::Cancel),
        _ => return Ran::Failed(JobError::from_interruption(status.interruption.as_ref())),
    }
    if status.outputs.is_empty() && status.outputs_count.unwrap_or(0) > 0 {
        match ctx.adapter.outputs(&status.prompt_id).await {
            Ok(o) => status.outputs = o,
            Err(e) => tracing::warn!(error = %e, "could not read the outputs"),
        }
        stages.mark("outputs");
    }
    let observed_ms = submitted.elapsed().as_millis() as i64;
    let execution_ms = status.execution_ms();
    let queued_ms = status
        .started_at_ms
        .map(|s| s - status.created_at_ms.unwrap_or(submitted_ms))
        .map(|q| q.max(0));
    let mut outputs: Vec<Value> = status
        .outputs
        .iter()
        .map(|o| output_json(ctx.adapter.as_ref(), o))
        .collect();
    match uploads.finish(&status.outputs).await {
        Ok(stored) => crate::files::annotate_outputs(&mut outputs, &stored),
        Err(e) => return files_failed(e),
    }
    stages.mark("store");
    tracing::info!(outputs = outputs.len(), ?execution_ms, "prompt succeeded");
    let mut result = json!({
        "prompt_id": status.prompt_id,
        "worker_id": ctx.queue.worker_id(),
        "attempt": job.attempt,
        "comfyui": {
            "url": ctx.adapter.base_url().as_str(),
            "version": ctx.comfyui_version,
            "line": ctx.adapter.line(),
        },
        "outputs": outputs,
        "cached_nodes": status.cached_nodes,
        "timings": {
            "comfy_queued_ms": queued_ms,
            "comfy_execution_ms": execution_ms,
            "submit_to_done_ms": observed_ms,
        },
    });
    if cancel_requested {
        tracing::info!("cancel requested, but ComfyUI finished the prompt; reporting it completed");
        result["cancel"] = json!({
            "requested": true,
            "honoured": false,
            "note": CANCEL_TOO_LATE,
        });
    }
    Ran::Succeeded(result)
}

async fn report(ctx: &RunContext, job: &LeasedJob, ran: Ran, total_ms: u64) -> JobEnd {
    let token = job.lease_token.as_str();
    // Every end but success is a fail report; only these facts differ.
    let (error, retry, cancelled, end) = match ran {
        Ran::Succeeded(mut result) => {
            if let Some(t) = result.get_mut("timings").and_then(Value::as_object_mut) {
                t.insert("total_ms".into(), json!(total_ms));
            }
            let sent = ctx.queue.complete(job.id, token, &result).await;
            return reported(sent, JobEnd::Completed, total_ms);
        }
        Ran::Failed(err) => {
            tracing::warn!(class = err.class.as_str(), retry = err.retryable, error = %err.message, "job failed");
            (err.report_text(), err.retryable, false, JobEnd::Failed(err))
        }
        Ran::Stopped(Stop::Abandon) => return JobEnd::LeaseLost,
        Ran::Stopped(Stop::Cancel) => {
            let err = JobError::new(
                ErrorClass::Cancelled,
                "cancelled through the queue; ComfyUI interrupted the prompt (or dropped it from its queue)",
            );
            (err.report_text(), false, true, JobEnd::Cancelled)
        }
        Ran::Stopped(Stop::HandBack) => {
            let err = JobError::new(
                ErrorClass::Shutdown,
                "the worker is shutting down; handed back",
            );
            (err.report_text(), true, false, JobEnd::HandedBack)
        }
    };
    let r = FailRequest {
        error,
        retry: Some(retry),
        cancelled: Some(cancelled),
        lease_token: Some(token.to_owned()),
        unfit: None,
    };
    reported(ctx.queue.fail(job.id, &r).await, end, total_ms)
}

/// What a job ended as, once its report was sent (or could not be).
fn reported(result: Result<(), QueueError>, end: JobEnd, total_ms: u64) -> JobEnd {
    match result {
        Ok(()) => {
            tracing::info!(total_ms, "reported");
            end
        }
        Err(QueueError::LeaseLost(why)) => {
            tracing::warn!(%why, "lease lost before the report; the queue has re-leased the job");
            JobEnd::LeaseLost
        }
        Err(e) => {
            // The lease will expire and the queue will retry the job.
            tracing::error!(error = %e, "could not report the job; its lease will expire");
            end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PromptBody;
    use serde_json::json;

    #[test]
    fn a_bare_prompt_is_the_prompt() {
        let w = json!({"1": {"class_type": "EmptyImage", "inputs": {}}, "prompt": {"class_type": "X", "inputs": {}}});
        let b = PromptBody::of(&w).expect("object");
        assert_eq!(
            b.prompt.len(),
            2,
            "a node named `prompt` beside others is a node"
        );
        assert!(b.extra_data.is_empty());
        assert_eq!(b.partial_execution_targets, None);
    }

    #[test]
    fn a_prompt_body_keeps_extra_data_and_targets() {
        let w = json!({
            "prompt": {"1": {"class_type": "EmptyImage", "inputs": {}}},
            "extra_data": {"extra_pnginfo": {"workflow": {"id": "w"}}},
            "partial_execution_targets": ["9"],
            "client_id": "c",
        });
        let b = PromptBody::of(&w).expect("object");
        assert_eq!(b.prompt.keys().collect::<Vec<_>>(), ["1"]);
        assert_eq!(b.extra_data["extra_pnginfo"]["workflow"]["id"], "w");
        assert_eq!(b.partial_execution_targets, Some(vec!["9".to_owned()]));
        assert!(PromptBody::of(&json!([1])).is_none());
    }
}

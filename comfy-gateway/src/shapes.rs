//! Queue jobs in the shapes a ComfyUI line answers: `/queue` items,
//! `/history` entries, `/api/jobs` items and `/api/jobs/{id}`. Which fields a
//! release has comes from the adapter's releases table (`Line`,
//! `Difference`), never from version strings here.
//!
//! A remote output is named with the subfolder `comfy-queue/<job id>[/<its
//! own subfolder>]`, so the frontend's `/view` of it comes back to the
//! gateway, which serves it from the queue ([`remote_file`]).

use crate::queue::{JobState, QueueJob};
use comfy_adapter::{Difference, Line};
use comfy_queue_api::{FileRole, JobFile};
use semver::Version;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// The subfolder prefix of remote outputs.
pub const REMOTE_SUBFOLDER: &str = "comfy-queue";

/// The subfolder a remote output of job `id` is shown under.
pub fn remote_subfolder(id: Uuid, subfolder: &str) -> String {
    if subfolder.is_empty() {
        format!("{REMOTE_SUBFOLDER}/{id}")
    } else {
        format!("{REMOTE_SUBFOLDER}/{id}/{subfolder}")
    }
}

/// The job and the file's own subfolder, when `subfolder` names a remote output.
pub fn remote_file(subfolder: &str) -> Option<(Uuid, &str)> {
    let rest = subfolder
        .strip_prefix(REMOTE_SUBFOLDER)?
        .strip_prefix('/')?;
    let (id, own) = rest.split_once('/').unwrap_or((rest, ""));
    Some((Uuid::parse_str(id).ok()?, own))
}

/// What the gateway stores with a job (`metadata.comfy`) to answer in ComfyUI's shapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComfyMeta {
    /// ComfyUI's `number` (queue order; negative for `front`).
    pub number: f64,
    /// The socket that submitted it.
    pub client_id: Option<String>,
    /// Submit time, ms since the epoch.
    pub create_time: i64,
    /// The output nodes.
    pub outputs_to_execute: Vec<String>,
    /// `extra_pnginfo.workflow.id`.
    pub workflow_id: Option<Value>,
}

impl ComfyMeta {
    /// The `metadata` object of a submit.
    pub fn to_metadata(&self) -> Value {
        json!({"comfy": {
            "number": self.number,
            "client_id": self.client_id,
            "create_time": self.create_time,
            "outputs_to_execute": self.outputs_to_execute,
            "workflow_id": self.workflow_id,
            "source": "comfy-gateway",
        }})
    }

    /// Read back from a job (defaults for jobs the gateway did not submit).
    pub fn of(job: &QueueJob) -> ComfyMeta {
        let c = job.metadata.as_ref().and_then(|m| m.get("comfy"));
        let get = |k: &str| c.and_then(|c| c.get(k));
        ComfyMeta {
            number: get("number").and_then(Value::as_f64).unwrap_or(0.0),
            client_id: get("client_id").and_then(Value::as_str).map(str::to_owned),
            create_time: get("create_time")
                .and_then(Value::as_i64)
                .unwrap_or_else(|| ms(&job.created_at).unwrap_or_default()),
            outputs_to_execute: get("outputs_to_execute")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            workflow_id: get("workflow_id").filter(|v| !v.is_null()).cloned(),
        }
    }
}

/// RFC 3339 → ms since the epoch.
pub fn ms(rfc3339: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The prompt and extra data of a job, when the gateway still has them
/// (the queue never gives a workflow back).
#[derive(Debug, Clone, Default)]
pub struct Submitted {
    /// The API prompt.
    pub prompt: Value,
    /// `extra_data` without secrets.
    pub extra_data: Value,
}

/// The ComfyUI failure a job's error names (the worker's JSON report).
#[derive(Debug, Clone, Default)]
pub struct Failure {
    /// Failing node.
    pub node_id: Option<String>,
    /// Its class.
    pub node_type: Option<String>,
    /// Python exception type.
    pub exception_type: String,
    /// Its message.
    pub exception_message: String,
    /// Traceback lines.
    pub traceback: Vec<Value>,
}

impl Failure {
    /// From the job's `error` (a JSON report or plain text).
    pub fn of(job: &QueueJob) -> Failure {
        let text = job.error.clone().unwrap_or_default();
        let report: Option<Value> = serde_json::from_str(&text).ok();
        let detail = report.as_ref().and_then(|r| r.get("detail"));
        let message = report
            .as_ref()
            .and_then(|r| r.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or(text.clone());
        let s = |k: &str| {
            detail
                .and_then(|d| d.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Failure {
            node_id: s("node_id"),
            node_type: s("node_type"),
            exception_type: s("exception_type").unwrap_or_else(|| {
                report
                    .as_ref()
                    .and_then(|r| r.get("class"))
                    .and_then(Value::as_str)
                    .unwrap_or("Exception")
                    .to_owned()
            }),
            exception_message: s("exception_message").unwrap_or(message),
            traceback: detail
                .and_then(|d| d.get("traceback"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        }
    }
}

impl Failure {
    /// ComfyUI's `execution_error` of job `id` (the jobs API's field, and the
    /// history message without its `timestamp`).
    pub fn to_json(&self, id: Uuid) -> Value {
        json!({
            "prompt_id": id.to_string(),
            "node_id": self.node_id,
            "node_type": self.node_type,
            "executed": [],
            "exception_message": self.exception_message,
            "exception_type": self.exception_type,
            "traceback": self.traceback,
            "current_inputs": {},
            "current_outputs": {},
        })
    }
}

/// The shapes of one ComfyUI release.
#[derive(Debug, Clone)]
pub struct Shapes {
    version: Version,
    line: Line,
}

impl Shapes {
    /// The shapes `version` answers in.
    pub fn new(version: Version) -> Shapes {
        let line = Line::for_version(&version);
        Shapes { version, line }
    }

    /// How the release words its validation answers.
    pub fn wording(&self) -> comfy_adapter::validate::Wording {
        comfy_adapter::validate::Wording::of(self.line, &self.version)
    }

    /// The release's line.
    pub fn line(&self) -> Line {
        self.line
    }

    /// Whether the release has the jobs API (`/api/jobs`).
    pub fn has_jobs_api(&self) -> bool {
        self.line != Line::Legacy
    }

    /// Whether the release has the cancel routes (`/api/jobs/{id}/cancel`).
    pub fn has_cancel_api(&self) -> bool {
        self.line == Line::CancelApi
    }

    /// Whether the jobs API says `cancelled` for an interrupted prompt (0.9+).
    pub fn says_cancelled(&self) -> bool {
        self.has(Difference::CancelledStatus)
    }

    fn has(&self, d: Difference) -> bool {
        d.applies_to(&self.version)
    }

    /// Whether ComfyUI would still list the job: a pending job that was
    /// cancelled is deleted from ComfyUI's queue and leaves no trace.
    pub fn visible(job: &QueueJob) -> bool {
        !(job.status == JobState::Cancelled && job.started_at.is_none())
    }

    /// The jobs API status.
    pub fn jobs_status(&self, job: &QueueJob) -> &'static str {
        match job.status {
            JobState::Pending => "pending",
            JobState::Running => "in_progress",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled if self.says_cancelled() => "cancelled",
            JobState::Cancelled => "failed",
        }
    }

    /// `extra_data` as ComfyUI keeps it (with `client_id`, and `create_time` from 0.6).
    fn extra_data(&self, meta: &ComfyMeta, submitted: Option<&Submitted>) -> Value {
        let mut extra = submitted
            .and_then(|s| s.extra_data.as_object().cloned())
            .unwrap_or_default();
        if let Some(c) = &meta.client_id {
            extra.insert("client_id".into(), json!(c));
        }
        if self.has(Difference::CreateTime) {
            extra.insert("create_time".into(), json!(meta.create_time));
        }
        Value::Object(extra)
    }

    /// The five-element prompt tuple of `/queue` and `/history`.
    pub fn prompt_tuple(&self, job: &QueueJob, submitted: Option<&Submitted>) -> Value {
        let meta = ComfyMeta::of(job);
        json!([
            number_value(meta.number),
            job.id.to_string(),
            submitted
                .map(|s| s.prompt.clone())
                .unwrap_or_else(|| json!({})),
            self.extra_data(&meta, submitted),
            meta.outputs_to_execute,
        ])
    }

    /// `GET /queue`: the user's running and pending jobs.
    pub fn queue(&self, jobs: &[QueueJob], submitted: &dyn Fn(Uuid) -> Option<Submitted>) -> Value {
        let mut running = Vec::new();
        let mut pending = Vec::new();
        let mut by_number: Vec<&QueueJob> = jobs.iter().filter(|j| j.status.active()).collect();
        by_number.sort_by(|a, b| ComfyMeta::of(a).number.total_cmp(&ComfyMeta::of(b).number));
        for j in by_number {
            let tuple = self.prompt_tuple(j, submitted(j.id).as_ref());
            match j.status {
                JobState::Running => running.push(tuple),
                _ => pending.push(tuple),
            }
        }
        json!({"queue_running": running, "queue_pending": pending})
    }

    /// Remote outputs of a job as ComfyUI's `outputs` (node → media → items).
    pub fn outputs(&self, job: &QueueJob) -> Map<String, Value> {
        let mut out: Map<String, Value> = Map::new();
        let result_outputs = job
            .result
            .as_ref()
            .and_then(|r| r.get("outputs"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for o in &result_outputs {
            let Some(node) = o.get("node_id").and_then(Value::as_str) else {
                continue;
            };
            let key = output_key(o);
            let item = match (o.get("filename").and_then(Value::as_str), o.get("text")) {
                (Some(filename), _) => {
                    let sub = o.get("subfolder").and_then(Value::as_str).unwrap_or("");
                    let folder = o.get("type").and_then(Value::as_str).unwrap_or("output");
                    json!({
                        "filename": filename,
                        "subfolder": remote_subfolder(job.id, sub),
                        "type": folder,
                    })
                }
                (None, Some(text)) if !text.is_null() => text.clone(),
                _ => continue,
            };
            let node_out = out
                .entry(node.to_owned())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|m| m.entry(key).or_insert_with(|| json!([])));
            if let Some(Value::Array(items)) = node_out {
                items.push(item);
            }
            if o.get("animated").and_then(Value::as_bool) == Some(true)
                && let Some(m) = out.get_mut(node).and_then(Value::as_object_mut)
            {
                m.insert("animated".into(), json!([true]));
            }
        }
        // Files the result does not list (a job reported by an older worker).
        if result_outputs.is_empty() {
            for f in job.files.iter().filter(|f| f.role != FileRole::Input) {
                let node = f.node_id.clone().unwrap_or_else(|| "0".into());
                let entry = out.entry(node).or_insert_with(|| json!({}));
                if let Some(m) = entry.as_object_mut() {
                    let items = m
                        .entry(key_of_kind(f.kind.as_deref()))
                        .or_insert_with(|| json!([]));
                    if let Some(a) = items.as_array_mut() {
                        a.push(file_item(job.id, f));
                    }
                }
            }
        }
        out
    }

    fn status_messages(&self, job: &QueueJob) -> Vec<Value> {
        let id = job.id.to_string();
        let start = job.started_at.as_deref().and_then(ms);
        let end = job.completed_at.as_deref().and_then(ms);
        let mut messages = Vec::new();
        if let Some(t) = start {
            messages.push(json!(["execution_start", {"prompt_id": id, "timestamp": t}]));
            messages
                .push(json!(["execution_cached", {"nodes": [], "prompt_id": id, "timestamp": t}]));
        }
        let t = end.or(start).unwrap_or_default();
        match job.status {
            JobState::Completed => {
                messages.push(json!(["execution_success", {"prompt_id": id, "timestamp": t}]));
            }
            JobState::Failed => {
                let mut error = Failure::of(job).to_json(job.id);
                error["timestamp"] = json!(t);
                messages.push(json!(["execution_error", error]));
            }
            JobState::Cancelled => {
                messages.push(json!(["execution_interrupted", {
                    "prompt_id": id, "node_id": null, "node_type": null, "executed": [], "timestamp": t,
                }]));
            }
            _ => {}
        }
        messages
    }

    /// `execution_status` / history `status`.
    pub fn execution_status(&self, job: &QueueJob) -> Value {
        let (status_str, completed) = match job.status {
            JobState::Completed => ("success", true),
            _ => ("error", false),
        };
        json!({"status_str": status_str, "completed": completed, "messages": self.status_messages(job)})
    }

    /// One `/history` entry of a finished job.
    pub fn history_entry(&self, job: &QueueJob, submitted: Option<&Submitted>) -> Value {
        let outputs = self.outputs(job);
        let meta: Map<String, Value> = outputs
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    json!({"node_id": n, "display_node": n, "parent_node": null, "real_node_id": n}),
                )
            })
            .collect();
        json!({
            "prompt": self.prompt_tuple(job, submitted),
            "outputs": outputs,
            "status": self.execution_status(job),
            "meta": meta,
        })
    }

    fn count_outputs(&self, outputs: &Map<String, Value>) -> (usize, usize, Option<Value>) {
        let counts_text = self.has(Difference::TextOutputsCounted);
        let mut count = 0;
        let mut previewable = 0;
        let mut preview = None;
        let mut fallback = None;
        for (node, media) in outputs {
            for (key, items) in media.as_object().into_iter().flatten() {
                if key == "animated" {
                    continue;
                }
                for item in items.as_array().into_iter().flatten() {
                    if !item.is_object() {
                        count += usize::from(counts_text);
                        continue;
                    }
                    count += 1;
                    previewable += 1;
                    let mut p = item.clone();
                    if let Some(o) = p.as_object_mut() {
                        o.insert("nodeId".into(), json!(node));
                        o.insert("mediaType".into(), json!(key));
                    }
                    if item.get("type").and_then(Value::as_str) == Some("output") {
                        preview.get_or_insert(p);
                    } else {
                        fallback.get_or_insert(p);
                    }
                }
            }
        }
        (count, previewable, preview.or(fallback))
    }

    /// One item of `GET /api/jobs`.
    pub fn job_item(&self, job: &QueueJob) -> Value {
        let meta = ComfyMeta::of(job);
        let mut m = Map::new();
        m.insert("id".into(), json!(job.id.to_string()));
        m.insert("status".into(), json!(self.jobs_status(job)));
        m.insert("priority".into(), number_value(meta.number));
        m.insert("create_time".into(), json!(meta.create_time));
        if !job.status.active() {
            if let Some(t) = job.started_at.as_deref().and_then(ms) {
                m.insert("execution_start_time".into(), json!(t));
            }
            if let Some(t) = job.completed_at.as_deref().and_then(ms) {
                m.insert("execution_end_time".into(), json!(t));
            }
        }
        let outputs = self.outputs(job);
        let (count, previewable, preview) = self.count_outputs(&outputs);
        m.insert("outputs_count".into(), json!(count));
        if self.has(Difference::PreviewableOutputsCount) {
            m.insert("previewable_outputs_count".into(), json!(previewable));
        }
        if let Some(p) = preview {
            m.insert("preview_output".into(), p);
        }
        if let Some(w) = meta.workflow_id {
            m.insert("workflow_id".into(), w);
        }
        if job.status == JobState::Failed {
            m.insert("execution_error".into(), Failure::of(job).to_json(job.id));
        }
        Value::Object(m)
    }

    /// `GET /api/jobs/{id}`.
    pub fn job_detail(&self, job: &QueueJob, submitted: Option<&Submitted>) -> Value {
        let mut item = self.job_item(job);
        let meta = ComfyMeta::of(job);
        if let Some(m) = item.as_object_mut() {
            if !job.status.active() {
                m.insert("outputs".into(), Value::Object(self.outputs(job)));
                m.insert("execution_status".into(), self.execution_status(job));
            }
            m.insert(
                "workflow".into(),
                json!({
                    "prompt": submitted.map(|s| s.prompt.clone()).unwrap_or_else(|| json!({})),
                    "extra_data": self.extra_data(&meta, submitted),
                }),
            );
        }
        item
    }
}

/// `number` as ComfyUI prints it: an integer when it is one.
fn number_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

fn output_key(o: &Value) -> String {
    if let Some(k) = o.get("key").and_then(Value::as_str) {
        return k.to_owned();
    }
    key_of_kind(o.get("kind").and_then(Value::as_str))
}

fn key_of_kind(kind: Option<&str>) -> String {
    match kind {
        Some("audio") => "audio",
        Some("text") => "text",
        Some("model3d") | Some("mesh") => "3d",
        _ => "images",
    }
    .to_owned()
}

fn file_item(id: Uuid, f: &JobFile) -> Value {
    let folder = match f.role {
        FileRole::Temp => "temp",
        _ => "output",
    };
    json!({"filename": f.filename, "subfolder": remote_subfolder(id, &f.subfolder), "type": folder})
}

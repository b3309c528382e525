//! The job model: the stored job, its attempts, and validation of what clients send
//! (the wire status enum comes from `comfy-queue-api`).

use std::collections::HashMap;

use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::clock::Millis;
use crate::input::{self, InputError, Problem};
use crate::scheduler::{Requirements, WorkerInfo};

/// Largest accepted `workflow`, serialized (10 MB).
pub const MAX_WORKFLOW_BYTES: usize = 10 * 1024 * 1024;
/// Largest accepted `metadata`, serialized (1 MB).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;
/// Largest accepted `result`, serialized (50 MB).
pub const MAX_RESULT_BYTES: usize = 50 * 1024 * 1024;
/// Longest accepted `error`, in characters.
pub const MAX_ERROR_CHARS: usize = 10_000;
/// Lowest-urgency priority; lower numbers run first.
pub const MAX_PRIORITY: u8 = 3;
/// Priority used when a submit names none.
pub const DEFAULT_PRIORITY: u8 = 2;

/// A job's status, as spelled on the wire (defined in `comfy-queue-api`, shared with workers).
pub use comfy_queue_api::Status;

/// How one attempt at running a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Still leased.
    Running,
    /// The worker reported a result.
    Completed,
    /// The worker reported an error.
    Failed,
    /// The lease ran out without a heartbeat; the reaper took the job back.
    LeaseExpired,
    /// The worker stopped the job after a cancel request.
    Cancelled,
    /// The worker gave the job back unrun: its ComfyUI could not run it (the attempt is
    /// not counted).
    HandedBack,
}

/// One lease of a job to a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1-based attempt number.
    pub attempt: u32,
    /// The worker that held the lease.
    pub worker_id: String,
    /// When the lease was granted (ms since epoch).
    pub started_at: Millis,
    /// When the attempt ended (ms since epoch), if it has.
    pub ended_at: Option<Millis>,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The error reported or recorded for this attempt.
    pub error: Option<String>,
}

/// A job as the store keeps it, without its workflow (a claim hands that out beside it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id.
    pub id: Uuid,
    /// Owner.
    pub user_id: String,
    /// Current status.
    pub status: Status,
    /// 0 (instructor override) to 3 (low); lower runs first.
    pub priority: u8,
    /// Submit time (ms).
    pub created_at: Millis,
    /// Start of the latest attempt (ms).
    pub started_at: Option<Millis>,
    /// Time it reached a terminal status (ms).
    pub completed_at: Option<Millis>,
    /// Worker of the latest attempt.
    pub worker_id: Option<String>,
    /// Result object reported by the worker.
    pub result: Option<Value>,
    /// Last error.
    pub error: Option<String>,
    /// Client metadata (free-form object).
    pub metadata: Value,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts allowed before the job is failed for good.
    pub max_attempts: u32,
    /// A cancel was asked for while the job was running.
    pub cancel_requested: bool,
    /// Expiry of the current lease (ms), while running.
    pub lease_expires_at: Option<Millis>,
    /// Submission order, global and increasing.
    pub seq: u64,
    /// A retried job may not run before this time (ms); `None` = at once.
    pub not_before: Option<Millis>,
    /// Every attempt, oldest first.
    pub history: Vec<Attempt>,
}

/// A validated submit. The workflow is a [`Value`] by default; the HTTP submit keeps it as
/// the JSON text the client sent ([`RawNewJob`]), so a 10 MB prompt is never built into a
/// tree of values (which took about 16 times its size).
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob<W = Value> {
    /// Owner.
    pub user_id: String,
    /// API-format ComfyUI prompt (a non-empty object).
    pub workflow: W,
    /// Priority 0–3.
    pub priority: u8,
    /// Free-form object.
    pub metadata: Value,
    /// Optional idempotency key (scoped to the user).
    pub idempotency_key: Option<String>,
    /// Routing requirements taken from `metadata.requires`.
    pub requirements: Requirements,
    /// Files the prompt reads, each uploaded by the user before (`inputs` of the submit).
    pub inputs: Vec<InputFile>,
}

/// A validated submit whose workflow is the JSON text as it was sent (checked: an object
/// with at least one node, nested no deeper than [`MAX_WORKFLOW_DEPTH`]).
pub type RawNewJob = NewJob<WorkflowText>;

/// A workflow as JSON text: the part of the submit body it came in, which it keeps (the
/// body is not copied; the rest of it is a few hundred bytes of other fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowText {
    text: String,
    range: std::ops::Range<usize>,
}

impl WorkflowText {
    /// The whole of `text`.
    fn whole(text: String) -> Self {
        let range = 0..text.len();
        Self { text, range }
    }

    /// The workflow's JSON text.
    pub fn get(&self) -> &str {
        self.text.get(self.range.clone()).unwrap_or_default()
    }
}

impl<W> NewJob<W> {
    fn with_workflow<V>(self, workflow: V) -> NewJob<V> {
        NewJob {
            user_id: self.user_id,
            workflow,
            priority: self.priority,
            metadata: self.metadata,
            idempotency_key: self.idempotency_key,
            requirements: self.requirements,
            inputs: self.inputs,
        }
    }
}

impl NewJob {
    /// The same submit with its workflow as JSON text.
    pub fn into_raw(self) -> Result<RawNewJob, serde_json::Error> {
        let workflow = WorkflowText::whole(serde_json::to_string(&self.workflow)?);
        Ok(self.with_workflow(workflow))
    }
}

impl RawNewJob {
    /// The same submit with its workflow parsed (for stores that keep no text path).
    pub fn into_value(self) -> Result<NewJob, serde_json::Error> {
        let workflow = serde_json::from_str(self.workflow.get())?;
        Ok(self.with_workflow(workflow))
    }
}

/// What a stored file is to its job (defined in `comfy-queue-api`, shared with workers).
pub use comfy_queue_api::FileRole;

/// Longest file name or subfolder component, in bytes (what most file systems allow).
pub const MAX_NAME_COMPONENT_BYTES: usize = 255;
/// Longest subfolder path, in bytes.
pub const MAX_SUBFOLDER_BYTES: usize = 1024;
/// Most inputs one submit may name.
pub const MAX_INPUTS: usize = 1000;
/// Longest `node_id`, `kind` or content type of a file, in bytes.
pub const MAX_FILE_LABEL_BYTES: usize = 200;

/// An input named in a validated submit: an upload of the job's user, and where the prompt
/// reads it (ComfyUI's input folder, `subfolder/filename`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    /// SHA-256 of the upload, 64 lowercase hex digits.
    pub sha256: String,
    /// Subfolder (`""` for none), `/`-separated.
    pub subfolder: String,
    /// File name.
    pub filename: String,
}

/// A file of a job as the store keeps it: its bytes are the blob `sha256` of the file store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// Input, output or temp.
    pub role: FileRole,
    /// ComfyUI subfolder (`""` for none), `/`-separated.
    pub subfolder: String,
    /// File name.
    pub filename: String,
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub content_type: String,
    /// The node that wrote it (outputs and temp files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Output kind as the adapter names it (`image`, `video`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Order among the job's files: inputs in submit order, then files as they were first
    /// uploaded (a replaced file keeps its place). Set by the store.
    #[serde(default)]
    pub position: u64,
    /// When it was stored (ms); a replacement sets it anew.
    #[serde(default)]
    pub created_at: Millis,
}

/// A file a user uploaded (`POST /api/files`), which a submit of theirs may name as an input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    /// The uploader (the user the inputs' jobs are submitted for).
    pub user_id: String,
    /// SHA-256 of the bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// The name it was uploaded under (the latest upload's).
    pub filename: String,
    /// Content type (the latest upload's).
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// The latest upload of these bytes by this user, or the latest submit naming them (ms):
    /// the upload is forgotten a grace period after it.
    pub uploaded_at: Millis,
}

/// A registered worker with its liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerRecord {
    /// What the worker registered.
    #[serde(flatten)]
    pub info: WorkerInfo,
    /// The latest registration (ms); for a worker only ever seen, its first sighting.
    pub registered_at: Millis,
    /// Last claim, heartbeat or registration (ms).
    pub last_seen: Millis,
    /// Asked to drain: it finishes its job and is offered no new one until undrained.
    /// Kept across re-registrations (a drained worker whose ComfyUI was replaced stays
    /// drained until someone puts it back).
    #[serde(default)]
    pub drain: bool,
}

/// Whether a worker last seen `age_ms` ago is live: seen within two lease lengths. One not
/// live shows `unhealthy` (unless drained), and routing does not count on it.
pub fn is_live(age_ms: Millis, lease_ms: Millis) -> bool {
    age_ms <= 2 * lease_ms
}

fn user_id_is_valid(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Validate a user id (`^[A-Za-z0-9_-]{1,100}$`) named `field`.
pub fn validate_user_id(field: &str, s: &str) -> Result<String, InputError> {
    if user_id_is_valid(s) {
        Ok(s.to_owned())
    } else {
        Err(InputError::new(
            field,
            Problem::UserId,
            format!("`{field}` must match ^[A-Za-z0-9_-]{{1,100}}$"),
        ))
    }
}

fn bad_priority(field: &str, problem: Problem) -> InputError {
    InputError::new(
        field,
        problem,
        format!("`{field}` must be an integer from 0 to 3"),
    )
}

/// A priority read from JSON that did not deserialize: a number out of range (negative,
/// fractional, too large) is `invalid_priority`, anything else the wrong type.
pub fn priority_type_error(field: &str, found: &Value) -> InputError {
    if found.is_number() {
        bad_priority(field, Problem::Priority)
    } else {
        bad_priority(field, Problem::Type)
    }
}

/// Validate a priority read from JSON (0–3).
pub fn validate_priority(field: &str, p: u8) -> Result<u8, InputError> {
    if p <= MAX_PRIORITY {
        Ok(p)
    } else {
        Err(bad_priority(field, Problem::Priority))
    }
}

/// Validate a priority given in a query string.
pub fn parse_priority_text(field: &str, s: &str) -> Result<u8, InputError> {
    match s.trim().parse::<u8>() {
        Ok(p) if p <= MAX_PRIORITY => Ok(p),
        _ => Err(InputError::new(
            field,
            Problem::Priority,
            format!("`{field}` must be an integer from 0 to 3"),
        )),
    }
}

/// Serialized size of a JSON value.
pub fn json_size(v: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // Writing into a counter cannot fail for a `Value`.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

fn empty_workflow() -> InputError {
    InputError::new(
        "workflow",
        Problem::Workflow,
        "`workflow` must be a non-empty object",
    )
}

/// Validate `workflow`: a non-empty object of at most 10 MB serialized.
pub fn validate_workflow(w: Map<String, Value>) -> Result<Value, InputError> {
    if w.is_empty() {
        return Err(empty_workflow());
    }
    let w = Value::Object(w);
    if json_size(&w) > MAX_WORKFLOW_BYTES {
        return Err(InputError::too_large("workflow", MAX_WORKFLOW_BYTES));
    }
    Ok(w)
}

/// Deepest nesting of arrays and objects a workflow may have (the workflow object itself
/// is one level): what a worker can still read back with serde_json, whose recursion limit
/// is 127 levels, inside its next-job answer `{"job": {"workflow": …}}`; so nothing is
/// stored that cannot be handed out.
pub const MAX_WORKFLOW_DEPTH: usize = 125;

/// Validate a workflow kept as JSON text (already known to be an object): not empty, at
/// most 10 MB as sent. Nothing is built of it, nothing copied.
fn validate_raw_workflow(w: WorkflowText) -> Result<WorkflowText, InputError> {
    let text = w.get().trim();
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    if inner.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(empty_workflow());
    }
    if text.len() > MAX_WORKFLOW_BYTES {
        return Err(InputError::too_large("workflow", MAX_WORKFLOW_BYTES));
    }
    Ok(w)
}

/// A workflow nested deeper than [`MAX_WORKFLOW_DEPTH`] is refused as a body that does not
/// parse was before (a tree of it was refused by serde_json's recursion limit). Nothing is
/// built: the text is walked with the depth counted.
fn check_depth(w: &RawValue) -> Result<(), InputError> {
    let mut de = serde_json::Deserializer::from_str(w.get());
    Depth(0).deserialize(&mut de).map_err(|e| {
        InputError::new(
            "workflow",
            Problem::Malformed,
            format!("the request body is not valid JSON: `workflow` {e}"),
        )
    })
}

/// Reads any JSON value and keeps nothing of it, counting how deep arrays and objects nest
/// (`.0` levels are around it); past [`MAX_WORKFLOW_DEPTH`] it fails.
struct Depth(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Depth {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Depth {
    fn inner<E: serde::de::Error>(&self) -> Result<Depth, E> {
        if self.0 >= MAX_WORKFLOW_DEPTH {
            Err(E::custom(format!(
                "is nested deeper than {MAX_WORKFLOW_DEPTH} levels"
            )))
        } else {
            Ok(Depth(self.0 + 1))
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Depth {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self.inner()?)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(self.inner()?)?;
        }
        Ok(())
    }
}

/// Validate `metadata`: an object of at most 1 MB serialized (absent means `{}`).
pub fn validate_metadata(m: Option<Map<String, Value>>) -> Result<Value, InputError> {
    let m = Value::Object(m.unwrap_or_default());
    if json_size(&m) > MAX_METADATA_BYTES {
        return Err(InputError::too_large("metadata", MAX_METADATA_BYTES));
    }
    Ok(m)
}

/// Validate a worker `result`: at most 50 MB serialized.
pub fn validate_result(v: Value) -> Result<Value, InputError> {
    if json_size(&v) > MAX_RESULT_BYTES {
        return Err(InputError::too_large("result", MAX_RESULT_BYTES));
    }
    match v {
        Value::Object(_) | Value::Null => Ok(v),
        _ => Err(InputError::new(
            "result",
            Problem::Type,
            "`result` must be a JSON object",
        )),
    }
}

/// Validate an `error` text: 1–10,000 characters, not blank.
pub fn validate_error_text(s: &str) -> Result<String, InputError> {
    if s.trim().is_empty() {
        return Err(InputError::new(
            "error",
            Problem::ErrorText,
            "`error` must not be blank",
        ));
    }
    if s.chars().count() > MAX_ERROR_CHARS {
        return Err(InputError::new(
            "error",
            Problem::ErrorText,
            "`error` must be at most 10000 characters",
        ));
    }
    Ok(s.to_owned())
}

/// Body of a submit (`POST /api/jobs`); the body is read into this type.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
pub struct SubmitRequest {
    /// `^[A-Za-z0-9_-]{1,100}$`
    #[schema(pattern = "^[A-Za-z0-9_-]{1,100}$")]
    pub user_id: String,
    /// API-format ComfyUI prompt: a non-empty object, at most 10 MB.
    #[schema(schema_with = non_empty_object, required = true)]
    pub workflow: Option<Map<String, Value>>,
    /// 0 (instructor override) … 3 (low); default 2.
    #[schema(minimum = 0, maximum = 3)]
    pub priority: Option<u8>,
    /// At most 1 MB. `metadata.requires = {comfyui: ">=0.9", capabilities: [..]}` routes the job.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// Files the prompt reads from ComfyUI's input folder, each uploaded by this user before
    /// (`POST /api/files`): `{sha256, filename}` with `filename` as the prompt names it
    /// (`photo.png`, `pasted/photo.png`). At most 1000.
    #[schema(max_items = 1000)]
    pub inputs: Option<Vec<comfy_queue_api::InputRef>>,
}

/// The OpenAPI schema of a workflow: an object with at least one node.
fn non_empty_object() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Object)
        .min_properties(Some(1))
        .description(Some(
            "API-format ComfyUI prompt: a non-empty object, at most 10 MB.",
        ))
        .build()
}

impl SubmitRequest {
    /// The fields in the order they are checked.
    const FIELDS: [&'static str; 5] = ["user_id", "workflow", "priority", "metadata", "inputs"];

    /// The problem with a field that did not deserialize (`found` is its JSON value).
    fn type_error(field: &str, found: &Value) -> InputError {
        match field {
            "priority" => priority_type_error("priority", found),
            "user_id" => InputError::new(field, Problem::Type, "`user_id` must be a string"),
            "workflow" => InputError::new(field, Problem::Type, "`workflow` must be a JSON object"),
            "metadata" => InputError::new(field, Problem::Type, "`metadata` must be a JSON object"),
            f if f == "inputs" || f.starts_with("inputs[") => InputError::new(
                f,
                Problem::Type,
                "`inputs` must be an array of `{\"sha256\": string, \"filename\": string}` objects",
            ),
            _ => InputError::new(
                field,
                Problem::Type,
                format!("`{field}` has the wrong type"),
            ),
        }
    }
}

/// Validate a whole submit body (already parsed as JSON): read it as a [`SubmitRequest`],
/// then check each field's value.
pub fn validate_submit(
    body: &Value,
    idempotency_key: Option<String>,
) -> Result<NewJob, InputError> {
    validate_submit_owned(body.clone(), idempotency_key)
}

/// [`validate_submit`] on a body the caller gives up: the workflow (up to
/// 10 MB) is moved into the job, never copied.
pub fn validate_submit_owned(
    body: Value,
    idempotency_key: Option<String>,
) -> Result<NewJob, InputError> {
    let Value::Object(mut obj) = body else {
        return Err(not_an_object());
    };
    // The workflow is taken out before the other fields are deserialized
    // (deserializing copies).
    let workflow = match obj.remove("workflow") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(Ok(m)),
        Some(_) => Some(Err(())),
    };
    validate_fields(obj, workflow, validate_workflow, idempotency_key)
}

/// Validate a submit body given as bytes, keeping its workflow as the JSON text it is: the
/// body is read once into its top-level fields, each kept as raw JSON; the small ones
/// (`user_id`, `priority`, `metadata`, `inputs`) are then read as [`validate_submit`] reads
/// them, the workflow is only checked (an object, not empty, at most 10 MB, nested at most
/// [`MAX_WORKFLOW_DEPTH`] deep) and copied once. Unknown fields are skipped unread. A body
/// that is not JSON is [`Problem::Malformed`] (field `body`).
pub fn validate_submit_raw(
    body: String,
    idempotency_key: Option<String>,
) -> Result<RawNewJob, InputError> {
    parse_submit(&body)?.validate(body, idempotency_key)
}

/// A submit body read into its top-level fields ([`parse_submit`]): the small ones as
/// values, the workflow as where its JSON text is in the body.
#[derive(Debug)]
pub struct SubmitBody {
    /// `user_id`, `priority`, `metadata`, `inputs` where present.
    fields: Map<String, Value>,
    /// `None` when absent or null, `Err` when not an object; else its bytes in the body.
    workflow: Option<Result<std::ops::Range<usize>, ()>>,
}

/// The first half of [`validate_submit_raw`]: read the body (refusing what is not JSON or a
/// workflow nested too deep), without checking any field yet.
pub fn parse_submit(body: &str) -> Result<SubmitBody, InputError> {
    let mut top: HashMap<String, &RawValue> = match serde_json::from_str(body) {
        Ok(f) => f,
        // Valid JSON of another type (an array, a string), or not JSON at all?
        Err(e) if e.is_data() => {
            return Err(match serde_json::from_str::<&RawValue>(body) {
                Ok(_) => not_an_object(),
                Err(e) => malformed(&e),
            });
        }
        Err(e) => return Err(malformed(&e)),
    };
    let workflow = match top.remove("workflow") {
        None => None,
        Some(w) if w.get() == "null" => None,
        Some(w) if w.get().trim_start().starts_with('{') => {
            check_depth(w)?;
            // The raw value is a slice of `body`: where it starts in it.
            let start = (w.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
            Some(Ok(start..start + w.get().len()))
        }
        Some(_) => Some(Err(())),
    };
    let mut fields = Map::new();
    for name in SubmitRequest::FIELDS {
        if let Some(raw) = top.get(name) {
            let value: Value = serde_json::from_str(raw.get()).map_err(|e| malformed(&e))?;
            fields.insert(name.to_owned(), value);
        }
    }
    Ok(SubmitBody { fields, workflow })
}

impl SubmitBody {
    /// The second half of [`validate_submit_raw`]: the checks of [`validate_submit`], in
    /// the same order. `body` is the text [`parse_submit`] read; the job keeps it as its
    /// workflow's text.
    pub fn validate(
        self,
        body: String,
        idempotency_key: Option<String>,
    ) -> Result<RawNewJob, InputError> {
        let workflow = self
            .workflow
            .map(|w| w.map(|range| WorkflowText { text: body, range }));
        validate_fields(
            self.fields,
            workflow,
            validate_raw_workflow,
            idempotency_key,
        )
    }
}

fn not_an_object() -> InputError {
    InputError::new(
        "body",
        Problem::Type,
        "the request body must be a JSON object",
    )
}

fn malformed(e: &serde_json::Error) -> InputError {
    InputError::new(
        "body",
        Problem::Malformed,
        format!("the request body is not valid JSON: {e}"),
    )
}

/// The checks of a submit but the workflow's own (emptiness, size), in the documented
/// order. `obj` holds the fields but the workflow; `workflow` is `None` when absent or
/// null, `Err` when it is not an object.
fn validate_fields<W, V>(
    obj: Map<String, Value>,
    workflow: Option<Result<W, ()>>,
    check_workflow: impl FnOnce(W) -> Result<V, InputError>,
    idempotency_key: Option<String>,
) -> Result<NewJob<V>, InputError> {
    input::require(&obj, "user_id", "`user_id` is required")?;
    // The workflow is type-checked where its field comes in the order of checks: after
    // `user_id`, before `priority` and `metadata`.
    let workflow_error = match &workflow {
        Some(Err(())) => Some(SubmitRequest::type_error("workflow", &Value::Null)),
        _ => None,
    };
    let req: SubmitRequest =
        match input::from_object(obj, &SubmitRequest::FIELDS, SubmitRequest::type_error) {
            Ok(req) => req,
            Err(e) if e.field == "user_id" => return Err(e),
            Err(e) => return Err(workflow_error.unwrap_or(e)),
        };
    if let Some(e) = workflow_error {
        return Err(e);
    }
    let user_id = validate_user_id("user_id", &req.user_id)?;
    let Some(Ok(workflow)) = workflow else {
        return Err(InputError::new(
            "workflow",
            Problem::Missing,
            "`workflow` is required",
        ));
    };
    let workflow = check_workflow(workflow)?;
    let priority = match req.priority {
        Some(p) => validate_priority("priority", p)?,
        None => DEFAULT_PRIORITY,
    };
    let metadata = validate_metadata(req.metadata)?;
    let requirements = crate::scheduler::requirements_of(&metadata)?;
    let inputs = validate_inputs(req.inputs.unwrap_or_default())?;
    Ok(NewJob {
        user_id,
        workflow,
        priority,
        metadata,
        idempotency_key,
        requirements,
        inputs,
    })
}

/// Check one component of a file name or subfolder named `field`: not empty, not `.` or
/// `..`, no `/`, `\\`, NUL or other control character, at most 255 bytes.
fn check_component(field: &str, what: &str, c: &str) -> Result<(), InputError> {
    let bad = |why: &str| {
        Err(InputError::new(
            field,
            Problem::FileName,
            format!("`{field}` {why}"),
        ))
    };
    if c.is_empty() {
        return bad(&format!("has an empty {what}"));
    }
    if c == "." || c == ".." {
        return bad(&format!("may not have `{c}` as a {what}"));
    }
    if c.len() > MAX_NAME_COMPONENT_BYTES {
        return bad(&format!(
            "has a {what} over {MAX_NAME_COMPONENT_BYTES} bytes"
        ));
    }
    if c.chars().any(char::is_control) {
        return bad("may not contain NUL or other control characters");
    }
    if c.contains('\\') {
        return bad("may not contain `\\`");
    }
    Ok(())
}

/// Validate a file name (one path component: no `/`).
pub fn validate_filename(field: &str, s: &str) -> Result<String, InputError> {
    if s.contains('/') {
        return Err(InputError::new(
            field,
            Problem::FileName,
            format!("`{field}` may not contain `/` (give the folder as the subfolder)"),
        ));
    }
    check_component(field, "name", s)?;
    Ok(s.to_owned())
}

/// Validate a subfolder: `""`, or relative `/`-separated components (no `..`, no leading
/// `/`, no empty component), at most 1024 bytes.
pub fn validate_subfolder(field: &str, s: &str) -> Result<String, InputError> {
    if s.is_empty() {
        return Ok(String::new());
    }
    if s.starts_with('/') {
        return Err(InputError::new(
            field,
            Problem::FileName,
            format!("`{field}` must be relative (no leading `/`)"),
        ));
    }
    if s.len() > MAX_SUBFOLDER_BYTES {
        return Err(InputError::new(
            field,
            Problem::FileName,
            format!("`{field}` is over {MAX_SUBFOLDER_BYTES} bytes"),
        ));
    }
    for part in s.split('/') {
        check_component(field, "folder", part)?;
    }
    Ok(s.to_owned())
}

/// Split and validate a relative path `sub/folder/name` into (subfolder, file name).
pub fn split_file_path(field: &str, path: &str) -> Result<(String, String), InputError> {
    let (sub, name) = path.rsplit_once('/').unwrap_or(("", path));
    if path.starts_with('/') {
        return Err(InputError::new(
            field,
            Problem::FileName,
            format!("`{field}` must be relative (no leading `/`)"),
        ));
    }
    let sub = validate_subfolder(field, sub)?;
    let name = validate_filename(field, name)?;
    Ok((sub, name))
}

/// Validate a SHA-256 given as text: 64 hex digits (either case), returned in lowercase.
pub fn validate_sha256(field: &str, s: &str) -> Result<String, InputError> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(InputError::new(
            field,
            Problem::Sha256,
            format!("`{field}` must be a SHA-256: 64 hex digits"),
        ))
    }
}

/// Validate a short label of a file (`node_id`, `kind`): 1–200 bytes, no control characters.
pub fn validate_file_label(field: &str, s: &str) -> Result<String, InputError> {
    if s.is_empty() || s.len() > MAX_FILE_LABEL_BYTES || s.chars().any(char::is_control) {
        return Err(InputError::new(
            field,
            Problem::Value,
            format!("`{field}` must be 1-{MAX_FILE_LABEL_BYTES} bytes without control characters"),
        ));
    }
    Ok(s.to_owned())
}

/// Validate the `inputs` of a submit: each a well-formed hash and a relative path, no path
/// named twice, at most [`MAX_INPUTS`].
pub fn validate_inputs(
    inputs: Vec<comfy_queue_api::InputRef>,
) -> Result<Vec<InputFile>, InputError> {
    if inputs.len() > MAX_INPUTS {
        return Err(InputError::new(
            "inputs",
            Problem::Value,
            format!("`inputs` may name at most {MAX_INPUTS} files"),
        ));
    }
    let mut out: Vec<InputFile> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let sha256 = validate_sha256(&format!("inputs[{i}].sha256"), &input.sha256)?;
        let field = format!("inputs[{i}].filename");
        let (subfolder, filename) = split_file_path(&field, &input.filename)?;
        if out
            .iter()
            .any(|o| o.subfolder == subfolder && o.filename == filename)
        {
            return Err(InputError::new(
                field,
                Problem::FileName,
                format!("`inputs[{i}].filename` names a file an earlier input names"),
            ));
        }
        out.push(InputFile {
            sha256,
            subfolder,
            filename,
        });
    }
    Ok(out)
}

/// Validate an `Idempotency-Key` header value: 1–200 visible ASCII characters.
pub fn validate_idempotency_key(s: &str) -> Result<String, InputError> {
    if s.is_empty() || s.len() > 200 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InputError::new(
            "Idempotency-Key",
            Problem::IdempotencyKey,
            "`Idempotency-Key` must be 1-200 visible ASCII characters",
        ));
    }
    Ok(s.to_owned())
}

/// Validate a worker id (same alphabet as user ids).
pub fn validate_worker_id(field: &str, s: &str) -> Result<String, InputError> {
    if user_id_is_valid(s) {
        Ok(s.to_owned())
    } else {
        Err(InputError::new(
            field,
            Problem::WorkerId,
            format!("`{field}` must match ^[A-Za-z0-9_-]{{1,100}}$"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_id_rules() {
        assert!(user_id_is_valid("user_001-a"));
        assert!(!user_id_is_valid(""));
        assert!(!user_id_is_valid("a b"));
        assert!(!user_id_is_valid(&"a".repeat(101)));
        assert!(user_id_is_valid(&"a".repeat(100)));
    }

    #[test]
    fn submit_defaults_priority_and_metadata() {
        let j = validate_submit(&json!({"user_id": "u1", "workflow": {"1": {}}}), None).unwrap();
        assert_eq!(j.priority, DEFAULT_PRIORITY);
        assert_eq!(j.metadata, json!({}));
    }

    #[test]
    fn submit_names_the_bad_field() {
        let e = validate_submit(&json!({"user_id": "u1", "workflow": {}}), None).unwrap_err();
        assert_eq!(e.field, "workflow");
        let e = validate_submit(
            &json!({"user_id": "u1", "workflow": {"a": 1}, "priority": "high"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "priority");
        let e = validate_submit(
            &json!({"user_id": "u1", "workflow": {"a": 1}, "priority": 4}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.problem, Problem::Priority);
    }

    #[test]
    fn submit_priority_numbers_out_of_range_are_invalid_priority() {
        for (p, problem) in [
            (json!(-1), Problem::Priority),
            (json!(2.5), Problem::Priority),
            (json!(300), Problem::Priority),
            (json!(4), Problem::Priority),
            (json!("1"), Problem::Type),
            (json!([1]), Problem::Type),
        ] {
            let e = validate_submit(
                &json!({"user_id": "u1", "workflow": {"a": 1}, "priority": p}),
                None,
            )
            .unwrap_err();
            assert_eq!((e.field.as_str(), e.problem), ("priority", problem), "{p}");
        }
    }

    #[test]
    fn submit_checks_fields_in_their_order_not_the_clients() {
        let e = validate_submit(
            &json!({"metadata": 1, "priority": "x", "workflow": {"a": 1}, "user_id": "u"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "priority");
        let e = validate_submit(&json!({"workflow": {"a": 1}, "user_id": null}), None).unwrap_err();
        assert_eq!((e.field.as_str(), e.problem), ("user_id", Problem::Missing));
    }

    #[test]
    fn the_raw_submit_answers_as_the_parsed_one() {
        let bodies = [
            json!({"user_id": "u1", "workflow": {"1": {"class_type": "X"}}}),
            json!({"user_id": "u1", "workflow": {"1": {}}, "priority": 0, "metadata": {"a": [1]}}),
            json!({"user_id": "u1", "workflow": {}}),
            json!({"user_id": "u1", "workflow": {}, "priority": 9}),
            json!({"user_id": "u1", "workflow": [1]}),
            json!({"user_id": "u1", "workflow": "x", "priority": "high"}),
            json!({"user_id": "u1", "workflow": null}),
            json!({"user_id": "u1"}),
            json!({"user_id": null, "workflow": {"a": 1}}),
            json!({"user_id": 7, "workflow": {"a": 1}}),
            json!({"user_id": "a b", "workflow": {"a": 1}}),
            json!({"metadata": 1, "priority": "x", "workflow": {"a": 1}, "user_id": "u"}),
            json!({"user_id": "u", "workflow": {"a": 1}, "metadata": {"requires": {"comfyui": "x"}}}),
            json!({"user_id": "u", "workflow": {"a": 1}, "inputs": [{"sha256": "0", "filename": "a"}]}),
            json!({"user_id": "u", "workflow": {"a": 1}, "unknown": {"deep": [[[]]]}}),
            json!([1, 2]),
            json!("text"),
        ];
        for body in bodies {
            let text = serde_json::to_string(&body).unwrap();
            let parsed = validate_submit(&body, Some("k".into()));
            let raw = validate_submit_raw(text, Some("k".into()));
            match (parsed, raw) {
                (Ok(p), Ok(r)) => {
                    let r = r.into_value().unwrap();
                    assert_eq!(p, r, "{body}");
                }
                (Err(p), Err(r)) => assert_eq!(p, r, "{body}"),
                (p, r) => panic!("{body}: parsed {p:?}, raw {r:?}"),
            }
        }
        // Text the parsed path never sees: not JSON, and whitespace kept as sent.
        let e = validate_submit_raw("{\"user_id\": ".into(), None).unwrap_err();
        assert_eq!((e.field.as_str(), e.problem), ("body", Problem::Malformed));
        let e = validate_submit_raw("[1, }".into(), None).unwrap_err();
        assert_eq!(e.problem, Problem::Malformed);
        let e =
            validate_submit_raw(r#"{"user_id": "u", "workflow": { }}"#.into(), None).unwrap_err();
        assert_eq!(e.problem, Problem::Workflow);
        let j = validate_submit_raw(
            r#"{"user_id": "u", "workflow": {"1" : [ 1 ]}}"#.into(),
            None,
        )
        .unwrap();
        assert_eq!(j.workflow.get(), r#"{"1" : [ 1 ]}"#);
    }

    #[test]
    fn a_workflow_is_refused_past_the_depth_a_worker_reads_back() {
        let nested = |levels: usize| {
            format!(
                r#"{{"user_id": "u", "workflow": {{"1": {}{}}}}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert!(validate_submit_raw(nested(MAX_WORKFLOW_DEPTH), None).is_ok());
        let e = validate_submit_raw(nested(MAX_WORKFLOW_DEPTH + 1), None).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.problem),
            ("workflow", Problem::Malformed)
        );
        assert!(
            e.message.contains("nested deeper than 125 levels"),
            "{}",
            e.message
        );
        // What a worker parses: the workflow inside {"job": {"workflow": ...}}.
        let ok = nested(MAX_WORKFLOW_DEPTH);
        let w = &ok[ok.find("{\"1\"").unwrap()..ok.len() - 1];
        let answer = format!(r#"{{"job": {{"workflow": {w}}}}}"#);
        assert!(serde_json::from_str::<Value>(&answer).is_ok());
    }

    #[test]
    fn error_text_rules() {
        assert!(validate_error_text("  ").is_err());
        assert!(validate_error_text(&"x".repeat(10_001)).is_err());
        assert!(validate_error_text(&"é".repeat(10_000)).is_ok());
    }

    #[test]
    fn json_size_matches_serialization() {
        let v = json!({"a": [1, 2, "three"]});
        assert_eq!(json_size(&v), serde_json::to_vec(&v).unwrap().len());
    }
}

//! The state of one recording: the connection, the file counter, the ids the
//! server handed out and what has to be cleaned up afterwards.

use super::capture::{self, Request, RequestBody};
use super::trace::Trace;
use super::{Outcome, ProbeReport, Progress, RecordError, RecordOptions, Report};
use comfy_adapter::error::ComfyError;
use comfy_adapter::http::{Body, HttpCore, Response};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a wait asks the server again.
const POLL: Duration = Duration::from_millis(50);

pub(crate) struct Session<'a> {
    pub(crate) core: HttpCore,
    out: PathBuf,
    version: String,
    number: usize,
    progress: &'a dyn Progress,
    pub(crate) job_timeout: Duration,
    report: Report,
    /// Prompt ids the server accepted from us: their history is deleted.
    created_prompts: Vec<String>,
    /// Userdata files we wrote (encoded paths): deleted unless already gone.
    created_files: Vec<String>,
    /// `filename_prefix` of every saving node in the prompts the server
    /// accepted: the output files left behind (ComfyUI cannot delete them).
    output_prefixes: std::collections::BTreeSet<String>,
    uploaded: bool,
}

impl<'a> Session<'a> {
    /// Connects, learns the version and refuses what the suite would harm.
    pub(crate) async fn open(
        options: &RecordOptions,
        progress: &'a dyn Progress,
    ) -> Result<Session<'a>, RecordError> {
        let core = HttpCore::new(&options.url, options.timeouts, options.user.clone())?;
        let info = comfy_adapter::endpoints::system_stats(&core).await?;
        let version = info
            .version_string
            .clone()
            .unwrap_or_else(|| "unknown".into());
        let queue = comfy_adapter::endpoints::queue(&core).await?;
        if !queue.running.is_empty() || !queue.pending.is_empty() {
            return Err(RecordError::Busy {
                running: queue.running.len(),
                pending: queue.pending.len(),
            });
        }
        // A listing, not a GET per file: ComfyUI creates the parent folder
        // of any single userdata path it resolves, which would change what
        // probe 093 (a missing folder) records.
        let listing = core
            .get("/userdata", &[("dir", "workflows"), ("recurse", "true")])
            .await?;
        if listing.status == 200 {
            let present: Vec<String> = serde_json::from_slice(&listing.body).unwrap_or_default();
            for path in super::script::USERDATA_WRITTEN {
                let decoded = decode(path);
                let inside = decoded.strip_prefix("workflows/").unwrap_or(&decoded);
                if present.iter().any(|p| p == inside) {
                    return Err(RecordError::WouldOverwrite(decoded));
                }
            }
        }
        prepare_out(&options.out)?;
        Ok(Session {
            core,
            out: options.out.clone(),
            version,
            number: 0,
            progress,
            job_timeout: options.job_timeout,
            report: Report {
                url: options.url.clone(),
                comfyui_version: info.version_string.unwrap_or_default(),
                out: options.out.clone(),
                ..Report::default()
            },
            created_prompts: Vec::new(),
            created_files: Vec::new(),
            output_prefixes: std::collections::BTreeSet::new(),
            uploaded: false,
        })
    }

    fn next(&mut self, name: &str) -> (usize, String) {
        self.number += 1;
        (self.number, format!("{:03}-{name}", self.number))
    }

    fn done(&mut self, number: usize, name: &str, outcome: Outcome) {
        self.progress.probe(number, name, &outcome);
        self.report.probes.push(ProbeReport {
            number,
            name: name.to_owned(),
            outcome,
        });
    }

    /// Sends a recorded probe and writes its file.
    pub(crate) async fn probe(
        &mut self,
        name: &str,
        request: Request,
    ) -> Result<Response, RecordError> {
        let (number, stem) = self.next(name);
        let resp = self.send(&request, Some(&stem)).await?;
        self.note_effects(&request, &resp);
        let response = if name == "object_info-summary" {
            let full = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
            json!({"status": resp.status, "headers": {}, "body": capture::object_info_summary(&full)})
        } else {
            capture::response_fixture(&resp)
        };
        let file = json!({
            "name": name,
            "comfyui_version": self.version,
            "request": request.to_fixture(),
            "response": response,
        });
        self.write(number, name, &stem, &file, Some(resp.status))?;
        Ok(resp)
    }

    /// Writes a WebSocket trace probe.
    pub(crate) fn trace_probe(
        &mut self,
        name: &str,
        client_id: &str,
        prompt_id: &str,
        trace: Trace,
    ) -> Result<(), RecordError> {
        let (number, stem) = self.next(name);
        let file = json!({
            "name": name,
            "comfyui_version": self.version,
            "client_id": client_id,
            "prompt_id": prompt_id,
            "messages": trace.finish(),
        });
        self.write(number, name, &stem, &file, None)
    }

    /// Counts a probe that cannot be recorded.
    pub(crate) fn skip(&mut self, name: &str, reason: impl Into<String>) {
        let (number, _) = self.next(name);
        self.done(
            number,
            name,
            Outcome::Skipped {
                reason: reason.into(),
            },
        );
    }

    /// A request that is not part of the recording (setup, polling).
    pub(crate) async fn hidden(&mut self, request: &Request) -> Result<Response, RecordError> {
        let resp = self.send(request, None).await?;
        self.note_effects(request, &resp);
        Ok(resp)
    }

    async fn send(&self, request: &Request, probe: Option<&str>) -> Result<Response, RecordError> {
        let query: Vec<(&str, &str)> = request
            .query
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let body = match &request.body {
            RequestBody::None => Body::None,
            RequestBody::Json(v) => Body::Json(v.clone()),
            RequestBody::Text(s) => Body::Bytes(s.clone().into()),
            RequestBody::Upload { .. } => Body::Multipart(super::script::upload_form()?),
        };
        Ok(self
            .core
            .send_tagged(request.method.clone(), &request.path, &query, body, probe)
            .await?)
    }

    /// Remembers what a request created, for the clean-up.
    fn note_effects(&mut self, request: &Request, resp: &Response) {
        if request.method == Method::DELETE && resp.status == 204 {
            if let Some(path) = request.path.strip_prefix("/userdata/") {
                self.created_files.retain(|f| f != path);
            }
            return;
        }
        if resp.status != 200 || request.method != Method::POST {
            return;
        }
        if request.path == "/prompt" {
            if let Some(id) = prompt_id_of(resp) {
                self.created_prompts.push(id);
                if let RequestBody::Json(body) = &request.body {
                    self.output_prefixes.extend(output_prefixes(body));
                }
            }
        } else if request.path == "/upload/image" {
            self.uploaded = true;
        } else if let Some(rest) = request.path.strip_prefix("/userdata/") {
            match rest.split_once("/move/") {
                Some((from, to)) => {
                    self.created_files.retain(|f| f != from);
                    self.created_files.push(to.to_owned());
                }
                None => {
                    if !self.created_files.iter().any(|f| f == rest) {
                        self.created_files.push(rest.to_owned());
                    }
                }
            }
        }
    }

    /// Polls until `check` says yes or the job timeout passes.
    pub(crate) async fn wait_for(
        &mut self,
        what: &str,
        check: impl AsyncCheck,
    ) -> Result<bool, RecordError> {
        self.progress.waiting(what);
        let deadline = tokio::time::Instant::now() + self.job_timeout;
        loop {
            if check.holds(&self.core).await? {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                self.report.timed_out.push(format!(
                    "waited {:.1} s for {what} before probe {}",
                    self.job_timeout.as_secs_f64(),
                    self.number + 1
                ));
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Writes probe `number`'s file and reports it.
    fn write(
        &mut self,
        number: usize,
        name: &str,
        stem: &str,
        value: &Value,
        status: Option<u16>,
    ) -> Result<(), RecordError> {
        let file = format!("{stem}.json");
        let path = self.out.join(&file);
        let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
        text.push('\n');
        std::fs::write(&path, text).map_err(|source| RecordError::Io { path, source })?;
        self.done(number, name, Outcome::Written { file, status });
        Ok(())
    }

    /// Deletes what the suite created and says what could not be deleted.
    pub(crate) async fn clean_up(mut self) -> Report {
        let mine = self.created_prompts.clone();
        if !mine.is_empty() {
            // A recording that failed half-way may leave its prompts queued.
            let _ = self
                .core
                .post("/queue", &[], Body::Json(json!({"delete": mine})))
                .await;
            if let Ok(q) = comfy_adapter::endpoints::queue(&self.core).await
                && let Some(running) = q.running.first()
                && mine.contains(&running.prompt_id)
            {
                let _ =
                    comfy_adapter::endpoints::interrupt(&self.core, Some(&running.prompt_id)).await;
            }
            let deleted = comfy_adapter::endpoints::delete_history(&self.core, &mine).await;
            self.report.cleaned.push(match deleted {
                Ok(()) => format!("history: {} prompt(s) the probes queued", mine.len()),
                Err(e) => format!("history: could not delete ({e})"),
            });
        }
        let files = std::mem::take(&mut self.created_files);
        let mut removed = Vec::new();
        for f in &files {
            match self
                .core
                .send(Method::DELETE, &format!("/userdata/{f}"), &[], Body::None)
                .await
            {
                Ok(r) if r.status == 204 || r.status == 200 => removed.push(decode(f)),
                Ok(_) | Err(_) => {}
            }
        }
        if !removed.is_empty() {
            self.report
                .cleaned
                .push(format!("userdata: {}", removed.join(", ")));
        }
        if !files.is_empty() {
            self.report.left_behind.push(
                "userdata folders workflows/ and workflows/team/ (ComfyUI deletes files, not folders)"
                    .into(),
            );
        }
        // Every accepted prompt may have written output files.
        if !self.created_prompts.is_empty() {
            let prefixes: Vec<String> = self
                .output_prefixes
                .iter()
                .map(|p| format!("{p}_*"))
                .collect();
            self.report.left_behind.push(format!(
                "output files of the probe prompts ({}) and their temp previews",
                prefixes.join(", ")
            ));
        }
        if self.uploaded {
            self.report
                .left_behind
                .push("input/fixture_upload.png (the upload probe)".into());
        }
        self.report
    }
}

/// Something a wait polls.
pub(crate) trait AsyncCheck {
    /// Whether the awaited state holds now.
    fn holds(
        &self,
        core: &HttpCore,
    ) -> impl std::future::Future<Output = Result<bool, ComfyError>> + Send;
}

/// The prompt has started: it is running, or no longer queued at all (a
/// fast server may finish it between two polls).
pub(crate) struct Running<'s>(pub(crate) &'s str);

impl AsyncCheck for Running<'_> {
    async fn holds(&self, core: &HttpCore) -> Result<bool, ComfyError> {
        let q = comfy_adapter::endpoints::queue(core).await?;
        Ok(!q.pending.iter().any(|e| e.prompt_id == self.0))
    }
}

/// Nothing is running or pending.
pub(crate) struct Idle;

impl AsyncCheck for Idle {
    async fn holds(&self, core: &HttpCore) -> Result<bool, ComfyError> {
        let q = comfy_adapter::endpoints::queue(core).await?;
        Ok(q.running.is_empty() && q.pending.is_empty())
    }
}

/// The prompt has a history entry.
pub(crate) struct InHistory<'s>(pub(crate) &'s str);

impl AsyncCheck for InHistory<'_> {
    async fn holds(&self, core: &HttpCore) -> Result<bool, ComfyError> {
        let path = format!(
            "/history/{}",
            comfy_adapter::endpoints::encode_segment(self.0)
        );
        let resp = core.get(&path, &[]).await?;
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        Ok(body.get(self.0).is_some())
    }
}

/// The `prompt_id` of an accepted `POST /prompt`.
pub(crate) fn prompt_id_of(resp: &Response) -> Option<String> {
    if resp.status != 200 {
        return None;
    }
    let body: Value = serde_json::from_slice(&resp.body).ok()?;
    body.get("prompt_id")?.as_str().map(str::to_owned)
}

fn decode(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// Creates `out`, refusing one that already holds `NNN-*.json` files.
fn prepare_out(out: &Path) -> Result<(), RecordError> {
    std::fs::create_dir_all(out).map_err(|source| RecordError::Io {
        path: out.to_owned(),
        source,
    })?;
    let entries = std::fs::read_dir(out).map_err(|source| RecordError::Io {
        path: out.to_owned(),
        source,
    })?;
    let recorded = entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.ends_with(".json")
            && name
                .split_once('-')
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    if recorded {
        return Err(RecordError::OutNotEmpty(out.to_owned()));
    }
    Ok(())
}

/// The `filename_prefix` inputs of a `/prompt` body's nodes (the names
/// their output files start with). A prefix that leaves the output folder
/// writes nothing: ComfyUI refuses to save there.
fn output_prefixes(body: &serde_json::Value) -> Vec<String> {
    body.get("prompt")
        .and_then(serde_json::Value::as_object)
        .into_iter()
        .flat_map(|nodes| nodes.values())
        .filter_map(|n| n.get("inputs")?.get("filename_prefix")?.as_str())
        .filter(|p| !p.split('/').any(|seg| seg == ".."))
        .map(str::to_owned)
        .collect()
}

//! Detection: which line does the server at this URL speak?
//!
//! Reads `/system_stats` (the version), then probes what a version string
//! cannot prove, with requests that change nothing on the server:
//! `GET /api/jobs?limit=0` (400 where the jobs API exists, 404 where not) and
//! `POST /api/jobs/cancel {"job_ids": ["not-a-uuid"]}` (400 where the cancel
//! API exists, 405 where not). Where version and probes disagree, the probes
//! win, with a warning.

use crate::adapter::ComfyAdapter;
use crate::endpoints;
use crate::error::{ComfyError, Result};
use crate::http::{Body, HttpCore, Timeouts};
use crate::line::{Adapter, CancelApi, JobsApi, Legacy};
use crate::model::server::{Capabilities, Line, ServerInfo};
use crate::normalize;
use crate::releases;
use serde_json::json;
use std::sync::Arc;

/// `major.minor` of the newest recorded release ([`releases::newest`]):
/// anything newer is outside the tested range.
pub fn newest_tested() -> (u64, u64) {
    let v = releases::newest().semver();
    (v.major, v.minor)
}

/// `major.minor` of the oldest recorded release ([`releases::oldest`]).
pub fn oldest_tested() -> (u64, u64) {
    let v = releases::oldest().semver();
    (v.major, v.minor)
}

/// How to detect.
#[derive(Debug, Clone, Default)]
pub struct DetectOptions {
    /// Timeouts for every request, the probes included.
    pub timeouts: Timeouts,
    /// Refuse a version that is unparseable or outside the tested range
    /// instead of picking the nearest line with a warning.
    pub strict: bool,
    /// `comfy-user` header for multi-user servers.
    pub user: Option<String>,
}

/// What detection found.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The adapter for the line.
    pub adapter: Arc<dyn ComfyAdapter>,
    /// What `/system_stats` said.
    pub info: ServerInfo,
    /// The line chosen.
    pub line: Line,
    /// What the server can do.
    pub capabilities: Capabilities,
    /// Why the choice was not clear-cut, if it was not.
    pub warnings: Vec<String>,
}

/// Builds the adapter for a line you name, without asking the server.
pub fn connect(
    url: &str,
    line: Line,
    capabilities: Capabilities,
    timeouts: Timeouts,
    user: Option<String>,
) -> Result<Arc<dyn ComfyAdapter>> {
    let core = HttpCore::new(url, timeouts, user)?;
    Ok(adapter_for(line, core, capabilities))
}

fn adapter_for(line: Line, core: HttpCore, caps: Capabilities) -> Arc<dyn ComfyAdapter> {
    match line {
        Line::Legacy => Arc::new(Adapter::<Legacy>::new(core, caps)),
        Line::JobsApi => Arc::new(Adapter::<JobsApi>::new(core, caps)),
        Line::CancelApi => Arc::new(Adapter::<CancelApi>::new(core, caps)),
    }
}

/// Reads the version, probes, and returns the adapter for the matching line.
pub async fn detect(url: &str, options: &DetectOptions) -> Result<Detection> {
    let core = HttpCore::new(url, options.timeouts, options.user.clone())?;
    let info = read_system_stats(&core).await?;
    let mut warnings = Vec::new();

    let jobs_api = probe_jobs_api(&core).await?;
    let cancel_api = jobs_api && probe_cancel_api(&core).await?;
    let probed = if cancel_api {
        Line::CancelApi
    } else if jobs_api {
        Line::JobsApi
    } else {
        Line::Legacy
    };

    let line = match (&info.version, info.version_string.as_deref()) {
        (Some(v), reported) => {
            let reported = reported.unwrap_or_default();
            let by_version = Line::for_version(v);
            let (mm, oldest, newest) = ((v.major, v.minor), oldest_tested(), newest_tested());
            if mm > newest || mm < oldest {
                let why = format!(
                    "ComfyUI {reported} is outside the tested range {}.{} – {}.{}",
                    oldest.0, oldest.1, newest.0, newest.1
                );
                if options.strict {
                    return Err(ComfyError::UnsupportedVersion {
                        version: reported.to_owned(),
                        reason: why,
                    });
                }
                warnings.push(format!(
                    "{why}; using the {probed} line the probes point to"
                ));
            } else if by_version != probed {
                warnings.push(format!(
                    "ComfyUI {reported} should be on the {by_version} line but the probes say {probed}; using {probed}"
                ));
            }
            probed
        }
        (None, reported) => {
            let why = match reported {
                Some(s) => format!("unparseable version {s:?}"),
                None => "no comfyui_version in /system_stats".to_owned(),
            };
            if options.strict {
                return Err(ComfyError::UnsupportedVersion {
                    version: reported.unwrap_or_default().to_owned(),
                    reason: why,
                });
            }
            warnings.push(format!(
                "{why}; using the {probed} line the probes point to"
            ));
            probed
        }
    };

    let mut caps = Capabilities::for_line(line, info.version.as_ref());
    caps.jobs_api = jobs_api;
    caps.jobs_cancel_api = cancel_api;
    caps.multi_user = info.multi_user();
    match endpoints::features(&core).await {
        Ok(Some(f)) => normalize::capabilities_from_features(&mut caps, &f),
        Ok(None) => {}
        Err(e) => warnings.push(format!("/features unreadable: {e}")),
    }
    for w in &warnings {
        tracing::warn!(url, "{w}");
    }
    Ok(Detection {
        adapter: adapter_for(line, core, caps.clone()),
        info,
        line,
        capabilities: caps,
        warnings,
    })
}

async fn read_system_stats(core: &HttpCore) -> Result<ServerInfo> {
    let url = core.base().to_string();
    let resp = core.get("/system_stats", &[]).await?;
    if resp.status >= 500 {
        return Err(resp.into_error("/system_stats"));
    }
    if !resp.is_success() {
        return Err(ComfyError::NotComfyUi {
            url,
            reason: format!("GET /system_stats answered {}", resp.status),
        });
    }
    let stats: crate::wire::system::SystemStats =
        serde_json::from_slice(&resp.body).map_err(|e| ComfyError::NotComfyUi {
            url,
            reason: format!("/system_stats is not ComfyUI's shape: {e}"),
        })?;
    Ok(normalize::server_info(stats))
}

async fn probe_jobs_api(core: &HttpCore) -> Result<bool> {
    let resp = core.get("/api/jobs", &[("limit", "0")]).await?;
    match resp.status {
        200 | 400 => Ok(true),
        404 | 405 => Ok(false),
        _ => Err(resp.into_error("probe GET /api/jobs")),
    }
}

async fn probe_cancel_api(core: &HttpCore) -> Result<bool> {
    let body = Body::Json(json!({ "job_ids": ["not-a-uuid"] }));
    let resp = core.post("/api/jobs/cancel", &[], body).await?;
    match resp.status {
        200 | 400 => Ok(true),
        404 | 405 => Ok(false),
        _ => Err(resp.into_error("probe POST /api/jobs/cancel")),
    }
}

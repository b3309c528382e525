//! Flags and environment variables of the worker.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

/// GPU worker of the multi-user ComfyUI platform.
///
/// Leases jobs from the queue manager, runs them on the ComfyUI at
/// --comfy-url (any release from 0.3 on: the version is detected), follows
/// them over the WebSocket with status polling as the source of truth, and
/// reports outputs or a classified error. Every flag has an environment
/// variable.
#[derive(Debug, Clone, Parser)]
#[command(name = "comfy-worker", version, about, long_about = None)]
pub struct Config {
    /// Base URL of the queue manager.
    #[arg(
        long,
        env = "WORKER_QUEUE_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    pub queue_url: String,

    /// Bearer token for the queue's worker API (when the queue has auth on).
    #[arg(long, env = "WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// This worker's id (default: `worker-<hostname>-<pid>`).
    #[arg(long, env = "WORKER_ID")]
    pub worker_id: Option<String>,

    /// Base URL of the ComfyUI server this worker drives.
    #[arg(long, env = "COMFY_URL", default_value = "http://127.0.0.1:8188")]
    pub comfy_url: String,

    /// Start drained: ask the queue to drain this worker once it has registered, so it
    /// takes no job until an admin (or SIGUSR2) puts it back.
    #[arg(long, env = "WORKER_DRAIN")]
    pub drain: bool,

    /// Long-poll of next-job, in seconds (the queue caps it).
    #[arg(long, env = "WORKER_POLL_WAIT_SECS", default_value_t = 25.0)]
    pub poll_wait_secs: f64,

    /// Heartbeat period in seconds (default: what the queue suggests, a third of the lease).
    #[arg(long, env = "WORKER_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<f64>,

    /// Status poll period while a prompt runs, in seconds (the source of truth;
    /// the WebSocket only makes things faster).
    #[arg(long, env = "WORKER_STATUS_POLL_SECS", default_value_t = 1.0)]
    pub status_poll_secs: f64,

    /// Watchdog: a socket silent this long while a prompt runs is reopened.
    #[arg(long, env = "WORKER_WS_SILENCE_SECS", default_value_t = 15.0)]
    pub ws_silence_secs: f64,

    /// ComfyUI unreachable this long while a prompt runs: the job is handed back (retryable).
    #[arg(long, env = "WORKER_UNREACHABLE_SECS", default_value_t = 10.0)]
    pub unreachable_secs: f64,

    /// Longest a single job may run before it is interrupted and handed back.
    #[arg(long, env = "WORKER_JOB_TIMEOUT_SECS", default_value_t = 3600.0)]
    pub job_timeout_secs: f64,

    /// On SIGTERM/SIGINT, how long the current job may take to finish before it
    /// is interrupted and handed back to the queue.
    #[arg(long, env = "WORKER_SHUTDOWN_GRACE_SECS", default_value_t = 20.0)]
    pub shutdown_grace_secs: f64,

    /// Connect timeout for ComfyUI calls, in seconds.
    #[arg(long, env = "WORKER_COMFY_CONNECT_SECS", default_value_t = 5.0)]
    pub comfy_connect_secs: f64,

    /// Total timeout of one ComfyUI call, in seconds.
    #[arg(long, env = "WORKER_COMFY_REQUEST_SECS", default_value_t = 30.0)]
    pub comfy_request_secs: f64,

    /// Timeout of one queue call (the long-poll adds its wait), in seconds.
    #[arg(long, env = "WORKER_QUEUE_REQUEST_SECS", default_value_t = 15.0)]
    pub queue_request_secs: f64,

    /// Shortest back-off after ComfyUI or the queue failed, in seconds.
    #[arg(long, env = "WORKER_BACKOFF_MIN_SECS", default_value_t = 0.5)]
    pub backoff_min_secs: f64,

    /// Longest back-off, in seconds.
    #[arg(long, env = "WORKER_BACKOFF_MAX_SECS", default_value_t = 30.0)]
    pub backoff_max_secs: f64,

    /// Forward the running prompt's live ComfyUI events (progress, node starts, outputs) to
    /// the queue, which shows them to the job's watchers on its /ws. Lossy: never slows the job.
    #[arg(long, env = "WORKER_FORWARD_EVENTS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub forward_events: bool,

    /// Forward ComfyUI's preview images (base64) with the events (`--forward-previews false`
    /// to send only their size and type).
    #[arg(long, env = "WORKER_FORWARD_PREVIEWS", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub forward_previews: bool,

    /// The platform's sealing key (a file of 64 hex digits, the gateway's
    /// `sealing_key_file`): opens the Comfy account secrets a job carries sealed,
    /// just before its prompt goes to ComfyUI. Without it such jobs run signed out.
    #[arg(long, env = "WORKER_SEALING_KEY_FILE")]
    pub sealing_key_file: Option<std::path::PathBuf>,
    /// Re-read ComfyUI's node catalogue (`/object_info`) this often, in seconds, between
    /// jobs; when it changed (models added to this machine change the loaders' choice lists)
    /// publish it to the queue again and re-register. 0 = only at detection.
    #[arg(long, env = "WORKER_CATALOGUE_REFRESH_SECS", default_value_t = 300.0)]
    pub catalogue_refresh_secs: f64,

    /// Where to serve /health and /metrics (`off` to disable).
    #[arg(long, env = "WORKER_HEALTH_LISTEN", default_value = "127.0.0.1:9188")]
    pub health_listen: String,
}

/// Seconds → Duration, for flags (negative, NaN and infinite become `fallback`).
pub fn secs(s: f64, fallback: f64) -> Duration {
    if s.is_finite() && s >= 0.0 {
        Duration::from_secs_f64(s)
    } else {
        Duration::from_secs_f64(fallback)
    }
}

impl Config {
    /// Defaults, as if no flag was given, for `queue_url` and `comfy_url`.
    pub fn for_urls(queue_url: &str, comfy_url: &str) -> Config {
        let mut c = Config::parse_from(["comfy-worker"]);
        c.queue_url = queue_url.to_owned();
        c.comfy_url = comfy_url.to_owned();
        c
    }

    /// The worker id, defaulted.
    pub fn worker_id(&self) -> String {
        match &self.worker_id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => {
                let host = std::env::var("HOSTNAME")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "local".to_owned());
                let host: String = host
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .take(40)
                    .collect();
                format!("worker-{host}-{}", std::process::id())
            }
        }
    }

    /// The health listen address, `None` when `off`.
    pub fn health_addr(&self) -> Result<Option<SocketAddr>, String> {
        match self.health_listen.trim() {
            "" | "off" | "none" => Ok(None),
            s => s
                .parse()
                .map(Some)
                .map_err(|e| format!("--health-listen {s:?}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse_from(["comfy-worker"]);
        assert_eq!(c.queue_url, "http://127.0.0.1:3000");
        assert_eq!(c.comfy_url, "http://127.0.0.1:8188");
        assert!(c.worker_id().starts_with("worker-"));
        let c = Config::parse_from([
            "comfy-worker",
            "--worker-id",
            "gpu-1",
            "--health-listen",
            "off",
            "--status-poll-secs",
            "0.2",
        ]);
        assert_eq!(c.worker_id(), "gpu-1");
        assert_eq!(c.health_addr(), Ok(None));
        assert_eq!(secs(c.status_poll_secs, 1.0), Duration::from_millis(200));
        assert_eq!(secs(f64::NAN, 1.0), Duration::from_secs(1));
        assert!(c.forward_events && c.forward_previews);
        assert_eq!(c.catalogue_refresh_secs, 300.0);
        let c = Config::parse_from(["comfy-worker", "--forward-previews", "false"]);
        assert!(c.forward_events && !c.forward_previews);
        let c = Config::parse_from(["comfy-worker", "--forward-events=false"]);
        assert!(!c.forward_events);
    }
}

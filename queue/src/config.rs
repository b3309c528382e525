//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::auth::AuthConfig;
use crate::state::Settings;

/// Queue manager of the multi-user ComfyUI platform.
///
/// Every flag can also be set through the environment variable shown. With neither
/// --worker-token nor --admin-token set, authentication is OFF (a warning is logged).
#[derive(Debug, Clone, Parser)]
#[command(name = "comfy-queue", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "QUEUE_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// SQLite database file (created on first start). Ignored when --redis-url is set.
    #[arg(long, env = "QUEUE_DB", default_value = "./comfy-queue.db")]
    pub db: PathBuf,

    /// Use the Redis backend at this URL (e.g. redis://127.0.0.1:6379/0) instead of SQLite.
    #[arg(long, env = "QUEUE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Run on a Redis without an append-only file (`appendonly no`), where a crash loses
    /// acknowledged jobs. Without this flag the queue refuses to start on such a Redis.
    #[arg(long, env = "QUEUE_ALLOW_VOLATILE_REDIS")]
    pub allow_volatile_redis: bool,

    /// Key prefix for the Redis backend.
    #[arg(long, env = "QUEUE_REDIS_PREFIX", default_value = "cq")]
    pub redis_prefix: String,

    /// Bearer token workers present on /api/workers/*.
    #[arg(long, env = "QUEUE_WORKER_TOKEN", hide_env_values = true)]
    pub worker_token: Option<String>,

    /// Bearer token for admins (any user's jobs, priorities, dashboard).
    #[arg(long, env = "QUEUE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Trusted header naming the user (set by the reverse proxy after basic auth).
    #[arg(long, env = "QUEUE_USER_HEADER", default_value = "X-Forwarded-User")]
    pub user_header: String,

    /// Lease length in seconds for registered workers (renewed by heartbeats).
    #[arg(long, env = "QUEUE_LEASE_SECS", default_value_t = 60.0)]
    pub lease_secs: f64,

    /// Lease length in seconds for workers that never registered (they send no heartbeats).
    #[arg(long, env = "QUEUE_LEGACY_LEASE_SECS", default_value_t = 3600.0)]
    pub legacy_lease_secs: f64,

    /// Attempts per job before it is failed for good (dead letter).
    #[arg(long, env = "QUEUE_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Pending-job cap; submits beyond it get 429 (0 = no cap).
    #[arg(long, env = "QUEUE_MAX_PENDING", default_value_t = 100)]
    pub max_pending: u64,

    /// Pending+running cap per user (0 = no cap).
    #[arg(long, env = "QUEUE_MAX_PER_USER", default_value_t = 0)]
    pub max_per_user: u64,

    /// Base delay in seconds before a job failed with `retry: true` runs again; attempt n
    /// waits base × 2^(n-1), at most base × 32.
    #[arg(long, env = "QUEUE_RETRY_DELAY_SECS", default_value_t = 10.0)]
    pub retry_delay_secs: f64,

    /// Longest long-poll (next-job `wait=`) in seconds.
    #[arg(long, env = "QUEUE_MAX_WAIT_SECS", default_value_t = 30.0)]
    pub max_wait_secs: f64,

    /// Seconds between reaper passes.
    #[arg(long, env = "QUEUE_REAP_INTERVAL_SECS", default_value_t = 5.0)]
    pub reap_interval_secs: f64,

    /// Directory of the local file store (uploads, inputs and outputs of jobs, by SHA-256).
    /// Default: `files/` beside the SQLite file; with --redis-url, `./comfy-queue-files`.
    /// Not used with --files-s3-bucket.
    #[arg(long, env = "QUEUE_FILES_DIR")]
    pub files_dir: Option<PathBuf>,

    /// Keep files in this S3 bucket (AWS S3, Cloudflare R2, MinIO, ...) instead of a local
    /// directory. Keys come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
    /// AWS_SESSION_TOKEN), else from the instance's metadata.
    #[arg(long, env = "QUEUE_FILES_S3_BUCKET")]
    pub files_s3_bucket: Option<String>,

    /// S3 endpoint URL for services other than AWS (R2, MinIO); default AWS (or
    /// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
    #[arg(long, env = "QUEUE_FILES_S3_ENDPOINT")]
    pub files_s3_endpoint: Option<String>,

    /// S3 region (`auto` for R2); default AWS_REGION, else us-east-1.
    #[arg(long, env = "QUEUE_FILES_S3_REGION")]
    pub files_s3_region: Option<String>,

    /// Folder in the bucket the files are kept under (e.g. `comfy/files`); default the
    /// bucket's root.
    #[arg(long, env = "QUEUE_FILES_S3_PREFIX", default_value = "")]
    pub files_s3_prefix: String,

    /// Allow an `http://` S3 endpoint (a MinIO on the same host); otherwise only https.
    #[arg(long, env = "QUEUE_FILES_S3_ALLOW_HTTP")]
    pub files_s3_allow_http: bool,

    /// Largest file one upload may carry, in bytes (larger ones are answered 413).
    #[arg(long, env = "QUEUE_MAX_FILE_BYTES", default_value_t = crate::state::DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,

    /// Seconds after a job ended that its files are forgotten (and their bytes deleted
    /// unless another job or an upload still refers to them). Default 7 days.
    #[arg(long, env = "QUEUE_FILE_RETENTION_SECS", default_value_t = 604_800.0)]
    pub file_retention_secs: f64,

    /// Seconds an upload stays usable by submits after its upload (or its latest use), and
    /// the age a stored file nothing refers to must reach before it is deleted. Default 1 h.
    #[arg(long, env = "QUEUE_UPLOAD_GRACE_SECS", default_value_t = 3600.0)]
    pub upload_grace_secs: f64,

    /// Bytes of submit bodies the queue reads and processes at once (each costs up to about
    /// three times its size in memory while it is). A submit whose body would pass it is
    /// answered 503 `server_busy` with `Retry-After` (0 = no bound).
    #[arg(long, env = "QUEUE_MAX_BODY_BYTES_IN_FLIGHT", default_value_t = crate::state::DEFAULT_MAX_BODY_BYTES_IN_FLIGHT)]
    pub max_body_bytes_in_flight: u64,
    /// Seconds between file sweeps (forgetting expired files, deleting unreferenced bytes).
    #[arg(long, env = "QUEUE_FILE_SWEEP_SECS", default_value_t = 600.0)]
    pub file_sweep_secs: f64,

    /// Largest node catalogue (`/object_info`) a worker may upload, in bytes (larger ones
    /// are answered 413). Default 64 MiB.
    #[arg(long, env = "QUEUE_MAX_CATALOGUE_BYTES", default_value_t = crate::state::DEFAULT_MAX_CATALOGUE_BYTES)]
    pub max_catalogue_bytes: u64,

    /// Seconds a pending job may wait while no live worker can run it (no registration
    /// satisfies its `metadata.requires`, or no published node catalogue has its nodes and
    /// list values) before it fails with `no_capable_worker`; 0 = it waits for ever. While
    /// no worker at all is live (an outage) the wait does not count.
    #[arg(long, env = "QUEUE_NO_CAPABLE_WORKER_SECS", default_value_t = 600.0)]
    pub no_capable_worker_secs: f64,

    /// Milliseconds between looks at the front of the queue for jobs no live worker can
    /// run (at least 100).
    #[arg(long, env = "QUEUE_ROUTE_CHECK_MS", default_value_t = 2000)]
    pub route_check_ms: u64,
}

/// Seconds as milliseconds for a duration setting: non-negative, at most ~100 years;
/// `default` for anything that is not a number.
fn secs_setting(s: f64, default: i64) -> i64 {
    if s.is_finite() && s >= 0.0 {
        (s.min(3.2e9) * 1000.0) as i64
    } else {
        default
    }
}

fn secs_to_ms(s: f64) -> i64 {
    if s.is_finite() && s > 0.0 {
        (s * 1000.0) as i64
    } else {
        1000
    }
}

impl Config {
    /// The service settings this configuration describes.
    pub fn settings(&self) -> Settings {
        Settings {
            lease_ms: secs_to_ms(self.lease_secs),
            legacy_lease_ms: secs_to_ms(self.legacy_lease_secs),
            max_attempts: self.max_attempts.max(1),
            max_pending: self.max_pending,
            retry_delay_ms: if self.retry_delay_secs.is_finite() && self.retry_delay_secs >= 0.0 {
                (self.retry_delay_secs.min(86_400.0) * 1000.0) as i64
            } else {
                10_000
            },
            max_per_user: self.max_per_user,
            max_wait_secs: if self.max_wait_secs.is_finite() {
                self.max_wait_secs.clamp(0.0, 3600.0)
            } else {
                30.0
            },
            auth: AuthConfig {
                worker_token: self.worker_token.clone().filter(|t| !t.is_empty()),
                admin_token: self.admin_token.clone().filter(|t| !t.is_empty()),
                user_header: self.user_header.clone(),
            },
            max_file_bytes: self.max_file_bytes,
            file_retention_ms: secs_setting(self.file_retention_secs, 604_800_000),
            upload_grace_ms: secs_setting(self.upload_grace_secs, 3_600_000),
            file_sweep_ms: secs_setting(self.file_sweep_secs, 600_000).max(1000),
            max_catalogue_bytes: self.max_catalogue_bytes,
            max_body_bytes_in_flight: self.max_body_bytes_in_flight,
            no_capable_worker_ms: secs_setting(self.no_capable_worker_secs, 600_000),
            route_check_ms: i64::try_from(self.route_check_ms.max(100)).unwrap_or(2_000),
        }
    }

    /// The local file store's directory: `--files-dir`, else `files/` beside the SQLite
    /// file, else (Redis) `./comfy-queue-files`.
    pub fn files_dir(&self) -> PathBuf {
        if let Some(dir) = &self.files_dir {
            return dir.clone();
        }
        if self.redis_url.is_some() {
            return PathBuf::from("./comfy-queue-files");
        }
        match self.db.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join("files"),
            _ => PathBuf::from("files"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::try_parse_from(["comfy-queue"]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.db, PathBuf::from("./comfy-queue.db"));
        let s = c.settings();
        assert_eq!(s.max_pending, 100);
        assert_eq!(s.lease_ms, 60_000);
        assert!(!s.auth.enabled());
        assert_eq!(s.max_file_bytes, 1 << 30);
        assert_eq!(s.file_retention_ms, 7 * 24 * 3_600_000);
        assert_eq!(s.upload_grace_ms, 3_600_000);
        assert_eq!(s.max_catalogue_bytes, 64 << 20);
        assert_eq!(c.files_dir(), PathBuf::from("./files"));
        assert_eq!(c.files_s3_bucket, None);
        assert_eq!(s.max_body_bytes_in_flight, 256 << 20);
    }

    #[test]
    fn the_files_dir_follows_the_backend() {
        let c = Config::try_parse_from(["comfy-queue", "--db", "/var/lib/q/queue.db"]).unwrap();
        assert_eq!(c.files_dir(), PathBuf::from("/var/lib/q/files"));
        let c = Config::try_parse_from(["comfy-queue", "--db", "queue.db"]).unwrap();
        assert_eq!(c.files_dir(), PathBuf::from("files"));
        let c = Config::try_parse_from(["comfy-queue", "--redis-url", "redis://x"]).unwrap();
        assert_eq!(c.files_dir(), PathBuf::from("./comfy-queue-files"));
        let c = Config::try_parse_from(["comfy-queue", "--files-dir", "/data/f"]).unwrap();
        assert_eq!(c.files_dir(), PathBuf::from("/data/f"));
    }

    #[test]
    fn flags_override() {
        let c = Config::try_parse_from([
            "comfy-queue",
            "--listen",
            "0.0.0.0:9000",
            "--admin-token",
            "x",
            "--max-pending",
            "0",
            "--lease-secs",
            "2.5",
        ])
        .unwrap();
        let s = c.settings();
        assert!(s.auth.enabled());
        assert_eq!(s.max_pending, 0);
        assert_eq!(s.lease_ms, 2500);
    }
}

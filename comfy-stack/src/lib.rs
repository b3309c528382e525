//! The platform in one process: the queue manager (from the `comfy-queue`
//! library), workers and emulated ComfyUI servers. Used by `comfy-stack`
//! and by the end-to-end tests.

pub mod user_side;

use anyhow::Context;
use comfy_queue::clock::SystemClock;
use comfy_queue::store::Store;
use comfy_queue::store::redis::RedisStore;
use comfy_queue::store::sqlite::SqliteStore;
use comfy_queue::{AppState, Settings, app};
use comfy_queue_api::Status;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Which store the queue uses.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A SQLite file (created on first start).
    Sqlite(PathBuf),
    /// A Redis server URL and key prefix.
    Redis(String, String),
}

/// How to run the queue.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// Where to listen (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// The store.
    pub backend: Backend,
    /// Tunables (leases, attempts, caps, auth).
    pub settings: Settings,
    /// Reaper period.
    pub reap_every: Duration,
    /// Directory of the queue's file store (uploads, inputs and outputs of jobs).
    pub files_dir: PathBuf,
}

impl QueueOptions {
    /// Embedded defaults on a SQLite file; files are kept in `files/` beside it.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let files_dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join("files"),
            _ => PathBuf::from("files"),
        };
        QueueOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            backend: Backend::Sqlite(path),
            settings: Settings::default(),
            reap_every: Duration::from_secs(5),
            files_dir,
        }
    }

    /// Short leases for tests: `lease` seconds, reaper every tenth of it.
    pub fn short_leases(mut self, lease: Duration) -> Self {
        self.settings.lease_ms = lease.as_millis() as i64;
        self.reap_every = (lease / 10).max(Duration::from_millis(50));
        self
    }
}

/// A queue manager serving in this process.
#[derive(Debug)]
pub struct RunningQueue {
    addr: SocketAddr,
    state: AppState,
    tasks: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl RunningQueue {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The service state (store, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for RunningQueue {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Opens the store and serves the queue's HTTP API.
pub async fn start_queue(opts: QueueOptions) -> anyhow::Result<RunningQueue> {
    let store: Arc<dyn Store> = match &opts.backend {
        Backend::Sqlite(path) => Arc::new(
            SqliteStore::open(path).with_context(|| format!("opening {}", path.display()))?,
        ),
        Backend::Redis(url, prefix) => Arc::new(
            RedisStore::connect(url, prefix)
                .await
                .with_context(|| format!("connecting to Redis at {url}"))?,
        ),
    };
    let files = comfy_artifacts::LocalStore::open(&opts.files_dir)
        .await
        .with_context(|| format!("opening the file store at {}", opts.files_dir.display()))?;
    let state = AppState::new(
        store,
        Arc::new(files),
        Arc::new(SystemClock),
        opts.settings.clone(),
    );
    let reaper = state.spawn_reaper(opts.reap_every);
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let service = app(state.clone());
    let server = tokio::spawn(async move {
        let serve = axum::serve(comfy_queue::no_delay(listener), service).with_graceful_shutdown(
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        );
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "queue server ended");
        }
    });
    Ok(RunningQueue {
        addr,
        state,
        tasks: vec![reaper, server],
        stop,
    })
}

/// The user/admin side of the queue API, as the frontends and the dashboard
/// call it (for the demo and the end-to-end tests).
#[derive(Debug, Clone)]
pub struct UserApi {
    http: reqwest::Client,
    base: String,
}

/// A user-side call failed.
#[derive(Debug, thiserror::Error)]
pub enum UserApiError {
    /// Transport or decoding.
    #[error("queue call failed: {0}")]
    Http(#[from] reqwest::Error),
    /// Unexpected status.
    #[error("queue answered {0}: {1}")]
    Status(u16, String),
    /// A wait ran out.
    #[error("timed out waiting: {0}")]
    Timeout(String),
}

impl UserApi {
    /// A client for the queue at `base`.
    pub fn new(base: &str) -> Self {
        UserApi {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `POST /api/jobs` with the seed's payload; returns the job.
    pub async fn submit(
        &self,
        user_id: &str,
        workflow: &serde_json::Value,
        metadata: serde_json::Value,
    ) -> Result<serde_json::Value, UserApiError> {
        let body = serde_json::json!({
            "user_id": user_id, "workflow": workflow, "priority": 1, "metadata": metadata,
        });
        let resp = self
            .http
            .post(format!("{}/api/jobs", self.base))
            .json(&body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 201 && status != 200 {
            return Err(UserApiError::Status(
                status,
                resp.text().await.unwrap_or_default(),
            ));
        }
        Ok(resp.json().await?)
    }

    /// `GET /api/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<serde_json::Value, UserApiError> {
        let resp = self
            .http
            .get(format!("{}/api/jobs/{id}", self.base))
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(UserApiError::Status(
                status,
                resp.text().await.unwrap_or_default(),
            ));
        }
        Ok(resp.json().await?)
    }

    /// `DELETE /api/jobs/{id}` (cancel).
    pub async fn cancel(&self, id: &str) -> Result<(), UserApiError> {
        let resp = self
            .http
            .delete(format!("{}/api/jobs/{id}", self.base))
            .send()
            .await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(UserApiError::Status(
                status,
                resp.text().await.unwrap_or_default(),
            ));
        }
        Ok(())
    }

    /// `GET /api/workers`.
    pub async fn workers(&self) -> Result<serde_json::Value, UserApiError> {
        let resp = self
            .http
            .get(format!("{}/api/workers", self.base))
            .send()
            .await?;
        Ok(resp.json().await?)
    }

    /// Polls the job until `done(job)` holds.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, UserApiError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self.job(id).await?;
            if done(&job) {
                return Ok(job);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(UserApiError::Timeout(format!("job {id}: {job}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls the job until it is completed, failed or cancelled.
    pub async fn wait_terminal(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, UserApiError> {
        self.wait_for(id, timeout, |j| {
            j["status"]
                .as_str()
                .and_then(Status::parse)
                .is_some_and(Status::is_terminal)
        })
        .await
    }
}

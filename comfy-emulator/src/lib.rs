//! An emulated ComfyUI server: accepts prompts, runs
//! them through queued → running → done with plausible timing, produces
//! outputs, and answers `/system_stats`, `/features`, `/object_info`,
//! `/prompt`, `/queue`, `/history`, `/interrupt`, `/view`, `/api/jobs`
//! (0.6+), the cancel endpoints (0.26+) and `/ws` in the recorded shapes of
//! the version it emulates, plus `/upload/image`, `/userdata`,
//! `/v2/userdata`, `/settings`, `/users`, `/models`, `/embeddings` and
//! `/extensions`. Uploads, outputs and user data live in a temporary
//! directory made at start and removed when the emulator stops. Good enough
//! to run the whole platform without a GPU.
//!
//! With [`EmulatorConfig::frontend_dir`] it also serves a real frontend
//! build and answers every call that frontend makes while it boots
//! (`/i18n`, `/global_subgraphs`, `/experiment/models`, the templates
//! index, …, as the recorded sessions show); with
//! [`EmulatorConfig::models`] it answers as a server that has those model
//! files, so templates that load models validate and run.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use comfy_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::start(EmulatorConfig::new("0.11.1")).await?;
//! let detection = comfy_adapter::detect(&emu.url(), &Default::default()).await?;
//! assert_eq!(detection.info.version_string.as_deref(), Some("0.11.1"));
//! emu.stop().await;
//! # Ok(()) }
//! ```
//!
//! Failure injection: a `SaveImage` whose `filename_prefix` contains `..`
//! fails as recorded ("Saving image outside the output folder"); one that
//! contains `emulator_oom` raises `torch.OutOfMemoryError`; one that
//! contains `emulator_stall` runs until interrupted. [`Faults`] switches the
//! same at run time, plus a silent WebSocket, a node class that raises and
//! one that crashes the whole server ([`EmulatorHandle::crashed`]).
//!
//! Stepping (a test hook): [`EmulatorHandle::hold`] arms a [`Breakpoint`]
//! that stops the executor at one step of a prompt — before a node starts,
//! inside a node, or after the prompt ended but before its history entry
//! is written — until the test releases the returned [`Hold`]. A test
//! thereby puts a prompt exactly where a real server was caught instead of
//! relying on timing; the HTTP side keeps answering meanwhile. Without a
//! breakpoint the executor runs as it always does.
//!
//! ```no_run
//! # async fn demo(emu: &comfy_emulator::EmulatorHandle) {
//! use comfy_emulator::Breakpoint;
//! // Hold the first ImageScale before it starts; the prompt stays running.
//! let hold = emu.hold(Breakpoint::before_node().class("ImageScale"));
//! let at = hold.reached().await;
//! // … POST /interrupt now and the prompt stops at this node …
//! hold.release();
//! # let _ = at; }
//! ```

mod app;
mod boot;
mod catalogue;
mod engine;
mod files;
mod frontend;
mod history;
mod jobs;
mod models;
mod nodes;
mod profile;
mod prompts;
mod recordings;
mod reply;
mod request;
mod routes;
mod served;
mod server_info;
mod userdata;
mod view;
mod web_root;
mod ws;

pub use engine::{Breakpoint, Faults, Hold, Step, Stopped, WsMessage};
pub use models::{
    MODEL_INPUTS, ModelFiles, TemplateModelsError, template_models, template_models_in,
};
pub use recordings::{RECORDED_FILES, embedded_versions, recorded_object_info};
pub use served::Served;

use engine::{DEFAULT_WORK_UNIT_MEGAPIXELS, Engine};
use profile::Profile;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// A recorded version: one of [`embedded_versions`], or any version
    /// whose recordings are in [`fixtures_dir`](Self::fixtures_dir).
    pub version: String,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Time each node takes (zero for benchmarks).
    pub node_time: Duration,
    /// Megapixels a node processes in `node_time`: a node working on more
    /// (the largest image it reads or makes) takes `node_time ×
    /// megapixels / work_unit_megapixels`. The slow prompt of the recorded
    /// suite (eight 4096² images scaled to 4000² and saved, about 9 s on a
    /// real CPU) takes about 17 node times per node at the default 8.0.
    pub work_unit_megapixels: f64,
    /// A folder of recorded sets (`comfyui-<version>/`, the layout of
    /// `fixtures/`) to answer from; `None` answers from the recordings
    /// embedded in the crate.
    pub fixtures_dir: Option<PathBuf>,
    /// Faults switched on from the start.
    pub faults: Faults,
    /// `progress` messages (step counters, as a sampler sends them) each node that loops
    /// (every node but the one-operation ones such as `EmptyImage`) sends while it runs,
    /// evenly over its time: `value` 1 to n of `max` n. 0 (the default) sends none.
    pub progress_steps: u32,
    /// A frontend build to serve (the `static/` folder of a
    /// `comfyui-frontend-package` wheel): `GET /` answers its `index.html`
    /// and any `GET` no API route takes answers the file under it, as
    /// ComfyUI serves its web root. `None` (the default) answers those with
    /// the usual 404.
    pub frontend_dir: Option<PathBuf>,
    /// Placeholder model files by folder (`checkpoints`, `loras`, `vae`,
    /// `text_encoders`, `diffusion_models`, …): the loader inputs that list
    /// a folder's files offer and accept these, and `/models/{folder}` and
    /// `/experiment/models/{folder}` list them. Empty (the default): no
    /// models, as the recorded servers. [`template_models`] builds one from
    /// UI workflows.
    pub models: ModelFiles,
    /// Images carry the prompt (and each `extra_pnginfo` entry, such as the UI
    /// workflow) in PNG text chunks, as ComfyUI's SaveImage writes them unless it
    /// runs with `--disable-metadata`: every image's bytes differ. Off (the
    /// default): every image is the same 1×1 PNG.
    pub metadata: bool,
}

impl EmulatorConfig {
    /// Defaults for `version`: a free local port, 20 ms per node.
    pub fn new(version: &str) -> Self {
        EmulatorConfig {
            version: version.to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            node_time: Duration::from_millis(20),
            work_unit_megapixels: DEFAULT_WORK_UNIT_MEGAPIXELS,
            fixtures_dir: None,
            faults: Faults::default(),
            progress_steps: 0,
            frontend_dir: None,
            models: ModelFiles::new(),
            metadata: false,
        }
    }

    /// Answer as a server that has `models` (see [`EmulatorConfig::models`]).
    pub fn models(mut self, models: ModelFiles) -> Self {
        self.models = models;
        self
    }

    /// Serve the frontend build in `dir` (see
    /// [`EmulatorConfig::frontend_dir`]).
    pub fn frontend_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.frontend_dir = Some(dir.into());
        self
    }

    /// Nodes that loop send `n` `progress` messages while they run (see
    /// [`EmulatorConfig::progress_steps`]).
    pub fn progress_steps(mut self, n: u32) -> Self {
        self.progress_steps = n;
        self
    }

    /// Images carry their prompt in PNG text chunks (see [`EmulatorConfig::metadata`]).
    pub fn metadata(mut self, on: bool) -> Self {
        self.metadata = on;
        self
    }

    /// Listen on `addr`.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Each node takes `d`.
    pub fn node_time(mut self, d: Duration) -> Self {
        self.node_time = d;
        self
    }

    /// A node takes `node_time` per `megapixels` it processes (at least
    /// `node_time`); see [`EmulatorConfig::work_unit_megapixels`].
    pub fn work_unit_megapixels(mut self, megapixels: f64) -> Self {
        self.work_unit_megapixels = megapixels;
        self
    }
}

/// Why an emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The version is not one of the recorded ones.
    #[error("no recordings for ComfyUI {0}; known: {known}", known = embedded_versions().join(", "))]
    UnknownVersion(String),
    /// The version is not a semantic version.
    #[error("ComfyUI version {0:?} is not a version (expected e.g. 0.11.1)")]
    BadVersion(String),
    /// The given folder has no readable recorded set of the version.
    #[error("no readable recording {file} in {}", dir.display())]
    NotInFolder {
        /// The set's folder (`DIR/comfyui-<version>`).
        dir: PathBuf,
        /// The file that is missing or unreadable.
        file: String,
    },
    /// The temporary input/output/user folders could not be made.
    #[error("cannot make the emulator's temporary folders: {0}")]
    Folders(#[source] std::io::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Starts emulators.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// Starts serving; the returned handle stops it (also on drop).
    pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
        let version = config.version.clone();
        let dir = config.fixtures_dir.clone();
        let recorded =
            tokio::task::spawn_blocking(move || recordings::load(&version, dir.as_deref()))
                .await
                .map_err(|_| EmulatorError::UnknownVersion(config.version.clone()))?
                .map_err(|m| match m {
                    recordings::Missing::NotEmbedded => {
                        EmulatorError::UnknownVersion(config.version.clone())
                    }
                    recordings::Missing::NotInFolder(dir, file) => {
                        EmulatorError::NotInFolder { dir, file }
                    }
                })?;
        let profile = Profile::new(&config.version, &recorded)
            .ok_or_else(|| EmulatorError::BadVersion(config.version.clone()))?;
        let classes = models::apply(&recorded.classes, &config.models);
        let files = files::Files::new().map_err(EmulatorError::Folders)?;
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.addr,
                source,
            })?;
        let engine = Arc::new(
            Engine::new(
                profile,
                classes,
                config.node_time,
                config.faults.clone(),
                files,
            )
            .with_work_unit(config.work_unit_megapixels)
            .with_progress_steps(config.progress_steps)
            .with_metadata(config.metadata),
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let served = served::Log::default();
        let app = app::App {
            engine: engine.clone(),
            port: addr.port(),
            frontend: config.frontend_dir.as_deref().map(frontend::Frontend::new),
            models: Arc::new(config.models.clone()),
            shutdown: stop_rx.clone(),
        };
        let executor = tokio::spawn(engine.clone().run());
        let mut stop_signal = stop_rx;
        let log = served.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, routes::router(app, log)).with_graceful_shutdown(
                async move {
                    let _ = stop_signal.changed().await;
                },
            );
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "emulator server ended");
            }
        });
        // A crash fault ends serving and execution at once.
        let mut crash = engine.crash.subscribe();
        let stop_on_crash = stop_tx.clone();
        let (executor_abort, server_abort) = (executor.abort_handle(), server.abort_handle());
        let crash_watch = tokio::spawn(async move {
            if crash.wait_for(Option::is_some).await.is_ok() {
                executor_abort.abort();
                let _ = stop_on_crash.send(true);
                server_abort.abort();
            }
        });
        tracing::info!(%addr, version = %config.version, "emulated ComfyUI listening");
        Ok(EmulatorHandle {
            addr,
            engine,
            served,
            stop: stop_tx,
            tasks: vec![executor, server, crash_watch],
        })
    }
}

/// A running emulator. Dropping it stops it.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    engine: Arc<Engine>,
    served: served::Log,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl EmulatorHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temporary directory holding `input/`, `output/`, `temp/` and
    /// `user/`; removed when the emulator stops.
    pub fn data_dir(&self) -> &std::path::Path {
        self.engine.files.root()
    }

    /// The emulated version.
    pub fn version(&self) -> &str {
        &self.engine.profile.version
    }

    /// Waits until a `crash_class` fault kills the server; says which node
    /// did it. Never returns when no crash happens.
    pub async fn crashed(&self) -> String {
        let mut crash = self.engine.crash.subscribe();
        match crash.wait_for(Option::is_some).await {
            Ok(node) => node.clone().unwrap_or_default(),
            Err(_) => std::future::pending().await,
        }
    }

    /// Test hook: arms `breakpoint`. The first step after this that it
    /// matches holds the executor until the returned [`Hold`] is released
    /// or dropped (see [`Step`] for what each step means).
    pub fn hold(&self, breakpoint: Breakpoint) -> Hold {
        self.engine.breakpoints.arm(breakpoint)
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.engine.lock().faults = faults;
    }

    /// Every WebSocket message the emulator sends from now on, at the moment it sends it
    /// (before any socket writes it): for tests and benchmarks that time what follows.
    pub fn ws_messages(&self) -> tokio::sync::broadcast::Receiver<WsMessage> {
        self.engine.ws.subscribe()
    }

    /// Every request answered so far (the last 10 000), oldest first: what a
    /// client asked and the status it got.
    pub fn served(&self) -> Vec<Served> {
        self.served.snapshot()
    }

    /// Prompts accepted so far.
    pub fn submitted(&self) -> u64 {
        self.engine.lock().submitted
    }

    /// Fault: nodes of `class` never look at the interrupt flag while they
    /// run (a long custom node with no progress hook). An interrupt sent
    /// meanwhile does not stop them: they run to their end and write their
    /// outputs. The flag stays set, so the next node to start sees it; when
    /// such a node is the last to run, the prompt succeeds despite the
    /// interrupt, as real 0.9.2 and 0.33.0 did. `None` switches it off.
    pub fn set_uninterruptible_class(&self, class: Option<&str>) {
        self.engine.lock().uninterruptible_class = class.map(str::to_owned);
    }

    /// Interrupts received that set ComfyUI's interrupt flag so far (a
    /// `POST /interrupt` or a jobs-API cancel of the running prompt); a
    /// test waits for this before letting a held node go on.
    pub fn interrupts(&self) -> u64 {
        self.engine.lock().interrupts
    }

    /// Pending + running prompts.
    pub fn queue_remaining(&self) -> usize {
        self.engine.lock().remaining()
    }

    /// The id of the running prompt, if any.
    pub fn running(&self) -> Option<String> {
        self.engine.lock().running.as_ref().map(|r| r.id.clone())
    }

    /// Stops serving: sockets close, the running prompt is abandoned (as a
    /// crashed server would), the port is released.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.engine.files.remove();
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
        self.engine.files.remove();
    }
}

//! `comfy-worker`: the GPU worker of the multi-user ComfyUI platform.
//!
//! On start, and whenever ComfyUI was unreachable or changed version, the
//! worker detects the server through `comfy-adapter`, picks the adapter for
//! its line, publishes its node catalogue (`/object_info`) and registers
//! with the queue (version, line, capabilities, the catalogue's hash). Then
//! it loops: long-poll `next-job`, check ComfyUI is still the one it
//! detected, run the job ([`runner`]), report. SIGTERM/SIGINT stop claiming;
//! the current job gets a grace period, then is interrupted and handed back.
//! See `docs/worker.md`.

pub mod classify;
pub mod config;
pub mod files;
pub mod fit;
pub mod follow;
pub mod health;
pub mod queue_client;
pub mod relay;
pub mod runner;
pub mod socket;

use crate::config::{Config, secs};
use crate::health::{Health, Outcome, Status};
use crate::queue_client::{CatalogueUpload, FailRequest, QueueClient, RegisterRequest};
use crate::runner::{JobEnd, RunContext, TIMING_TARGET, run_job};
use crate::socket::{ComfySocket, SocketOptions};
use backon::{BackoffBuilder, ExponentialBuilder};
use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_adapter::{ComfyAdapter, DetectOptions, Timeouts, detect};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What detection gave us.
#[derive(Debug, Clone)]
struct Detected {
    adapter: Arc<dyn ComfyAdapter>,
    version: Option<String>,
    /// Its node catalogue: the one read at detection (or at the latest refresh), else
    /// fetched by the first job that needs it.
    catalogue: Arc<files::CatalogueCache>,
    /// The registration sent (its `catalogue` is what the queue has).
    registration: RegisterRequest,
    /// When the catalogue was last read from ComfyUI.
    catalogue_read: Instant,
    /// The catalogue the queue has (the registration's), parsed for the check before each
    /// submit ([`fit`]).
    fit: Option<Arc<comfy_routing::Catalogue>>,
}

/// The node catalogue as read from ComfyUI, and whether the queue has it.
struct Published {
    catalogue: Arc<NodeCatalogue>,
    /// SHA-256 of its bytes.
    sha256: String,
    /// The queue stored it (false: an older queue, or the upload failed).
    stored: bool,
    /// It, parsed for [`fit`] (`None` if that failed).
    fit: Option<Arc<comfy_routing::Catalogue>>,
}

/// Resolves once `rx` says true (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// One worker process (or task).
#[derive(Debug)]
pub struct Worker {
    config: Config,
    queue: QueueClient,
    health: Arc<Health>,
    client_id: String,
    sealing_key: Option<comfy_sealed::SealKey>,
    /// The queue answered a catalogue upload 404/405 (an older queue): said once in the log.
    catalogues_unsupported: AtomicBool,
}

impl Worker {
    /// A worker for `config`.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let worker_id = config.worker_id();
        let queue = QueueClient::new(
            &config.queue_url,
            config.worker_token.clone(),
            &worker_id,
            secs(config.queue_request_secs, 15.0),
        )?;
        let health = Arc::new(Health::new(&worker_id, &config.comfy_url));
        let sealing_key = match &config.sealing_key_file {
            Some(path) => Some(comfy_sealed::SealKey::from_file(path)?),
            None => None,
        };
        Ok(Worker {
            config,
            queue,
            health,
            client_id: uuid::Uuid::new_v4().to_string(),
            sealing_key,
            catalogues_unsupported: AtomicBool::new(false),
        })
    }

    /// The health record (serve it with [`health::serve`]).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Its client of the queue (e.g. to drain it on a signal).
    pub fn queue(&self) -> QueueClient {
        self.queue.clone()
    }

    /// The worker id.
    pub fn worker_id(&self) -> &str {
        self.queue.worker_id()
    }

    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(secs(self.config.backoff_min_secs, 0.5))
            .with_max_delay(secs(self.config.backoff_max_secs, 30.0))
            .with_jitter()
            .without_max_times()
            .build()
    }

    async fn detect_and_register(&self) -> Result<Detected, String> {
        let options = DetectOptions {
            timeouts: Timeouts {
                connect: secs(self.config.comfy_connect_secs, 5.0),
                request: secs(self.config.comfy_request_secs, 30.0),
            },
            ..DetectOptions::default()
        };
        let d = detect(&self.config.comfy_url, &options)
            .await
            .map_err(|e| format!("ComfyUI at {} not usable: {e}", self.config.comfy_url))?;
        let version = d.info.version_string.clone();
        let mut reg = RegisterRequest {
            worker_id: self.worker_id().to_owned(),
            comfyui_version: version.clone().filter(|v| !v.is_empty()),
            line: Some(d.line.name().to_owned()),
            capabilities: Some(
                d.capabilities
                    .names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ),
            catalogue: None,
        };
        let published = self.publish_catalogue(d.adapter.as_ref()).await;
        let catalogue_read = Instant::now();
        reg.catalogue = published
            .as_ref()
            .filter(|p| p.stored)
            .map(|p| p.sha256.clone());
        let reg = self
            .register(reg, d.adapter.as_ref())
            .await
            .map_err(|e| format!("registration with the queue failed: {e}"))?;
        self.health
            .detected(version.clone(), d.line.name().to_owned());
        tracing::info!(version = ?version, line = %d.line, catalogue = ?reg.catalogue, "ComfyUI detected; registered with the queue");
        let fit = published
            .as_ref()
            .filter(|p| reg.catalogue.as_deref() == Some(p.sha256.as_str()))
            .and_then(|p| p.fit.clone());
        let catalogue = match published {
            Some(p) => files::CatalogueCache::holding(p.catalogue),
            None => files::CatalogueCache::new(),
        };
        Ok(Detected {
            adapter: d.adapter,
            version,
            catalogue: Arc::new(catalogue),
            registration: reg,
            catalogue_read,
            fit,
        })
    }

    /// Registers `reg`. If the queue no longer has the catalogue it names (a file sweep
    /// took the bytes between the upload and the registration), uploads it again once and
    /// registers with what that gives. Answers the registration the queue has.
    async fn register(
        &self,
        mut reg: RegisterRequest,
        adapter: &dyn ComfyAdapter,
    ) -> Result<RegisterRequest, queue_client::QueueError> {
        match self.queue.register(&reg).await {
            Err(e) if reg.catalogue.is_some() && e.has_code("unknown_catalogue") => {
                tracing::warn!(
                    "the queue lost the catalogue before the registration; uploading it again"
                );
                reg.catalogue = self
                    .publish_catalogue(adapter)
                    .await
                    .filter(|p| p.stored)
                    .map(|p| p.sha256);
                self.queue.register(&reg).await?;
                Ok(reg)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(reg),
        }
    }

    /// Reads ComfyUI's whole node catalogue and uploads it to the queue. `None` when it
    /// could not be read (the worker then registers without one and tries again at the
    /// next refresh); `stored` is false when the queue did not take it.
    async fn publish_catalogue(&self, adapter: &dyn ComfyAdapter) -> Option<Published> {
        let catalogue = match adapter.object_info(None).await {
            Ok(c) => Arc::new(c),
            Err(e) => {
                tracing::warn!(error = %e, "could not read ComfyUI's node catalogue; registering without it");
                return None;
            }
        };
        let bytes = match catalogue.to_json_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "could not write the node catalogue; registering without it");
                return None;
            }
        };
        let sha256 = files::sha256_hex(&bytes);
        let size = bytes.len();
        let fit = match comfy_routing::Catalogue::from_slice(&bytes) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the node catalogue for the checks before submits; prompts are left to ComfyUI");
                None
            }
        };
        let stored = match self.queue.put_catalogue(&sha256, bytes.into()).await {
            Ok(CatalogueUpload::Stored(_)) => {
                tracing::info!(sha256 = %sha256, size, classes = catalogue.len(), "node catalogue published");
                true
            }
            Ok(CatalogueUpload::Unsupported) => {
                if !self.catalogues_unsupported.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "the queue has no catalogue API (an older queue); registering without the node catalogue"
                    );
                }
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not publish the node catalogue; registering without it");
                false
            }
        };
        Some(Published {
            catalogue,
            sha256,
            stored,
            fit,
        })
    }

    /// Between jobs, every `--catalogue-refresh-secs`: reads the catalogue again and, when
    /// it is not the one the queue has (models were added, or the last upload failed),
    /// publishes it and re-registers. Answers the detection to go on with.
    async fn refresh_catalogue(&self, d: &Detected) -> Detected {
        let mut next = d.clone();
        next.catalogue_read = Instant::now();
        let Some(published) = self.publish_catalogue(d.adapter.as_ref()).await else {
            return next;
        };
        let sha = published.stored.then(|| published.sha256.clone());
        next.catalogue = Arc::new(files::CatalogueCache::holding(published.catalogue));
        if sha.is_none() || sha == d.registration.catalogue {
            return next;
        }
        let fit = published.fit.clone();
        let reg = RegisterRequest {
            catalogue: sha.clone(),
            ..d.registration.clone()
        };
        match self.register(reg, d.adapter.as_ref()).await {
            Ok(reg) => {
                tracing::info!(was = ?d.registration.catalogue, now = ?reg.catalogue, "node catalogue changed; re-registered");
                next.fit = fit.filter(|_| reg.catalogue == sha);
                next.registration = reg;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not re-register with the new node catalogue; trying again at the next refresh");
            }
        }
        next
    }

    /// Opens the worker's socket to the server `d` detected (its task keeps it open).
    fn open_socket(&self, d: &Detected) -> ComfySocket {
        ComfySocket::open(d.adapter.clone(), &self.client_id, SocketOptions::default())
    }

    /// Sleeps `d` unless shutdown comes first; false when shutting down.
    async fn pause(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stopped(shutdown) => false,
        }
    }

    /// Runs until `shutdown` turns true; then finishes or hands back the
    /// current job within the grace period.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut detected: Option<Detected> = None;
        // The socket to the detected server: opened after each detection, dropped (closed)
        // before the next one.
        let mut socket: Option<ComfySocket> = None;
        // The socket generation that was open when ComfyUI's version was last checked: while
        // that socket stays open, ComfyUI has not restarted, so it cannot have changed.
        let mut checked: Option<u64> = None;
        let mut backoff = self.backoff();
        // Whether the queue said this worker is drained, and whether `--drain` was sent.
        let (mut drained, mut drain_asked) = (false, false);
        // The job last handed back unrun.
        let mut handed_back: Option<uuid::Uuid> = None;
        let wait = secs(self.config.poll_wait_secs, 25.0);
        let grace = secs(self.config.shutdown_grace_secs, 20.0);
        let follow = crate::follow::FollowOptions {
            poll: secs(self.config.status_poll_secs, 1.0).max(Duration::from_millis(10)),
            silence: secs(self.config.ws_silence_secs, 15.0),
            unreachable: secs(self.config.unreachable_secs, 10.0),
            timeout: secs(self.config.job_timeout_secs, 3600.0),
            ..crate::follow::FollowOptions::default()
        };
        tracing::info!(worker_id = self.worker_id(), queue = %self.config.queue_url, comfy = %self.config.comfy_url, "worker starting");
        loop {
            if *shutdown.borrow() {
                break;
            }
            let refresh = secs(self.config.catalogue_refresh_secs, 300.0);
            if let Some(d) = &detected
                && !refresh.is_zero()
                && d.catalogue_read.elapsed() >= refresh
            {
                let refreshed = tokio::select! {
                    r = self.refresh_catalogue(d) => r,
                    _ = stopped(&mut shutdown) => break,
                };
                detected = Some(refreshed);
            }
            let d = match &detected {
                Some(d) => d.clone(),
                None => match self.detect_and_register().await {
                    Ok(d) => {
                        self.health.set_status(Status::Healthy, None);
                        backoff = self.backoff();
                        socket = Some(self.open_socket(&d));
                        detected = Some(d.clone());
                        d
                    }
                    Err(why) => {
                        let pause = backoff.next().unwrap_or(Duration::from_secs(30));
                        tracing::warn!(%why, retry_in = ?pause, "unhealthy; backing off");
                        self.health.set_status(Status::Unhealthy, Some(why));
                        if !Self::pause(pause, &mut shutdown).await {
                            break;
                        }
                        continue;
                    }
                },
            };

            if self.config.drain && !drain_asked {
                match self.queue.set_drain(true).await {
                    Ok(()) => {
                        tracing::info!("started drained (--drain): taking no job until undrained");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not ask the queue to drain this worker");
                    }
                }
                drain_asked = true;
            }
            let claimed = tokio::select! {
                r = self.queue.next(wait) => r,
                _ = stopped(&mut shutdown) => break,
            };
            let job = match claimed {
                Ok(answer) if answer.drain => {
                    if !drained {
                        tracing::info!("drained: finished, taking no new job until undrained");
                        drained = true;
                    }
                    self.health.set_status(Status::Healthy, None);
                    // Drained is when its ComfyUI gets replaced: notice it now, so the
                    // queue (and whoever upgrades) sees the new version before undrain.
                    let same = matches!(
                        d.adapter.server_info().await,
                        Ok(info) if info.version_string == d.version
                    );
                    if !same {
                        tracing::warn!(was = ?d.version, "ComfyUI changed or went away while drained; re-detecting");
                        socket = None;
                        checked = None;
                        detected = None;
                    }
                    if !Self::pause(wait.min(Duration::from_secs(5)), &mut shutdown).await {
                        break;
                    }
                    continue;
                }
                Ok(answer) => {
                    if drained {
                        tracing::info!("undrained: taking jobs again");
                        drained = false;
                    }
                    match answer.job {
                        Some(job) => job,
                        None => continue,
                    }
                }
                Err(e) => {
                    let pause = backoff.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in = ?pause, "queue unreachable; backing off");
                    self.health
                        .set_status(Status::Unhealthy, Some(format!("queue: {e}")));
                    if !Self::pause(pause, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            self.health.set_status(Status::Healthy, None);

            // Is ComfyUI still the server we detected? (restarted or upgraded in place) Not
            // asked while the socket open at the last check is still open.
            let check_started = Instant::now();
            let generation = socket.as_ref().and_then(|s| s.handle().open_generation());
            let still = if generation.is_some() && generation == checked {
                Ok(())
            } else {
                match d.adapter.server_info().await {
                    Ok(info) if info.version_string == d.version => {
                        checked = generation;
                        let stages = format!("check={}us", check_started.elapsed().as_micros());
                        tracing::debug!(target: TIMING_TARGET, %stages, "version checked");
                        Ok(())
                    }
                    outcome => Err(outcome),
                }
            };
            let d = match still {
                Ok(()) => d,
                Err(outcome) => {
                    match &outcome {
                        Ok(info) => {
                            tracing::warn!(job_id = %job.id, was = ?d.version, now = ?info.version_string, "ComfyUI changed version; re-detecting");
                        }
                        Err(e) => {
                            tracing::warn!(job_id = %job.id, error = %e, "ComfyUI unreachable; re-detecting");
                        }
                    }
                    // The old server's socket is closed before the new one is opened.
                    socket = None;
                    checked = None;
                    detected = None;
                    match self.detect_and_register().await {
                        Ok(d) => {
                            socket = Some(self.open_socket(&d));
                            detected = Some(d.clone());
                            d
                        }
                        Err(why) => {
                            let err = classify::JobError::new(
                                classify::ErrorClass::ComfyUnavailable,
                                why.clone(),
                            );
                            let r = FailRequest {
                                error: err.report_text(),
                                retry: Some(true),
                                cancelled: Some(false),
                                lease_token: Some(job.lease_token.clone()),
                                unfit: None,
                            };
                            // The job ends here for this worker, before its prompt was
                            // sent: it counts like every other end (/health, /metrics).
                            match self.queue.fail(job.id, &r).await {
                                Ok(_) => {
                                    tracing::warn!(job_id = %job.id, %why, "ComfyUI unavailable before the prompt was sent; handed the job back for a retry");
                                    self.health.count_end(Outcome::Retried);
                                }
                                Err(e) => {
                                    tracing::warn!(job_id = %job.id, error = %e, "could not hand the job back; its lease will expire");
                                    self.health.count_end(Outcome::LeaseLost);
                                }
                            }
                            self.health.set_status(Status::Unhealthy, Some(why));
                            let pause = backoff.next().unwrap_or(Duration::from_secs(30));
                            if !Self::pause(pause, &mut shutdown).await {
                                break;
                            }
                            continue;
                        }
                    }
                }
            };

            // The job against the ComfyUI this worker has now; once per job (a job the
            // queue hands out again right after its hand-back is left to ComfyUI).
            let here = fit::Here {
                version: d.version.as_deref(),
                capabilities: d.registration.capabilities.as_deref().unwrap_or_default(),
                catalogue: d.fit.as_deref(),
            };
            if handed_back != Some(job.id)
                && let Some((unfit, why)) = fit::unfit(&job, here)
            {
                handed_back = Some(job.id);
                let r = FailRequest {
                    error: why.clone(),
                    retry: None,
                    cancelled: None,
                    lease_token: Some(job.lease_token.clone()),
                    unfit: Some(unfit),
                };
                match self.queue.fail(job.id, &r).await {
                    Ok(()) => {
                        tracing::warn!(job_id = %job.id, %why, "the job does not fit this worker's ComfyUI; handed it back unrun");
                        self.health.count_end(Outcome::Unfit);
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %job.id, error = %e, "could not hand the unfit job back; its lease will expire");
                        self.health.count_end(Outcome::LeaseLost);
                    }
                }
                continue;
            }
            handed_back = None;

            let ctx = RunContext {
                queue: self.queue.clone(),
                adapter: d.adapter.clone(),
                comfyui_version: d.version.clone(),
                catalogue: d.catalogue.clone(),
                client_id: self.client_id.clone(),
                socket: socket.as_ref().map(ComfySocket::handle),
                follow,
                heartbeat: self.config.heartbeat_secs.map(|s| secs(s, 1.0)),
                health: self.health.clone(),
                sealing_key: self.sealing_key.clone(),
                relay: self.config.forward_events.then_some(relay::RelayOptions {
                    forward_previews: self.config.forward_previews,
                    ..relay::RelayOptions::default()
                }),
            };
            let (hand_back_tx, hand_back_rx) = watch::channel(false);
            let running = run_job(&ctx, job, hand_back_rx);
            tokio::pin!(running);
            let mut stop = shutdown.clone();
            let end = tokio::select! {
                end = &mut running => end,
                _ = stopped(&mut stop) => {
                    tracing::info!(grace = ?grace, "shutdown requested; letting the current job finish");
                    self.health.set_status(Status::Stopping, None);
                    tokio::select! {
                        end = &mut running => end,
                        _ = tokio::time::sleep(grace) => {
                            tracing::warn!("grace period over; interrupting and handing the job back");
                            let _ = hand_back_tx.send(true);
                            running.await
                        }
                    }
                }
            };
            if let JobEnd::Failed(e) = &end
                && e.class.worker_unhealthy()
            {
                let pause = backoff.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(class = e.class.as_str(), retry_in = ?pause, "ComfyUI failing; re-detecting after a pause");
                self.health
                    .set_status(Status::Unhealthy, Some(e.to_string()));
                detected = None;
                socket = None;
                checked = None;
                if !Self::pause(pause, &mut shutdown).await {
                    break;
                }
            } else {
                backoff = self.backoff();
            }
        }
        self.health.set_status(Status::Stopping, None);
        tracing::info!("worker stopped; nothing is leased to it");
        Ok(())
    }
}

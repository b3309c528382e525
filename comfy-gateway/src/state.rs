//! What the gateway holds while it runs: the configuration, the clients of
//! the queue and of the users' ComfyUIs, what each upstream is (its release,
//! hence its shapes; its node catalogue), the prompts it submitted, and the
//! history entries users deleted.

use crate::config::{Config, User};
use crate::error::GatewayError;
use crate::identity::Htpasswd;
use crate::pool::Pool;
use crate::queue::QueueClient;
use crate::shapes::{Shapes, Submitted};
use comfy_adapter::model::catalogue::NodeCatalogue;
use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use url::Url;
use uuid::Uuid;

/// Shared state of the gateway (cheap to clone).
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    queue: QueueClient,
    http: reqwest::Client,
    upstreams: tokio::sync::Mutex<HashMap<Url, UpstreamInfo>>,
    submitted: Mutex<PromptCache>,
    hidden: Mutex<Hidden>,
    number: AtomicU64,
    htpasswd: Option<Htpasswd>,
    pool: Pool,
    sealing_key: Option<comfy_sealed::SealKey>,
}

/// What the gateway learned about one upstream ComfyUI.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    /// Its shapes (from its version).
    pub shapes: Shapes,
    /// Its node catalogue, once read.
    pub catalogue: Option<Arc<NodeCatalogue>>,
}

/// The prompts this gateway submitted, newest kept (the queue never gives a
/// workflow back; `/queue` and `/history` show them while they are here).
#[derive(Debug, Default)]
struct PromptCache {
    order: VecDeque<Uuid>,
    entries: HashMap<Uuid, Submitted>,
}

const PROMPT_CACHE: usize = 512;

/// History entries users deleted (`POST /history {delete}`), kept in
/// `state_dir/hidden-history.json` when a state dir is set.
#[derive(Debug, Default)]
struct Hidden {
    ids: HashSet<Uuid>,
    file: Option<PathBuf>,
}

impl Gateway {
    /// The gateway for `config`.
    pub fn new(config: Config) -> Result<Gateway, crate::config::ConfigError> {
        let client =
            |e: reqwest::Error| crate::config::ConfigError::Invalid(format!("HTTP client: {e}"));
        let queue = QueueClient::new(config.queue_url.clone(), &config.queue_user_header)
            .map_err(client)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(client)?;
        let htpasswd = match &config.identity.htpasswd {
            Some(path) => Some(Htpasswd::load(path)?),
            None => None,
        };
        let sealing_key = match &config.sealing_key_file {
            Some(path) => Some(
                comfy_sealed::SealKey::from_file(path)
                    .map_err(|e| crate::config::ConfigError::Invalid(e.to_string()))?,
            ),
            None => None,
        };
        let mut hidden = Hidden::default();
        if let Some(dir) = &config.state_dir {
            let file = dir.join("hidden-history.json");
            if let Ok(text) = std::fs::read_to_string(&file) {
                hidden.ids = serde_json::from_str(&text).unwrap_or_default();
            }
            hidden.file = Some(file);
        }
        // ComfyUI numbers prompts from a counter; the gateway's counter starts
        // at the clock so it keeps growing across restarts.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                queue,
                http,
                upstreams: tokio::sync::Mutex::new(HashMap::new()),
                submitted: Mutex::new(PromptCache::default()),
                hidden: Mutex::new(hidden),
                number: AtomicU64::new(start),
                htpasswd,
                pool: Pool::default(),
                sealing_key,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The basic-auth users, when the gateway checks passwords itself.
    pub fn htpasswd(&self) -> Option<&Htpasswd> {
        self.inner.htpasswd.as_ref()
    }

    /// The queue client.
    pub fn queue(&self) -> &QueueClient {
        &self.inner.queue
    }

    /// The key the Comfy account secrets are sealed with for the workers.
    pub fn sealing_key(&self) -> Option<&comfy_sealed::SealKey> {
        self.inner.sealing_key.as_ref()
    }

    /// The GPU pool's catalogues.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The HTTP client for upstreams (no redirects followed).
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The next ComfyUI `number`.
    pub fn next_number(&self) -> u64 {
        self.inner.number.fetch_add(1, Ordering::Relaxed)
    }

    /// The upstream of `user`.
    pub fn upstream(&self, user: &User) -> Result<Url, GatewayError> {
        self.config()
            .upstream_of(user)
            .cloned()
            .ok_or(GatewayError::UnknownUser(user.id.clone()))
    }

    /// What the upstream of `user` is: its release (read from its
    /// `/system_stats` once, then remembered).
    pub async fn upstream_info(&self, user: &User) -> Result<UpstreamInfo, GatewayError> {
        let base = self.upstream(user)?;
        if let Some(info) = self.inner.upstreams.lock().await.get(&base) {
            return Ok(info.clone());
        }
        let version = self.read_version(user, &base).await?;
        let info = UpstreamInfo {
            shapes: Shapes::new(version),
            catalogue: None,
        };
        self.inner.upstreams.lock().await.insert(base, info.clone());
        Ok(info)
    }

    async fn read_version(&self, user: &User, base: &Url) -> Result<semver::Version, GatewayError> {
        let down = |reason: String| GatewayError::UpstreamDown {
            upstream: base.to_string(),
            reason,
        };
        let url = base.join("system_stats").map_err(|e| down(e.to_string()))?;
        let resp = self
            .upstream_request(user, reqwest::Method::GET, url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| down(e.to_string()))?;
        let stats: serde_json::Value = resp.json().await.map_err(|e| down(e.to_string()))?;
        let text = stats
            .pointer("/system/comfyui_version")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| down("its /system_stats names no comfyui_version".into()))?;
        comfy_adapter::normalize::parse_version(text)
            .ok_or_else(|| down(format!("unreadable comfyui_version {text:?}")))
    }

    /// The node catalogue of `user`'s upstream (read once).
    pub async fn catalogue(&self, user: &User) -> Result<Arc<NodeCatalogue>, GatewayError> {
        let base = self.upstream(user)?;
        let info = self.upstream_info(user).await?;
        if let Some(c) = info.catalogue {
            return Ok(c);
        }
        let down = |reason: String| GatewayError::UpstreamDown {
            upstream: base.to_string(),
            reason,
        };
        let url = base.join("object_info").map_err(|e| down(e.to_string()))?;
        let resp = self
            .upstream_request(user, reqwest::Method::GET, url)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| down(e.to_string()))?;
        let bytes = resp.bytes().await.map_err(|e| down(e.to_string()))?;
        let catalogue = Arc::new(
            NodeCatalogue::from_slice(&bytes)
                .map_err(|e| down(format!("its /object_info: {e}")))?,
        );
        if let Some(i) = self.inner.upstreams.lock().await.get_mut(&base) {
            i.catalogue = Some(catalogue.clone());
        }
        Ok(catalogue)
    }

    /// A request to `user`'s upstream, with `comfy-user` in multi-user mode.
    pub fn upstream_request(
        &self,
        user: &User,
        method: reqwest::Method,
        url: Url,
    ) -> reqwest::RequestBuilder {
        let req = self.http().request(method, url);
        if self.config().multi_user() {
            req.header("comfy-user", user.id.as_str())
        } else {
            req
        }
    }

    /// Remembers what was submitted as job `id`.
    pub fn remember(&self, id: Uuid, submitted: Submitted) {
        let mut c = self
            .inner
            .submitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if c.entries.insert(id, submitted).is_none() {
            c.order.push_back(id);
        }
        while c.order.len() > PROMPT_CACHE {
            if let Some(old) = c.order.pop_front() {
                c.entries.remove(&old);
            }
        }
    }

    /// What was submitted as job `id`, if still remembered.
    pub fn submitted(&self, id: Uuid) -> Option<Submitted> {
        self.inner
            .submitted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .get(&id)
            .cloned()
    }

    /// Whether the user deleted job `id` from their history.
    pub fn hidden(&self, id: Uuid) -> bool {
        self.inner
            .hidden
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ids
            .contains(&id)
    }

    /// Deletes jobs from the history view (kept in the state dir).
    pub fn hide(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut h = self
            .inner
            .hidden
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        h.ids.extend(ids);
        if let Some(file) = &h.file {
            let tmp = file.with_extension("json.tmp");
            let text = serde_json::to_string(&h.ids).unwrap_or_default();
            let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file));
            if let Err(e) = written {
                tracing::warn!(error = %e, file = %file.display(), "could not keep deleted history entries");
            }
        }
    }
}

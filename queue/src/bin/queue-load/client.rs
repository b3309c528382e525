//! The HTTP calls of the load tool, in one of two dialects: this queue's own API (bearer
//! tokens, long-polled `next-job`, lease tokens) or only the platform's original contract
//! (`../shared/seed/queue-api-contract.md` in the project's shared notes: no tokens, no
//! registration, `next-job` answered at once, `complete-job` by job id alone), so that any
//! implementation of the contract can be driven by the same client.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Which API the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// This queue's API: tokens when given, `wait=` long polls, lease tokens.
    Native,
    /// Only the original contract's routes and bodies.
    Contract,
}

/// A job a worker was handed: its id and, in the native dialect, its lease token.
#[derive(Debug)]
pub(crate) struct Leased {
    pub(crate) id: String,
    pub(crate) lease_token: Option<String>,
}

/// The client of one target.
pub(crate) struct Client {
    http: reqwest::Client,
    url: String,
    dialect: Dialect,
    admin: Option<String>,
    worker: Option<String>,
}

/// The submit body, as the platform's frontend extension sends it.
fn submit_body(user: &str) -> Value {
    json!({
        "user_id": user,
        "workflow": {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}},
        "priority": 2,
        "metadata": {"batch_index": 0, "batch_total": 1},
    })
}

impl Client {
    pub(crate) fn new(
        url: &str,
        dialect: Dialect,
        admin: Option<String>,
        worker: Option<String>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            url: url.trim_end_matches('/').to_owned(),
            dialect,
            admin,
            worker,
        })
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn with(&self, rb: reqwest::RequestBuilder, token: Option<&String>) -> reqwest::RequestBuilder {
        match (self.dialect, token) {
            (Dialect::Native, Some(t)) => rb.bearer_auth(t),
            _ => rb,
        }
    }

    /// `GET /health`.
    pub(crate) async fn health(&self) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}/health", self.url))
            .send()
            .await
            .context("is the queue running?")?;
        Ok(r.json().await?)
    }

    /// `POST /api/jobs`: the new job's id.
    pub(crate) async fn submit(&self, user: &str) -> anyhow::Result<String> {
        let rb = self
            .http
            .post(format!("{}/api/jobs", self.url))
            .json(&submit_body(user));
        let r = self.with(rb, self.admin.as_ref()).send().await?;
        // The contract says 201; accept any success from another implementation.
        if !r.status().is_success() {
            bail!(
                "submit answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        let v: Value = r.json().await?;
        v["id"].as_str().map(str::to_owned).context("submit: no id")
    }

    /// `GET /api/workers/next-job`: a job or none. `wait` (seconds) is sent in the native
    /// dialect only: the contract's route answers at once.
    pub(crate) async fn claim(&self, worker: &str, wait: f64) -> anyhow::Result<Option<Leased>> {
        let mut rb = self
            .http
            .get(format!("{}/api/workers/next-job", self.url))
            .query(&[("worker_id", worker)]);
        if self.dialect == Dialect::Native {
            rb = rb.query(&[("wait", wait.to_string())]);
        }
        let r = self.with(rb, self.worker.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("next-job answered {}", r.status());
        }
        let v: Value = r.json().await?;
        let job = &v["job"];
        if job.is_null() {
            return Ok(None);
        }
        let id = job["id"].as_str().context("next-job: no id")?.to_owned();
        let lease_token = match self.dialect {
            Dialect::Native => Some(
                job["lease_token"]
                    .as_str()
                    .context("next-job: no lease token")?
                    .to_owned(),
            ),
            Dialect::Contract => None,
        };
        Ok(Some(Leased { id, lease_token }))
    }

    /// Claim until a job comes: long polls in the native dialect, a tight loop of polls in
    /// the contract's.
    pub(crate) async fn claim_one(&self, worker: &str) -> anyhow::Result<Leased> {
        for _ in 0..100_000 {
            if let Some(job) = self.claim(worker, 5.0).await? {
                return Ok(job);
            }
            if self.dialect == Dialect::Contract {
                tokio::task::yield_now().await;
            }
        }
        bail!("no job came to worker {worker}")
    }

    /// `POST /api/workers/complete-job`.
    pub(crate) async fn complete(&self, job: &Leased) -> anyhow::Result<()> {
        let mut rb = self
            .http
            .post(format!("{}/api/workers/complete-job", self.url))
            .query(&[("job_id", job.id.as_str())]);
        if let Some(t) = &job.lease_token {
            rb = rb.query(&[("lease_token", t.as_str())]);
        }
        let rb = rb.json(&json!({"result": {"images": ["out.png"], "execution_time": 0.0}}));
        let r = self.with(rb, self.worker.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("complete-job answered {}", r.status());
        }
        Ok(())
    }

    /// `GET /api/queue/status`.
    pub(crate) async fn status(&self) -> anyhow::Result<Value> {
        let rb = self.http.get(format!("{}/api/queue/status", self.url));
        let r = self.with(rb, self.admin.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("queue status answered {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// `GET /api/jobs/{id}`.
    pub(crate) async fn job(&self, id: &str) -> anyhow::Result<Value> {
        let rb = self.http.get(format!("{}/api/jobs/{id}", self.url));
        let r = self.with(rb, self.admin.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("job read answered {}", r.status());
        }
        Ok(r.json().await?)
    }

    /// `DELETE /api/jobs/{id}` (cancel).
    pub(crate) async fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let rb = self.http.delete(format!("{}/api/jobs/{id}", self.url));
        let r = self.with(rb, self.admin.as_ref()).send().await?;
        if !r.status().is_success() {
            bail!("cancel answered {}", r.status());
        }
        Ok(())
    }
}

//! The HTTP calls of the load tool, in one of two dialects: this queue's own API (bearer
//! tokens, long-polled `next-job`, lease tokens) or only the platform's original contract
//! (`../shared/seed/queue-api-contract.md` in the project's shared notes: no tokens, no
//! registration, `next-job` answered at once, `complete-job` by job id alone), so that any
//! implementation of the contract can be driven by the same client.

use anyhow::{Context, bail};
use bytes::Bytes;
use hyper::Method;
use hyper::header::HeaderValue;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::conn::{Answer, Pool, bearer};

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
#[derive(Debug)]
pub(crate) struct Client {
    pool: Pool,
    dialect: Dialect,
    admin: Option<HeaderValue>,
    worker: Option<HeaderValue>,
    complete_body: Bytes,
}

/// The submit body, as the platform's frontend extension sends it.
fn submit_body(user: &str) -> Bytes {
    let v = json!({
        "user_id": user,
        "workflow": {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}}},
        "priority": 2,
        "metadata": {"batch_index": 0, "batch_total": 1},
    });
    Bytes::from(v.to_string())
}

/// Of an answer naming a job, only its id is read (borrowed, no tree built).
#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    id: &'a str,
}

/// A job handed out by `next-job`.
#[derive(Deserialize)]
struct Handed<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow, default)]
    lease_token: Option<&'a str>,
}

/// The `next-job` answer: a job or `null`.
#[derive(Deserialize)]
struct NextJob<'a> {
    #[serde(borrow, default)]
    job: Option<Handed<'a>>,
}

/// Percent-encodes a query value (ids and tokens are URL-safe already; this keeps the tool
/// correct for any other).
fn q(v: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).into()
}

fn failed(what: &str, a: &Answer) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} answered {}: {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    )
}

impl Client {
    pub(crate) fn new(
        url: &str,
        dialect: Dialect,
        admin: Option<String>,
        worker: Option<String>,
    ) -> anyhow::Result<Self> {
        let complete_body = Bytes::from(
            json!({"result": {"images": ["out.png"], "execution_time": 0.0}}).to_string(),
        );
        Ok(Self {
            pool: Pool::new(url)?,
            dialect,
            admin: admin.as_deref().map(bearer).transpose()?,
            worker: worker.as_deref().map(bearer).transpose()?,
            complete_body,
        })
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The token to send: none in the contract's dialect.
    fn token<'a>(&self, t: &'a Option<HeaderValue>) -> Option<&'a HeaderValue> {
        match self.dialect {
            Dialect::Native => t.as_ref(),
            Dialect::Contract => None,
        }
    }

    async fn get_json(
        &self,
        path: &str,
        what: &str,
        token: Option<&HeaderValue>,
    ) -> anyhow::Result<Value> {
        let a = self.pool.call(Method::GET, path, None, token).await?;
        if !a.status.is_success() {
            return Err(failed(what, &a));
        }
        serde_json::from_slice(&a.body).with_context(|| format!("{what}: not JSON"))
    }

    /// `GET /health`.
    pub(crate) async fn health(&self) -> anyhow::Result<Value> {
        self.get_json("/health", "health", None).await
    }

    /// `POST /api/jobs`: the new job's id.
    pub(crate) async fn submit(&self, user: &str) -> anyhow::Result<String> {
        let a = self
            .pool
            .call(
                Method::POST,
                "/api/jobs",
                Some(submit_body(user)),
                self.token(&self.admin),
            )
            .await?;
        // The contract says 201; accept any success from another implementation.
        if !a.status.is_success() {
            return Err(failed("submit", &a));
        }
        let job: Named<'_> = serde_json::from_slice(&a.body).context("submit: no id")?;
        Ok(job.id.to_owned())
    }

    /// `GET /api/workers/next-job`: a job or none. `wait` (seconds) is sent in the native
    /// dialect only: the contract's route answers at once.
    pub(crate) async fn claim(&self, worker: &str, wait: f64) -> anyhow::Result<Option<Leased>> {
        let mut path = format!("/api/workers/next-job?worker_id={}", q(worker));
        if self.dialect == Dialect::Native {
            path.push_str(&format!("&wait={wait}"));
        }
        let a = self
            .pool
            .call(Method::GET, &path, None, self.token(&self.worker))
            .await?;
        if !a.status.is_success() {
            return Err(failed("next-job", &a));
        }
        let next: NextJob<'_> = serde_json::from_slice(&a.body).context("next-job: not a job")?;
        let Some(job) = next.job else {
            return Ok(None);
        };
        let lease_token = match self.dialect {
            Dialect::Native => Some(
                job.lease_token
                    .context("next-job: no lease token")?
                    .to_owned(),
            ),
            Dialect::Contract => None,
        };
        Ok(Some(Leased {
            id: job.id.to_owned(),
            lease_token,
        }))
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
        let mut path = format!("/api/workers/complete-job?job_id={}", q(&job.id));
        if let Some(t) = &job.lease_token {
            path.push_str(&format!("&lease_token={}", q(t)));
        }
        let a = self
            .pool
            .call(
                Method::POST,
                &path,
                Some(self.complete_body.clone()),
                self.token(&self.worker),
            )
            .await?;
        if !a.status.is_success() {
            return Err(failed("complete-job", &a));
        }
        Ok(())
    }

    /// `GET /api/queue/status`.
    pub(crate) async fn status(&self) -> anyhow::Result<Value> {
        self.get_json("/api/queue/status", "queue status", self.token(&self.admin))
            .await
    }

    /// `GET /api/jobs/{id}`.
    pub(crate) async fn job(&self, id: &str) -> anyhow::Result<Value> {
        self.get_json(
            &format!("/api/jobs/{}", q(id)),
            "job read",
            self.token(&self.admin),
        )
        .await
    }

    /// `DELETE /api/jobs/{id}` (cancel).
    pub(crate) async fn cancel(&self, id: &str) -> anyhow::Result<()> {
        let a = self
            .pool
            .call(
                Method::DELETE,
                &format!("/api/jobs/{}", q(id)),
                None,
                self.token(&self.admin),
            )
            .await?;
        if !a.status.is_success() {
            return Err(failed("cancel", &a));
        }
        Ok(())
    }
}

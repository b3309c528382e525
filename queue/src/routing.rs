//! Jobs no live worker can run: how they are judged, and what a replica remembers of them
//! (the look itself, which reads the store, is `stranded`).
//!
//! Every `--route-check-ms` each replica looks at the front of the queue (the first
//! [`FRONT`] pending jobs in queue order) and judges each job against the live workers
//! (seen within two lease lengths): its requirement class against their registrations
//! (version range, capabilities, catalogues that handed it back), then its prompt against
//! their published node catalogues (node classes, list values). A job none of them can run
//! is *waiting for a capable worker*: its HTTP answers and `/ws` events carry
//! `waiting: {reason, message, since}`. One that waits so for `--no-capable-worker-secs`
//! (while some worker is live: with none, it is an outage, not a routing problem) fails
//! with an error starting `no_capable_worker:`. The failing is idempotent in the store,
//! so replicas that judge the same job fail it once.
//!
//! A replica judges from its own look, so `since` is when this process first saw the job
//! stranded (a restart starts it again). Verdicts are kept per job until the pool (the live
//! workers, their registrations and drain flags) changes; prompts are read and parsed only
//! then.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use comfy_routing::{Catalogue, Needs, Requirements};
use serde::Serialize;
use uuid::Uuid;

use crate::clock::{Millis, to_rfc3339};
use crate::model::WorkerRecord;

/// How many pending jobs, from the front of the queue, each look judges.
pub const FRONT: u32 = 1000;
/// Most workers named in a waiting message.
const NAMED: usize = 4;

/// Why a job waits for a capable worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitReason {
    /// No worker is live at all (an outage: the job is not failed for it).
    NoLiveWorker,
    /// The workers that could run it are drained.
    Drained,
    /// No live worker's registration satisfies `metadata.requires` (version range,
    /// capabilities), or every one that does handed the job back.
    Requires,
    /// No live worker's node catalogue has the prompt's node classes and list values.
    Catalogue,
}

/// Why a pending job is not being run, as its answers show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Waiting {
    /// The kind of reason.
    pub reason: WaitReason,
    /// What each live worker lacks, in a sentence.
    pub message: String,
    /// Since when (RFC 3339 UTC) this replica has seen the job wait so.
    pub since: String,
}

#[derive(Debug, Clone)]
struct Stranded {
    reason: WaitReason,
    message: String,
    since: Millis,
}

#[derive(Debug, Default)]
struct Inner {
    /// Pending jobs that wait for a capable worker.
    stranded: HashMap<Uuid, Stranded>,
    /// Per job: the pool fingerprint and the class it was judged with, and the verdict.
    verdicts: HashMap<Uuid, (u64, String, Verdict)>,
    /// Parsed catalogues by SHA-256 (`None`: could not be read; the worker is not judged on
    /// its nodes).
    catalogues: HashMap<String, Option<Arc<Catalogue>>>,
}

/// The routing watch of one replica.
#[derive(Debug, Default)]
pub struct Router {
    inner: Mutex<Inner>,
}

impl Router {
    /// Why job `id` waits, if it does.
    pub fn waiting(&self, id: Uuid) -> Option<Waiting> {
        let inner = self.inner.lock().ok()?;
        inner.stranded.get(&id).map(|s| Waiting {
            reason: s.reason,
            message: s.message.clone(),
            since: to_rfc3339(s.since),
        })
    }

    /// Forget job `id` (it left the queue).
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.stranded.remove(&id);
            inner.verdicts.remove(&id);
        }
    }

    /// The verdict on job `id` of requirement class `class` made against pool `print`, if
    /// one was made.
    pub fn known(&self, id: Uuid, print: u64, class: &str) -> Option<Verdict> {
        let inner = self.inner.lock().ok()?;
        inner
            .verdicts
            .get(&id)
            .filter(|(f, c, _)| *f == print && c == class)
            .map(|(_, _, v)| v.clone())
    }

    /// The catalogue `sha256` as parsed before: `Some(None)` when it could not be read.
    pub fn catalogue(&self, sha256: &str) -> Option<Option<Arc<Catalogue>>> {
        self.inner.lock().ok()?.catalogues.get(sha256).cloned()
    }

    /// Keep catalogue `sha256` as parsed (`None`: it could not be read).
    pub fn keep_catalogue(&self, sha256: &str, catalogue: Option<Arc<Catalogue>>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.catalogues.insert(sha256.to_owned(), catalogue);
        }
    }

    /// Record a look made at `now` against pool `print` (the live workers `pool`): the
    /// verdict on each job of the front in `judged` (id, class, verdict). Everything not
    /// in it is forgotten. Answers the jobs that started to wait or changed their reason,
    /// and those that have waited `timeout` ms or more (0: none ever) with their messages
    /// and how long they waited: the ones to fail.
    pub fn record(
        &self,
        now: Millis,
        print: u64,
        pool: &[Candidate],
        judged: Vec<(Uuid, String, Verdict)>,
        timeout: Millis,
    ) -> (Vec<Uuid>, Vec<(Uuid, String, Millis)>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), Vec::new());
        };
        let ids: HashSet<Uuid> = judged.iter().map(|(id, _, _)| *id).collect();
        inner.verdicts.retain(|id, _| ids.contains(id));
        inner.stranded.retain(|id, _| ids.contains(id));
        let live: HashSet<&String> = pool
            .iter()
            .filter_map(|c| c.record.info.catalogue.as_ref())
            .collect();
        inner.catalogues.retain(|sha, _| live.contains(sha));
        let mut news = Vec::new();
        let mut due = Vec::new();
        for (id, class, verdict) in judged {
            inner.verdicts.insert(id, (print, class, verdict.clone()));
            let Some((reason, message)) = verdict else {
                inner.stranded.remove(&id);
                continue;
            };
            let before = inner.stranded.get(&id);
            if before.is_none_or(|s| s.reason != reason) {
                news.push(id);
            }
            let since = match before {
                // An outage does not count towards the wait.
                Some(s) if s.reason != WaitReason::NoLiveWorker => s.since,
                _ => now,
            };
            let waited = now.saturating_sub(since);
            if reason != WaitReason::NoLiveWorker && timeout > 0 && waited >= timeout {
                due.push((id, message.clone(), waited));
            }
            inner.stranded.insert(
                id,
                Stranded {
                    reason,
                    message,
                    since,
                },
            );
        }
        (news, due)
    }
}

/// A live worker, as a look judges it.
#[derive(Debug)]
pub struct Candidate {
    /// Its registration.
    pub record: WorkerRecord,
    /// Its node catalogue, parsed (`None`: it has none, or it could not be read).
    pub catalogue: Option<Arc<Catalogue>>,
}

/// What a look decided about one job: why it waits, `None` when some worker can run it.
pub type Verdict = Option<(WaitReason, String)>;

impl Candidate {
    fn label(&self) -> String {
        match &self.record.info.comfyui_version {
            Some(v) => format!("{} (ComfyUI {v})", self.record.info.worker_id),
            None => self.record.info.worker_id.clone(),
        }
    }
}

/// What [`judge`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// The verdict.
    Done(Verdict),
    /// A worker's registration fits and it has a catalogue: judge again with the prompt.
    NeedsPrompt,
}

/// Why a job of requirement class `class` (and prompt `needs`, when read) cannot run on any
/// of `pool` (drained workers count last), `None` when one can run it. Per worker: its
/// registration (version, capabilities), then its catalogue against the prompt, then
/// whether it handed the job back.
pub fn judge(class: &str, pool: &[Candidate], needs: Option<&Needs>) -> Judged {
    if pool.is_empty() {
        return Judged::Done(Some((
            WaitReason::NoLiveWorker,
            "no worker is live: none was seen within two lease lengths".into(),
        )));
    }
    let Some(req) = Requirements::from_class_key(class) else {
        return Judged::Done(Some((
            WaitReason::Requires,
            "its requirements cannot be read: no worker can run it".into(),
        )));
    };
    let mut why: Vec<(WaitReason, String)> = Vec::new();
    let mut drained_fit = Vec::new();
    for c in pool {
        let server = c.record.info.server();
        let registration = comfy_routing::Server {
            catalogue: None,
            ..server
        };
        if let Some(unmet) = req.unmet(&registration) {
            why.push((WaitReason::Requires, format!("{}: {unmet}", c.label())));
            continue;
        }
        if let Some(cat) = &c.catalogue {
            let Some(needs) = needs else {
                return Judged::NeedsPrompt;
            };
            if let Some(m) = cat.misfit(needs) {
                why.push((WaitReason::Catalogue, format!("{}: {m}", c.label())));
                continue;
            }
        }
        if let Some(unmet) = req.unmet(&server) {
            why.push((WaitReason::Requires, format!("{}: {unmet}", c.label())));
            continue;
        }
        if !c.record.drain {
            return Judged::Done(None);
        }
        drained_fit.push(c.label());
    }
    if !drained_fit.is_empty() {
        return Judged::Done(Some((
            WaitReason::Drained,
            format!(
                "the workers that could run it are drained: {}",
                drained_fit.join(", ")
            ),
        )));
    }
    // The reason most workers give names the kind; the message lists them.
    let catalogue = why
        .iter()
        .filter(|(r, _)| *r == WaitReason::Catalogue)
        .count();
    let reason = if catalogue * 2 > why.len() {
        WaitReason::Catalogue
    } else {
        WaitReason::Requires
    };
    let mut parts: Vec<String> = why.iter().take(NAMED).map(|(_, m)| m.clone()).collect();
    if why.len() > NAMED {
        parts.push(format!("and {} more", why.len() - NAMED));
    }
    Judged::Done(Some((
        reason,
        format!("no live worker can run it: {}", parts.join("; ")),
    )))
}

/// A number that changes when the pool a verdict was made against changes.
pub fn fingerprint(pool: &[Candidate]) -> u64 {
    let mut h = DefaultHasher::new();
    for c in pool {
        let i = &c.record.info;
        (
            &i.worker_id,
            &i.comfyui_version,
            &i.capabilities,
            &i.catalogue,
            c.record.drain,
            c.catalogue.is_some(),
        )
            .hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::scheduler::WorkerInfo;
    use serde_json::json;

    fn candidate(id: &str, version: &str, drain: bool, catalogue: Option<Catalogue>) -> Candidate {
        Candidate {
            record: WorkerRecord {
                info: WorkerInfo {
                    worker_id: id.into(),
                    comfyui_version: Some(version.into()),
                    line: None,
                    capabilities: vec![],
                    catalogue: catalogue.as_ref().map(|_| format!("sha-{id}")),
                },
                registered_at: 0,
                last_seen: 0,
                drain,
            },
            catalogue: catalogue.map(Arc::new),
        }
    }

    fn class(req: &str) -> String {
        Requirements::from_metadata(&json!({"requires": {"comfyui": req}}))
            .unwrap()
            .class_key()
    }

    fn catalogue() -> Catalogue {
        Catalogue::from_slice(br#"{"SaveImage": {"input": {}, "output_node": true}}"#).unwrap()
    }

    fn done(j: Judged) -> Verdict {
        match j {
            Judged::Done(v) => v,
            Judged::NeedsPrompt => panic!("the prompt was needed"),
        }
    }

    fn prompt(class: &str) -> Option<Needs> {
        Some(Needs::of_workflow(
            &json!({"1": {"class_type": class, "inputs": {}}}),
        ))
    }

    #[test]
    fn a_job_some_live_worker_fits_is_not_waiting() {
        let pool = [
            candidate("a", "0.11.1", false, None),
            candidate("b", "0.9.2", false, None),
        ];
        assert_eq!(done(judge(&class("<0.10"), &pool, None)), None);
    }

    #[test]
    fn the_reason_names_what_each_worker_lacks() {
        let pool = [
            candidate("a", "0.11.1", false, None),
            candidate("b", "0.33.0", false, Some(catalogue())),
        ];
        let (reason, message) = done(judge(&class("<0.10"), &pool, None)).unwrap();
        assert_eq!(reason, WaitReason::Requires);
        assert_eq!(
            message,
            "no live worker can run it: a (ComfyUI 0.11.1): needs ComfyUI <0.10, not 0.11.1; \
             b (ComfyUI 0.33.0): needs ComfyUI <0.10, not 0.33.0"
        );
        assert_eq!(judge("", &pool[1..], None), Judged::NeedsPrompt);
        let (reason, message) = done(judge("", &pool[1..], prompt("Missing").as_ref())).unwrap();
        assert_eq!(reason, WaitReason::Catalogue);
        assert!(message.ends_with("no node class Missing"), "{message}");
        assert_eq!(
            done(judge("", &pool[1..], prompt("SaveImage").as_ref())),
            None
        );
    }

    #[test]
    fn drained_workers_and_an_empty_pool_are_their_own_reasons() {
        let pool = [candidate("a", "0.9.2", true, None)];
        let (reason, _) = done(judge(&class("<0.10"), &pool, None)).unwrap();
        assert_eq!(reason, WaitReason::Drained);
        let (reason, _) = done(judge("", &[], None)).unwrap();
        assert_eq!(reason, WaitReason::NoLiveWorker);
    }
}

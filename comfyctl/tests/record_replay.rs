//! `record` against wiremock replaying each recorded set: the recorder must
//! send the recorded requests and write back files equal to the recordings.
//!
//! The replaying server answers a request that names its probe (the
//! `comfyctl-probe` header) with that probe's recorded response. Requests
//! outside the recording (the recorder's polls) get the recorded answer of
//! the next probe to the same endpoint — the state the server is about to
//! be in — and before the first probe only what a fresh server has. It
//! cannot invent prompts or speak WebSocket, so the hidden set-up prompts
//! of the cancel probes and the WebSocket traces are skipped, and the test
//! checks that exactly those are, each with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::replay as support;

use comfyctl::record::{self, Outcome, PROBE_COUNT, Quiet, RecordOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use support::{Exchange, VERSIONS, all_fixtures};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Probes the replay cannot answer: WebSocket traces, and the probes on the
/// cancel API's set-up prompts (submitted outside the recording).
const NOT_REPLAYABLE: &[&str] = &[
    "ws-run-success",
    "ws-run-cached",
    "ws-run-execution-error",
    "jobs-cancel-pending",
    "jobs-cancel-running",
    "jobs-cancel-batch",
    "jobs-by-id-after-cancel-running",
    "jobs-by-id-after-cancel-pending",
    "history-by-id-after-cancel-running",
    "ws-run-mixed-outputs",
    "ws-run-interrupted",
];

struct Replayer {
    exchanges: Vec<Exchange>,
    /// Index (into `exchanges`) of the last probe served by name.
    position: Mutex<Option<usize>>,
}

impl Replayer {
    fn new(version: &str) -> Self {
        let exchanges = all_fixtures(version)
            .into_iter()
            .filter(|(stem, _)| !stem.contains("-ws-"))
            .map(|(file, raw)| Exchange {
                version: version.to_owned(),
                file,
                raw,
            })
            .collect();
        Replayer {
            exchanges,
            position: Mutex::new(None),
        }
    }

    fn same_request(ex: &Exchange, req: &Request) -> bool {
        let query: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        ex.method() == req.method.as_str() && ex.path() == req.url.path() && ex.query() == query
    }

    fn answer(&self, ex: &Exchange) -> ResponseTemplate {
        if ex.file.ends_with("object_info-summary") {
            // The file holds a summary the recorder computes from the real
            // answer: serve the full catalogue, as the server did.
            let full = self
                .exchanges
                .iter()
                .find(|e| e.file.ends_with("object_info-full"))
                .unwrap();
            return support::response(full);
        }
        support::response(ex)
    }
}

impl Respond for Replayer {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let tag = req
            .headers
            .get("comfyctl-probe")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut position = self.position.lock().unwrap();
        if let Some(tag) = tag {
            let Some(i) = self.exchanges.iter().position(|e| e.file == tag) else {
                return ResponseTemplate::new(599).set_body_string(format!("no recording {tag}"));
            };
            let ex = &self.exchanges[i];
            if !Self::same_request(ex, req) {
                return ResponseTemplate::new(598).set_body_string(format!(
                    "{tag}: recorded {} {}, got {} {}",
                    ex.method(),
                    ex.path(),
                    req.method,
                    req.url
                ));
            }
            *position = Some(i);
            return self.answer(ex);
        }
        if req.method.as_str() != "GET" {
            return ResponseTemplate::new(404);
        }
        let matching = |e: &&Exchange| Self::same_request(e, req);
        let hit = match *position {
            // A fresh server: only what the first probes show exists.
            None => self.exchanges.iter().take(22).find(matching),
            Some(p) => self.exchanges[p + 1..]
                .iter()
                .find(matching)
                .or_else(|| self.exchanges[..=p].iter().rev().find(matching)),
        };
        match hit {
            Some(ex) => self.answer(ex),
            None => ResponseTemplate::new(404),
        }
    }
}

/// The file without what changes on every run: the client ids the
/// recorder generates.
fn comparable(mut v: Value) -> Value {
    if let Some(body) = v
        .pointer_mut("/request/body")
        .and_then(Value::as_object_mut)
    {
        body.remove("client_id");
    }
    v
}

#[tokio::test]
async fn record_reproduces_every_replayable_recording_exactly() {
    for version in VERSIONS {
        let server = MockServer::start().await;
        Mock::given(wiremock::matchers::any())
            .respond_with(Replayer::new(version))
            .mount(&server)
            .await;
        let out = tempfile::tempdir().unwrap();
        let mut options = RecordOptions::new(server.uri(), out.path().join("set"));
        // Polls get the next recorded answer; the one wait that answer
        // cannot end (an idle queue before the slow prompts, answered with
        // the busy queue of probe 049) runs out quickly.
        options.job_timeout = Duration::from_millis(500);
        let report = record::record(&options, &Quiet).await.unwrap();

        assert_eq!(report.comfyui_version, version);
        // The one wait the replay cannot end, and on the versions whose
        // recording caught the race (history not yet written, `{}`), the
        // wait for the interrupted prompt's history.
        assert!(
            report.timed_out[0].ends_with("for the queue to empty before probe 46"),
            "{version}: {:?}",
            report.timed_out
        );
        for t in &report.timed_out[1..] {
            assert!(
                t.ends_with("for the interrupted prompt's history entry before probe 88"),
                "{version}: {t}"
            );
        }
        assert_eq!(report.probes.len(), PROBE_COUNT, "{version}");
        for p in &report.probes {
            match &p.outcome {
                Outcome::Skipped { reason } => assert!(
                    NOT_REPLAYABLE.contains(&p.name.as_str()),
                    "{version}: {} skipped: {reason}",
                    p.name
                ),
                Outcome::Written { file, .. } => {
                    assert!(
                        !NOT_REPLAYABLE.contains(&p.name.as_str()),
                        "{version}: {} was written",
                        p.name
                    );
                    let got = support::read_json(&out.path().join("set").join(file));
                    let want = support::read_json(&support::fixture_dir(version).join(file));
                    assert_eq!(
                        comparable(got),
                        comparable(want),
                        "{version}: {file} differs from the recording"
                    );
                }
            }
        }
        assert_eq!(
            report.skipped().count(),
            NOT_REPLAYABLE.len(),
            "{version}: every unreplayable probe is reported as skipped"
        );
    }
}

#[tokio::test]
async fn record_refuses_a_busy_server_and_writes_nothing() {
    let server = MockServer::start().await;
    let busy = support::load("0.11.1", "049-");
    let stats = support::load("0.11.1", "001-");
    Mock::given(wiremock::matchers::path("/system_stats"))
        .respond_with(support::response(&stats))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::path("/queue"))
        .respond_with(support::response(&busy))
        .mount(&server)
        .await;
    let out = tempfile::tempdir().unwrap();
    let options = RecordOptions::new(server.uri(), out.path().join("set"));
    let err = record::record(&options, &Quiet).await.unwrap_err();
    assert!(
        matches!(
            err,
            record::RecordError::Busy {
                running: 1,
                pending: 2
            }
        ),
        "{err}"
    );
    assert!(!out.path().join("set").exists(), "nothing written");
    let posts = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() != "GET")
        .count();
    assert_eq!(
        posts, 0,
        "a refused recording changes nothing on the server"
    );
}

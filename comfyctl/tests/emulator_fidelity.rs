//! The emulator against the recordings: the probe suite that recorded
//! `fixtures/comfyui-<V>` is run against the emulator of every version and
//! the recorded set is compared with the real one by `diff`. Every probe
//! must be recorded and `diff` must find nothing, races included.
//!
//! The probes whose content depended on timing on the real server (the
//! slow prompts of 046–088) are not left to the emulator's clock: nodes
//! take no time, and the test holds the executor with breakpoints
//! ([`comfy_emulator::Breakpoint`]) where the recording shows the real
//! server was — read from the recorded set itself, so each release is
//! driven to its own states. It steps between probes through `record`'s
//! [`Progress`] callback, which runs after a probe is written and before
//! the next request; `record` itself sends what it sends to any server.
//!
//! `EMULATOR_FIDELITY_VERSIONS=0.33.0,0.6.0` limits the versions;
//! `EMULATOR_FIDELITY_KEEP=DIR` keeps the recorded sets in `DIR/<V>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Breakpoint, Emulator, EmulatorConfig, Hold, Stopped, embedded_versions};
use comfyctl::diff::{self, FixtureSet};
use comfyctl::record::{self, Outcome, PROBE_COUNT, Progress, RecordOptions};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use comfy_test_support::replay as support;

/// How long a breakpoint may take to be reached, and `record`'s wait for a
/// prompt: with nodes taking no time only a held prompt waits, so a wait
/// that runs out is one the recording shows (see [`Plan::history_late`]).
const WAIT: Duration = Duration::from_secs(5);

/// A probe's file in a recorded set.
fn probe<'a>(set: &'a FixtureSet, name: &str) -> &'a Value {
    set.probes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("{}: no probe {name}", set.label))
}

/// `(node id, class)` where a prompt was interrupted: the
/// `execution_interrupted` message of a history answer (its one entry) or
/// of a WebSocket trace; `None` when it was not interrupted.
fn interrupted_at(file: &Value) -> Option<(String, String)> {
    let messages = match file.get("messages") {
        Some(trace) => trace.clone(),
        None => {
            let body = &file["response"]["body"];
            let entry = body.as_object()?.values().next()?;
            let pairs = entry["status"]["messages"].as_array()?;
            pairs
                .iter()
                .map(|m| serde_json::json!({"type": m[0], "data": m[1]}))
                .collect()
        }
    };
    let m = messages
        .as_array()?
        .iter()
        .find(|m| m["type"] == "execution_interrupted")?;
    let text = |k: &str| m["data"][k].as_str().map(str::to_owned);
    Some((text("node_id")?, text("node_type")?))
}

/// The prompt ids `GET /queue` listed: `(running, pending)`.
fn queue_ids(file: &Value) -> (Vec<String>, Vec<String>) {
    let ids = |k: &str| {
        file["response"]["body"][k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[1].as_str().map(str::to_owned))
            .collect()
    };
    (ids("queue_running"), ids("queue_pending"))
}

fn submitted_id(file: &Value) -> Option<String> {
    file["response"]["body"]["prompt_id"]
        .as_str()
        .map(str::to_owned)
}

/// 088 answered `{}`.
fn no_history_entry(set: &FixtureSet) -> bool {
    probe(set, "history-by-id-interrupted-ws")["response"]["body"]
        .as_object()
        .is_some_and(serde_json::Map::is_empty)
}

/// Where the recording shows the real server was at the probes that
/// depended on timing, and what `diff` does not compare (which node an
/// interrupt stopped): compared between the recording and the emulator's
/// set, ids replaced by the probe that submitted them.
fn stepped_states(set: &FixtureSet) -> Vec<String> {
    let names: HashMap<String, &str> = ["prompt-slow-1", "prompt-slow-2", "prompt-slow-3"]
        .into_iter()
        .filter_map(|p| Some((submitted_id(probe(set, p))?, p)))
        .collect();
    let named = |ids: Vec<String>| -> Vec<&str> {
        ids.iter()
            .map(|i| names.get(i).copied().unwrap_or("another"))
            .collect()
    };
    let mut states = Vec::new();
    for p in ["queue-busy", "queue-after-delete"] {
        let (running, pending) = queue_ids(probe(set, p));
        states.push(format!(
            "{p}: running {:?}, pending {:?}",
            named(running),
            named(pending)
        ));
    }
    for p in [
        "history-by-id-interrupted",
        "history-by-id-second-slow",
        "history-by-id-after-cancel-running",
        "ws-run-interrupted",
    ] {
        states.push(format!(
            "{p}: interrupted at {:?}",
            interrupted_at(probe(set, p))
        ));
    }
    states.push(format!(
        "history-by-id-interrupted-ws: no entry yet {}",
        no_history_entry(set)
    ));
    states
}

/// The states of the recording to drive the emulator to.
struct Plan {
    /// Where the targeted interrupt (055) stopped slow-1.
    first: (String, String),
    /// Whether slow-1 had ended and slow-2 started by 056.
    first_over_by_056: bool,
    /// Where the global interrupt (057) stopped slow-2, if it did.
    second: Option<(String, String)>,
    /// Where the running job's cancel (064) stopped it (0.26+).
    cancelled: Option<(String, String)>,
    /// Where the interrupt of 086 stopped the traced run.
    traced: (String, String),
    /// 088 found no history entry: the real server answered between the
    /// `execution_interrupted` message and writing history. `record` now
    /// waits for the entry first, so holding the prompt there makes that
    /// wait run out (after [`WAIT`]) and 088 record what the real one did.
    history_late: bool,
}

impl Plan {
    fn of(set: &FixtureSet) -> Plan {
        let at = |p: &str| interrupted_at(probe(set, p));
        let need = |p: &str| at(p).unwrap_or_else(|| panic!("{}: {p} not interrupted", set.label));
        let (running, _) = queue_ids(probe(set, "queue-after-delete"));
        let first_id = submitted_id(probe(set, "prompt-slow-1"));
        Plan {
            first: need("history-by-id-interrupted"),
            first_over_by_056: running.first() != first_id.as_ref(),
            second: at("history-by-id-second-slow"),
            cancelled: at("history-by-id-after-cancel-running"),
            traced: need("ws-run-interrupted"),
            history_late: no_history_entry(set),
        }
    }
}

fn before(at: &(String, String)) -> Breakpoint {
    Breakpoint::before_node().node(&at.0).class(&at.1)
}

/// Steps the emulator between probes, and timestamps each probe (printed
/// with `EMULATOR_FIDELITY_TIMES=1`).
struct Stepper {
    emu: comfy_emulator::EmulatorHandle,
    plan: Plan,
    out: PathBuf,
    holds: Mutex<HashMap<&'static str, Hold>>,
    /// The id of slow-2 (047), once submitted.
    slow_2: Mutex<Option<String>>,
    start: Instant,
    lines: Mutex<Vec<String>>,
}

impl Stepper {
    fn arm(&self, name: &'static str, at: Breakpoint) {
        let hold = self.emu.hold(at);
        self.holds.lock().unwrap().insert(name, hold);
    }

    fn release(&self, name: &str) {
        self.holds.lock().unwrap().remove(name);
    }

    /// Blocks `record` (its next request waits) until `name` is reached.
    fn reached(&self, name: &'static str) -> Stopped {
        let hold = self
            .holds
            .lock()
            .unwrap()
            .remove(name)
            .unwrap_or_else(|| panic!("breakpoint {name} not armed"));
        let waited = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(tokio::time::timeout(WAIT, hold.reached()))
        });
        let at = waited.unwrap_or_else(|_| panic!("breakpoint {name} not reached in {WAIT:?}"));
        self.holds.lock().unwrap().insert(name, hold);
        at
    }

    fn submitted(&self, outcome: &Outcome) -> String {
        let Outcome::Written { file, .. } = outcome else {
            panic!("a slow prompt was not recorded: {outcome:?}");
        };
        let text = std::fs::read_to_string(self.out.join(file)).unwrap();
        submitted_id(&serde_json::from_str(&text).unwrap()).unwrap()
    }

    fn step(&self, name: &str, outcome: &Outcome) {
        let plan = &self.plan;
        match name {
            "prompt-slow-2" => *self.slow_2.lock().unwrap() = Some(self.submitted(outcome)),
            // Slow-1 held at the node the targeted interrupt stopped it at.
            "queue-delete-pending" => {
                self.reached("first");
            }
            "interrupt-targeted" if plan.first_over_by_056 => {
                // Slow-1 ends before 056; slow-2 starts and is held
                // where the global interrupt will stop it.
                let second = plan
                    .second
                    .as_ref()
                    .expect("no recorded set has slow-1 over by 056 and slow-2 succeeding");
                let id = self.slow_2.lock().unwrap().clone().unwrap();
                self.arm("second", before(second).prompt(&id));
                self.release("first");
                self.reached("second");
            }
            "interrupt-global" => {
                assert!(
                    plan.first_over_by_056 || plan.second.is_none(),
                    "no recorded set has slow-2 interrupted while slow-1 ran at 056"
                );
                self.release("first");
                self.release("second");
            }
            "queue-clear" => {
                if let Some(at) = &plan.cancelled {
                    self.arm("cancel", before(at));
                }
            }
            "jobs-cancel-pending" if plan.cancelled.is_some() => {
                self.reached("cancel");
            }
            "jobs-cancel-batch-malformed" => self.release("cancel"),
            "jobs-by-id-mixed-outputs" => {
                let (node, class) = &plan.traced;
                self.arm("traced", Breakpoint::in_node().node(node).class(class));
            }
            "run-interrupted-submit" => {
                let at = self.reached("traced");
                assert_eq!(at.prompt, self.submitted(outcome));
                if plan.history_late {
                    self.arm("history", Breakpoint::before_history().prompt(&at.prompt));
                }
            }
            "history-by-id-interrupted-ws" => {
                self.release("traced");
                self.release("history");
            }
            _ => {}
        }
    }
}

impl Progress for Stepper {
    fn probe(&self, number: usize, name: &str, outcome: &Outcome) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(format!(
                "{:7.3}s {number:03}-{name}",
                self.start.elapsed().as_secs_f64()
            ));
        }
        self.step(name, outcome);
    }
}

struct Recorded {
    version: String,
    diff: diff::Diff,
    /// Stepped states that differ: `(recorded, emulated)`.
    states: Vec<(String, String)>,
    skipped: Vec<String>,
    timed_out: Vec<String>,
    history_late: bool,
    took: Duration,
}

fn keep(version: &str, out: &Path) {
    let Ok(keep) = std::env::var("EMULATOR_FIDELITY_KEEP") else {
        return;
    };
    let keep = Path::new(&keep).join(version);
    let _ = std::fs::remove_dir_all(&keep);
    std::fs::create_dir_all(&keep).unwrap();
    for f in std::fs::read_dir(out).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), keep.join(f.file_name())).unwrap();
    }
}

async fn record_version(version: String) -> Recorded {
    let started = Instant::now();
    let want = FixtureSet::load(&support::fixture_dir(&version)).unwrap();
    let plan = Plan::of(&want);
    let history_late = plan.history_late;
    let config = EmulatorConfig::new(&version).node_time(Duration::ZERO);
    let emu = Emulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let mut opts = RecordOptions::new(emu.url(), out.clone());
    opts.job_timeout = WAIT;
    let stepper = Stepper {
        emu,
        out: out.clone(),
        holds: Mutex::new(HashMap::new()),
        slow_2: Mutex::new(None),
        start: started,
        lines: Mutex::new(Vec::new()),
        plan,
    };
    // Before any request: slow-1 is the first prompt to reach that node.
    stepper.arm("first", before(&stepper.plan.first));
    let report = record::record(&opts, &stepper).await.unwrap();
    if std::env::var("EMULATOR_FIDELITY_TIMES").is_ok() {
        println!("{version}:\n{}", stepper.lines.lock().unwrap().join("\n"));
    }
    let Stepper { emu, holds, .. } = stepper;
    drop(holds);
    emu.stop().await;
    let skipped = report
        .skipped()
        .map(|p| format!("{:03}-{} ({:?})", p.number, p.name, p.outcome))
        .collect();
    let got = FixtureSet::load(&out).unwrap();
    keep(&version, &out);
    let states = stepped_states(&want)
        .into_iter()
        .zip(stepped_states(&got))
        .filter(|(w, g)| w != g)
        .collect();
    Recorded {
        diff: diff::diff(&want, &got),
        states,
        version,
        skipped,
        timed_out: report.timed_out,
        history_late,
        took: started.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_emulator_of_every_version_answers_the_probe_suite_as_recorded() {
    let versions: Vec<String> = match std::env::var("EMULATOR_FIDELITY_VERSIONS") {
        Ok(list) => list.split(',').map(|v| v.trim().to_owned()).collect(),
        Err(_) => embedded_versions()
            .iter()
            .map(|v| (*v).to_owned())
            .collect(),
    };
    let runs: Vec<_> = versions
        .into_iter()
        .map(|v| tokio::spawn(record_version(v)))
        .collect();
    let mut failures = Vec::new();
    for run in runs {
        let r = run.await.unwrap();
        let d = &r.diff;
        println!(
            "{}: {} probes compared in {:.1?}: {} differences",
            r.version,
            d.probes_compared,
            r.took,
            d.changes.len(),
        );
        if !r.skipped.is_empty() {
            failures.push(format!("{}: probes skipped: {:?}", r.version, r.skipped));
        }
        if d.probes_compared != PROBE_COUNT {
            failures.push(format!(
                "{}: {} probes compared, not {PROBE_COUNT}",
                r.version, d.probes_compared
            ));
        }
        // Only the wait 088's recording shows may run out.
        let expected_waits = usize::from(r.history_late);
        let late_wait = r
            .timed_out
            .iter()
            .all(|w| w.contains("the interrupted prompt's history entry"));
        if r.timed_out.len() != expected_waits || !late_wait {
            failures.push(format!("{}: waits ran out: {:?}", r.version, r.timed_out));
        }
        for (want, got) in &r.states {
            failures.push(format!("{}: recorded {want}, emulated {got}", r.version));
        }
        if !d.changes.is_empty() {
            let rows: Vec<String> = d
                .changes
                .iter()
                .map(|c| {
                    format!(
                        "  {} [{:?}] {} {} {:?} → {:?}",
                        c.probe, c.class, c.kind, c.path, c.before, c.after
                    )
                })
                .collect();
            failures.push(format!(
                "{}: {} differences from the recording:\n{}\n\n{}",
                r.version,
                d.changes.len(),
                rows.join("\n"),
                diff::text(d)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

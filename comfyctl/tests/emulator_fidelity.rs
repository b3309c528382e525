//! The emulator against the recordings: the probe suite that recorded
//! `fixtures/comfyui-<V>` is run against the emulator of every version and
//! the recorded set is compared with the real one by `diff`. Every probe
//! must be recorded, and no difference may remain except the timing races
//! `diff` already classes as such, and the few listed in [`EXCEPTIONS`].
//!
//! `EMULATOR_FIDELITY_VERSIONS=0.33.0,0.6.0` limits the versions;
//! `EMULATOR_FIDELITY_KEEP=DIR` keeps the recorded sets in `DIR/<V>`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig, embedded_versions};
use comfyctl::diff::{self, Class, FixtureSet};
use comfyctl::record::{self, Outcome, PROBE_COUNT, Progress, RecordOptions};
use std::time::{Duration, Instant};

use comfy_test_support::replay as support;

/// Differences allowed on purpose: `(version or "*", probe, why)`. Keep
/// this short; every entry must still match a difference (a stale entry
/// fails the test).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn excepted(version: &str, probe: &str) -> bool {
    EXCEPTIONS
        .iter()
        .any(|(v, p, _)| (*v == "*" || *v == version) && *p == probe)
}

/// Timestamps each probe (printed with `EMULATOR_FIDELITY_TIMES=1`).
struct Timed {
    start: Instant,
    lines: std::sync::Mutex<Vec<String>>,
}

impl Progress for Timed {
    fn probe(&self, number: usize, name: &str, _: &Outcome) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(format!(
                "{:7.3}s {number:03}-{name}",
                self.start.elapsed().as_secs_f64()
            ));
        }
    }
}

struct Recorded {
    version: String,
    diff: diff::Diff,
    skipped: Vec<String>,
    took: Duration,
}

async fn record_version(version: String) -> Recorded {
    let started = Instant::now();
    let emu = Emulator::start(EmulatorConfig::new(&version))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let mut opts = RecordOptions::new(emu.url(), out.clone());
    opts.job_timeout = Duration::from_secs(20);
    let timed = Timed {
        start: started,
        lines: std::sync::Mutex::new(Vec::new()),
    };
    let report = record::record(&opts, &timed).await.unwrap();
    if std::env::var("EMULATOR_FIDELITY_TIMES").is_ok() {
        println!("{version}:\n{}", timed.lines.lock().unwrap().join("\n"));
    }
    emu.stop().await;
    let skipped = report
        .skipped()
        .map(|p| format!("{:03}-{} ({:?})", p.number, p.name, p.outcome))
        .collect();
    let got = FixtureSet::load(&out).unwrap();
    let want = FixtureSet::load(&support::fixture_dir(&version)).unwrap();
    if let Ok(keep) = std::env::var("EMULATOR_FIDELITY_KEEP") {
        let keep = std::path::Path::new(&keep).join(&version);
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).unwrap();
        for f in std::fs::read_dir(&out).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), keep.join(f.file_name())).unwrap();
        }
    }
    Recorded {
        diff: diff::diff(&want, &got),
        version,
        skipped,
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
    let mut used = vec![false; EXCEPTIONS.len()];
    for run in runs {
        let r = run.await.unwrap();
        let d = &r.diff;
        println!(
            "{}: {} probes compared in {:.1?}: {} breaking, {} additive, {} value-only, {} race",
            r.version,
            d.probes_compared,
            r.took,
            d.count(Class::Breaking),
            d.count(Class::Additive),
            d.count(Class::ValueOnly),
            d.count(Class::Race),
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
        let mut unexplained = Vec::new();
        for c in d.changes.iter().filter(|c| c.class != Class::Race) {
            match EXCEPTIONS
                .iter()
                .position(|(v, p, _)| (*v == "*" || *v == r.version) && *p == c.probe)
            {
                Some(i) => used[i] = true,
                None => unexplained.push(c),
            }
        }
        if !unexplained.is_empty() {
            let rows: Vec<String> = unexplained
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
                unexplained.len(),
                rows.join("\n"),
                diff::text(d)
            ));
        }
        debug_assert!(unexplained.iter().all(|c| !excepted(&r.version, &c.probe)));
    }
    if std::env::var("EMULATOR_FIDELITY_VERSIONS").is_err() {
        for (i, (v, p, why)) in EXCEPTIONS.iter().enumerate() {
            if !used[i] {
                failures.push(format!(
                    "stale exception ({v}, {p}): no such difference any more ({why})"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

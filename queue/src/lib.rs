//! `comfy-queue`: the queue manager of the multi-user ComfyUI platform.
//!
//! Users submit jobs over HTTP; GPU workers lease them with `next-job` (long-polling),
//! renew the lease with heartbeats and report results. See `docs/queue.md` for the API and
//! the guarantees. [`app`] builds the whole HTTP service from an [`AppState`].
//!
//! # Which module may use which
//!
//! The graph has no cycles; a module uses only those listed after its arrow (and nothing
//! uses this crate root, which only declares, re-exports and builds [`app`]). A unit test
//! below reads this table and every `crate::` path in `src/` (outside `#[cfg(test)]`), and
//! fails on a use it lacks or on a cycle in it:
//!
//! ```text
//! clock, input, auth, tap               leaves
//! events     → tap                       /ws fan-out
//! wake       → tap                       long-poll and cancel wake-ups
//! scheduler  → input                     routing: Requirements, WorkerInfo, versions
//! model      → clock, input, scheduler   jobs, attempts, input validation
//! progress   → input, tap                heartbeat progress, the progress board
//! live       → clock, input              live ComfyUI events: batch limits, known leases, progress
//! lifecycle  → clock, model              the job state machine (pure functions)
//! store      → clock, model, scheduler, lifecycle   Store trait, SQLite and Redis backends
//! metrics    → store                     the counters behind /metrics
//! routing    → clock, model              jobs no live worker can run: judged, remembered
//! state      → auth, clock, events, live, metrics, progress, routing, scheduler, store, tap,
//!              wake
//! config     → auth, state               clap flags and env → Settings
//! error      → input, auth, store        ErrorCode, ApiError: domain errors → HTTP
//! api        → auth, clock, error, events, input, lifecycle, live, model, progress, routing,
//!              scheduler, state, store, wake   routes, extractors, handlers, OpenAPI
//! reaper     → clock, state, store, api   lease expiry pass (publishes job events), file sweep
//! replicas   → clock, events, progress, state, store, tap, wake   several processes on one Redis
//! stranded   → api, model, routing, state, store   the look for stranded jobs (fails them in time)
//! ```
//!
//! Domain modules (scheduler, model, progress, lifecycle, store, auth) return their own
//! error types ([`input::InputError`], [`lifecycle::TransitionError`],
//! [`store::StoreError`], [`auth::AuthError`]); only `error` and `api` know HTTP statuses.

pub mod api;
pub mod auth;
pub mod clock;
pub mod config;
pub mod error;
pub mod events;
pub mod input;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod model;
pub mod progress;
mod reaper;
pub mod replicas;
pub mod routing;
pub mod scheduler;
mod state;
pub mod store;
pub mod stranded;
pub mod tap;
pub mod wake;

pub use reaper::{SweepError, SweepReport};
pub use state::{
    AppState, BodyBudget, BodyRoom, DEFAULT_MAX_BODY_BYTES_IN_FLIGHT, DEFAULT_MAX_CATALOGUE_BYTES,
    DEFAULT_MAX_FILE_BYTES, Inner, KnownWorker, Settings, WorkerCache,
};

/// Build the whole HTTP service. Tests drive it with `tower::ServiceExt::oneshot`; `main`
/// serves it on a socket.
pub fn app(state: AppState) -> axum::Router {
    api::router(state)
}

/// `listener` with `TCP_NODELAY` set on every connection it accepts, for serving [`app`].
/// Without it a response whose body is written after its head (a file download streamed
/// from the store) waits for the client's delayed ACK: about 40 ms a request on Linux.
pub fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The table in the module docs above: module → modules it may use.
    fn allowed() -> BTreeMap<String, BTreeSet<String>> {
        let doc: Vec<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .skip_while(|l| l.trim() != "```text")
            .skip(1)
            .take_while(|l| l.trim() != "```")
            .collect();
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        // Names are separated by commas; two spaces end the list (a comment follows).
        let names = |text: &str| -> Vec<String> {
            let list = text.trim().split("  ").next().unwrap_or("");
            list.split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect()
        };
        for line in doc {
            if let Some((left, right)) = line.split_once('→') {
                let module = left.trim().to_owned();
                out.entry(module.clone()).or_default().extend(names(right));
                current = Some(module);
            } else if line.starts_with("              ") {
                // A continued list of the module above.
                if let Some(m) = &current {
                    out.entry(m.clone()).or_default().extend(names(line));
                }
            } else {
                for leaf in names(line) {
                    out.entry(leaf).or_default();
                }
                current = None;
            }
        }
        out
    }

    /// Every `crate::<module>` a top-level module's files use outside their tests.
    fn used(dir: &Path, top: Option<&str>, out: &mut BTreeMap<String, BTreeSet<String>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            panic!("cannot read {}", dir.display());
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if top.is_none() && name == "bin" {
                    continue;
                }
                used(&path, Some(top.unwrap_or(&name)), out);
                continue;
            }
            let Some(stem) = name.strip_suffix(".rs") else {
                continue;
            };
            let module = top.unwrap_or(stem);
            if top.is_none() && (stem == "lib" || stem == "main") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let deps = out.entry(module.to_owned()).or_default();
            for line in code.lines() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                for (i, _) in line.match_indices("crate::") {
                    let rest = &line[i + "crate::".len()..];
                    let dep: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !dep.is_empty() && dep != module {
                        deps.insert(dep);
                    }
                }
            }
        }
    }

    #[test]
    fn the_documented_graph_has_no_cycle() {
        let graph = allowed();
        // Repeatedly take out modules whose allowed uses are all taken out already.
        let mut done: BTreeSet<String> = BTreeSet::new();
        while done.len() < graph.len() {
            let ready: Vec<String> = graph
                .iter()
                .filter(|(m, deps)| !done.contains(*m) && deps.iter().all(|d| done.contains(d)))
                .map(|(m, _)| m.clone())
                .collect();
            assert!(
                !ready.is_empty(),
                "cycle among {:?}",
                graph
                    .keys()
                    .filter(|m| !done.contains(*m))
                    .collect::<Vec<_>>()
            );
            done.extend(ready);
        }
    }

    #[test]
    fn modules_use_only_what_the_documented_graph_allows() {
        let allowed = allowed();
        assert!(
            allowed.contains_key("store") && allowed.contains_key("clock"),
            "{allowed:?}"
        );
        let mut uses = BTreeMap::new();
        used(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            None,
            &mut uses,
        );
        for (module, deps) in &uses {
            let Some(ok) = allowed.get(module) else {
                panic!("module `{module}` is missing from the graph in lib.rs");
            };
            for dep in deps {
                assert!(
                    ok.contains(dep),
                    "`{module}` uses `crate::{dep}`, which the graph in lib.rs does not allow"
                );
            }
        }
    }
}

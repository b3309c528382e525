//! `comfyctl`: ComfyUI tools for people and scripts, built on comfy-adapter.
//! One module per subcommand; shared helpers (output, progress) live here.

mod catalogue;
mod check;
mod convert;
mod detect;
mod diff;
mod emulate;
mod plan;
mod progress;
mod record;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Tools for ComfyUI upgrades: detect a server's line and capabilities,
/// record its API behaviour, diff two releases, emulate one, convert UI
/// workflows to API prompts, check workflows against a release and plan an
/// upgrade.
#[derive(Debug, Parser)]
#[command(name = "comfyctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Detect a server's version, behaviour line and capabilities.
    Detect(detect::DetectArgs),
    /// Run the probe suite of fixtures/ against a live ComfyUI and write a
    /// fixture set (one JSON file per exchange). Needs an idle server; it
    /// deletes the history and userdata it creates.
    Record(record::RecordArgs),
    /// Compare two fixture sets (or live servers, recorded first): status
    /// codes, fields, headers, error kinds and WebSocket messages, each
    /// change classed breaking, additive or value-only.
    Diff(diff::DiffArgs),
    /// Serve an emulated ComfyUI of a recorded release (HTTP + WebSocket)
    /// with simulated execution, for tests and demos without a GPU.
    Emulate(emulate::EmulateArgs),
    /// Convert a UI workflow (what users save) into the API prompt the
    /// frontend would send, using a server's object_info for widget names.
    Convert(convert::ConvertArgs),
    /// Will these workflows run on a release? Reports unknown node types,
    /// missing or renamed inputs, out-of-range and not-in-list values, bad
    /// links and model files. Exits with status 3 when an error is found.
    Check(check::CheckArgs),
    /// One upgrade plan from A to B: the API differences that matter, every
    /// workflow of a folder on both releases, what the frontends and the
    /// gateway change, the steps of a rolling upgrade and a verdict
    /// (Markdown, or JSON).
    Plan(plan::PlanArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(args) => detect::run(args).await,
        Command::Record(args) => record::run(args).await,
        Command::Diff(args) => diff::run(args).await,
        Command::Emulate(args) => emulate::run(args).await,
        Command::Convert(args) => convert::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Plan(args) => plan::run(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("comfyctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 3600.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be between 0 and 3600 seconds"))
    }
}

/// Writes to stdout; a closed pipe (`comfyctl diff ... | head`) is not an error.
pub(crate) fn emit(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

//! `comfyctl diff`: two fixture sets, or live servers recorded first.

use crate::emit;
use crate::record::{ServerArgs, record_with_progress, summary};
use clap::Args;
use comfyctl::diff::{self, Class, FixtureSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// Before the upgrade: a fixture set (a folder like
    /// fixtures/comfyui-0.9.2) or the URL of a live server, which is
    /// recorded first (see `comfyctl record`).
    a: String,
    /// After the upgrade: a fixture set or a URL.
    b: String,
    /// Print JSON for scripts.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown (as in docs/upgrades/).
    #[arg(long)]
    markdown: bool,
    /// Exit with status 3 when a breaking change is found.
    #[arg(long)]
    fail_on_breaking: bool,
    /// Keep the sets recorded from URLs in this folder (as a/ and b/)
    /// instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

pub(crate) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Loads a fixture set, recording it first when `source` is a URL.
async fn load(
    source: &str,
    side: &str,
    into: &Path,
    server: &ServerArgs,
) -> anyhow::Result<FixtureSet> {
    if !is_url(source) {
        return Ok(FixtureSet::load(Path::new(source))?);
    }
    let out = into.join(side);
    let report = record_with_progress(&server.options(source, out.clone())).await?;
    eprint!("{}", summary(&report));
    Ok(FixtureSet::load(&out)?)
}

pub(crate) async fn run(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    let into = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    let a = load(&args.a, "a", &into, &args.server).await?;
    let b = load(&args.b, "b", &into, &args.server).await?;
    let d = diff::diff(&a, &b);
    let out = if args.json {
        serde_json::to_string_pretty(&d)? + "\n"
    } else if args.markdown {
        diff::markdown(&d)
    } else {
        diff::text(&d)
    };
    emit(&out)?;
    Ok(if args.fail_on_breaking && d.count(Class::Breaking) > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

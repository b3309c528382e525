//! `comfyctl plan`: one upgrade plan from A to B.

use crate::catalogue::{catalogue_from_path, read_json};
use crate::check::workflow_files;
use crate::diff::is_url;
use crate::emit;
use crate::progress::Bar;
use crate::record::{ServerArgs, record_with_progress, summary};
use anyhow::Context;
use clap::Args;
use comfy_adapter::releases;
use comfyctl::diff::FixtureSet;
use comfyctl::plan::{self, PlanOptions, Side, Workflow, Workflows};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Before the upgrade: a recorded version V (the set
    /// <fixtures>/comfyui-V), a fixture set's folder, or the URL of a
    /// live ComfyUI (recorded first, see `comfyctl record`).
    #[arg(long, value_name = "VERSION_DIR_OR_URL")]
    from: String,
    /// After the upgrade: a version, a fixture set or a URL.
    #[arg(long, value_name = "VERSION_DIR_OR_URL")]
    to: String,
    /// Check every workflow (UI or API format) under this folder on both
    /// releases.
    #[arg(long, value_name = "DIR")]
    workflows: Option<PathBuf>,
    /// The catalogues come from machines without the pool's models: a
    /// model file missing from a list without any model file is a warning.
    #[arg(long)]
    models_elsewhere: bool,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    json: bool,
    /// Write the plan to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Where recorded fixture sets live, for versions.
    #[arg(long, env = "COMFY_FIXTURES", default_value = "fixtures")]
    fixtures: PathBuf,
    /// Keep the sets recorded from URLs in this folder (as from/ and to/).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

/// The versions `--from`/`--to` accept: the releases table's and the sets
/// in the fixtures folder.
fn known_versions(fixtures: &Path) -> Vec<String> {
    let mut known: Vec<semver::Version> = releases::RELEASES.iter().map(|r| r.semver()).collect();
    if let Ok(entries) = std::fs::read_dir(fixtures) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_prefix("comfyui-")
                .and_then(|v| semver::Version::parse(v).ok())
                && e.path().is_dir()
                && !known.contains(&v)
            {
                known.push(v);
            }
        }
    }
    known.sort();
    known.iter().map(ToString::to_string).collect()
}

/// The fixture set folder `spec` names, recording a URL first.
async fn resolve(spec: &str, side: &str, args: &PlanArgs, into: &Path) -> anyhow::Result<PathBuf> {
    if is_url(spec) {
        let out = into.join(side);
        let report = record_with_progress(&args.server.options(spec, out.clone())).await?;
        eprint!("{}", summary(&report));
        return Ok(out);
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_owned());
    }
    if let Some(v) = comfy_adapter::normalize::parse_version(spec).filter(|_| {
        spec.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == 'v')
    }) {
        let dir = args.fixtures.join(format!("comfyui-{v}"));
        if dir.is_dir() {
            return Ok(dir);
        }
        let known = known_versions(&args.fixtures).join(", ");
        if releases::find(&v.to_string()).is_some() {
            anyhow::bail!(
                "--{side} {spec}: no recorded set at {} (known versions: {known}; use --fixtures DIR)",
                dir.display()
            );
        }
        anyhow::bail!(
            "--{side} {spec}: unknown version; known versions: {known} (or give a fixture set's folder or an http(s) URL)"
        );
    }
    anyhow::bail!(
        "--{side} {spec}: no such folder, and neither a version (such as {}) nor an http(s) URL",
        releases::newest().version
    )
}

async fn load(spec: &str, side: &str, args: &PlanArgs, into: &Path) -> anyhow::Result<Side> {
    let dir = resolve(spec, side, args, into).await?;
    let set = FixtureSet::load(&dir).with_context(|| format!("--{side} {spec}"))?;
    let catalogue = catalogue_from_path(&dir)
        .with_context(|| format!("--{side} {spec}"))?
        .nodes;
    Ok(Side {
        source: spec.to_owned(),
        set,
        catalogue,
    })
}

fn load_workflows(dir: &Path) -> anyhow::Result<Workflows> {
    if !dir.is_dir() {
        anyhow::bail!("--workflows {}: no such folder", dir.display());
    }
    let mut paths = Vec::new();
    workflow_files(dir, &mut HashSet::new(), &mut paths)?;
    let files = paths
        .iter()
        .map(|p| {
            Ok(Workflow {
                path: p.display().to_string(),
                doc: read_json(p)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Workflows {
        dir: dir.display().to_string(),
        files,
    })
}

fn command_line(args: &PlanArgs) -> String {
    let mut c = format!("comfyctl plan --from {} --to {}", args.from, args.to);
    if let Some(w) = &args.workflows {
        c.push_str(&format!(" --workflows {}", w.display()));
    }
    if args.models_elsewhere {
        c.push_str(" --models-elsewhere");
    }
    c
}

pub(crate) async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let workflows = args.workflows.as_deref().map(load_workflows).transpose()?;
    let scratch = tempfile::tempdir()?;
    let into = args
        .keep
        .clone()
        .unwrap_or_else(|| scratch.path().to_owned());
    let from = load(&args.from, "from", &args, &into).await?;
    let to = load(&args.to, "to", &args, &into).await?;
    let options = PlanOptions {
        models_elsewhere: args.models_elsewhere,
        command: command_line(&args),
    };
    let bar = Bar::new(
        "checking workflows",
        workflows.as_ref().map_or(0, |w| w.files.len()),
    );
    let p = plan::build(
        &from,
        &to,
        workflows.as_ref(),
        &options,
        &mut |done, path| {
            bar.set_position(done);
            bar.message(path);
        },
    );
    bar.finish();
    let text = if args.json {
        serde_json::to_string_pretty(&p)? + "\n"
    } else {
        plan::markdown(&p)
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        None => emit(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

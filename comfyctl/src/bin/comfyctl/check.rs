//! `comfyctl check`.

use crate::catalogue::{CatalogueArgs, load_catalogue, read_json};
use crate::emit;
use crate::progress::Bar;
use anyhow::Context;
use clap::Args;
use comfyctl::check::{self, CheckOptions, CheckReport, Severity};
use comfyctl::convert;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Workflow files (UI or API format, detected) or folders of them.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    catalogue: CatalogueArgs,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    /// The catalogue comes from a machine without the models: model files
    /// missing from a list without any model file are warnings, not errors.
    #[arg(long)]
    models_elsewhere: bool,
}

/// Every .json file under `path` (sorted), or `path` itself. Each file is
/// listed once however many links lead to it; a symbolic link to a folder
/// is followed once (a loop ends there, as walkdir detects it), and entries
/// that are not regular files are left out of a folder.
pub(crate) fn workflow_files(
    path: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let walk = walkdir::WalkDir::new(path)
        .follow_links(true)
        .sort_by_file_name();
    for entry in walk {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.loop_ancestor().is_some() => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let p = entry.path();
        if !entry.file_type().is_file() || p.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let key = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
        if seen.insert(key) {
            out.push(p.to_owned());
        }
    }
    Ok(())
}

/// One checked file.
#[derive(serde::Serialize)]
struct FileResult {
    path: String,
    format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<String>,
    errors: usize,
    warnings: usize,
    #[serde(flatten)]
    report: CheckReport,
}

pub(crate) async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let cat = load_catalogue(&args.catalogue).await?;
    let convert_options = cat.convert_options();
    let options = CheckOptions {
        models_elsewhere: args.models_elsewhere,
    };
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for path in &args.paths {
        let explicit = !path.is_dir();
        let mut found = Vec::new();
        workflow_files(path, &mut seen, &mut found)?;
        files.extend(found.into_iter().map(|f| (f, explicit)));
    }
    let bar = Bar::new("checking", files.len());
    let mut results = Vec::new();
    for (done, (file, explicit)) in files.into_iter().enumerate() {
        bar.set_position(done);
        bar.message(&file.display().to_string());
        let doc = read_json(&file)?;
        let format = if convert::is_ui_workflow(&doc) {
            "ui"
        } else {
            "api"
        };
        match check::check_document(&doc, &cat.nodes, &convert_options, &options) {
            Ok(report) => results.push(FileResult {
                path: file.display().to_string(),
                format,
                skipped: None,
                errors: report.count(Severity::Error),
                warnings: report.count(Severity::Warning),
                report,
            }),
            // In a folder, other JSON (responses, notes) is skipped.
            Err(check::CheckError::NotAWorkflow) if !explicit => results.push(FileResult {
                path: file.display().to_string(),
                format: "none",
                skipped: Some("not a workflow".to_owned()),
                errors: 0,
                warnings: 0,
                report: CheckReport::default(),
            }),
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("checking {}", file.display())));
            }
        }
    }
    bar.finish();
    let errors: usize = results.iter().map(|r| r.errors).sum();
    let warnings: usize = results.iter().map(|r| r.warnings).sum();
    let checked = results.iter().filter(|r| r.skipped.is_none()).count();
    let failing = results.iter().filter(|r| r.errors > 0).count();
    let version = cat.version.as_ref().map(ToString::to_string);
    if args.json {
        let out = serde_json::json!({
            "object_info": cat.source,
            "version": version,
            "files": results,
            "summary": {"files": checked, "failing": failing, "errors": errors, "warnings": warnings},
        });
        emit(&(serde_json::to_string_pretty(&out)? + "\n"))?;
    } else {
        let mut text = String::new();
        for r in &results {
            match &r.skipped {
                Some(why) => text.push_str(&format!("{}: skipped ({why})\n", r.path)),
                None => {
                    text.push_str(&format!(
                        "{}: {} ({} errors, {} warnings)\n",
                        r.path,
                        if r.errors == 0 { "ok" } else { "FAILS" },
                        r.errors,
                        r.warnings
                    ));
                    for f in &r.report.findings {
                        text.push_str(&format!("  {f}\n"));
                    }
                }
            }
        }
        text.push_str(&format!(
            "checked {checked} workflow(s) against {} ({}): {failing} would fail, {errors} error(s), {warnings} warning(s)\n",
            version.as_deref().unwrap_or("unknown version"),
            cat.source
        ));
        emit(&text)?;
    }
    Ok(if errors > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

//! `comfyctl`: ComfyUI tools for people and scripts, built on comfy-adapter.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use comfy_adapter::check::{self, CheckOptions, CheckReport, Severity};
use comfy_adapter::convert::{self, ConvertOptions};
use comfy_adapter::diff::{self, Class, FixtureSet};
use comfy_adapter::model::catalogue::NodeCatalogue;
use comfy_adapter::{DetectOptions, Timeouts, detect};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Tools for ComfyUI upgrades: detect a server's line and capabilities, diff
/// recorded API behaviour between versions, convert UI workflows to API
/// prompts, and check workflows against a release before upgrading.
#[derive(Debug, Parser)]
#[command(name = "comfyctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Detect a server's version, behaviour line and capabilities.
    Detect(DetectArgs),
    /// Compare two recorded fixture sets: status codes, fields, headers,
    /// error kinds and WebSocket messages, each change classed breaking,
    /// additive or value-only.
    Diff(DiffArgs),
    /// Convert a UI workflow (what users save) into the API prompt the
    /// frontend would send, using a server's object_info for widget names.
    Convert(ConvertArgs),
    /// Will these workflows run on a release? Reports unknown node types,
    /// missing or renamed inputs, out-of-range and not-in-list values, bad
    /// links and model files. Exits with status 3 when an error is found.
    Check(CheckArgs),
}

/// Where the node catalogue comes from.
#[derive(Debug, Args)]
struct CatalogueArgs {
    /// A recorded fixture set (its full GET /object_info exchange is used),
    /// an exchange file, or a plain /object_info JSON body.
    #[arg(long, value_name = "FILE_OR_FIXTURE_DIR", conflicts_with = "url")]
    object_info: Option<PathBuf>,
    /// Fetch object_info from a running server (its version is detected).
    #[arg(long)]
    url: Option<String>,
    /// The ComfyUI release the prompt is for: with --object-info or --url it
    /// only sets the frontend behaviour (id renumbering from 0.26, titles);
    /// alone it picks the fixture set <fixtures>/comfyui-<VERSION> (a
    /// fixture set's folder is accepted too).
    #[arg(long)]
    version: Option<String>,
    /// Where recorded fixture sets live, for --version.
    #[arg(long, env = "COMFY_FIXTURES", default_value = "fixtures")]
    fixtures: PathBuf,
    /// Seconds to wait for each request with --url.
    #[arg(long, default_value_t = 30.0, value_parser = positive_secs)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// The UI workflow (JSON with "nodes" and "links").
    workflow: PathBuf,
    #[command(flatten)]
    catalogue: CatalogueArgs,
    /// Write the prompt here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Wrap the prompt as a POST /prompt body: {"prompt": ...}.
    #[arg(long)]
    body: bool,
}

#[derive(Debug, Args)]
struct CheckArgs {
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

#[derive(Debug, Args)]
struct DiffArgs {
    /// The fixture set before the upgrade (a folder like fixtures/comfyui-0.9.2).
    a: PathBuf,
    /// The fixture set after the upgrade.
    b: PathBuf,
    /// Print JSON for scripts.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print Markdown (as in docs/upgrades/).
    #[arg(long)]
    markdown: bool,
    /// Exit with status 3 when a breaking change is found.
    #[arg(long)]
    fail_on_breaking: bool,
}

#[derive(Debug, Args)]
struct DetectArgs {
    /// Base URL of the ComfyUI server.
    #[arg(long, env = "COMFY_URL", default_value = "http://127.0.0.1:8188")]
    url: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Refuse a version outside the tested range instead of warning.
    #[arg(long)]
    strict: bool,
    /// Seconds to wait for each request.
    #[arg(long, default_value_t = 10.0, value_parser = positive_secs)]
    timeout: f64,
    /// `comfy-user` header for servers started with --multi-user.
    #[arg(long, env = "COMFY_USER")]
    user: Option<String>,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 3600.0 {
        Ok(v)
    } else {
        Err(format!("{s} must be between 0 and 3600 seconds"))
    }
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
        Command::Detect(args) => run_detect(args).await,
        Command::Diff(args) => run_diff(&args),
        Command::Convert(args) => run_convert(args).await,
        Command::Check(args) => run_check(args).await,
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("comfyctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a closed pipe (`comfyctl diff ... | head`) is not an error.
fn emit(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn run_diff(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let a = FixtureSet::load(&args.a)?;
    let b = FixtureSet::load(&args.b)?;
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

async fn run_detect(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let secs = Duration::from_secs_f64(args.timeout);
    let options = DetectOptions {
        timeouts: Timeouts {
            connect: secs.min(Duration::from_secs(5)),
            request: secs,
        },
        strict: args.strict,
        user: args.user,
    };
    let found = detect(&args.url, &options)
        .await
        .with_context(|| format!("detecting {}", args.url))?;
    if args.json {
        let out = serde_json::json!({
            "url": found.adapter.base_url().as_str(),
            "version": found.info.version_string,
            "semver": found.info.version.as_ref().map(ToString::to_string),
            "line": found.line,
            "line_range": found.line.range(),
            "capabilities": found.capabilities,
            "devices": found.info.devices,
            "argv": found.info.argv,
            "os": found.info.os,
            "python_version": found.info.python_version,
            "pytorch_version": found.info.pytorch_version,
            "warnings": found.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let caps = &found.capabilities;
    println!("server:   {}", found.adapter.base_url());
    println!(
        "version:  {}",
        found
            .info
            .version_string
            .as_deref()
            .unwrap_or("(not reported)")
    );
    println!("line:     {}", found.line);
    for d in &found.info.devices {
        println!("device:   {} ({})", d.name, d.kind);
    }
    println!(
        "flags:    {}",
        found
            .info
            .argv
            .iter()
            .skip(1)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("capabilities:");
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("  jobs API (/api/jobs)          {}", yes(caps.jobs_api));
    println!(
        "  jobs cancel API               {}",
        yes(caps.jobs_cancel_api)
    );
    println!(
        "  'cancelled' job status        {}",
        yes(caps.cancelled_status)
    );
    println!(
        "  prompt ids must be UUIDs      {}",
        yes(caps.uuid_prompt_ids)
    );
    println!(
        "  missing_node_type errors      {}",
        yes(caps.missing_node_type_errors)
    );
    println!(
        "  targeted interrupt            {}",
        yes(caps.targeted_interrupt)
    );
    println!("  multi-user                    {}", yes(caps.multi_user));
    println!(
        "  preview metadata              {}",
        yes(caps.preview_metadata)
    );
    if let Some(max) = caps.max_upload_size {
        println!(
            "  max upload size               {} MiB",
            max / (1024 * 1024)
        );
    }
    for w in &found.warnings {
        println!("warning:  {w}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A catalogue and the release it belongs to, when known.
struct Catalogue {
    nodes: NodeCatalogue,
    version: Option<semver::Version>,
    source: String,
}

impl Catalogue {
    fn convert_options(&self) -> ConvertOptions {
        self.version
            .as_ref()
            .map(ConvertOptions::for_server)
            .unwrap_or_default()
    }
}

fn parse_version(s: &str) -> anyhow::Result<semver::Version> {
    comfy_adapter::normalize::parse_version(s)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a version like 0.11.1"))
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

/// The full GET /object_info exchange of a fixture set.
fn object_info_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("object_info-full.json"))
        })
        .collect();
    names.sort();
    names.pop().ok_or_else(|| {
        anyhow::anyhow!(
            "{} has no *-object_info-full.json (not a recorded fixture set?)",
            dir.display()
        )
    })
}

/// Reads a catalogue from a fixture dir, an exchange file or a plain body.
fn catalogue_from_path(path: &Path) -> anyhow::Result<Catalogue> {
    let file = if path.is_dir() {
        object_info_file(path)?
    } else {
        path.to_owned()
    };
    let doc = read_json(&file)?;
    let (body, version) = match (doc.get("response"), doc.get("request")) {
        (Some(resp), Some(_)) => {
            if resp.get("status").and_then(Value::as_u64) != Some(200) {
                anyhow::bail!("{} is not a successful object_info answer", file.display());
            }
            let version = doc
                .get("comfyui_version")
                .and_then(Value::as_str)
                .and_then(comfy_adapter::normalize::parse_version);
            (resp.get("body").cloned().unwrap_or(Value::Null), version)
        }
        _ => (doc, None),
    };
    if !body.is_object() {
        anyhow::bail!("{} holds no object_info object", file.display());
    }
    let nodes = NodeCatalogue::from_slice(&serde_json::to_vec(&body)?)
        .with_context(|| format!("{} is not an object_info body", file.display()))?;
    Ok(Catalogue {
        nodes,
        version,
        source: file.display().to_string(),
    })
}

async fn load_catalogue(args: &CatalogueArgs) -> anyhow::Result<Catalogue> {
    // --version also takes a fixture set's folder.
    let version_dir = args
        .version
        .as_deref()
        .map(Path::new)
        .filter(|p| p.is_dir());
    let wanted = match (&args.version, version_dir) {
        (Some(v), None) => Some(parse_version(v)?),
        _ => None,
    };
    let mut cat = if let Some(url) = &args.url {
        let secs = Duration::from_secs_f64(args.timeout);
        let options = DetectOptions {
            timeouts: Timeouts {
                connect: secs.min(Duration::from_secs(5)),
                request: secs,
            },
            ..DetectOptions::default()
        };
        let found = detect(url, &options)
            .await
            .with_context(|| format!("detecting {url}"))?;
        let nodes = found
            .adapter
            .object_info(None)
            .await
            .with_context(|| format!("GET {url}/object_info"))?;
        Catalogue {
            nodes,
            version: found.info.version.clone(),
            source: url.clone(),
        }
    } else if let Some(path) = &args.object_info {
        catalogue_from_path(path)?
    } else if let Some(dir) = version_dir {
        catalogue_from_path(dir)?
    } else if let Some(v) = &args.version {
        let local = args.fixtures.join(format!("comfyui-{v}"));
        let dir = if local.is_dir() {
            local
        } else {
            let built_in = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("fixtures")
                .join(format!("comfyui-{v}"));
            if !built_in.is_dir() {
                anyhow::bail!(
                    "no fixture set for {v}: {} does not exist (use --fixtures DIR, --object-info or --url)",
                    local.display()
                );
            }
            built_in
        };
        catalogue_from_path(&dir)?
    } else {
        anyhow::bail!(
            "say which server: --version V, --object-info FILE_OR_FIXTURE_DIR or --url URL"
        );
    };
    if cat.nodes.is_empty() {
        anyhow::bail!("the object_info from {} lists no node classes", cat.source);
    }
    if wanted.is_some() {
        cat.version = wanted;
    }
    Ok(cat)
}

async fn run_convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let doc = read_json(&args.workflow)?;
    if !convert::is_ui_workflow(&doc) {
        anyhow::bail!(
            "{} is not a UI workflow (no \"nodes\" list); API prompts need no conversion",
            args.workflow.display()
        );
    }
    let cat = load_catalogue(&args.catalogue).await?;
    let prompt = convert::convert(&doc, &cat.nodes, &cat.convert_options())
        .with_context(|| format!("converting {}", args.workflow.display()))?;
    let out = if args.body {
        serde_json::json!({ "prompt": prompt })
    } else {
        Value::Object(prompt)
    };
    let text = serde_json::to_string_pretty(&out)? + "\n";
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        None => emit(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Every .json file under `path` (sorted), or `path` itself.
fn workflow_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if !path.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            workflow_files(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
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

async fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let cat = load_catalogue(&args.catalogue).await?;
    let convert_options = cat.convert_options();
    let options = CheckOptions {
        models_elsewhere: args.models_elsewhere,
    };
    let mut results = Vec::new();
    for path in &args.paths {
        let explicit = !path.is_dir();
        let mut files = Vec::new();
        workflow_files(path, &mut files)?;
        for file in files {
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
                    return Err(
                        anyhow::Error::new(e).context(format!("checking {}", file.display()))
                    );
                }
            }
        }
    }
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

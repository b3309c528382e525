//! `comfyctl`: ComfyUI tools for people and scripts, built on comfy-adapter.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use comfy_adapter::diff::{self, Class, FixtureSet};
use comfy_adapter::{DetectOptions, Timeouts, detect};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Tools for ComfyUI upgrades: detect a server's line and capabilities, diff
/// recorded API behaviour between versions.
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

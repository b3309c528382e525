//! `comfyctl detect`.

use crate::positive_secs;
use anyhow::Context;
use clap::Args;
use comfy_adapter::{DetectOptions, Timeouts, detect};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct DetectArgs {
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

pub(crate) async fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
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

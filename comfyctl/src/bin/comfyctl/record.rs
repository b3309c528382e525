//! `comfyctl record`: the probe suite against a live server, with a
//! progress bar on stderr.

use crate::emit;
use crate::progress::Bar;
use anyhow::Context;
use clap::Args;
use comfy_adapter::Timeouts;
use comfyctl::record::{self, Outcome, PROBE_COUNT, Progress, RecordOptions, Report};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// Base URL of the ComfyUI server (it must be idle: the suite queues,
    /// interrupts and clears prompts).
    #[arg(long, env = "COMFY_URL")]
    url: String,
    /// Folder to write the fixture set into (created; must not already hold
    /// NNN-name.json files).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// Print the report as JSON (stdout) instead of a summary.
    #[arg(long)]
    json: bool,
}

/// How to talk to a server being recorded (shared with `diff URL URL`).
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// `comfy-user` header for servers started with --multi-user (a user
    /// of its own keeps the probes' userdata apart from real users').
    #[arg(long, env = "COMFY_USER")]
    user: Option<String>,
    /// Seconds to wait for each request.
    #[arg(long, default_value_t = 30.0, value_parser = crate::positive_secs)]
    timeout: f64,
    /// Seconds one prompt may take to start, finish or reach history (the
    /// slow probes scale eight 4096² images: seconds on a CPU).
    #[arg(long, default_value_t = 300.0, value_parser = crate::positive_secs)]
    job_timeout: f64,
}

impl ServerArgs {
    pub(crate) fn options(&self, url: &str, out: PathBuf) -> RecordOptions {
        let request = Duration::from_secs_f64(self.timeout);
        let mut o = RecordOptions::new(url, out);
        o.user.clone_from(&self.user);
        o.timeouts = Timeouts {
            connect: request.min(Duration::from_secs(5)),
            request,
        };
        o.job_timeout = Duration::from_secs_f64(self.job_timeout);
        o
    }
}

impl Progress for Bar {
    fn probe(&self, number: usize, name: &str, outcome: &Outcome) {
        self.set_position(number);
        match outcome {
            Outcome::Written { .. } => self.message(name),
            Outcome::Skipped { reason } => self.println(&format!("skipped {name}: {reason}")),
        }
    }

    fn waiting(&self, what: &str) {
        self.message(&format!("waiting for {what}"));
    }
}

/// Records `url` into `out` with a progress bar.
pub(crate) async fn record_with_progress(options: &RecordOptions) -> anyhow::Result<Report> {
    let bar = Bar::new(&format!("recording {}", options.url), PROBE_COUNT);
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let result = record::record_until(options, &bar, ctrl_c).await;
    bar.finish();
    result.with_context(|| format!("recording {}", options.url))
}

pub(crate) async fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let options = args.server.options(&args.url, args.out.clone());
    let report = record_with_progress(&options).await?;
    if args.json {
        emit(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        emit(&summary(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The text report.
pub(crate) fn summary(r: &Report) -> String {
    let mut s = format!(
        "recorded {} of {} probes from ComfyUI {} at {} into {}\n",
        r.written(),
        r.probes.len(),
        r.comfyui_version,
        r.url,
        r.out.display()
    );
    for p in r.skipped() {
        if let Outcome::Skipped { reason } = &p.outcome {
            s.push_str(&format!("skipped  {:03}-{}: {reason}\n", p.number, p.name));
        }
    }
    for t in &r.timed_out {
        s.push_str(&format!("timeout  {t}\n"));
    }
    for c in &r.cleaned {
        s.push_str(&format!("deleted  {c}\n"));
    }
    for l in &r.left_behind {
        s.push_str(&format!("left     {l}\n"));
    }
    s
}

//! `comfyctl emulate`: an emulated ComfyUI of a recorded release.

use anyhow::Context;
use clap::Args;
use comfy_emulator::{Emulator, EmulatorConfig, Faults, embedded_versions};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct EmulateArgs {
    /// The release to emulate: a recorded version (built in), or, with
    /// --fixtures, any version recorded in that folder.
    #[arg(long)]
    version: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8188)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Milliseconds one node takes (image nodes take longer in proportion
    /// to the pixels they process).
    #[arg(long, default_value_t = 20)]
    node_time_ms: u64,
    /// Megapixels a node processes in --node-time-ms; a node that processes
    /// more takes longer in proportion (the probe suite's slow prompt,
    /// eight 4096² images, takes about a second at the defaults).
    #[arg(long, default_value_t = 8.0, value_parser = positive_megapixels)]
    work_unit_megapixels: f64,
    /// A folder of recorded sets (comfyui-<VERSION>/, as written by
    /// `comfyctl record`) to answer from instead of the built-in recordings.
    #[arg(long, env = "COMFY_FIXTURES")]
    fixtures: Option<PathBuf>,
    /// Every node runs until interrupted (a hung GPU).
    #[arg(long)]
    stall: bool,
    /// Nodes of this class raise an exception (a node that fails).
    #[arg(long, value_name = "CLASS")]
    error_class: Option<String>,
    /// Nodes of this class raise torch.OutOfMemoryError.
    #[arg(long, value_name = "CLASS")]
    oom_class: Option<String>,
    /// When a node of this class starts, the server dies: it stops
    /// listening and comfyctl exits with status 3 (a crashed ComfyUI).
    #[arg(long, value_name = "CLASS")]
    crash_class: Option<String>,
    /// The WebSocket sends nothing after its greeting.
    #[arg(long)]
    silent_ws: bool,
    /// The WebSocket sends every message this many milliseconds after the
    /// server did (a loaded server, or a client that reads late).
    #[arg(long, value_name = "MS")]
    ws_delay_ms: Option<u64>,
    /// Nodes of this class ignore the interrupt flag and run to their end
    /// (as a long real node without a progress hook does).
    #[arg(long, value_name = "CLASS")]
    uninterruptible_class: Option<String>,
}

fn positive_megapixels(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of megapixels")),
    }
}

pub(crate) async fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    let known = embedded_versions().join(", ");
    match &args.fixtures {
        Some(dir) if !dir.join(format!("comfyui-{}", args.version)).is_dir() => anyhow::bail!(
            "no fixture set comfyui-{} under {} (built-in recordings, without --fixtures: possible values: {known})",
            args.version,
            dir.display()
        ),
        None if !embedded_versions().contains(&args.version.as_str()) => anyhow::bail!(
            "no recordings of ComfyUI {} are built in (possible values: {known}); record it with `comfyctl record` and give --fixtures DIR",
            args.version
        ),
        _ => {}
    }
    let mut config = EmulatorConfig::new(&args.version)
        .addr(SocketAddr::new(args.host, args.port))
        .node_time(Duration::from_millis(args.node_time_ms))
        .work_unit_megapixels(args.work_unit_megapixels);
    config.fixtures_dir = args.fixtures.clone();
    config.faults = Faults {
        stall: args.stall,
        silent_ws: args.silent_ws,
        ws_delay: args.ws_delay_ms.map(Duration::from_millis),
        oom_class: args.oom_class,
        error_class: args.error_class,
        crash_class: args.crash_class,
    };
    let emulator = Emulator::start(config)
        .await
        .with_context(|| format!("starting the {} emulator", args.version))?;
    emulator.set_uninterruptible_class(args.uninterruptible_class.as_deref());
    eprintln!(
        "emulated ComfyUI {} listening on {} (Ctrl-C stops it)",
        emulator.version(),
        emulator.url()
    );
    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            signal.context("waiting for Ctrl-C")?;
            emulator.stop().await;
            Ok(ExitCode::SUCCESS)
        }
        node = emulator.crashed() => {
            eprintln!("emulated ComfyUI {} crashed at {node} (--crash-class)", emulator.version());
            Ok(ExitCode::from(3))
        }
    }
}

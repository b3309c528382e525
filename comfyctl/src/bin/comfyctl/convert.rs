//! `comfyctl convert`.

use crate::catalogue::{CatalogueArgs, load_catalogue, read_json};
use crate::emit;
use anyhow::Context;
use clap::Args;
use comfyctl::convert;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
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

pub(crate) async fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
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

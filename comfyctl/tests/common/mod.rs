//! What the plan tests share: running the `comfyctl` binary in the workspace root, and the
//! arguments that generate a committed plan.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `comfyctl` in the workspace root: (success, stdout, stderr).
pub fn comfyctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_comfyctl"))
        .args(args)
        .current_dir(root())
        .env_remove("COMFY_FIXTURES")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The arguments that generate the committed plan of `a` → `b` (the command its first
/// lines name).
pub fn plan_args<'a>(a: &'a str, b: &'a str) -> Vec<&'a str> {
    vec![
        "plan",
        "--from",
        a,
        "--to",
        b,
        "--workflows",
        "workflows",
        "--models-elsewhere",
    ]
}

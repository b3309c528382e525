//! `comfy-stack --help` as a user reads it (and, as a side effect that the
//! end-to-end kill tests rely on, `cargo test` builds the binary).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn help_describes_the_stack_not_the_worker() {
    let out = Command::new(env!("CARGO_BIN_EXE_comfy-stack"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--demo"), "{text}");
    assert!(!text.contains("GPU worker of the multi-user"), "{text}");
}

//! What `record` says it left on the server: every output prefix of the
//! prompts the server accepted (the summary once named only some of them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig};
use comfyctl::record::{self, Quiet, RecordOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_names_every_output_prefix_of_the_accepted_prompts() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1").node_time(Duration::from_millis(2)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = RecordOptions::new(emu.url(), dir.path().join("set"));
    opts.job_timeout = Duration::from_secs(20);
    let report = record::record(&opts, &Quiet).await.unwrap();
    emu.stop().await;
    let outputs = report
        .left_behind
        .iter()
        .find(|l| l.starts_with("output files"))
        .unwrap_or_else(|| panic!("{:?}", report.left_behind));
    for prefix in [
        "fixture_ok_*",
        "fixture_front_*",
        "slow_*",
        "slowi_*",
        "video/fixture_*",
        "audio/fixture_*",
        "anim_fixture_*",
    ] {
        assert!(
            outputs.contains(prefix),
            "{prefix} missing from {outputs:?}"
        );
    }
}

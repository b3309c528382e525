//! Sets `cfg(has_s3)` for the integration tests: the S3 half of the shared suite
//! (`tests/backends.rs`) needs `moto_server`, and is reported as ignored without it, or the
//! build fails with COMFY_REQUIRE_S3=1 (`comfy-test-support/README.md`). The library itself
//! reads no cfg.

#[allow(dead_code, unreachable_pub)]
#[path = "../comfy-test-support/src/probe.rs"]
mod probe;

fn main() {
    probe::build_script(&[probe::HAS_S3]);
}

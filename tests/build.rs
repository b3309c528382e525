//! Sets `cfg(has_redis)` for the end-to-end tests: tests that need a missing
//! redis-server are reported as ignored, or the build fails with
//! COMFY_REQUIRE_REDIS=1 (`comfy-test-support/README.md`).

#[allow(dead_code, unreachable_pub)]
#[path = "../comfy-test-support/src/probe.rs"]
mod probe;

fn main() {
    probe::build_script(&[probe::HAS_REDIS]);
}

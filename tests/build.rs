//! Sets `cfg(has_redis)` and `cfg(has_chromium)` for the end-to-end tests:
//! tests that need a missing redis-server (or Chromium and chromedriver) are
//! reported as ignored, or the build fails with COMFY_REQUIRE_REDIS=1
//! (COMFY_REQUIRE_CHROMIUM=1) (`comfy-test-support/README.md`).

#[allow(dead_code, unreachable_pub)]
#[path = "../comfy-test-support/src/probe.rs"]
mod probe;

fn main() {
    probe::build_script(&[probe::HAS_REDIS, probe::HAS_CHROMIUM]);
}

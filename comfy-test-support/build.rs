//! Sets `cfg(has_redis)` / `cfg(has_chromium)` for this crate's own tests
//! (see `README.md`).

#[allow(dead_code, unreachable_pub)]
#[path = "src/probe.rs"]
mod probe;

fn main() {
    probe::build_script(&[probe::HAS_REDIS, probe::HAS_CHROMIUM]);
}

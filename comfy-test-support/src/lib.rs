//! Test support for the workspace's suites. Test code only: no production
//! crate depends on this one (`docs/architecture.md`).
//!
//! - [`replay`]: the recorded ComfyUI exchanges of `fixtures/`, loaded and
//!   replayed through wiremock exactly as recorded.
//! - [`redis`]: a private `redis-server` on a free port, stopped on drop.
//! - [`s3`]: a private S3-compatible server (`moto_server`) on a free port,
//!   stopped on drop.
//! - [`ports`]: free local ports.
//! - [`process`]: programs a test starts, killed on drop.
//! - [`http`]: requests to a running queue as a user, a worker or an admin.
//! - [`chromium`] (feature `chromium`): headless Chromium over WebDriver.
//! - [`seed`]: printed, rerunnable seeds for randomised tests.
//! - [`logs`]: a tracing sink a test reads back.
//! - [`sources`]: the workspace's Rust sources, for the layout tests.
//! - [`probe`]: where those outside programs are installed; also the body
//!   of the test crates' build scripts, which mark the tests that need a
//!   missing program as ignored (`README.md`).

#[cfg(feature = "chromium")]
pub mod chromium;
pub mod frontend;
pub mod http;
pub mod logs;
pub mod ports;
pub mod probe;
pub mod process;
pub mod redis;
pub mod replay;
pub mod s3;
pub mod seed;
pub mod sources;

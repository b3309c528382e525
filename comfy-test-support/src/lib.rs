//! Test support for the workspace's suites. Test code only: no production
//! crate depends on this one (`docs/architecture.md`).
//!
//! - [`replay`]: the recorded ComfyUI exchanges of `fixtures/`, loaded and
//!   replayed through wiremock exactly as recorded.

pub mod replay;

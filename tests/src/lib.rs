//! Helpers of the end-to-end tests (`tests/tests/*.rs`).

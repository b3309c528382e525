#![doc = include_str!("../README.md")]

pub mod adapter;
mod detect;
pub mod endpoints;
pub mod error;
pub mod http;
pub mod line;
pub mod model;
pub mod normalize;
pub mod releases;
pub mod validate;
pub mod wire;
pub mod ws;

pub use adapter::{ComfyAdapter, EventStream, UploadOptions, WriteOptions};
pub use detect::{DetectOptions, Detection, connect, detect, newest_tested, oldest_tested};
pub use error::{ComfyError, Result};
pub use http::Timeouts;
pub use line::cancel_api_prompt_id_ok;
pub use model::server::{Capabilities, Capability, Line, ServerInfo};
pub use releases::{Difference, RELEASES, Release};

#![doc = include_str!("../README.md")]

pub mod adapter;
pub mod check;
pub mod convert;
mod detect;
pub mod diff;
#[cfg(feature = "emulator")]
pub mod emulator;
mod endpoints;
pub mod error;
pub mod http;
pub mod line;
pub mod model;
pub mod normalize;
pub mod record;
pub mod wire;
mod ws;

pub use adapter::{ComfyAdapter, EventStream, UploadOptions, WriteOptions};
pub use detect::{DetectOptions, Detection, NEWEST_TESTED, OLDEST_TESTED, connect, detect};
pub use error::{ComfyError, Result};
pub use http::Timeouts;
pub use line::cancel_api_prompt_id_ok;
pub use model::server::{Capabilities, Line, ServerInfo};

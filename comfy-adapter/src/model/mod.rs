//! The normalized model: what callers see, whatever line the server is on.
//!
//! Nothing here knows about a wire format. `crate::wire` holds the per-line
//! wire types and `crate::normalize` turns them into these.

pub mod catalogue;
pub mod event;
pub mod job;
pub mod output;
pub mod prompt;
pub mod queue;
pub mod server;
pub mod userdata;

/// A ComfyUI prompt id (the server's job id). Usually a UUID, but lines before
/// 0.26 accept any string a client chose.
pub type PromptId = String;

/// A node id inside a prompt (`"9"`, or `"75:64"` inside a subgraph).
pub type NodeId = String;

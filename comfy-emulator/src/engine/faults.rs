//! Faults a test switches on: a stall, a silent or late socket, a node class that
//! raises or crashes the server. (A node class that ignores the interrupt
//! flag is set apart, with `EmulatorHandle::set_uninterruptible_class`:
//! `comfyctl emulate` builds this struct field by field.)

/// Faults a test can switch on while the emulator runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every node runs until interrupted (a hung GPU).
    pub stall: bool,
    /// The WebSocket sends nothing after its greeting (a silent socket).
    pub silent_ws: bool,
    /// The WebSocket sends every message this long after the server did (a loaded server,
    /// or a client that reads its socket late): the prompt's history is written before
    /// its last events reach the client.
    pub ws_delay: Option<std::time::Duration>,
    /// Nodes of this class raise `torch.OutOfMemoryError`.
    pub oom_class: Option<String>,
    /// Nodes of this class raise a plain `Exception`.
    pub error_class: Option<String>,
    /// When a node of this class starts, the server dies (a segfault, a
    /// kill by the OOM killer): it stops listening, sockets close and the
    /// running prompt is lost.
    pub crash_class: Option<String>,
}

//! Faults a test switches on: a stall, a silent socket, a node class that
//! raises, crashes the server or ignores the interrupt flag.

/// Faults a test can switch on while the emulator runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every node runs until interrupted (a hung GPU).
    pub stall: bool,
    /// The WebSocket sends nothing after its greeting (a silent socket).
    pub silent_ws: bool,
    /// Nodes of this class raise `torch.OutOfMemoryError`.
    pub oom_class: Option<String>,
    /// Nodes of this class raise a plain `Exception`.
    pub error_class: Option<String>,
    /// When a node of this class starts, the server dies (a segfault, a
    /// kill by the OOM killer): it stops listening, sockets close and the
    /// running prompt is lost.
    pub crash_class: Option<String>,
    /// Nodes of this class never look at the interrupt flag while they
    /// run (a long custom node with no progress hook): an interrupt sent
    /// meanwhile does not stop them, they run to their end and write their
    /// outputs. The flag stays set, so the next node to start sees it; when
    /// such a node is the last to run, the prompt succeeds despite the
    /// interrupt (as real 0.9.2 and 0.33.0 did).
    pub uninterruptible_class: Option<String>,
}

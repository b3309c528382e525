//! Everything the engine keeps under its lock.

use super::faults::Faults;
use super::history::Done;
use super::queue::{Entry, Heap};
use serde_json::Value;
use std::collections::HashMap;

/// ComfyUI's `MAXIMUM_HISTORY_SIZE` (execution.py): how many finished
/// prompts its history keeps.
pub(crate) const MAXIMUM_HISTORY_SIZE: usize = 10_000;

/// Everything under the lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The server's prompt counter (`PromptServer.number`).
    pub(crate) next_number: i64,
    /// Pending prompts.
    pub(crate) pending: Heap,
    /// The running prompt.
    pub(crate) running: Option<Entry>,
    /// Finished prompts, oldest first.
    pub(crate) history: Vec<Done>,
    /// ComfyUI's global interrupt flag.
    pub(crate) interrupt: bool,
    /// Interrupts that set the flag so far.
    pub(crate) interrupts: u64,
    /// File name counters per folder and name.
    pub(crate) counters: HashMap<String, u32>,
    /// Node outputs kept between prompts: input signature → UI (if any).
    pub(crate) cache: HashMap<String, Option<Value>>,
    /// Faults switched on.
    pub(crate) faults: Faults,
    /// Nodes of this class never look at the interrupt flag while they run
    /// (see `EmulatorHandle::set_uninterruptible_class`).
    pub(crate) uninterruptible_class: Option<String>,
    /// Prompts submitted so far.
    pub(crate) submitted: u64,
}

impl State {
    /// Pending + running.
    pub(crate) fn remaining(&self) -> usize {
        self.pending.len() + usize::from(self.running.is_some())
    }

    /// Writes a finished prompt's history entry, first dropping the oldest
    /// when the history is already longer than [`MAXIMUM_HISTORY_SIZE`]
    /// (as `PromptQueue.task_done` does: it holds at most one more), so a
    /// long-running emulator's memory stays bounded.
    pub(crate) fn record(&mut self, done: Done) {
        if self.history.len() > MAXIMUM_HISTORY_SIZE {
            self.history.remove(0);
        }
        self.history.push(done);
    }

    /// A finished prompt by id.
    pub(crate) fn done(&self, id: &str) -> Option<&Done> {
        self.history.iter().rev().find(|d| d.entry.id == id)
    }
}

//! Breakpoints: test hooks that hold the executor at a chosen step of a
//! prompt until the test releases it, so a test puts a prompt exactly
//! where a real server was caught (running while others wait, interrupted
//! at a given node, ended but not yet in history) instead of racing the
//! emulator's clock.
//!
//! Arm one with [`EmulatorHandle::hold`](crate::EmulatorHandle::hold); the
//! first step after that which matches it stops the executor (one step,
//! once); [`Hold::reached`] says when and where, and releasing or dropping
//! the [`Hold`] lets the executor go on. Nothing else changes: the HTTP
//! and WebSocket side keeps answering while the executor is held, and with
//! no breakpoint armed the executor never waits for one.

use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The steps of a prompt at which a [`Breakpoint`] can hold the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Before a node starts (a node that runs, not one served from the
    /// cache): no `executing` message for it yet and ComfyUI's interrupt
    /// flag not yet read. The prompt is running — it left the queue and
    /// cleared the interrupt flag — so an interrupt sent while it is held
    /// here stops it at this node once released.
    BeforeNode,
    /// Inside a node: `executing` was sent and the node does not finish
    /// until released. An interrupt ends a held node as it ends any node
    /// that checks for interrupts while it works; a one-operation node
    /// (`EmptyImage`, `ImageScale`) finishes after the release and the next
    /// node sees the interrupt.
    InNode,
    /// The prompt has ended — its last message (`execution_success`,
    /// `execution_error` or `execution_interrupted`) is sent — but its
    /// history entry is not written: `/queue` still lists it as running
    /// and `/history/{id}` answers `{}`.
    BeforeHistory,
}

/// Which step to hold: the first one after the breakpoint is armed that
/// matches every field given. When several armed breakpoints match the
/// same step, the oldest holds it and the others wait for a later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakpoint {
    /// The step.
    pub step: Step,
    /// Only in this prompt.
    pub prompt: Option<String>,
    /// Only at the node with this id (no [`Step::BeforeHistory`] matches).
    pub node: Option<String>,
    /// Only at a node of this class (no [`Step::BeforeHistory`] matches).
    pub class: Option<String>,
}

impl Breakpoint {
    /// At `step` of any prompt.
    pub fn at(step: Step) -> Self {
        Breakpoint {
            step,
            prompt: None,
            node: None,
            class: None,
        }
    }

    /// [`Step::BeforeNode`].
    pub fn before_node() -> Self {
        Self::at(Step::BeforeNode)
    }

    /// [`Step::InNode`].
    pub fn in_node() -> Self {
        Self::at(Step::InNode)
    }

    /// [`Step::BeforeHistory`].
    pub fn before_history() -> Self {
        Self::at(Step::BeforeHistory)
    }

    /// Only in prompt `id`.
    pub fn prompt(mut self, id: &str) -> Self {
        self.prompt = Some(id.to_owned());
        self
    }

    /// Only at node `id`.
    pub fn node(mut self, id: &str) -> Self {
        self.node = Some(id.to_owned());
        self
    }

    /// Only at a node of `class`.
    pub fn class(mut self, class: &str) -> Self {
        self.class = Some(class.to_owned());
        self
    }

    fn matches(&self, at: &Stopped) -> bool {
        let given = |want: &Option<String>, have: Option<&String>| {
            want.as_ref().is_none_or(|w| have == Some(w))
        };
        self.step == at.step
            && given(&self.prompt, Some(&at.prompt))
            && given(&self.node, at.node.as_ref())
            && given(&self.class, at.class.as_ref())
    }
}

/// Where the executor stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The step.
    pub step: Step,
    /// The prompt id.
    pub prompt: String,
    /// The node id (none at [`Step::BeforeHistory`]).
    pub node: Option<String>,
    /// The node's class (none at [`Step::BeforeHistory`]).
    pub class: Option<String>,
}

#[derive(Debug, Clone)]
enum Phase {
    Armed,
    Reached(Stopped),
    Released,
}

#[derive(Debug)]
struct Slot {
    breakpoint: Breakpoint,
    phase: watch::Sender<Phase>,
}

/// The breakpoints armed and not reached yet, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Breakpoints {
    armed: Mutex<Vec<Arc<Slot>>>,
}

impl Breakpoints {
    fn armed(&self) -> MutexGuard<'_, Vec<Arc<Slot>>> {
        match self.armed.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Arms `breakpoint`.
    pub(crate) fn arm(self: &Arc<Self>, breakpoint: Breakpoint) -> Hold {
        let slot = Arc::new(Slot {
            breakpoint,
            phase: watch::Sender::new(Phase::Armed),
        });
        self.armed().push(slot.clone());
        Hold {
            slot,
            breakpoints: self.clone(),
        }
    }

    /// The executor is at `at`: the oldest armed breakpoint that matches is
    /// taken (it holds this one step) and returned as what to wait for.
    pub(crate) fn hit(&self, at: Stopped) -> Option<Release> {
        let slot = {
            let mut armed = self.armed();
            let i = armed.iter().position(|s| s.breakpoint.matches(&at))?;
            armed.remove(i)
        };
        let release = Release(slot.phase.subscribe());
        slot.phase.send_replace(Phase::Reached(at));
        Some(release)
    }

    fn disarm(&self, slot: &Arc<Slot>) {
        self.armed().retain(|s| !Arc::ptr_eq(s, slot));
    }
}

/// What a held executor waits for.
#[derive(Debug)]
pub(crate) struct Release(watch::Receiver<Phase>);

impl Release {
    /// Whether the test let go (or dropped its [`Hold`]).
    pub(crate) fn is_released(&self) -> bool {
        matches!(*self.0.borrow(), Phase::Released) || self.0.has_changed().is_err()
    }

    /// Waits until released.
    pub(crate) async fn wait(&mut self) {
        let _ = self.0.wait_for(|p| matches!(p, Phase::Released)).await;
    }
}

/// An armed [`Breakpoint`]. Once reached it holds the executor until
/// [`release`](Hold::release)d or dropped; released before it is reached,
/// it is disarmed.
#[derive(Debug)]
#[must_use = "dropping a Hold releases it at once"]
pub struct Hold {
    slot: Arc<Slot>,
    breakpoints: Arc<Breakpoints>,
}

impl Hold {
    /// Waits until the executor stops at the breakpoint and says where.
    /// Never returns when no step matches (wrap it in a timeout).
    pub async fn reached(&self) -> Stopped {
        let mut phase = self.slot.phase.subscribe();
        loop {
            if let Phase::Reached(at) = &*phase.borrow_and_update() {
                return at.clone();
            }
            if phase.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Where the executor stopped, once it has.
    pub fn stopped(&self) -> Option<Stopped> {
        match &*self.slot.phase.borrow() {
            Phase::Reached(at) => Some(at.clone()),
            Phase::Armed | Phase::Released => None,
        }
    }

    /// Lets the executor go on (the same as dropping the hold).
    pub fn release(self) {}
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.breakpoints.disarm(&self.slot);
        self.slot.phase.send_replace(Phase::Released);
    }
}

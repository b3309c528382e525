//! Programs a test starts (the queue's own binary, say), killed when the test ends.

use std::process::Child;

/// A started program: killed and reaped when dropped, so a failing test leaves no process
/// behind.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

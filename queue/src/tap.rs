//! What one replica hands on to the others: a [`Tap`] on its wake-ups, events, progress and
//! registrations. It sends only while another replica listens on the bus (the `replicas`
//! module keeps the flag), so a queue that runs alone on Redis builds, sends and reads back
//! nothing for replicas that are not there.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

/// A channel to the sender of the replicas' bus, open while other replicas listen.
pub struct Tap<T> {
    tx: mpsc::Sender<T>,
    peers: Arc<AtomicBool>,
}

impl<T> std::fmt::Debug for Tap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("open", &self.open()).finish()
    }
}

impl<T> Tap<T> {
    /// A tap sending to `tx` while `peers` is true.
    pub fn new(tx: mpsc::Sender<T>, peers: Arc<AtomicBool>) -> Self {
        Self { tx, peers }
    }

    /// A tap that always sends (tests, and a replica that cannot tell).
    pub fn always(tx: mpsc::Sender<T>) -> Self {
        Self::new(tx, Arc::new(AtomicBool::new(true)))
    }

    /// Whether another replica listens (what is sent now reaches someone).
    pub fn open(&self) -> bool {
        self.peers.load(Ordering::Relaxed)
    }

    /// Send `value` on if another replica listens. Full: the link to the others is behind,
    /// and what they miss is lossy there as it is for a slow socket here.
    pub fn send(&self, value: T) {
        if self.open() {
            let _ = self.tx.try_send(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_tap_sends_nothing() {
        let (tx, mut rx) = mpsc::channel(4);
        let peers = Arc::new(AtomicBool::new(false));
        let tap = Tap::new(tx, peers.clone());
        tap.send(1);
        assert!(rx.try_recv().is_err());
        peers.store(true, Ordering::Relaxed);
        tap.send(2);
        assert_eq!(rx.try_recv().ok(), Some(2));
    }
}

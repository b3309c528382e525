//! Wake-ups of waiting requests: long-polling `next-job` calls (a job may have become
//! claimable) and heartbeats waiting for a cancel.
//!
//! A [`Wakeup`] is a [`tokio::sync::Notify`] that can also tell other replicas of the queue:
//! once [`Wakeup::tap`] is set (by the `replicas` module, on Redis), every wake-up given here
//! is also sent there, and a wake-up from another replica is given here with
//! [`Wakeup::wake_local`]. A wake-up only makes a waiter look at the store again, so one
//! that is lost or repeated costs a delay or a look, never a job.

use std::sync::OnceLock;

use tokio::sync::Notify;

use crate::tap::Tap;

/// Which waiters a wake-up is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// One waiter (one job was submitted).
    One,
    /// Every waiter (several jobs, a registration, a requeue…).
    All,
}

/// A [`Notify`] whose wake-ups may also go to other replicas.
#[derive(Debug, Default)]
pub struct Wakeup {
    notify: Notify,
    tap: OnceLock<Tap<Wake>>,
}

impl Wakeup {
    /// Wake every waiter, here and on the other replicas.
    pub fn notify_waiters(&self) {
        self.wake(Wake::All);
    }

    /// Wake one waiter here (and one on each other replica).
    pub fn notify_one(&self) {
        self.wake(Wake::One);
    }

    fn wake(&self, wake: Wake) {
        self.wake_local(wake);
        if let Some(tap) = self.tap.get() {
            // Full: the other replicas are behind already; their waiters time out and look.
            tap.send(wake);
        }
    }

    /// Wake waiters of this process only (a wake-up another replica sent).
    pub fn wake_local(&self, wake: Wake) {
        match wake {
            Wake::One => self.notify.notify_one(),
            Wake::All => self.notify.notify_waiters(),
        }
    }

    /// A future that resolves at the next wake-up (see [`Notify::notified`]).
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Send every later wake-up to `tap` as well; `false` if a tap was set already.
    pub fn tap(&self, tap: Tap<Wake>) -> bool {
        self.tap.set(tap).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tapped_wakeup_wakes_here_and_is_sent_once() {
        let w = Wakeup::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        assert!(w.tap(Tap::always(tx.clone())));
        assert!(!w.tap(Tap::always(tx)), "a second tap is refused");
        let waiter = w.notified();
        tokio::pin!(waiter);
        waiter.as_mut().enable();
        w.notify_waiters();
        waiter.await;
        assert_eq!(rx.try_recv().ok(), Some(Wake::All));
        w.wake_local(Wake::One);
        assert!(rx.try_recv().is_err(), "a remote wake-up is not sent back");
    }
}

//! Injectable time source. Every store operation takes "now" from a [`Clock`], so lease
//! expiry can be tested by moving a [`ManualClock`] instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now_ms(&self) -> Millis;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock that starts at `start_ms`.
    pub fn new(start_ms: Millis) -> Self {
        Self {
            now: Arc::new(AtomicI64::new(start_ms)),
        }
    }

    /// Move the clock forward by `ms` milliseconds.
    pub fn advance(&self, ms: Millis) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Set the clock to an absolute time.
    pub fn set(&self, ms: Millis) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        // 2026-01-01T00:00:00Z, a fixed and readable starting point.
        Self::new(1_767_225_600_000)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}

/// A clock set from another one, e.g. the Redis server's `TIME`, and moved on by this
/// machine's monotonic clock in between: every replica of the queue reads the same time,
/// whatever their own clocks say, so one replica's lease is not expired early by another.
/// It never goes back: a new reference that is behind what was already answered is taken
/// only once the monotonic clock has caught up.
#[derive(Debug)]
pub struct ReferenceClock {
    started: std::time::Instant,
    /// Reference time minus the monotonic time elapsed since `started`, at the last set.
    offset: AtomicI64,
    /// The latest time answered.
    last: AtomicI64,
}

impl ReferenceClock {
    /// A clock that reads `reference_ms` now.
    pub fn new(reference_ms: Millis) -> Self {
        Self {
            started: std::time::Instant::now(),
            offset: AtomicI64::new(reference_ms),
            last: AtomicI64::new(reference_ms),
        }
    }

    fn elapsed_ms(&self) -> Millis {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// The reference reads `reference_ms` now; returns how far this clock was off (ms,
    /// positive: it was ahead).
    pub fn set(&self, reference_ms: Millis) -> Millis {
        let before = self
            .offset
            .load(Ordering::SeqCst)
            .saturating_add(self.elapsed_ms());
        self.offset.store(
            reference_ms.saturating_sub(self.elapsed_ms()),
            Ordering::SeqCst,
        );
        before.saturating_sub(reference_ms)
    }
}

impl Clock for ReferenceClock {
    fn now_ms(&self) -> Millis {
        let now = self
            .offset
            .load(Ordering::SeqCst)
            .saturating_add(self.elapsed_ms());
        let last = self.last.fetch_max(now, Ordering::SeqCst);
        now.max(last)
    }
}

/// Format milliseconds since the epoch as RFC 3339 UTC (`2026-01-01T00:00:00.000Z`).
pub fn to_rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&fmt).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_clock_follows_its_reference_and_never_goes_back() {
        let c = ReferenceClock::new(1_000_000);
        let t0 = c.now_ms();
        assert!((1_000_000..1_000_000 + 1_000).contains(&t0), "{t0}");
        // The reference is 10 s ahead: the clock jumps forward.
        let off = c.set(t0 + 10_000);
        assert!((-10_100..=-9_900).contains(&off), "{off}");
        let t1 = c.now_ms();
        assert!(t1 >= t0 + 10_000, "{t1}");
        // The reference is behind what was answered: no answer goes back.
        c.set(t0);
        assert!(c.now_ms() >= t1);
    }

    #[test]
    fn formats_epoch_millis() {
        assert_eq!(to_rfc3339(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(10);
        assert_eq!(c.now_ms(), 10);
        c.advance(5);
        assert_eq!(c.now_ms(), 15);
        c.set(1);
        assert_eq!(c.now_ms(), 1);
    }
}

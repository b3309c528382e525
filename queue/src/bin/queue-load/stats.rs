//! Latency samples and their percentiles.

use std::time::{Duration, Instant};

/// Percentile `p` (0..=1) of `v` in milliseconds (0 when empty); sorts `v`.
pub(crate) fn pct(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)].as_secs_f64() * 1000.0
}

/// "p50/p99" of `v` in milliseconds.
pub(crate) fn p50_p99(v: &mut [Duration]) -> String {
    format!("{:.2}/{:.2}", pct(v, 0.5), pct(v, 0.99))
}

/// Time `n` sequential runs of `f`.
pub(crate) async fn time_each<F, Fut>(n: usize, mut f: F) -> anyhow::Result<Vec<Duration>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i).await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// A small deterministic generator (xorshift64*) for picking jobs; the seed is printed so
/// a run can be repeated.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (r % n.max(1) as u64) as usize
    }
}

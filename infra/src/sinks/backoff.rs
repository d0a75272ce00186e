//! Exponential backoff with jitter, so many bridges recovering from one outage do not retry in
//! lockstep.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `initial × 2^failures`, capped at `max`, then scaled by a random factor in `[0.75, 1.25)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (0: the first one).
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self
            .initial
            .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        // 0.75 + [0, 0.5): cheap jitter from the clock; it needs to differ between processes,
        // not to be unpredictable.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.75 + f64::from(nanos % 1000) / 2000.0;
        base.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let within = |d: Duration, base_ms: u64| {
            let base = Duration::from_millis(base_ms);
            d >= base.mul_f64(0.75) && d < base.mul_f64(1.25)
        };
        assert!(within(b.delay(0), 100));
        assert!(within(b.delay(1), 200));
        assert!(within(b.delay(3), 800));
        assert!(within(b.delay(5), 2000));
        assert!(within(b.delay(u32::MAX), 2000));
    }
}

//! The pause between tries while the API server is away: 1 s, doubling to 30 s, each with up
//! to a fifth of jitter so that many nodes do not come back in step. Pure: the caller gives
//! the jitter, so a test can give a fixed one.

use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(30);
/// The most a delay is stretched by jitter, as a fraction of it.
pub const JITTER: f64 = 0.2;

#[derive(Debug, Default, Clone)]
pub struct ApiBackoff {
    failures: u32,
}

impl ApiBackoff {
    /// The delay before the next try after one more failure. `jitter` in [0, 1) picks how
    /// much of [`JITTER`] is added.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = FIRST.saturating_mul(1u32 << self.failures.min(16)).min(MAX);
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(1.0 + JITTER * jitter.clamp(0.0, 1.0))
    }

    /// The API server answered with data: the next failure starts from [`FIRST`] again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Whether the API server is away (a failure since the last reset).
    pub fn failing(&self) -> bool {
        self.failures > 0
    }
}

/// A jitter in [0, 1) from the clock's nanoseconds: spread enough for one node's retries.
pub fn clock_jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second_to_thirty_and_start_over_after_success() {
        let mut b = ApiBackoff::default();
        let secs: Vec<u64> = (0..8).map(|_| b.next_delay(0.0).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert!(b.failing());
        b.reset();
        assert!(!b.failing());
        assert_eq!(b.next_delay(0.0), FIRST);
    }

    #[test]
    fn jitter_stretches_a_delay_by_at_most_a_fifth() {
        let mut b = ApiBackoff::default();
        assert_eq!(b.next_delay(0.999_999).as_millis(), 1199);
        let mut b = ApiBackoff::default();
        for _ in 0..10 {
            b.next_delay(0.0);
        }
        assert_eq!(b.next_delay(1.0), Duration::from_secs(36));
        assert!((0.0..1.0).contains(&clock_jitter()));
    }
}

//! Per-object exponential backoff for transient failures (throttling, 5xx): each object's retry
//! delay doubles from 1 s up to 5 minutes and resets when it reconciles cleanly, so one
//! struggling cell never slows the others and never hammers the cloud.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// First retry delay.
pub const BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX: Duration = Duration::from_secs(300);

/// Failure counts by object key.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.entry(key.to_owned()).or_default();
        let delay = BASE.saturating_mul(1u32 << (*count).min(16));
        *count = count.saturating_add(1);
        delay.min(MAX)
    }

    /// Forgets the failures of `key` after a clean reconcile.
    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_object_cap_and_reset() {
        let b = Backoff::default();
        let delays: Vec<_> = (0..4).map(|_| b.next_delay("a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8]);
        assert_eq!(
            b.next_delay("b").as_secs(),
            1,
            "objects back off independently"
        );
        for _ in 0..20 {
            b.next_delay("a");
        }
        assert_eq!(b.next_delay("a"), MAX);
        b.reset("a");
        assert_eq!(b.next_delay("a").as_secs(), 1);
    }
}

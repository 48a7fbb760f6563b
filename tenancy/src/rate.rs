//! The ingestion rate limiter: a token bucket per tenant, refilled at `ingestion_rate`
//! samples/s up to `ingestion_burst_size`. A request takes all its samples or nothing, so a
//! refused request (429) stores nothing and costs the tenant no tokens.
//!
//! As Mimir's "global" strategy, each router enforces the tenant's rate divided by the number
//! of routers (writes are expected to be spread over them by a load balancer); the burst is
//! not divided.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-tenant token buckets.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes `n` tokens for `tenant` if the bucket holds them. `rate <= 0` is unlimited.
    pub fn allow(&self, tenant: &str, n: u64, rate: f64, burst: f64, now: Instant) -> bool {
        if rate <= 0.0 || n == 0 {
            return true;
        }
        let burst = burst.max(1.0);
        let mut buckets = self.buckets.lock();
        let b = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        let n = n as f64;
        if n <= b.tokens {
            b.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_refill_and_refusals_cost_nothing() {
        let r = RateLimiter::default();
        let t0 = Instant::now();
        assert!(!r.allow("a", 5000, 1000.0, 2000.0, t0), "more than a burst");
        assert!(
            r.allow("a", 2000, 1000.0, 2000.0, t0),
            "the refusal took nothing"
        );
        assert!(!r.allow("a", 500, 1000.0, 2000.0, t0));
        assert!(r.allow("a", 500, 1000.0, 2000.0, t0 + Duration::from_millis(500)));
        assert!(!r.allow("a", 1, 1000.0, 2000.0, t0 + Duration::from_millis(500)));
        assert!(r.allow("a", 2000, 1000.0, 2000.0, t0 + Duration::from_secs(10)));
        assert!(r.allow("b", 1_000_000, 0.0, 0.0, t0), "no limit");
    }
}

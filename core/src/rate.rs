//! A token bucket on injected time: the chat rate limit of one member.
//!
//! The protocol lets a member send a burst of lines after a quiet spell and
//! then a steady number a second (docs/PROTOCOL.md, "Keeping the connection
//! healthy"). The bucket never reads a clock; every call carries `now`.

use std::time::Instant;

use crate::config::RateLimit;

/// A token bucket that holds up to `burst` tokens and refills continuously at
/// `per_second` tokens a second.
///
/// Each chat line takes one token with [`TokenBucket::try_take`]; a line that
/// finds the bucket empty is over the limit. Time may stand still, jump far
/// ahead or even step backwards (a driver mixing clocks): a backwards step
/// adds nothing and does not move the bucket's notion of "last seen" back,
/// and a huge gap only fills the bucket.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use natter_core::config::RateLimit;
/// use natter_core::rate::TokenBucket;
///
/// let start = Instant::now();
/// let limit = RateLimit { burst: 2, per_second: 1.0 };
/// let mut bucket = TokenBucket::new(limit, start);
/// assert!(bucket.try_take(start));
/// assert!(bucket.try_take(start));
/// assert!(!bucket.try_take(start));
/// assert!(bucket.try_take(start + Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Creates a full bucket shaped by `limit`, as of `now`.
    ///
    /// A `burst` of 0 is treated as 1, since a bucket that can never hold a
    /// token would refuse every line. A `per_second` that is not a positive
    /// number (zero, negative, NaN) never refills.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        let capacity = f64::from(limit.burst.max(1));
        TokenBucket {
            capacity,
            per_second: limit.per_second,
            tokens: capacity,
            last: now,
        }
    }

    /// Takes one token if there is one as of `now`, and tells whether it did.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);

        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Returns the whole tokens available as of `now`, without taking any.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.refill(now);

        // `tokens` stays within 0..=capacity, and capacity came from a u32.
        self.tokens.floor() as u32
    }

    /// Adds the tokens earned since the last call, capped at the capacity.
    fn refill(&mut self, now: Instant) {
        let Some(elapsed) = now.checked_duration_since(self.last) else {
            // Time stepped backwards: earn nothing, keep the later instant.
            return;
        };
        self.last = now;

        let earned = elapsed.as_secs_f64() * self.per_second;
        // Also false for NaN (0 × ∞, or a NaN rate) and for negative rates.
        if earned > 0.0 {
            self.tokens = (self.tokens + earned).min(self.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn default_bucket() -> (TokenBucket, Instant) {
        let start = Instant::now();
        (TokenBucket::new(RateLimit::default(), start), start)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_of_twenty_then_refused() {
        let (mut bucket, t0) = default_bucket();

        for _ in 0..20 {
            assert!(bucket.try_take(t0));
        }
        assert!(!bucket.try_take(t0));
        assert!(!bucket.try_take(t0));
    }

    #[test]
    fn refills_at_ten_a_second() {
        let (mut bucket, t0) = default_bucket();
        while bucket.try_take(t0) {}

        // 100 ms earns exactly one line.
        assert!(bucket.try_take(t0 + ms(100)));
        assert!(!bucket.try_take(t0 + ms(100)));

        // 50 ms earns half a token: not enough yet, but it is kept.
        assert!(!bucket.try_take(t0 + ms(150)));
        assert!(bucket.try_take(t0 + ms(200)));

        // A further second earns ten.
        let later = t0 + ms(1200);
        for _ in 0..10 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn steady_sender_at_the_rate_is_never_refused() {
        let (mut bucket, t0) = default_bucket();

        for step in 0..1000 {
            assert!(bucket.try_take(t0 + ms(100 * step)), "line {step}");
        }
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let (mut bucket, t0) = default_bucket();
        while bucket.try_take(t0) {}

        let later = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.available(later), 20);
        for _ in 0..20 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::default(), t0 + ms(5000));
        while bucket.try_take(t0 + ms(5000)) {}

        assert!(!bucket.try_take(t0));
        assert!(!bucket.try_take(t0 + ms(4000)));
        // The bucket still counts from the later instant.
        assert!(!bucket.try_take(t0 + ms(5050)));
        assert!(bucket.try_take(t0 + ms(5100)));
    }

    #[test]
    fn huge_gap_does_not_overflow() {
        let (mut bucket, t0) = default_bucket();
        while bucket.try_take(t0) {}

        let far = t0 + Duration::from_secs(u64::from(u32::MAX) * 1000);
        assert!(bucket.try_take(far));
        assert_eq!(bucket.available(far), 19);
    }

    #[test]
    fn odd_shapes_stay_sane() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let shapes = [
            (0, 10.0, 1),
            (3, 0.0, 0),
            (3, -5.0, 0),
            (3, f64::NAN, 0),
            (3, f64::INFINITY, 3),
        ];

        for (burst, per_second, refilled) in shapes {
            let mut bucket = TokenBucket::new(RateLimit { burst, per_second }, t0);
            while bucket.try_take(t0) {}
            assert_eq!(bucket.available(t0), 0, "{burst} {per_second}");
            assert_eq!(bucket.available(later), refilled, "{burst} {per_second}");
        }
    }
}

//! When the network thread tries again: the backoff between attempts, and
//! which refusals are worth another attempt, for how long.
//!
//! A 409 (`session_id is already connected in this room`) means something
//! different before and after this client first joined. Before, the id may
//! really be in use, so it is retried only a few times. After, it is our own
//! dropped connection, which the server keeps until its dead-peer detection
//! notices (`--ping-after` + `--pong-timeout`, 60 s by default): a passing
//! state, retried for [`RetryPolicy::rejoin_for`] so the lines still queued
//! go out once the server lets go.

use std::time::{Duration, Instant};

/// The first reconnect delay by default; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The longest reconnect delay by default.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How many 409 refusals in a row are retried before this client ever
/// joined: the old session with our id may still be closing, or the id may
/// really be taken.
pub const CONFLICT_RETRIES: u32 = 5;

/// How long 409 refusals are retried by default once this client had
/// joined: twice the server's default dead-peer detection (60 s), so a
/// server with longer timeouts, or a ping that just missed, is outlasted too.
const REJOIN_FOR: Duration = Duration::from_secs(120);

/// The delays of the network thread, kept apart so tests can shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay after a failure; each later one doubles.
    pub first_backoff: Duration,
    /// The longest delay between attempts.
    pub max_backoff: Duration,
    /// How long 409 refusals are retried after this client had joined,
    /// counted from the first of them.
    pub rejoin_for: Duration,
}

impl Default for RetryPolicy {
    /// The delays the client runs with.
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_backoff: FIRST_BACKOFF,
            max_backoff: MAX_BACKOFF,
            rejoin_for: REJOIN_FOR,
        }
    }
}

/// Exponential backoff with jitter: the policy's first delay doubling up to
/// its longest, each delay drawn between half and all of its step.
#[derive(Debug)]
pub struct Backoff {
    /// The step of the next delay.
    step: Duration,
    /// The largest step.
    max: Duration,
}

impl Backoff {
    /// Starts at the policy's first step.
    pub fn new(policy: &RetryPolicy) -> Backoff {
        Backoff {
            step: policy.first_backoff,
            max: policy.max_backoff,
        }
    }

    /// Returns the next delay and doubles the step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (step * 2).min(self.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// What to do after the server refused the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the usual backoff: the refusal may pass.
    Retry,
    /// The server still holds our dropped connection: try again after the
    /// usual backoff, for at most `gives_up_in` more.
    Rejoin {
        /// How long until 409s are no longer retried.
        gives_up_in: Duration,
    },
    /// Give up: the refusal will not pass.
    GiveUp,
    /// Give up: the server kept our dropped connection for `waited`,
    /// longer than the policy waits.
    RejoinTimedOut {
        /// How long 409s have been retried.
        waited: Duration,
    },
}

/// Remembers what a verdict on a refusal depends on: whether this client
/// has joined, and the 409s since it last did.
#[derive(Debug, Default)]
pub struct Refusals {
    /// Whether the server ever welcomed this session.
    has_joined: bool,
    /// 409s in a row before the first join.
    conflicts: u32,
    /// When the first 409 since the last join came.
    first_conflict: Option<Instant>,
}

impl Refusals {
    /// Notes that the server welcomed us: a later 409 is our own old
    /// connection, and its count starts again.
    pub fn joined(&mut self) {
        self.has_joined = true;
        self.conflicts = 0;
        self.first_conflict = None;
    }

    /// Judges a refusal with `status` at `now`: a 409 a few times before
    /// the first join and for the policy's `rejoin_for` after one, a
    /// 502-504 always (the server is busy or restarting), nothing else (a
    /// 400 says our request is wrong and will stay wrong).
    pub fn judge(&mut self, status: u16, now: Instant, policy: &RetryPolicy) -> Verdict {
        match status {
            409 if self.has_joined => {
                let first = *self.first_conflict.get_or_insert(now);
                let waited = now.saturating_duration_since(first);
                match policy.rejoin_for.checked_sub(waited) {
                    Some(left) if !left.is_zero() => Verdict::Rejoin { gives_up_in: left },
                    _ => Verdict::RejoinTimedOut { waited },
                }
            }
            409 => {
                self.conflicts += 1;
                match self.conflicts <= CONFLICT_RETRIES {
                    true => Verdict::Retry,
                    false => Verdict::GiveUp,
                }
            }
            502..=504 => Verdict::Retry,
            _ => Verdict::GiveUp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(&RetryPolicy::default());
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= FIRST_BACKOFF && delays[0] >= FIRST_BACKOFF / 2);
        assert!(delays[3] >= FIRST_BACKOFF * 4);
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF));
        assert!(delays[11] >= MAX_BACKOFF / 2);
    }

    #[test]
    fn only_passing_refusals_are_retried() {
        let policy = RetryPolicy::default();
        let now = Instant::now();
        for status in [400, 403, 404, 500] {
            assert_eq!(
                Refusals::default().judge(status, now, &policy),
                Verdict::GiveUp
            );
        }
        let mut refusals = Refusals::default();
        for _ in 0..100 {
            assert_eq!(refusals.judge(503, now, &policy), Verdict::Retry);
        }
    }

    #[test]
    fn a_409_before_the_first_join_is_retried_a_few_times() {
        let policy = RetryPolicy::default();
        let now = Instant::now();
        let mut refusals = Refusals::default();
        for _ in 0..CONFLICT_RETRIES {
            assert_eq!(refusals.judge(409, now, &policy), Verdict::Retry);
        }
        assert_eq!(refusals.judge(409, now, &policy), Verdict::GiveUp);
    }

    #[test]
    fn a_409_after_a_join_is_retried_past_the_servers_dead_peer_detection() {
        let policy = RetryPolicy::default();
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut refusals = Refusals::default();
        refusals.joined();

        // The server's default detection is 30 s + 30 s; far more than five
        // 409s over it are all retried, each saying how long is left.
        for secs in 0..=90 {
            let verdict = refusals.judge(409, at(secs), &policy);
            let gives_up_in = REJOIN_FOR - Duration::from_secs(secs);
            assert_eq!(verdict, Verdict::Rejoin { gives_up_in }, "at {secs}s");
        }
        let waited = REJOIN_FOR;
        assert_eq!(
            refusals.judge(409, at(waited.as_secs()), &policy),
            Verdict::RejoinTimedOut { waited }
        );

        // Joining again starts a fresh stretch.
        refusals.joined();
        let verdict = refusals.judge(409, at(500), &policy);
        assert_eq!(
            verdict,
            Verdict::Rejoin {
                gives_up_in: REJOIN_FOR
            }
        );
    }
}

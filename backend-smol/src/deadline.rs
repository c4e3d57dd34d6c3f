//! A connection's timer, re-armed lazily from the core's next deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Instant;

use smol::Timer;

/// One reusable timer that fires at or before a connection's next deadline.
///
/// The core moves its idle deadline forward with every byte received, so
/// resetting the timer each time would touch the reactor once per message.
/// Instead the timer is only moved earlier; when it fires early the driver
/// calls `handle_timeout` (which does nothing before a deadline) and arms it
/// again.
pub struct Deadline {
    timer: Timer,
    armed: Option<Instant>,
}

impl Deadline {
    /// Creates a timer that is not armed.
    pub fn new() -> Deadline {
        Deadline {
            timer: Timer::never(),
            armed: None,
        }
    }

    /// Makes sure the timer fires no later than `next`, when there is one.
    pub fn arm(&mut self, next: Option<Instant>) {
        let Some(at) = next else { return };
        if self.armed.is_none_or(|armed| at < armed) {
            self.timer.set_at(at);
            self.armed = Some(at);
        }
    }

    /// Tells whether the armed time has passed, disarming the timer if so;
    /// otherwise `cx` is woken when it passes. Never fires when not armed.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.armed.is_none() || Pin::new(&mut self.timer).poll(cx).is_pending() {
            return false;
        }
        self.armed = None;
        true
    }
}

//! Circuit breakers, one per AMC endpoint (host and port): after `threshold` consecutive
//! failures (unreachable, timeout, TLS, an error page) the circuit opens and calls fail at once
//! for `open_for`; then one probe is let through — its success closes the circuit, its failure
//! opens it again. A dead AMC then costs its callers nothing and slows no one else. An AMC's
//! own SOAP fault is an answer, not a failure.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is in flight since then. A probe that never reports (its caller hung up, its
    /// deadline passed) is replaced by another after `open_for`.
    HalfOpen {
        since: Instant,
    },
}

/// The breakers of all endpoints.
#[derive(Debug)]
pub struct Breakers {
    threshold: u32,
    open_for: Duration,
    states: Mutex<HashMap<String, State>>,
}

/// Why a call was not let through: the circuit is open for this long still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub retry_in: Duration,
    pub failures: u32,
}

impl Breakers {
    /// `threshold` 0 disables the breakers.
    pub fn new(threshold: u32, open_for: Duration) -> Breakers {
        Breakers {
            threshold,
            open_for,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// May a call to `key` go now?
    pub fn admit(&self, key: &str, now: Instant) -> Result<(), Open> {
        if self.threshold == 0 {
            return Ok(());
        }
        let mut m = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = m
            .entry(key.to_string())
            .or_insert(State::Closed { failures: 0 });
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { since: now };
                Ok(())
            }
            State::HalfOpen { since } if now >= since + self.open_for => {
                *state = State::HalfOpen { since: now };
                Ok(())
            }
            State::Open { until } => Err(Open {
                retry_in: until - now,
                failures: self.threshold,
            }),
            State::HalfOpen { .. } => Err(Open {
                retry_in: Duration::from_secs(1),
                failures: self.threshold,
            }),
        }
    }

    /// The outcome of an admitted call.
    pub fn record(&self, key: &str, ok: bool, now: Instant) {
        if self.threshold == 0 {
            return;
        }
        let mut m = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let state = m
            .entry(key.to_string())
            .or_insert(State::Closed { failures: 0 });
        let was_closed = matches!(state, State::Closed { .. });
        *state = match (*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::HalfOpen { .. }, false) => {
                tracing::warn!(endpoint = key, "circuit re-opened: the probe failed");
                State::Open {
                    until: now + self.open_for,
                }
            }
            (State::Closed { failures }, false) if failures + 1 >= self.threshold => {
                tracing::warn!(
                    endpoint = key,
                    failures = failures + 1,
                    open_s = self.open_for.as_secs(),
                    "circuit opened: failing fast"
                );
                State::Open {
                    until: now + self.open_for,
                }
            }
            (State::Closed { failures }, false) => State::Closed {
                failures: failures + 1,
            },
            (open @ State::Open { .. }, false) => open,
        };
        let gauge = &crate::metrics::get().circuits_open;
        match (was_closed, matches!(state, State::Closed { .. })) {
            (true, false) => gauge.inc(),
            (false, true) => gauge.dec(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_n_failures_probes_once_and_closes_on_success() {
        let b = Breakers::new(3, Duration::from_secs(10));
        let t = Instant::now();
        for _ in 0..2 {
            b.admit("a", t).unwrap();
            b.record("a", false, t);
        }
        b.admit("a", t).unwrap();
        b.record("a", true, t); // a success resets the count
        for _ in 0..3 {
            b.admit("a", t).unwrap();
            b.record("a", false, t);
        }
        let open = b.admit("a", t + Duration::from_secs(1)).unwrap_err();
        assert_eq!(open.retry_in, Duration::from_secs(9));
        assert!(b.admit("b", t).is_ok(), "other endpoints are not affected");
        // After the open period: one probe, the others still fail fast.
        let later = t + Duration::from_secs(11);
        b.admit("a", later).unwrap();
        assert!(b.admit("a", later).is_err());
        b.record("a", false, later);
        assert!(b.admit("a", later).is_err(), "a failed probe re-opens");
        let much_later = later + Duration::from_secs(11);
        b.admit("a", much_later).unwrap();
        b.record("a", true, much_later);
        assert!(b.admit("a", much_later).is_ok());
        // A probe that never reports (cancelled) does not keep the circuit half-open forever.
        for _ in 0..3 {
            b.record("a", false, much_later);
        }
        let probe_time = much_later + Duration::from_secs(11);
        b.admit("a", probe_time).unwrap();
        assert!(b.admit("a", probe_time + Duration::from_secs(5)).is_err());
        assert!(
            b.admit("a", probe_time + Duration::from_secs(10)).is_ok(),
            "a new probe"
        );
        assert!(Breakers::new(0, Duration::from_secs(1))
            .admit("x", t)
            .is_ok());
    }
}

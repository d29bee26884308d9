//! What an *AMC failure* is, defined once for the `RocgwErrorRateHigh` alert and for `/status`:
//! a call the AMC could not take or did not answer usably — transport (unreachable, reset, an
//! error page instead of SOAP), TLS (handshake, server certificate), timeout, an open circuit,
//! an answer whose signature is refused. Not an AMC failure: the caller's faults (`not-soap`,
//! `body-too-large`, `unknown-structure`, `unauthorized`…), which never reach the AMC stage, the
//! AMC's own SOAP faults (`amc-error`: the AMC answered), and rocgw's own limits (`overloaded`,
//! `internal`). `rocgw_amc_calls_total{amc}` counts every call that reached the AMC stage (sent,
//! or refused at an open circuit); `rocgw_amc_failures_total{amc, reason}` the failures among
//! them; the same records feed the recent window `/status` reads.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::fault::FaultCode;

/// Why an AMC call failed on the AMC's side (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmcFailure {
    /// Unreachable, refused, reset, proxy failure, an HTTP error page without SOAP.
    Transport,
    /// TLS handshake failure or a refused server certificate.
    Tls,
    /// No answer in time (connect, first byte, total, or the request's deadline).
    Timeout,
    /// Refused at once: the endpoint's circuit is open after consecutive failures.
    CircuitOpen,
    /// The answer came but its signature was refused (`[amc] response_signature`).
    Signature,
}

impl AmcFailure {
    pub const ALL: [AmcFailure; 5] = [
        AmcFailure::Transport,
        AmcFailure::Tls,
        AmcFailure::Timeout,
        AmcFailure::CircuitOpen,
        AmcFailure::Signature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AmcFailure::Transport => "transport",
            AmcFailure::Tls => "tls",
            AmcFailure::Timeout => "timeout",
            AmcFailure::CircuitOpen => "circuit-open",
            AmcFailure::Signature => "signature",
        }
    }

    /// The AMC failure a fault of an AMC call means, if it is one. An open circuit also
    /// answers `amc-unavailable`: its call site says [`AmcFailure::CircuitOpen`] itself.
    pub fn of(code: FaultCode) -> Option<AmcFailure> {
        match code {
            FaultCode::AmcUnavailable => Some(AmcFailure::Transport),
            FaultCode::AmcTimeout => Some(AmcFailure::Timeout),
            FaultCode::UpstreamTls
            | FaultCode::UpstreamCertExpired
            | FaultCode::UpstreamCertRevoked
            | FaultCode::UpstreamCertUnknownCa => Some(AmcFailure::Tls),
            FaultCode::AmcSignatureInvalid => Some(AmcFailure::Signature),
            // The caller's faults, the annuaire's, and rocgw's own limits.
            FaultCode::NotSoap
            | FaultCode::UnsupportedEncoding
            | FaultCode::DtdForbidden
            | FaultCode::BodyTooLarge
            | FaultCode::BodyTimeout
            | FaultCode::XmlLimit
            | FaultCode::SecurityHeaderPresent
            | FaultCode::UnknownAmc
            | FaultCode::UnknownStructure
            | FaultCode::UnknownService
            | FaultCode::AnnuaireUnavailable
            | FaultCode::Unauthorized
            | FaultCode::Overloaded
            | FaultCode::NotFound
            | FaultCode::Internal => None,
        }
    }
}

/// Length of the recent window `/status` reads (seconds), kept in 10-second buckets.
pub const RECENT_WINDOW_S: i64 = 300;
const BUCKET_S: i64 = 10;
const BUCKETS: usize = (RECENT_WINDOW_S / BUCKET_S) as usize;

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    slot: i64,
    calls: u64,
    failures: u64,
}

/// AMC calls and failures over the last [`RECENT_WINDOW_S`] seconds, by AMC label.
#[derive(Debug, Default)]
pub struct Recent {
    by_amc: Mutex<BTreeMap<String, [Bucket; BUCKETS]>>,
}

/// Calls and AMC failures in a window.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub calls: u64,
    pub failures: u64,
}

impl Recent {
    fn record(&self, amc: &str, failed: bool, now: i64) {
        let slot = now.div_euclid(BUCKET_S);
        let mut m = self.by_amc.lock().unwrap_or_else(|e| e.into_inner());
        let ring = match m.get_mut(amc) {
            Some(r) => r,
            None => m.entry(amc.to_string()).or_default(),
        };
        let b = &mut ring[slot.rem_euclid(BUCKETS as i64) as usize];
        if b.slot != slot {
            *b = Bucket {
                slot,
                ..Bucket::default()
            };
        }
        b.calls += 1;
        b.failures += u64::from(failed);
    }

    /// Calls and failures by AMC label over the window ending at `now` (between 290 and 300
    /// seconds: the current bucket is partial).
    pub fn counts(&self, now: i64) -> BTreeMap<String, Counts> {
        let oldest = now.div_euclid(BUCKET_S) - BUCKETS as i64;
        let m = self.by_amc.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .map(|(amc, ring)| {
                let mut c = Counts::default();
                for b in ring.iter().filter(|b| b.slot > oldest) {
                    c.calls += b.calls;
                    c.failures += b.failures;
                }
                (amc.clone(), c)
            })
            .collect()
    }
}

impl super::Metrics {
    /// Gives an AMC label its call and failure series at 0 (static routes and `other`, at
    /// start), so that the first failure is seen by `rate()`.
    pub fn amc_born(&self, amc: &str) {
        self.amc_calls.with_label_values(&[amc]);
        for f in AmcFailure::ALL {
            self.amc_failures.with_label_values(&[amc, f.as_str()]);
        }
    }

    /// One call that reached the AMC stage, and how it failed if it did.
    pub fn amc_call(&self, amc: &str, failure: Option<AmcFailure>) {
        let calls = self.amc_calls.with_label_values(&[amc]);
        // An AMC label first seen here (one the annuaire found) gets its failure series too.
        if calls.get() == 0 {
            self.amc_born(amc);
        }
        calls.inc();
        if let Some(f) = failure {
            self.amc_failures
                .with_label_values(&[amc, f.as_str()])
                .inc();
        }
        self.recent
            .record(amc, failure.is_some(), crate::clock::now_unix());
    }
}

/// One AMC call in progress. Counted once: by [`AmcAttempt::end`], or when dropped unfinished
/// — a timeout if the request's deadline had passed (the gateway dropped the call), else the
/// SIH hung up (a call, not an AMC failure).
#[derive(Debug)]
pub struct AmcAttempt<'a> {
    amc: &'a str,
    deadline: Instant,
    done: bool,
}

impl<'a> AmcAttempt<'a> {
    pub fn begin(amc: &'a str, deadline: Instant) -> AmcAttempt<'a> {
        AmcAttempt {
            amc,
            deadline,
            done: false,
        }
    }

    pub fn end(mut self, failure: Option<AmcFailure>) {
        self.done = true;
        super::get().amc_call(self.amc, failure);
    }
}

impl Drop for AmcAttempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            let late = Instant::now() >= self.deadline;
            super::get().amc_call(self.amc, late.then_some(AmcFailure::Timeout));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_s_faults_and_the_amc_s_answers_are_not_amc_failures() {
        let failures: Vec<&str> = FaultCode::ALL
            .iter()
            .filter(|c| AmcFailure::of(**c).is_some())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            failures,
            [
                "amc-unavailable",
                "amc-timeout",
                "amc-signature-invalid",
                "upstream-tls",
                "upstream-cert-expired",
                "upstream-cert-revoked",
                "upstream-cert-unknown-ca"
            ]
        );
    }

    #[test]
    fn the_recent_window_forgets_calls_older_than_five_minutes() {
        let r = Recent::default();
        r.record("a", true, 1_000);
        r.record("a", false, 1_000);
        r.record("a", false, 1_200);
        assert_eq!(
            r.counts(1_200)["a"],
            Counts {
                calls: 3,
                failures: 1
            }
        );
        // 1_000 is now more than 300 s old; its bucket was also reused (same ring index).
        r.record("a", false, 1_300);
        assert_eq!(
            r.counts(1_310)["a"],
            Counts {
                calls: 2,
                failures: 0
            }
        );
        assert_eq!(r.counts(2_000)["a"], Counts::default());
    }
}

//! Fault injection of the simulated AMCs: what an AMC does wrong, set in the simulator's
//! configuration and changed at run time through its admin API (`PUT /faults/{numero_amc}`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which server certificate an AMC presents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertMode {
    #[default]
    Valid,
    Expired,
    Revoked,
    UnknownCa,
    WrongHost,
}

impl CertMode {
    pub const ALL: [CertMode; 5] = [
        CertMode::Valid,
        CertMode::Expired,
        CertMode::Revoked,
        CertMode::UnknownCa,
        CertMode::WrongHost,
    ];
}

/// How added latency is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// `latency_ms` plus a uniform draw in `[0, latency_jitter_ms]`.
    #[default]
    Uniform,
    /// `latency_ms` plus an exponential draw of mean `latency_jitter_ms` (a long tail).
    Exponential,
}

/// An AMC's misbehaviour. Rates are probabilities per request, drawn independently in this
/// order: reset, HTTP 503, HTTP 500, SOAP fault; latency applies before any answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    pub latency_distribution: Distribution,
    pub soap_fault_rate: f64,
    pub http_500_rate: f64,
    pub http_503_rate: f64,
    pub reset_rate: f64,
    pub certificate: CertMode,
    /// How the AMC signs its answers (when the simulator has a `[signing]` key).
    pub signature: super::sign::SignatureFault,
}

/// What to do with one request, drawn from [`Faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Answer,
    Reset,
    Http500,
    Http503,
    SoapFault,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Answer => "answer",
            Action::Reset => "reset",
            Action::Http500 => "http-500",
            Action::Http503 => "http-503",
            Action::SoapFault => "soap-fault",
        }
    }
}

impl Faults {
    /// Why these settings are unusable, if they are.
    pub fn problem(&self) -> Option<String> {
        for (name, r) in [
            ("soap_fault_rate", self.soap_fault_rate),
            ("http_500_rate", self.http_500_rate),
            ("http_503_rate", self.http_503_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Some(format!("{name} must be between 0 and 1 (got {r})"));
            }
        }
        if self.latency_ms + self.latency_jitter_ms > 600_000 {
            return Some("latency over 10 minutes".into());
        }
        None
    }

    pub fn latency(&self, rng: &mut fastrand::Rng) -> Duration {
        let extra = match (self.latency_jitter_ms, self.latency_distribution) {
            (0, _) => 0.0,
            (j, Distribution::Uniform) => rng.f64() * j as f64,
            // Inverse transform; capped at 20 means so one draw cannot stall a test for hours.
            (j, Distribution::Exponential) => {
                (-(1.0 - rng.f64()).ln() * j as f64).min(20.0 * j as f64)
            }
        };
        Duration::from_micros(((self.latency_ms as f64 + extra) * 1000.0) as u64)
    }

    pub fn action(&self, rng: &mut fastrand::Rng) -> Action {
        let mut hit = |rate: f64| rate > 0.0 && rng.f64() < rate;
        if hit(self.reset_rate) {
            Action::Reset
        } else if hit(self.http_503_rate) {
            Action::Http503
        } else if hit(self.http_500_rate) {
            Action::Http500
        } else if hit(self.soap_fault_rate) {
            Action::SoapFault
        } else {
            Action::Answer
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_latency_follow_the_settings() {
        let mut rng = fastrand::Rng::with_seed(7);
        let f = Faults {
            soap_fault_rate: 0.25,
            latency_ms: 10,
            latency_jitter_ms: 5,
            ..Faults::default()
        };
        let n = 20_000;
        let faults = (0..n)
            .filter(|_| f.action(&mut rng) == Action::SoapFault)
            .count();
        assert!((4_500..5_500).contains(&faults), "{faults}");
        for _ in 0..1000 {
            let l = f.latency(&mut rng);
            assert!(l >= Duration::from_millis(10) && l <= Duration::from_millis(15));
        }
        assert_eq!(Faults::default().action(&mut rng), Action::Answer);
        let bad = Faults {
            reset_rate: 1.5,
            ..Faults::default()
        };
        assert!(bad.problem().unwrap().contains("reset_rate"));
    }
}

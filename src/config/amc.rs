//! `[amc]`: how rocgw calls the AMCs: revocation, client certificate, which endpoints it may
//! reach, whether their answers must be signed, and the per-AMC concurrency and circuit breaker.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, RevocationPolicy, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAmc {
    #[serde(default)]
    revocation: RevocationPolicy,
    #[serde(default)]
    present_client_cert: bool,
    #[serde(default)]
    explicit_endpoints: bool,
    #[serde(default)]
    endpoint_hosts: Vec<String>,
    max_concurrent_per_amc: Option<usize>,
    breaker_failures: Option<u32>,
    breaker_open_s: Option<u64>,
    #[serde(default)]
    response_signature: ResponseSignature,
    #[serde(default)]
    response_signatures: BTreeMap<String, ResponseSignature>,
}

/// What rocgw requires of an AMC answer's signature (WS-Security signature of the SOAP Body,
/// `wssec::response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseSignature {
    /// Not checked. The default: the ROC contract does not say that AMC answers are signed,
    /// nor how, and refusing an AMC's genuine answer on an assumed profile would stop care.
    #[default]
    Off,
    /// A signature present must be valid (a bad signer is caught; a stripped signature is not).
    IfPresent,
    /// Every SOAP answer, faults included, must carry a valid signature.
    Required,
}

#[derive(Debug, Clone, Default)]
pub struct AmcConfig {
    pub revocation: RevocationPolicy,
    /// Present the AUTH_CLI certificate to AMCs that ask for a client certificate.
    pub present_client_cert: bool,
    /// Accept `X-Rocgw-Endpoint: https://…` from SIH software that knows the endpoint.
    pub explicit_endpoints: bool,
    /// Hosts an endpoint (from the annuaire or explicit) may name: `host` or `*.suffix`;
    /// empty: any host (its certificate must still chain to the IGC OSI anchors).
    pub endpoint_hosts: Vec<String>,
    /// Calls in progress to one AMC; beyond, `overloaded` at once, so one slow AMC cannot take
    /// every slot from the others.
    pub max_concurrent_per_amc: usize,
    /// Consecutive failures that open an endpoint's circuit (0: no circuit breaker).
    pub breaker_failures: u32,
    /// How long an open circuit fails fast before one probe is let through.
    pub breaker_open: Duration,
    /// Answer signatures, for every AMC...
    pub response_signature: ResponseSignature,
    /// ...except these (AMC numbers of `[routes]`).
    pub response_signatures: BTreeMap<String, ResponseSignature>,
}

impl AmcConfig {
    /// The answer-signature mode for AMC `amc`.
    pub fn response_signature_for(&self, amc: &str) -> ResponseSignature {
        self.response_signatures
            .get(amc)
            .copied()
            .unwrap_or(self.response_signature)
    }
}

pub(super) fn validate(v: &Validator<'_>, raw: &RawAmc) -> Result<AmcConfig, ConfigError> {
    let mut endpoint_hosts = Vec::new();
    for (i, h) in raw.endpoint_hosts.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        let bare = h.strip_prefix("*.").unwrap_or(&h);
        if bare.is_empty()
            || !bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(v.err(
                &format!("amc.endpoint_hosts[{i}]"),
                "a host name, or *.domain for every host below it",
            ));
        }
        endpoint_hosts.push(h);
    }
    Ok(AmcConfig {
        response_signature: raw.response_signature,
        response_signatures: raw.response_signatures.clone(),
        revocation: raw.revocation,
        present_client_cert: raw.present_client_cert,
        explicit_endpoints: raw.explicit_endpoints,
        endpoint_hosts,
        breaker_failures: v.ranged("amc.breaker_failures", raw.breaker_failures, 5, 0..=1_000)?,
        breaker_open: v.secs(
            "amc.breaker_open_s",
            raw.breaker_open_s,
            Duration::from_secs(30),
            1..=3_600,
        )?,
        max_concurrent_per_amc: v.ranged(
            "amc.max_concurrent_per_amc",
            raw.max_concurrent_per_amc,
            128,
            1..=100_000,
        )?,
    })
}

//! Prometheus metrics: one registry for the process, served on the admin listener at `/metrics`.
//! Labels carry only bounded values (upstream kind, reason, outcome), never patient data.

use std::sync::OnceLock;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The process's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// Requests sent upstream, by upstream kind and outcome (`ok`, fault code).
    pub upstream_requests: IntCounterVec,
    /// New upstream connections (TCP + TLS) opened, by upstream kind.
    pub upstream_connections: IntCounterVec,
    /// Failed TLS handshakes and TLS-level rejections, by upstream kind and reason.
    pub tls_failures: IntCounterVec,
    /// Handshakes allowed under the soft policy with an unknown revocation status.
    pub revocation_unknown: IntCounterVec,
    /// Reloads of certificates and CRLs, by outcome.
    pub reloads: IntCounterVec,
    /// Upstream connections currently open, by upstream kind.
    pub upstream_open: prometheus::IntGaugeVec,
    /// Requests currently handled by the gateway.
    pub in_flight: IntGauge,
    /// Gateway faults returned, by code.
    pub faults: IntCounterVec,
    /// Certificate material generation (increments on each successful reload).
    pub generation: IntCounter,
    /// Endpoint resolutions through the annuaire cache, by result (`hit`, `stale`, `negative`,
    /// `fetched`, `unknown-amc`, `error`).
    pub annuaire_lookups: IntCounterVec,
    /// Lookup requests actually sent to the annuaire, by outcome.
    pub annuaire_calls: IntCounterVec,
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let upstream_open = prometheus::IntGaugeVec::new(
            Opts::new(
                "rocgw_upstream_connections_open",
                "Upstream connections currently open.",
            ),
            &["upstream"],
        )
        .expect("valid metric");
        r.register(Box::new(upstream_open.clone())).expect("unique");
        let in_flight = IntGauge::new("rocgw_in_flight_requests", "Requests currently handled.")
            .expect("valid");
        r.register(Box::new(in_flight.clone())).expect("unique");
        let generation = IntCounter::new(
            "rocgw_credentials_generation_total",
            "Successful loads of certificates and CRLs since start.",
        )
        .expect("valid");
        r.register(Box::new(generation.clone())).expect("unique");
        Metrics {
            annuaire_lookups: counter_vec(
                &r,
                "rocgw_annuaire_lookups_total",
                "Endpoint resolutions through the annuaire cache, by result.",
                &["result"],
            ),
            annuaire_calls: counter_vec(
                &r,
                "rocgw_annuaire_calls_total",
                "Lookup requests sent to the annuaire, by outcome (found, unknown-amc, error).",
                &["outcome"],
            ),
            upstream_requests: counter_vec(
                &r,
                "rocgw_upstream_requests_total",
                "Requests sent upstream, by upstream and outcome.",
                &["upstream", "outcome"],
            ),
            upstream_connections: counter_vec(
                &r,
                "rocgw_upstream_connections_opened_total",
                "Upstream connections opened (TCP and TLS handshake), by upstream.",
                &["upstream"],
            ),
            tls_failures: counter_vec(
                &r,
                "rocgw_upstream_tls_failures_total",
                "TLS handshake failures and TLS rejections, by upstream and reason.",
                &["upstream", "reason"],
            ),
            revocation_unknown: counter_vec(
                &r,
                "rocgw_revocation_unknown_total",
                "Handshakes allowed by the soft revocation policy with an unknown status.",
                &["upstream", "reason"],
            ),
            reloads: counter_vec(
                &r,
                "rocgw_reloads_total",
                "Reloads of certificates and CRLs, by outcome.",
                &["outcome"],
            ),
            faults: counter_vec(
                &r,
                "rocgw_faults_total",
                "SOAP faults returned by the gateway, by code.",
                &["code"],
            ),
            upstream_open,
            in_flight,
            generation,
            registry: r,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The process-wide metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

//! Prometheus metrics: one registry for the process, served on the admin listener at `/metrics`.
//! Labels carry only bounded values (upstream kind, reason, outcome), never patient data.

use std::sync::OnceLock;

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The process's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// Requests sent upstream, by upstream kind and outcome (`ok`, fault code).
    pub upstream_requests: IntCounterVec,
    /// Requests re-sent because their connection could not be opened, by upstream kind.
    pub upstream_retries: IntCounterVec,
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
    /// AMC endpoints whose circuit is open or half-open (failing fast).
    pub circuits_open: IntGauge,
    /// Connections closed at once because a listener had `max_connections` open.
    pub connections_refused: IntCounter,
    /// Connections cut because the client stopped reading its answer (`write_timeout_ms`).
    pub write_timeouts: IntCounter,
    /// Gateway faults returned, by code.
    pub faults: IntCounterVec,
    /// Certificate material generation (increments on each successful reload).
    pub generation: IntCounter,
    /// Endpoint resolutions through the annuaire cache, by result (`hit`, `stale`, `negative`,
    /// `fetched`, `unknown-amc`, `error`).
    pub annuaire_lookups: IntCounterVec,
    /// Lookup requests actually sent to the annuaire, by outcome.
    pub annuaire_calls: IntCounterVec,
    /// Gateway requests by route, AMC, service and outcome (`ok`, `amc-error` for an AMC's own
    /// error answer, or the fault code).
    pub requests: IntCounterVec,
    /// End-to-end latency of gateway requests, by route.
    pub request_seconds: prometheus::HistogramVec,
    /// Latency of upstream exchanges (request sent to response read), by upstream.
    pub upstream_seconds: prometheus::HistogramVec,
    /// Time to build and sign a fresh assertion (blocking pool wait excluded).
    pub signing_seconds: prometheus::Histogram,
    /// Seconds until each identity and trust anchor expires (negative once expired).
    pub cert_expiry: prometheus::IntGaugeVec,
    /// Age of each CRL (since its thisUpdate), and seconds until its nextUpdate.
    pub crl_age: prometheus::IntGaugeVec,
    pub crl_next_update: prometheus::IntGaugeVec,
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::IntGaugeVec {
    let g = prometheus::IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
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
        let circuits_open = IntGauge::new(
            "rocgw_circuits_open",
            "AMC endpoints whose circuit breaker is open or half-open (calls fail fast).",
        )
        .expect("valid");
        r.register(Box::new(circuits_open.clone())).expect("unique");
        let connections_refused = IntCounter::new(
            "rocgw_connections_refused_total",
            "Connections closed at once because a listener had max_connections open.",
        )
        .expect("valid");
        r.register(Box::new(connections_refused.clone()))
            .expect("unique");
        let write_timeouts = IntCounter::new(
            "rocgw_write_timeouts_total",
            "Connections cut because the client stopped reading its answer.",
        )
        .expect("valid");
        r.register(Box::new(write_timeouts.clone()))
            .expect("unique");
        let generation = IntCounter::new(
            "rocgw_credentials_generation_total",
            "Successful loads of certificates and CRLs since start.",
        )
        .expect("valid");
        r.register(Box::new(generation.clone())).expect("unique");
        let buckets = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let hist = |name: &str, help: &str, labels: &[&str]| {
            let h = prometheus::HistogramVec::new(
                prometheus::HistogramOpts::new(name, help).buckets(buckets.clone()),
                labels,
            )
            .expect("valid metric");
            r.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let request_seconds = hist(
            "rocgw_request_duration_seconds",
            "End-to-end latency of gateway requests, by route.",
            &["route"],
        );
        let upstream_seconds = hist(
            "rocgw_upstream_duration_seconds",
            "Latency of upstream exchanges, by upstream.",
            &["upstream"],
        );
        let signing_seconds = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "rocgw_signing_duration_seconds",
                "Time to build and sign a fresh SAML assertion.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(signing_seconds.clone()))
            .expect("unique");
        Metrics {
            requests: counter_vec(
                &r,
                "rocgw_requests_total",
                "Gateway requests by route, AMC, service and outcome.",
                &["route", "amc", "service", "outcome"],
            ),
            request_seconds,
            upstream_seconds,
            signing_seconds,
            cert_expiry: gauge_vec(
                &r,
                "rocgw_certificate_expiry_seconds",
                "Seconds until a certificate in force expires (identities and trust anchors).",
                &["kind", "name"],
            ),
            crl_age: gauge_vec(
                &r,
                "rocgw_crl_age_seconds",
                "Seconds since the thisUpdate of each CRL in force.",
                &["sphere", "issuer"],
            ),
            crl_next_update: gauge_vec(
                &r,
                "rocgw_crl_next_update_seconds",
                "Seconds until the nextUpdate of each CRL in force (negative: stale).",
                &["sphere", "issuer"],
            ),
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
            upstream_retries: counter_vec(
                &r,
                "rocgw_upstream_retries_total",
                "Requests re-sent because their connection could not be opened (nothing sent).",
                &["upstream"],
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
            circuits_open,
            connections_refused,
            write_timeouts,
            generation,
            registry: r,
        }
        .with_zero_series()
    }

    /// Series that alerts and dashboards divide or rate over exist from the start, at 0.
    fn with_zero_series(self) -> Metrics {
        for up in ["amc", "annuaire"] {
            self.upstream_retries.with_label_values(&[up]);
        }
        self.faults.with_label_values(&["overloaded"]);
        self
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

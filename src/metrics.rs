//! Prometheus metrics: one registry for the process, served on the admin listener at `/metrics`.
//! Labels carry only bounded values (upstream kind, reason, outcome), never patient data. Every
//! series whose label values are known at start exists from the start, at 0, so that `rate()`
//! and `increase()` see the first event. Times are Unix timestamps (`…_timestamp_seconds`).

mod amc;
mod help;
mod process;

use std::sync::{Mutex, OnceLock};

pub use amc::{AmcAttempt, AmcFailure, Counts, Recent, RECENT_WINDOW_S};
use help::HELP;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The process's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// Requests sent upstream, by upstream kind and outcome (`ok`, fault code).
    pub upstream_requests: IntCounterVec,
    /// Requests re-sent because their connection could not be opened, by upstream kind.
    pub upstream_retries: IntCounterVec,
    /// New upstream connections (TCP + TLS) opened, by upstream kind.
    pub upstream_connections: IntCounterVec,
    /// Connections of calls cut by their caller, kept (the answer read and dropped), by kind.
    pub upstream_kept: IntCounterVec,
    /// Failed TLS handshakes and TLS-level rejections, by upstream kind and reason.
    pub tls_failures: IntCounterVec,
    /// Handshakes allowed under the soft policy with an unknown revocation status.
    pub revocation_unknown: IntCounterVec,
    /// Reloads of certificates and CRLs, by outcome.
    pub reloads: IntCounterVec,
    /// Audit records not written (`write`), or written to a file no longer at the audit path
    /// because the path could not be opened again (`reopen`).
    pub audit_errors: IntCounterVec,
    /// Upstream connections currently open, by upstream kind.
    pub upstream_open: prometheus::IntGaugeVec,
    /// Requests currently handled by the gateway.
    pub in_flight: IntGauge,
    pub queued: IntGauge,
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
    /// Unix time at which each identity and trust anchor expires.
    pub cert_not_after: IntGaugeVec,
    /// thisUpdate and nextUpdate of each CRL, as Unix times.
    pub crl_this_update: IntGaugeVec,
    pub crl_next_update: IntGaugeVec,
    /// Calls that reached the AMC stage, by AMC label; AMC failures by AMC and reason
    /// (`amc` module: the one definition of an AMC failure).
    pub amc_calls: IntCounterVec,
    pub amc_failures: IntCounterVec,
    /// The same calls and failures over the last five minutes, for `/status`.
    pub recent: Recent,
    /// Unix time at which the metrics were set up, early in start-up.
    pub started: f64,
    /// The last reload: (Unix time, succeeded).
    last_reload: Mutex<Option<(i64, bool)>>,
}

/// Latency buckets of the request and upstream histograms (seconds).
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of the signing histogram: an RSA-2048 signature takes a fraction of a millisecond.
const SIGNING_BUCKETS: [f64; 9] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
];

fn opts(name: &str) -> Opts {
    let help = HELP
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .expect("every metric has a help text");
    Opts::new(name, help)
}

/// Registers `c` in `r` and returns it.
fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str) -> IntCounter {
    registered(r, IntCounter::with_opts(opts(name)).expect("valid metric"))
}

fn gauge(r: &Registry, name: &str) -> IntGauge {
    registered(r, IntGauge::with_opts(opts(name)).expect("valid metric"))
}

fn counter_vec(r: &Registry, name: &str, labels: &[&str]) -> IntCounterVec {
    registered(
        r,
        IntCounterVec::new(opts(name), labels).expect("valid metric"),
    )
}

fn gauge_vec(r: &Registry, name: &str, labels: &[&str]) -> IntGaugeVec {
    registered(
        r,
        IntGaugeVec::new(opts(name), labels).expect("valid metric"),
    )
}

fn histogram_opts(name: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::from(opts(name)).buckets(buckets.to_vec())
}

fn histogram_vec(r: &Registry, name: &str, labels: &[&str]) -> HistogramVec {
    let o = histogram_opts(name, &LATENCY_BUCKETS);
    registered(r, HistogramVec::new(o, labels).expect("valid metric"))
}

impl Metrics {
    fn new() -> Metrics {
        let started = crate::clock::now_unix_f64();
        let r = Registry::new();
        registered(&r, process::Process::new(started));
        gauge_vec(&r, "rocgw_build_info", &["version", "commit"])
            .with_label_values(&[crate::version::VERSION, crate::version::COMMIT])
            .set(1);
        let signing = histogram_opts("rocgw_signing_duration_seconds", &SIGNING_BUCKETS);
        let up = &["upstream"][..];
        let by_issuer = &["sphere", "issuer"][..];
        let by_reason = &["upstream", "reason"][..];
        Metrics {
            requests: counter_vec(
                &r,
                "rocgw_requests_total",
                &["route", "amc", "service", "outcome", "structure"],
            ),
            request_seconds: histogram_vec(&r, "rocgw_request_duration_seconds", &["route"]),
            upstream_seconds: histogram_vec(&r, "rocgw_upstream_duration_seconds", up),
            signing_seconds: registered(&r, Histogram::with_opts(signing).expect("valid metric")),
            cert_not_after: gauge_vec(
                &r,
                "rocgw_certificate_not_after_timestamp_seconds",
                &["kind", "name", "structure"],
            ),
            crl_this_update: gauge_vec(&r, "rocgw_crl_this_update_timestamp_seconds", by_issuer),
            crl_next_update: gauge_vec(&r, "rocgw_crl_next_update_timestamp_seconds", by_issuer),
            amc_calls: counter_vec(&r, "rocgw_amc_calls_total", &["amc"]),
            amc_failures: counter_vec(&r, "rocgw_amc_failures_total", &["amc", "reason"]),
            recent: Recent::default(),
            started,
            last_reload: Mutex::new(None),
            annuaire_lookups: counter_vec(&r, "rocgw_annuaire_lookups_total", &["result"]),
            annuaire_calls: counter_vec(&r, "rocgw_annuaire_calls_total", &["outcome"]),
            upstream_requests: counter_vec(
                &r,
                "rocgw_upstream_requests_total",
                &["upstream", "outcome"],
            ),
            upstream_retries: counter_vec(&r, "rocgw_upstream_retries_total", up),
            upstream_connections: counter_vec(&r, "rocgw_upstream_connections_opened_total", up),
            upstream_kept: counter_vec(&r, "rocgw_upstream_connections_kept_total", up),
            tls_failures: counter_vec(&r, "rocgw_upstream_tls_failures_total", by_reason),
            revocation_unknown: counter_vec(&r, "rocgw_revocation_unknown_total", by_reason),
            reloads: counter_vec(&r, "rocgw_reloads_total", &["outcome"]),
            audit_errors: counter_vec(&r, "rocgw_audit_errors_total", &["kind"]),
            faults: counter_vec(&r, "rocgw_faults_total", &["code"]),
            upstream_open: gauge_vec(&r, "rocgw_upstream_connections_open", up),
            in_flight: gauge(&r, "rocgw_in_flight_requests"),
            queued: gauge(&r, "rocgw_queued_requests"),
            circuits_open: gauge(&r, "rocgw_circuits_open"),
            connections_refused: counter(&r, "rocgw_connections_refused_total"),
            write_timeouts: counter(&r, "rocgw_write_timeouts_total"),
            generation: counter(&r, "rocgw_credentials_generation_total"),
            registry: r,
        }
        .with_zero_series()
    }

    /// Series that alerts and dashboards divide or rate over exist from the start, at 0: those
    /// whose label values are known here. The upstream and verifier modules give theirs (TLS
    /// failure and unknown-revocation reasons) when they are built; the gateway its AMC labels.
    fn with_zero_series(self) -> Metrics {
        for route in ["amc", "annuaire"] {
            self.request_seconds.with_label_values(&[route]);
        }
        // The request a SIH abandons (`InFlight`) has every label known.
        self.requests
            .with_label_values(&["-", "-", "-", "client-gone", "-"]);
        for up in ["amc", "annuaire"] {
            self.upstream_seconds.with_label_values(&[up]);
            self.upstream_requests.with_label_values(&[up, "ok"]);
            self.upstream_retries.with_label_values(&[up]);
            self.upstream_connections.with_label_values(&[up]);
            self.upstream_kept.with_label_values(&[up]);
            self.upstream_open.with_label_values(&[up]);
        }
        self.faults.with_label_values(&["overloaded"]);
        for outcome in ["ok", "failed"] {
            self.reloads.with_label_values(&[outcome]);
        }
        for kind in ["write", "reopen"] {
            self.audit_errors.with_label_values(&[kind]);
        }
        for outcome in ["found", "unknown-amc", "error"] {
            self.annuaire_calls.with_label_values(&[outcome]);
        }
        for result in [
            "hit",
            "negative",
            "stale",
            "fetched",
            "unknown-amc",
            "error",
        ] {
            self.annuaire_lookups.with_label_values(&[result]);
        }
        self.amc_born("other");
        self
    }

    /// Counts a reload of certificates and CRLs and remembers when it happened.
    pub fn reloaded(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.reloads.with_label_values(&[outcome]).inc();
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((crate::clock::now_unix(), ok));
    }

    /// The last reload since start, if any: (Unix time, succeeded).
    pub fn last_reload(&self) -> Option<(i64, bool)> {
        *self.last_reload.lock().unwrap_or_else(|e| e.into_inner())
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

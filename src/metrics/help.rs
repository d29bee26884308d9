//! Every metric's name and help text, in one place (the exposition's `# HELP` lines).

pub const HELP: &[(&str, &str)] = &[
    (
        "rocgw_build_info",
        "Always 1; the version of the rocgw binary serving, as a label.",
    ),
    (
        "rocgw_requests_total",
        "Gateway requests by route, AMC, service, outcome and signing structure.",
    ),
    (
        "rocgw_amc_calls_total",
        "Calls the gateway sent (or refused at an open circuit) to an AMC, by AMC.",
    ),
    (
        "rocgw_amc_failures_total",
        "AMC calls that failed on the AMC's side, by AMC and reason (transport, tls, timeout, circuit-open, signature); not the caller's faults, not the AMC's own SOAP faults.",
    ),
    (
        "rocgw_request_duration_seconds",
        "End-to-end latency of gateway requests, by route.",
    ),
    (
        "rocgw_upstream_duration_seconds",
        "Latency of upstream exchanges, by upstream.",
    ),
    (
        "rocgw_signing_duration_seconds",
        "Time to build and sign a fresh SAML assertion.",
    ),
    (
        "rocgw_certificate_not_after_timestamp_seconds",
        "Unix time at which a certificate in force expires (identities, by structure, and trust anchors).",
    ),
    (
        "rocgw_crl_this_update_timestamp_seconds",
        "Unix time of the thisUpdate of each CRL in force (the oldest, per issuer).",
    ),
    (
        "rocgw_crl_next_update_timestamp_seconds",
        "Unix time of the nextUpdate of each CRL in force (the nearest, per issuer); past: stale.",
    ),
    (
        "rocgw_annuaire_lookups_total",
        "Endpoint resolutions through the annuaire cache, by result.",
    ),
    (
        "rocgw_annuaire_calls_total",
        "Lookup requests sent to the annuaire, by outcome (found, unknown-amc, error).",
    ),
    (
        "rocgw_upstream_requests_total",
        "Requests sent upstream, by upstream and outcome.",
    ),
    (
        "rocgw_upstream_connections_kept_total",
        "Connections of calls cut by their caller (hang-up, deadline) kept for the next call: the rest of the answer read and dropped.",
    ),
    (
        "rocgw_upstream_retries_total",
        "Requests re-sent because their connection could not be opened (nothing sent).",
    ),
    (
        "rocgw_upstream_connections_opened_total",
        "Upstream connections opened (TCP and TLS handshake), by upstream.",
    ),
    (
        "rocgw_upstream_tls_failures_total",
        "TLS handshake failures and TLS rejections, by upstream and reason.",
    ),
    (
        "rocgw_revocation_unknown_total",
        "Handshakes allowed by the soft revocation policy with an unknown status.",
    ),
    (
        "rocgw_reloads_total",
        "Reloads of certificates and CRLs, by outcome (ok, failed).",
    ),
    (
        "rocgw_audit_errors_total",
        "Audit records not written (write), or written to a file no longer at the audit path (reopen).",
    ),
    (
        "rocgw_faults_total",
        "SOAP faults returned by the gateway, by code.",
    ),
    (
        "rocgw_upstream_connections_open",
        "Upstream connections currently open.",
    ),
    ("rocgw_in_flight_requests", "Requests currently handled."),
    (
        "rocgw_queued_requests",
        "Requests waiting for a request slot (at most server.queue_ms each).",
    ),
    (
        "rocgw_circuits_open",
        "AMC endpoints whose circuit breaker is open or half-open (calls fail fast).",
    ),
    (
        "rocgw_connections_refused_total",
        "Connections closed at once because a listener had max_connections open.",
    ),
    (
        "rocgw_write_timeouts_total",
        "Connections cut because the client stopped reading its answer.",
    ),
    (
        "rocgw_credentials_generation_total",
        "Successful loads of certificates and CRLs since start.",
    ),
];

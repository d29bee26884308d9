//! The last hop: what the SIH gets back and what is counted. The AMC's answer or a SOAP fault
//! in the request's version; request metrics, the refusal log line (never a body), and one audit
//! record per signed AMC call.

use std::time::{Duration, Instant};

use http::header::HeaderValue;

use super::stamp::Signed;
use super::target::Target;
use crate::audit::{Audit, Record};
use crate::fault::{Fault, FaultCode, StatusMode, VersionedFault};
use crate::listener::{HttpResponse, Peer, SANDBOX_HEADER};
use crate::metrics;
use crate::soap::SoapVersion;

/// A request's result: the answer to pass on, or the fault to write.
pub type Outcome = Result<HttpResponse, VersionedFault>;

/// The fault of a request whose deadline passed (its upstream call was dropped with it).
pub fn deadline_passed(
    target: Option<&Target<'_>>,
    deadline: Duration,
    hint: SoapVersion,
) -> (&'static str, Outcome) {
    let annuaire = matches!(target, Some(Target::Annuaire { .. }));
    let code = if annuaire {
        FaultCode::AnnuaireUnavailable
    } else {
        FaultCode::AmcTimeout
    };
    let detail = format!(
        "the request's deadline of {} ms passed",
        deadline.as_millis()
    );
    let route = if annuaire { "annuaire" } else { "amc" };
    (
        route,
        Err(Fault::with_detail(code, detail).in_version(hint)),
    )
}

/// `ok`, `amc-error` (the AMC answered an error) or the gateway's fault code: the `outcome`
/// of the request metric and of the audit record.
fn outcome(result: Result<&HttpResponse, &Fault>) -> &'static str {
    match result {
        Ok(r) if r.status().is_success() => "ok",
        Ok(_) => "amc-error",
        Err(f) => f.code.as_str(),
    }
}

/// How a request ended, for its metrics and log line.
pub struct Finished<'a> {
    pub route: &'static str,
    /// The structure that signed (`-` when refused before it was chosen).
    pub structure: &'a str,
    /// Bounded metric labels (`router.labels`).
    pub amc: &'a str,
    pub service: &'a str,
    /// The AMC and service the path asked for (`-` off the AMC routes), for the log line.
    pub asked: (&'a str, &'a str),
    /// The caller `access` identified (`-` when it refused it), named as in the audit record.
    pub caller: &'a str,
    pub peer: &'a Peer,
    pub started: Instant,
}

/// Counts the request and writes what the SIH gets.
pub fn respond(
    done: &Finished<'_>,
    result: Outcome,
    status_mode: StatusMode,
    sandbox: bool,
) -> HttpResponse {
    let m = metrics::get();
    m.request_seconds
        .with_label_values(&[done.route])
        .observe(done.started.elapsed().as_secs_f64());
    let outcome = outcome(result.as_ref().map_err(|f| &f.fault));
    m.requests
        .with_label_values(&[done.route, done.amc, done.service, outcome, done.structure])
        .inc();
    let mut resp = match result {
        Ok(r) => r,
        Err(VersionedFault { fault, version }) => {
            m.faults.with_label_values(&[fault.code.as_str()]).inc();
            let resp = fault.to_response(version, status_mode);
            // Overload refusals come in floods (a load test, an SIH retrying at once): one
            // line a second, with how many it stands for; the metrics count every one.
            let (log, also_refused) = if fault.code == FaultCode::Overloaded {
                overload_line()
            } else {
                (true, 0)
            };
            // The audit record's names for the same facts (`caller`, `structure`, `amc`,
            // `service`, `outcome`, `status`, `latency_ms`, `detail`), and the peer address.
            if log {
                tracing::info!(
                    caller = done.caller,
                    peer = %done.peer,
                    structure = done.structure,
                    amc = done.asked.0,
                    service = done.asked.1,
                    route = done.route,
                    outcome = fault.code.as_str(),
                    status = resp.status().as_u16(),
                    latency_ms = done.started.elapsed().as_secs_f64() * 1000.0,
                    detail = fault.detail.as_deref(),
                    also_refused,
                    "request refused"
                );
            }
            resp
        }
    };
    if sandbox {
        resp.headers_mut()
            .insert(SANDBOX_HEADER, HeaderValue::from_static("1"));
    }
    resp
}

/// Whether this overload refusal gets its log line (the first of its second), and how many
/// were not logged since the last one.
fn overload_line() -> (bool, u64) {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static SECOND: AtomicU64 = AtomicU64::new(0);
    static UNLOGGED: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    // Seconds of a monotonic clock (a wall-clock step changes nothing), 1 from the start.
    let now = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
    let last = SECOND.load(Relaxed);
    // Only forward: a thread that read the clock late cannot log a past second again.
    if now > last && SECOND.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
        (true, UNLOGGED.swap(0, Relaxed))
    } else {
        UNLOGGED.fetch_add(1, Relaxed);
        (false, 0)
    }
}

/// One audit record for a signed AMC call, whatever its outcome.
pub struct AmcCall<'a> {
    pub caller: &'a str,
    pub structure: &'a str,
    pub amc: &'a str,
    pub service: &'a str,
    pub signed: &'a Signed,
    pub started: Instant,
}

impl AmcCall<'_> {
    pub fn audit(&self, audit: &Audit, result: &Result<HttpResponse, Fault>) {
        let outcome = outcome(result.as_ref());
        let status = result.as_ref().map_or(0, |r| r.status().as_u16());
        audit.record(&Record {
            caller: self.caller,
            structure: self.structure,
            assertion_id: &self.signed.id,
            reused: self.signed.reused,
            audience: &self.signed.audience,
            amc: self.amc,
            service: self.service,
            signer_serial: &self.signed.signer_serial,
            outcome,
            status,
            latency_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            detail: result.as_ref().err().and_then(|f| f.detail.as_deref()),
        });
    }
}

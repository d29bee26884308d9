//! The gateway listener: what a SIH calls. Data flows one way: access control → body limits →
//! SOAP envelope check → route → (stamp → upstream, in later layers) → response.
//!
//! Routes:
//! - `POST /amc/{numero_amc}/{service}`: an AMC web-service call.
//! - `POST /annuaire[/…]`: a pass-through to the Annuaire AMC.
//!
//! Every error is a SOAP fault (see `fault`). Bodies are never logged.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use hyper::{HeaderMap, Method, Request, Response, Uri};

use crate::access::Access;
use crate::annuaire::Router;
use crate::fault::{Fault, FaultCode, StatusMode};
use crate::listener::{HttpResponse, Peer, SANDBOX_HEADER};
use crate::metrics;
use crate::reload::Runtime;
use crate::soap::{self, SoapVersion};
use crate::upstream::{Upstream, UpstreamError};
use crate::wssec;

/// Request headers passed on to the upstream; everything else (the local bearer token above
/// all) stays here.
const FORWARDED_REQUEST_HEADERS: [&str; 4] =
    ["content-type", "soapaction", "accept", "accept-language"];
/// Response headers passed back to the SIH.
const FORWARDED_RESPONSE_HEADERS: [&str; 2] = ["content-type", "content-language"];
/// Header by which an SIH may shorten a request's deadline (milliseconds).
pub const DEADLINE_HEADER: &str = "x-rocgw-deadline-ms";

/// What the gateway listener needs, built once from the configuration.
#[derive(Debug)]
pub struct Gateway {
    pub status_mode: StatusMode,
    pub max_body_bytes: usize,
    pub access: Access,
    /// Static routes, explicit endpoints, the annuaire.
    router: Router,
    pub runtime: Arc<Runtime>,
    pub sandbox: bool,
    /// Signatures in progress on the blocking pool: two per core at most.
    signing: Arc<tokio::sync::Semaphore>,
    /// One record per signed AMC call.
    audit: Arc<crate::audit::Audit>,
    /// Requests in progress (load shedding beyond it).
    admission: Arc<tokio::sync::Semaphore>,
    /// Bytes of request and response bodies held (load shedding beyond it): what bounds memory.
    budget: crate::budget::Budget,
    max_concurrent: usize,
    /// Calls in progress per AMC (label-bounded keys: known AMCs, else `other`).
    per_amc: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    max_per_amc: usize,
    /// One circuit breaker per AMC endpoint.
    breakers: crate::breaker::Breakers,
    /// End-to-end deadline of a request.
    deadline: std::time::Duration,
}

/// What the SIH asked for, read off the path.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Amc { amc: &'a str, service: &'a str },
    Annuaire,
}

fn target(path: &str) -> Option<Target<'_>> {
    if path == "/annuaire" || path.starts_with("/annuaire/") {
        return Some(Target::Annuaire);
    }
    let rest = path.strip_prefix("/amc/")?;
    let (amc, service) = rest.split_once('/')?;
    let service = service.strip_suffix('/').unwrap_or(service);
    if amc.is_empty() || service.is_empty() || service.contains('/') {
        return None;
    }
    Some(Target::Amc { amc, service })
}

/// The SOAP version a fault is written in before the body has been read: the SOAP 1.1 binding
/// sends `text/xml`, SOAP 1.2 `application/soap+xml`; anything else gets SOAP 1.2.
fn version_from_content_type(req: &Request<Incoming>) -> SoapVersion {
    let ct = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start()
        .to_ascii_lowercase();
    if ct.starts_with("text/xml") {
        SoapVersion::V11
    } else {
        soap::DEFAULT_FAULT_VERSION
    }
}

impl Gateway {
    pub fn new(runtime: Arc<Runtime>, sandbox: bool) -> Result<Gateway, String> {
        let cfg = runtime.config();
        let audit = Arc::new(crate::audit::Audit::open(cfg.audit_file.as_deref())?);
        Ok(Gateway {
            audit,
            admission: Arc::new(tokio::sync::Semaphore::new(
                cfg.server.max_concurrent_requests,
            )),
            max_concurrent: cfg.server.max_concurrent_requests,
            budget: crate::budget::Budget::new(cfg.server.max_buffered_bytes),
            per_amc: Default::default(),
            max_per_amc: cfg.amc.max_concurrent_per_amc,
            breakers: crate::breaker::Breakers::new(cfg.amc.breaker_failures, cfg.amc.breaker_open),
            deadline: cfg.server.request_deadline,
            status_mode: cfg.server.http_status,
            max_body_bytes: cfg.server.max_body_bytes,
            access: Access::new(&cfg.access),
            router: Router::new(cfg, &runtime),
            sandbox,
            runtime,
            signing: Arc::new(tokio::sync::Semaphore::new(
                2 * std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        })
    }

    /// One AMC call: a slot for this AMC, the endpoint, the stamped body, the forward, the
    /// audit record.
    async fn amc_call(
        &self,
        amc: &str,
        service: &str,
        headers: &HeaderMap,
        body: &Bytes,
        upstreams: &crate::reload::Upstreams,
        caller: &str,
    ) -> Result<HttpResponse, AmcError> {
        let _slot = self.amc_slot(amc)?;
        let endpoint = self.router.resolve(amc, service, headers).await?;
        let (stamped, signed) = self
            .stamp(body, &endpoint)
            .await
            .map_err(|(f, v)| AmcError::Stamp(f, v))?;
        let key = endpoint
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        if let Err(open) = self.breakers.admit(&key, std::time::Instant::now()) {
            let mut f = Fault::with_detail(
                FaultCode::AmcUnavailable,
                format!(
                    "circuit open for {key} after {} consecutive failures: next try in {} s",
                    open.failures,
                    open.retry_in.as_secs().max(1)
                ),
            );
            f.retry_after = Some(open.retry_in.as_secs().max(1) as u32);
            return Err(AmcError::Fault(f));
        }
        let started = Instant::now();
        let r = forward(&upstreams.amc, endpoint, headers, stamped, &self.budget).await;
        // An answer (even the AMC's SOAP fault, even one too large for the memory budget) means
        // the AMC is alive.
        let alive = match &r {
            Ok(_) => true,
            Err(f) => f.code == FaultCode::Overloaded,
        };
        self.breakers.record(&key, alive, std::time::Instant::now());
        let (outcome, status) = match &r {
            Ok(resp) if resp.status().is_success() => ("ok", resp.status().as_u16()),
            Ok(resp) => ("amc-error", resp.status().as_u16()),
            Err(f) => (f.code.as_str(), 0),
        };
        self.audit.record(&crate::audit::Record {
            time: crate::audit::now_rfc3339(),
            caller,
            assertion_id: &signed.id,
            reused: signed.reused,
            audience: &signed.audience,
            amc,
            service,
            signer_serial: &signed.signer_serial,
            outcome,
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        Ok(r?)
    }

    /// The request's deadline: the configured one, shortened by `X-Rocgw-Deadline-Ms`.
    fn deadline_for(&self, headers: &HeaderMap) -> Result<std::time::Duration, Fault> {
        let Some(v) = headers.get(DEADLINE_HEADER) else {
            return Ok(self.deadline);
        };
        match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(ms) if ms > 0 => Ok(self.deadline.min(std::time::Duration::from_millis(ms))),
            _ => Err(Fault::with_detail(
                FaultCode::NotFound,
                "X-Rocgw-Deadline-Ms: a whole number of milliseconds greater than 0",
            )),
        }
    }

    /// A slot among the calls in progress to this AMC, or `overloaded`.
    fn amc_slot(&self, amc: &str) -> Result<tokio::sync::OwnedSemaphorePermit, Fault> {
        let (key, _) = self.router.labels(amc, "-");
        let sem = {
            let mut m = self.per_amc.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key.to_string())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.max_per_amc)))
                .clone()
        };
        sem.try_acquire_owned().map_err(|_| {
            overloaded(format!(
                "more than {} calls in progress to this AMC",
                self.max_per_amc
            ))
        })
    }

    /// The annuaire cache, for the admin status.
    pub fn directory(&self) -> Option<Arc<crate::annuaire::Directory>> {
        self.router.directory()
    }

    /// Handles one request; never fails: errors become SOAP faults.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: Peer) -> HttpResponse {
        let started = Instant::now();
        let path = req.uri().path().to_string();
        let m = metrics::get();
        let mut guard = InFlight::enter();
        let hint = version_from_content_type(&req);
        let is_annuaire = matches!(target(&path), Some(Target::Annuaire));
        let (route, result) = match self.deadline_for(req.headers()) {
            Err(f) => {
                drain(req.into_body(), self.max_body_bytes);
                ("-", Err((f, hint)))
            }
            Ok(deadline) => {
                match tokio::time::timeout(deadline, self.route(req, &peer, &path, hint)).await {
                    Ok(r) => r,
                    // The upstream call is dropped with the future: nothing keeps running.
                    Err(_) => {
                        let code = if is_annuaire {
                            FaultCode::AnnuaireUnavailable
                        } else {
                            FaultCode::AmcTimeout
                        };
                        let f = Fault::with_detail(
                            code,
                            format!(
                                "the request's deadline of {} ms passed",
                                deadline.as_millis()
                            ),
                        );
                        (if is_annuaire { "annuaire" } else { "amc" }, Err((f, hint)))
                    }
                }
            }
        };
        guard.done = true;
        m.request_seconds
            .with_label_values(&[route])
            .observe(started.elapsed().as_secs_f64());
        let outcome = match &result {
            Ok(r) if r.status().is_success() => "ok",
            Ok(_) => "amc-error",
            Err((f, _)) => f.code.as_str(),
        };
        let (amc, service) = match target(&path) {
            Some(Target::Amc { amc, service }) => self.router.labels(amc, service),
            _ => ("-", "-".to_string()),
        };
        m.requests
            .with_label_values(&[route, amc, &service, outcome])
            .inc();
        let mut resp = match result {
            Ok(r) => r,
            Err((fault, version)) => {
                m.faults.with_label_values(&[fault.code.as_str()]).inc();
                tracing::info!(
                    peer = %peer,
                    route = route,
                    fault = fault.code.as_str(),
                    detail = fault.detail.as_deref().unwrap_or(""),
                    latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request refused"
                );
                fault.to_response(version, self.status_mode)
            }
        };
        if self.sandbox {
            resp.headers_mut()
                .insert(SANDBOX_HEADER, HeaderValue::from_static("1"));
        }
        tracing::debug!(path = %path, status = resp.status().as_u16(), "request done");
        resp
    }

    /// Routes one request; `path` and `hint` (the fault version before the body is read) are
    /// the request's, computed once by `handle`.
    async fn route(
        &self,
        req: Request<Incoming>,
        peer: &Peer,
        path: &str,
        hint: SoapVersion,
    ) -> (&'static str, Result<HttpResponse, (Fault, SoapVersion)>) {
        // A request refused before its body is read: the body is drained (not kept) in the
        // background so the SIH, still sending, reads the fault instead of a reset.
        let refuse = |req: Request<Incoming>, f: Fault| {
            drain(req.into_body(), self.max_body_bytes);
            ("-", Err((f, hint)))
        };
        let caller = match self.access.check(peer, req.headers()) {
            Ok(c) => c,
            Err(f) => return refuse(req, f),
        };
        // Over capacity: say so at once rather than queue without bound.
        let Ok(_admitted) = self.admission.clone().try_acquire_owned() else {
            let f = overloaded(format!(
                "more than {} requests in progress",
                self.max_concurrent
            ));
            return refuse(req, f);
        };
        let Some(t) = target(path) else {
            let f = Fault::with_detail(
                FaultCode::NotFound,
                "use POST /amc/{numero_amc}/{service} or POST /annuaire",
            );
            return refuse(req, f);
        };
        let route = match t {
            Target::Amc { .. } => "amc",
            Target::Annuaire => "annuaire",
        };
        if req.method() != Method::POST {
            let f = Fault::with_detail(FaultCode::NotFound, "only POST is served here");
            return (route, refuse(req, f).1);
        }
        let headers = req.headers().clone();
        let query = req.uri().query().map(str::to_string);
        let (body, _budget) = match self.read_body(req).await {
            Ok(b) => b,
            Err(f) => return (route, Err((f, hint))),
        };
        let version = match soap::sniff(&body) {
            Ok(v) => v,
            Err(e) => {
                let r = crate::fault::VersionedFault::from(e);
                return (route, Err((r.fault, r.version)));
            }
        };
        let upstreams = self.runtime.upstreams();
        let r = match t {
            Target::Amc { amc, service } => {
                match self
                    .amc_call(amc, service, &headers, &body, &upstreams, &caller)
                    .await
                {
                    Ok(r) => Ok(r),
                    // Refused before forwarding (stamping): the fault keeps its own version.
                    Err(AmcError::Stamp(f, v)) => return (route, Err((f, v))),
                    Err(AmcError::Fault(f)) => Err(f),
                }
            }
            Target::Annuaire => match &upstreams.annuaire {
                None => Err(Fault::with_detail(
                    FaultCode::AnnuaireUnavailable,
                    "no annuaire.url configured",
                )),
                Some((up, base)) => {
                    let suffix = path.strip_prefix("/annuaire").unwrap_or("");
                    match join(base, suffix, query.as_deref()) {
                        Ok(url) => forward(up, url, &headers, body, &self.budget).await,
                        Err(f) => Err(f),
                    }
                }
            },
        };
        (route, r.map_err(|f| (f, version)))
    }

    /// Reads the body under the size limit and the memory budget (`budget::read`). A refused
    /// body is drained, not kept, so the SIH reads the fault.
    async fn read_body(
        &self,
        req: Request<Incoming>,
    ) -> Result<(Bytes, Option<crate::budget::Held>), Fault> {
        use crate::budget::ReadError;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut body = req.into_body();
        let max = self.max_body_bytes;
        match crate::budget::read(&mut body, declared, max, Some(&self.budget), 0).await {
            Ok(read) => Ok(read),
            Err(ReadError::TooLarge) => {
                drain(body, max);
                Err(Fault::with_detail(
                    FaultCode::BodyTooLarge,
                    format!("the limit is {max} bytes"),
                ))
            }
            Err(ReadError::OverBudget) => {
                drain(body, max);
                Err(self.over_budget())
            }
            Err(ReadError::Body(_)) => Err(Fault::with_detail(
                FaultCode::NotSoap,
                "the request body could not be read completely",
            )),
        }
    }

    fn over_budget(&self) -> Fault {
        overloaded(format!(
            "the {} MiB for request bodies in progress (server.max_buffered_bytes) are in use",
            self.budget.bytes() / (1024 * 1024)
        ))
    }

    /// Inserts the signed assertion (audience: the endpoint, unless the profile fixes one).
    async fn stamp(
        &self,
        body: &Bytes,
        endpoint: &Uri,
    ) -> Result<(Bytes, Signed), (Fault, SoapVersion)> {
        let profile = &self.runtime.config().assertion;
        let plan = wssec::plan(body, profile)?;
        let audience = match &profile.audience {
            Some(a) => a.clone(),
            None => endpoint.to_string(),
        };
        let now = crate::clock::now_unix();
        let audience_for_audit = audience.clone();
        let (assertion, reused) = match self.runtime.assertions.lookup(profile, &audience, now) {
            Some(a) => (a, true),
            None => {
                // An RSA-2048 signature takes 0.3–0.8 ms: it runs on the blocking pool so the
                // async workers keep serving other connections. Two permits per core, each
                // released by the signing thread itself, keep a signature queued behind the
                // running one (one permit per core held until the task resumed lost 30–35 % of
                // the throughput to thread hand-offs: bench/signing_pool.rs).
                let permit = self
                    .signing
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| (Fault::new(FaultCode::Internal), plan.version))?;
                let rt = self.runtime.clone();
                tokio::task::spawn_blocking(move || {
                    let profile = &rt.config().assertion;
                    let t = Instant::now();
                    let a = wssec::build_assertion(profile, &rt.signer(), &audience, now);
                    metrics::get()
                        .signing_seconds
                        .observe(t.elapsed().as_secs_f64());
                    drop(permit);
                    rt.assertions.insert(profile, &a);
                    a
                })
                .await
                .map(|a| (a, false))
                .map_err(|_| (Fault::new(FaultCode::Internal), plan.version))?
            }
        };
        tracing::debug!(assertion = %assertion.id, "assertion ready");
        let signed = Signed {
            id: assertion.id.clone(),
            reused,
            audience: audience_for_audit,
            signer_serial: self.runtime.sign.current().info.serial.clone(),
        };
        Ok((
            Bytes::from(wssec::stamp(
                body,
                &plan,
                &assertion.xml,
                profile.must_understand,
            )),
            signed,
        ))
    }
}

/// Why an AMC call failed: before the envelope was stamped (its own SOAP version), or after.
enum AmcError {
    Stamp(Fault, SoapVersion),
    Fault(Fault),
}

impl From<Fault> for AmcError {
    fn from(f: Fault) -> Self {
        AmcError::Fault(f)
    }
}

/// The `overloaded` fault, with `Retry-After: 1`.
fn overloaded(detail: String) -> Fault {
    let mut f = Fault::with_detail(FaultCode::Overloaded, detail);
    f.retry_after = Some(1);
    f
}

/// Reads and drops a refused request's body in the background: at most `limit` bytes and
/// [`DRAIN_TIME`], never kept in memory.
fn drain(body: Incoming, limit: usize) {
    tokio::spawn(async move {
        let mut body = body;
        let mut seen = 0usize;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > limit {
                    break;
                }
            }
        })
        .await;
    });
}

/// How long a refused request's body is drained.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// One request in `rocgw_in_flight_requests`. Dropped unfinished when the SIH closes its
/// connection before the answer: hyper then drops the request's future, which abandons the
/// upstream call (its connection is closed, nothing keeps running); counted as `client-gone`.
struct InFlight {
    done: bool,
}

impl InFlight {
    fn enter() -> InFlight {
        metrics::get().in_flight.inc();
        InFlight { done: false }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let m = metrics::get();
        m.in_flight.dec();
        if !self.done {
            m.requests
                .with_label_values(&["-", "-", "-", "client-gone"])
                .inc();
            tracing::info!("the SIH closed its connection before the answer: call abandoned");
        }
    }
}

/// What was signed for one AMC call (for the audit log).
struct Signed {
    id: String,
    reused: bool,
    audience: String,
    signer_serial: String,
}

/// The annuaire URL with the path below `/annuaire` appended and the SIH's query string.
fn join(base: &Uri, suffix: &str, query: Option<&str>) -> Result<Uri, Fault> {
    let mut path = base.path().trim_end_matches('/').to_string();
    path.push_str(suffix);
    if path.is_empty() {
        path.push('/');
    }
    if let Some(q) = query.or(base.query()) {
        path.push('?');
        path.push_str(q);
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query =
        Some(path.parse().map_err(|_| {
            Fault::with_detail(FaultCode::NotFound, "invalid path below /annuaire")
        })?);
    Uri::from_parts(parts).map_err(|_| Fault::new(FaultCode::Internal))
}

/// Sends the SIH's body to `url` through `up` and returns the upstream's answer as it came:
/// status, content type and body (SOAP faults of the AMC pass through untouched). A non-2xx
/// answer that is not SOAP becomes an `…-unavailable` fault.
async fn forward(
    up: &Upstream,
    url: Uri,
    headers: &HeaderMap,
    body: Bytes,
    budget: &crate::budget::Budget,
) -> Result<HttpResponse, Fault> {
    let host = url.host().unwrap_or("").to_string();
    let mut req = Request::post(url);
    for name in FORWARDED_REQUEST_HEADERS {
        for v in headers.get_all(name) {
            req = req.header(HeaderName::from_static(name), v.clone());
        }
    }
    let req = req
        .header(USER_AGENT, crate::upstream::USER_AGENT)
        .body(Full::new(body))
        .map_err(|_| Fault::new(FaultCode::Internal))?;
    match up.send_within(req, Some(budget)).await {
        // An error page (a load balancer's 502/503 HTML, an empty 500) is not the AMC's answer:
        // the SIH gets a SOAP fault that says what came back.
        Ok(r) if !r.status.is_success() && crate::soap::sniff(&r.body).is_err() => {
            let detail = format!(
                "the {} answered HTTP {} without a SOAP envelope",
                up.kind().label(),
                r.status.as_u16()
            );
            tracing::warn!(upstream = up.kind().label(), host = %host, status = r.status.as_u16(), "upstream error without SOAP");
            Err(Fault::with_detail(up.kind().unavailable(), detail))
        }
        Ok(r) => {
            let mut resp = Response::new(Full::new(r.body));
            *resp.status_mut() = r.status;
            for name in FORWARDED_RESPONSE_HEADERS {
                if let Some(v) = r.headers.get(name) {
                    resp.headers_mut()
                        .insert(HeaderName::from_static(name), v.clone());
                }
            }
            Ok(resp)
        }
        Err(UpstreamError {
            code,
            reason,
            detail,
        }) => {
            tracing::warn!(upstream = up.kind().label(), host = %host, reason, detail = %detail, "upstream failure");
            // No Retry-After on an answer refused for memory: the AMC may have acted on the call.
            Err(Fault::with_detail(code, detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_targets() {
        assert_eq!(
            target("/amc/12345678/idb"),
            Some(Target::Amc {
                amc: "12345678",
                service: "idb"
            })
        );
        assert_eq!(
            target("/amc/12345678/CLC/"),
            Some(Target::Amc {
                amc: "12345678",
                service: "CLC"
            })
        );
        assert_eq!(target("/annuaire"), Some(Target::Annuaire));
        assert_eq!(target("/annuaire/search"), Some(Target::Annuaire));
        assert_eq!(target("/annuairex"), None);
        assert_eq!(target("/amc/12345678"), None);
        assert_eq!(target("/amc//idb"), None);
        assert_eq!(target("/amc/1/idb/x"), None);
    }
}

//! The gateway: what a SIH calls. A request takes these hops in order, one file each:
//! `listener` (accept, header limits) → `access` (who may call) → [`structure`] (which hospital
//! structure signs, and whether this caller may) → [`target`] (what it asks, read once) →
//! [`admission`] (body at a minimum pace under the memory budget, then request slot and AMC
//! slot) →
//! [`route`] (static route, explicit endpoint or annuaire) → [`stamp`] (signed assertion) →
//! [`forward`] (to the AMC or the annuaire) → [`answer`] (the answer or a SOAP fault, metrics,
//! audit). One [`VersionedFault`](crate::fault::VersionedFault) travels back from every hop. Bodies are never logged.
//!
//! Routes: `POST /amc/{numero_amc}/{service}` (an AMC web-service call) and
//! `POST /annuaire[/…]` (a pass-through to the Annuaire AMC over mutual TLS).

mod admission;
mod answer;
mod forward;
mod route;
mod stamp;
mod structure;
mod target;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, Request};

use crate::access::{Access, Caller};
use crate::audit::Audit;
use crate::breaker::Breakers;
use crate::config::ResponseSignature;
use crate::fault::{Fault, FaultCode, StatusMode};
use crate::listener::{Body, HttpResponse, Peer};
use crate::metrics::{self, AmcFailure};
use crate::runtime::Runtime;
use crate::slots::Gated;
use crate::soap::{self, SoapVersion};
use crate::wssec::response::Signed;
use crate::wssec::Charset;
use admission::{Admission, InFlight};
use answer::{AmcCall, Finished, Outcome};
use stamp::Stamper;
use structure::Selector;
use target::Target;

pub use route::{endpoint_allowed, Router, ENDPOINT_HEADER, ROUTING_HEADERS};
pub use structure::STRUCTURE_HEADER;
pub use target::DEADLINE_HEADER;

/// What the gateway listener needs, built once from the configuration.
#[derive(Debug)]
pub struct Gateway {
    runtime: Arc<Runtime>,
    access: Access,
    /// Which structure signs, and who may use which.
    structures: Selector,
    admission: Admission,
    /// Static routes, explicit endpoints, the annuaire.
    router: Router,
    stamper: Stamper,
    /// One circuit breaker per AMC endpoint.
    breakers: Breakers,
    /// One record per signed AMC call.
    audit: Audit,
    /// End-to-end deadline of a request.
    deadline: Duration,
    status_mode: StatusMode,
    sandbox: bool,
}

impl Gateway {
    pub fn new(runtime: Arc<Runtime>, sandbox: bool) -> Result<Gateway, String> {
        let cfg = runtime.config();
        // The AMCs of static routes have their call and failure series from the start.
        for amc in cfg.routes.keys() {
            metrics::get().amc_born(amc);
        }
        Ok(Gateway {
            audit: Audit::open(cfg.audit_file.as_deref())?,
            admission: Admission::new(&cfg.server, cfg.amc.max_concurrent_per_amc),
            breakers: Breakers::new(cfg.amc.breaker_failures, cfg.amc.breaker_open),
            deadline: cfg.server.request_deadline,
            status_mode: cfg.server.http_status,
            access: Access::new(&cfg.access),
            structures: Selector::new(
                runtime.structures().map(|s| s.id.clone()).collect(),
                runtime.structure().id.clone(),
                cfg.access.grants.clone(),
            ),
            router: Router::new(cfg, &runtime),
            stamper: Stamper::default(),
            sandbox,
            runtime,
        })
    }

    /// The annuaire caches (one per structure), for the admin status.
    pub fn directories(&self) -> Vec<Arc<crate::annuaire::Directory>> {
        self.router.directories()
    }

    /// The listeners' gate: the request slots, waited for before a head is parsed, within
    /// the deadline the request may set in `X-Rocgw-Deadline-Ms`. None with per-caller caps:
    /// requests then queue once their caller is known, so that one caller's flood cannot fill
    /// the queue before its cap refuses it.
    pub fn gate(&self) -> Option<crate::listener::Gate> {
        (!self.admission.has_caller_caps()).then(|| crate::listener::Gate {
            slots: self.admission.requests.clone(),
            deadline_field: target::DEADLINE_NAME.as_bytes(),
            deadline: target::deadline_value,
        })
    }

    /// Handles one request; never fails: errors become SOAP faults.
    pub async fn handle(self: Arc<Self>, req: Request<Body>, peer: Peer) -> HttpResponse {
        let mut in_flight = InFlight::enter();
        let (parts, body) = req.into_parts();
        // From the head's arrival: a wait at the listener's gate counts against the deadline.
        let arrived = body.arrived();
        let started = arrived.map_or_else(Instant::now, |t| t.into_std());
        let target = target::target(parts.uri.path());
        let hint = target::version_hint(&parts.headers);
        // Who called, once `access` said: named in the refusal log line as in the audit record.
        let mut caller = None;
        let (route, structure, result) = match target::deadline(&parts.headers, self.deadline) {
            Err(f) => {
                self.admission.drain(body);
                ("-", "-", Err(f.in_version(hint)))
            }
            Ok(deadline) => {
                let target = target.as_ref().map_err(|why| *why);
                let until = started + deadline;
                // Nothing left of it after the wait at the listener's gate: the deadline's
                // fault, not the gate's. Otherwise a timer only if the answer is not ready at
                // once (a refusal is).
                let spent = arrived.is_some() && until <= Instant::now();
                let served = if spent {
                    self.admission.drain(body);
                    None
                } else {
                    let serving =
                        self.serve(&parts, body, &peer, target, (hint, until), &mut caller);
                    crate::clock::within(until.into(), serving).await
                };
                match served {
                    Some(r) => r,
                    // The upstream call is dropped with the future: nothing keeps running.
                    None => {
                        let (route, r) = answer::deadline_passed(target.ok(), deadline, hint);
                        (route, "-", r)
                    }
                }
            }
        };
        in_flight.done = true;
        let ((amc, service), asked) = match &target {
            Ok(Target::Amc { amc, service }) => {
                (self.router.labels(amc, service), (*amc, service.as_str()))
            }
            _ => (("-", "-"), ("-", "-")),
        };
        let done = Finished {
            route,
            structure,
            amc,
            service,
            asked,
            caller: caller.as_ref().map_or("-", |c: &Caller| &*c.name),
            peer: &peer,
            started,
        };
        let resp = answer::respond(&done, result, self.status_mode, self.sandbox);
        tracing::debug!(path = %parts.uri.path(), status = resp.status().as_u16(), "request done");
        resp
    }

    /// The hops from the caller check to the answer; `target` (or why the path is not served)
    /// and `hint` (the fault version before the body is read) were read once by `handle`.
    async fn serve(
        &self,
        parts: &Parts,
        mut body: Body,
        peer: &Peer,
        target: Result<&Target<'_>, &'static str>,
        (hint, until): (SoapVersion, Instant),
        who: &mut Option<Caller>,
    ) -> (&'static str, &str, Outcome) {
        // A request refused before its body is read: the body is drained (not kept) after the
        // answer so the SIH, still sending, reads the fault instead of a reset.
        let refuse = |body: Body, f: Fault| {
            self.admission.drain(body);
            Err(f.in_version(hint))
        };
        let caller: &Caller = match self.access.check(peer, &parts.headers) {
            Ok(c) => who.insert(c),
            Err(f) => return ("-", "-", refuse(body, f)),
        };
        let structure = match self.structures.select(caller, &parts.headers) {
            Ok(s) => s,
            Err(f) => return ("-", "-", refuse(body, f)),
        };
        // No route, or a path refused as it was sent (`..`, `%2e`, `//`…): nothing of the
        // request goes further.
        let target = match target {
            Ok(t) => t,
            Err(why) => {
                let f = Fault::with_detail(FaultCode::NotFound, why);
                return ("-", structure, refuse(body, f));
            }
        };
        let route = target.route();
        if parts.method != Method::POST {
            let f = Fault::with_detail(FaultCode::NotFound, "only POST is served here");
            return (route, structure, refuse(body, f));
        }
        if let Err(f) = target::plain_body(&parts.headers) {
            return (route, structure, refuse(body, f));
        }
        let caller_share = match self.admission.caller(&caller.name) {
            Ok(hold) => hold,
            Err(f) => return (route, structure, refuse(body, f)),
        };
        // Shed at the listener's gate: refused before its body is read.
        let gated = match body.gated() {
            Gated::Shed => return (route, structure, refuse(body, self.admission.full())),
            Gated::Slot(slot) => Some(slot),
            Gated::Open => None,
        };
        // The body, then a request slot: a slow body holds its bytes and connection, not a
        // slot; over capacity, a short wait, then `overloaded` rather than a queue without
        // bound.
        let admitted = self
            .admission
            .body_then_slot(&parts.headers, body, &caller_share, gated);
        let (body, _held, _slot) = match admitted.await {
            Ok(b) => b,
            Err(f) => return (route, structure, Err(f.in_version(hint))),
        };
        let version = match soap::sniff(&body) {
            Ok(v) => v,
            Err(e) => return (route, structure, Err(e.into())),
        };
        let result = match target {
            Target::Amc { amc, service } => {
                let call = Call {
                    amc,
                    service,
                    structure,
                    headers: &parts.headers,
                    caller: &caller.name,
                    version,
                    until,
                };
                self.amc(&call, &body).await
            }
            Target::Annuaire { suffix } => self
                .annuaire(structure, suffix, parts.uri.query(), &parts.headers, body)
                .await
                .map_err(|f| f.in_version(version)),
        };
        (route, structure, result)
    }

    /// One AMC call: a slot for this AMC, the endpoint, the stamped body, the breaker, the
    /// forward, the audit record.
    async fn amc(&self, call: &Call<'_>, body: &Bytes) -> Outcome {
        let in_version = |f: Fault| f.in_version(call.version);
        let label = self.router.amc_label(call.amc);
        let _slot = self.admission.amc_slot(label).await.map_err(in_version)?;
        let endpoint = self
            .router
            .resolve(call.structure, call.amc, call.service, call.headers)
            .await
            .map_err(in_version)?;
        // Refused before forwarding (stamping): the fault speaks the envelope's version, the
        // one sniffed, even when the planner refused before its root (the encoding).
        let stamping = self.stamper.stamp(
            &self.runtime,
            call.structure,
            body,
            &endpoint,
            crate::wssec::media::charset_in(call.headers),
        );
        let (stamped, signed) = stamping
            .await
            .map_err(|f| f.fault.in_version(call.version))?;
        let key = endpoint.authority().map_or("", |a| a.as_str());
        // Labelled once the endpoint is known: an AMC the annuaire just found is no longer `other`.
        let known = self.router.amc_label(call.amc);
        let attempt = metrics::AmcAttempt::begin(known, call.until);
        if let Err(open) = self.breakers.admit(key, Instant::now()) {
            attempt.end(Some(AmcFailure::CircuitOpen));
            return Err(in_version(forward::circuit_open(key, &open)));
        }
        let started = Instant::now();
        let upstreams = self.runtime.upstreams();
        let budget = &self.admission.budget;
        let amc = &upstreams.of(call.structure).amc;
        let mode = self.runtime.config().amc.response_signature_for(call.amc);
        let check = |b: &[u8], http| self.response_signature(mode, b, http);
        let check = (mode != ResponseSignature::Off).then_some(&check as forward::Check<'_>);
        let r = forward::forward(amc, &endpoint, call.headers, stamped, budget, check).await;
        attempt.end(r.as_ref().err().and_then(|f| AmcFailure::of(f.code)));
        // An answer (even the AMC's SOAP fault, one too large for the memory budget, one whose
        // signature is refused) means the AMC is alive.
        let alive = match &r {
            Ok(_) => true,
            Err(f) => matches!(
                f.code,
                FaultCode::Overloaded | FaultCode::AmcSignatureInvalid
            ),
        };
        self.breakers.record(key, alive, Instant::now());
        let record = AmcCall {
            caller: call.caller,
            structure: call.structure,
            amc: call.amc,
            service: call.service,
            signed: &signed,
            started,
        };
        record.audit(&self.audit, &r);
        r.map_err(in_version)
    }

    /// The annuaire pass-through: the path below `/annuaire` and the query, over the annuaire's
    /// mutual-TLS client.
    async fn annuaire(
        &self,
        structure: &str,
        suffix: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, Fault> {
        let upstreams = self.runtime.upstreams();
        let Some((up, base)) = &upstreams.of(structure).annuaire else {
            return Err(Fault::with_detail(
                FaultCode::AnnuaireUnavailable,
                "no annuaire.url configured",
            ));
        };
        let url = forward::join(base, suffix, query)?;
        forward::forward(up, &url, headers, body, &self.admission.budget, None).await
    }

    /// The AMC answer's signature under `mode` (`[amc] response_signature`), the answer's HTTP
    /// `charset` naming `http`: the encoding a valid signature was checked in, if any.
    fn response_signature(
        &self,
        mode: ResponseSignature,
        body: &[u8],
        http: Option<Charset>,
    ) -> Result<Option<Charset>, Fault> {
        let trust = self.runtime.trust();
        let policy = self.runtime.config().amc.revocation;
        let now = crate::clock::now_unix();
        let refused = |why: String| {
            tracing::warn!(reason = %why, "AMC answer refused: signature");
            Err(Fault::with_detail(FaultCode::AmcSignatureInvalid, why))
        };
        match crate::wssec::response::verify_response(body, http, &trust.amc, policy, now) {
            Ok(Signed::Yes { charset, .. }) => Ok(Some(charset)),
            Ok(Signed::No) if mode == ResponseSignature::IfPresent => Ok(None),
            Ok(Signed::No) => {
                refused("the answer is not signed (response_signature = required)".into())
            }
            Err(e) => refused(e.to_string()),
        }
    }
}

/// An AMC call's facts, read off the request.
struct Call<'a> {
    amc: &'a str,
    /// Lower case, as `target` read it: what routing, metrics and the audit record say.
    service: &'a str,
    /// The hospital structure that signs (`structure`).
    structure: &'a str,
    headers: &'a HeaderMap,
    caller: &'a str,
    /// The envelope's SOAP version: every fault after the body was read speaks it.
    version: SoapVersion,
    /// The request's deadline: an AMC call cut by it is an AMC timeout.
    until: Instant,
}

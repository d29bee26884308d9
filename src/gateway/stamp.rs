//! The WS-Security hop of an AMC call: the SIH's envelope checked and planned once, a SAML
//! assertion signed with ORG SIGN (or a reused one), inserted in the header. Signatures run on
//! the blocking pool behind a bounded number of permits, or in place when the process has one
//! core (a hand-off to another thread would only add two context switches per signature).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Uri;
use tokio::sync::Semaphore;

use crate::fault::{Fault, FaultCode, VersionedFault};
use crate::metrics;
use crate::runtime::Runtime;
use crate::wssec;

/// What was signed for one AMC call (for the audit log).
pub struct Signed {
    pub id: String,
    pub reused: bool,
    pub audience: String,
    pub signer_serial: String,
}

/// Signs assertions for the gateway: two signatures in progress per core at most.
#[derive(Debug)]
pub struct Stamper {
    permits: Arc<Semaphore>,
    /// One core for the process (`taskset`, a container's CPU set): sign on the worker itself.
    in_place: bool,
}

impl Default for Stamper {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Stamper {
            permits: Arc::new(Semaphore::new(2 * cores)),
            in_place: cores == 1,
        }
    }
}

/// Signs a fresh assertion for `audience` and keeps it for reuse; its time in the signing metric.
fn sign_fresh(
    st: &crate::runtime::Structure,
    signer: &wssec::Signer,
    audience: &str,
    now: i64,
) -> wssec::SignedAssertion {
    let t = Instant::now();
    let a = wssec::build_assertion(&st.profile, signer, audience, now);
    metrics::get()
        .signing_seconds
        .observe(t.elapsed().as_secs_f64());
    st.sign.assertions.insert(&st.profile, &a);
    a
}

impl Stamper {
    /// Inserts the signed assertion (audience: the endpoint, unless the profile fixes one) in
    /// `body`, whose HTTP `charset` names `http`. A refused envelope's fault is in the version
    /// the planner knew (SOAP 1.2 before the root: the gateway writes it in the sniffed one).
    pub async fn stamp(
        &self,
        rt: &Arc<Runtime>,
        structure: &str,
        body: &Bytes,
        endpoint: &Uri,
        http: Option<wssec::Charset>,
    ) -> Result<(Bytes, Signed), VersionedFault> {
        let st = rt
            .structure_by_id(structure)
            .unwrap_or_else(|| rt.structure());
        let profile = &st.profile;
        let plan = wssec::plan_in(body, profile, http)?;
        let internal = || VersionedFault {
            fault: Fault::new(FaultCode::Internal),
            version: plan.version,
        };
        let audience = match &profile.audience {
            Some(a) => a.clone(),
            None => endpoint.to_string(),
        };
        let now = crate::clock::now_unix();
        let sign = &st.sign;
        // The serial audited is the one of the key that signs (a reload swaps both together).
        let signer = sign.signer();
        let (assertion, reused) = match sign.assertions.lookup(profile, &audience, now) {
            Some(a) => (a, true),
            None if self.in_place => (sign_fresh(st, &signer, &audience, now), false),
            None => {
                // An RSA-2048 signature takes 0.3–0.8 ms: it runs on the blocking pool so the
                // async workers keep serving other connections. Two permits per core, each
                // released by the signing thread itself, keep a signature queued behind the
                // running one (one permit per core held until the task resumed lost 30–35 % of
                // the throughput to thread hand-offs: bench/signing_pool.rs).
                let permit = self
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| internal())?;
                let (rt, signer) = (rt.clone(), signer.clone());
                let (audience, id) = (audience.clone(), st.id.clone());
                tokio::task::spawn_blocking(move || {
                    let st = rt.structure_by_id(&id).expect("a configured structure");
                    let a = sign_fresh(st, &signer, &audience, now);
                    drop(permit);
                    a
                })
                .await
                .map(|a| (a, false))
                .map_err(|_| internal())?
            }
        };
        tracing::debug!(assertion = %assertion.id, "assertion ready");
        let signed = Signed {
            id: assertion.id.clone(),
            reused,
            audience,
            signer_serial: signer.serial.clone(),
        };
        let stamped = wssec::stamp(body, &plan, &assertion.xml, profile.must_understand);
        Ok((Bytes::from(stamped), signed))
    }
}

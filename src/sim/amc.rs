//! A simulated AMC service: refuses what a real AMC would refuse (the checks live in
//! `check`), answers the rest, after the AMC's injected faults.

use std::sync::Arc;

use crate::listener::Body;
use bytes::Bytes;
use http::{Request, StatusCode};

use super::answer;
use super::server::{inject, injected_status, read_body, with_reason, xml, Amc, State};
use super::{Action, Refusal};
use crate::clock::now_unix;
use crate::listener::{self, HttpResponse};
use crate::soap::SoapVersion;
use crate::wssec::Charset;

/// Answers one request to `amc`; `None` asks for the connection to be reset.
pub(super) async fn handle(
    state: Arc<State>,
    amc: Arc<Amc>,
    req: Request<Body>,
) -> Option<HttpResponse> {
    let path = req.uri().path().to_string();
    let prefix = format!("/amc/{}/", amc.numero);
    let service = path
        .strip_prefix(&prefix)
        .map(|s| s.trim_end_matches('/').to_ascii_lowercase())
        .unwrap_or_default();
    let count = |outcome: &str, reason: &str| {
        state
            .counters
            .requests
            .with_label_values(&[&amc.numero, &service, outcome, reason])
            .inc()
    };
    // The binding's two fields (the first of each), kept before the body is read.
    let (content_type, soap_action) = {
        let first = |name: &str| req.headers().get(name).map(|v| v.as_bytes().to_vec());
        (first("content-type"), first("soapaction"))
    };
    // The envelope in its HTTP charset when it declares no encoding, as rocgw reads it.
    let http = crate::wssec::media::charset_in(req.headers());
    let Some(body) = read_body(req).await else {
        count("refused", "not-soap");
        return Some(listener::text(StatusCode::BAD_REQUEST, "unreadable body\n"));
    };
    let sniffed = crate::soap::sniff(&body);
    let version = sniffed
        .as_ref()
        .map_or(crate::soap::DEFAULT_FAULT_VERSION, |v| *v);
    let action = inject(&amc.faults).await;
    if !amc.services.contains(&service) {
        count("refused", "unknown-service");
        let f = answer::fault(
            version,
            true,
            "unknown-service",
            "Service inconnu de cette AMC",
            &format!("{path} (services: {})", amc.services.join(", ")),
        );
        return Some(with_reason(
            signed(&state, &amc, StatusCode::NOT_FOUND, version, f),
            "unknown-service",
        ));
    }
    if action != Action::Answer {
        count("injected", action.as_str());
        return injected(&state, &amc, action, version);
    }
    // An envelope sent as its SOAP version's binding says; what is not SOAP at all is the
    // checks' `not-soap`.
    let sent_as = sniffed.map_or(Ok(()), |v| {
        super::check::binding(v, content_type.as_deref(), soap_action.as_deref())
    });
    let checked = match sent_as {
        Ok(()) => check(&state, &amc, &body, http).await,
        Err(r) => Err(r),
    };
    match checked {
        Ok(assertion_id) => {
            count("accepted", "");
            let known = state.unknown_marker.is_empty()
                || memchr::memmem::find(&body, state.unknown_marker.as_bytes()).is_none();
            let text = answer::answer(
                version,
                &amc.numero,
                &service,
                known,
                answer::seed(&body),
                &assertion_id,
            );
            Some(signed(&state, &amc, StatusCode::OK, version, text))
        }
        Err(r) => {
            count("refused", r.reason);
            tracing::info!(amc = %amc.numero, service = %service, reason = r.reason, "simulator refused a request");
            Some(refused(&state, &amc, version, &r))
        }
    }
}

/// An answer of `amc`, signed as its faults say when the simulator signs answers.
fn signed(
    state: &State,
    amc: &Amc,
    status: StatusCode,
    version: SoapVersion,
    text: String,
) -> HttpResponse {
    let text = match &state.signer {
        Some(s) => s.sign(amc.faults.load().signature, &text),
        None => text,
    };
    xml(status, version, text)
}

/// The answer an injected fault asks for (`None`: reset the connection).
fn injected(
    state: &State,
    amc: &Amc,
    action: Action,
    version: SoapVersion,
) -> Option<HttpResponse> {
    match action {
        Action::Answer | Action::Reset => None,
        Action::Http500 | Action::Http503 => Some(with_reason(
            listener::text(injected_status(action), "simulated failure\n"),
            action.as_str(),
        )),
        Action::SoapFault => {
            let f = answer::fault(
                version,
                false,
                "injected-fault",
                "Erreur technique simulée",
                "fault injected by the simulator",
            );
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            let answer = signed(state, amc, status, version, f);
            Some(with_reason(answer, "injected-fault"))
        }
    }
}

/// Checks the request as the AMC would; the accepted assertion's ID. The checks cost a
/// signature verification and a DOM parse: off the async workers.
async fn check(
    state: &Arc<State>,
    amc: &Arc<Amc>,
    body: &Bytes,
    http: Option<Charset>,
) -> Result<String, Refusal> {
    let (state, amc, body) = (state.clone(), amc.clone(), body.clone());
    tokio::task::spawn_blocking(move || {
        state.checker.check(&body, http, &amc.audiences, now_unix())
    })
    .await
    .unwrap_or_else(|_| {
        Err(Refusal {
            reason: "not-soap",
            detail: "the check failed".into(),
        })
    })
    .map(|a| a.id)
}

/// The SOAP fault of a refused request (HTTP 500 in SOAP 1.1, 400 in SOAP 1.2).
fn refused(state: &State, amc: &Amc, version: SoapVersion, r: &Refusal) -> HttpResponse {
    let f = answer::fault(
        version,
        true,
        r.reason,
        "Requête refusée par l'AMC",
        &r.detail,
    );
    let status = match version {
        SoapVersion::V11 => StatusCode::INTERNAL_SERVER_ERROR,
        SoapVersion::V12 => StatusCode::BAD_REQUEST,
    };
    with_reason(signed(state, amc, status, version, f), r.reason)
}

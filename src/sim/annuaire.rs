//! The simulated Annuaire AMC: answers a lookup with the simulated AMCs' endpoints (or the
//! configured extra entries), after the annuaire's own injected faults.

use crate::listener::Body;
use http::{Request, StatusCode};

use super::answer;
use super::server::{inject, injected_status, read_body, with_reason, xml, State};
use super::Action;
use crate::annuaire::{parse_search_request, search_response, Answer, Entry, Lookup};
use crate::listener::{self, HttpResponse};
use crate::soap::SoapVersion;

/// Answers one annuaire request; `None` asks for the connection to be reset.
pub(super) async fn handle(state: &State, req: Request<Body>) -> Option<HttpResponse> {
    let count = |r: &str| state.counters.annuaire.with_label_values(&[r]).inc();
    let path = req.uri().path().to_string();
    if req.method() != http::Method::POST || !path.starts_with("/annuaire") {
        count("not-found");
        return Some(listener::text(StatusCode::NOT_FOUND, "POST /annuaire\n"));
    }
    let Some(body) = read_body(req).await else {
        count("bad-request");
        return Some(listener::text(StatusCode::BAD_REQUEST, "unreadable body\n"));
    };
    match inject(&state.annuaire_faults).await {
        Action::Answer => {}
        Action::Reset => {
            count("injected-reset");
            return None;
        }
        action @ (Action::Http500 | Action::Http503 | Action::SoapFault) => {
            count(&format!("injected-{}", action.as_str()));
            let status = injected_status(action);
            return Some(listener::text(status, "simulated annuaire failure\n"));
        }
    }
    let lookup = match parse_search_request(&body) {
        Ok(l) => l,
        Err(e) => {
            count("bad-request");
            let f = answer::fault(
                SoapVersion::V11,
                true,
                "bad-request",
                "Requête invalide",
                &e,
            );
            return Some(with_reason(
                xml(StatusCode::INTERNAL_SERVER_ERROR, SoapVersion::V11, f),
                "bad-request",
            ));
        }
    };
    let answer = match entry(state, &lookup) {
        Some(e) => {
            count("found");
            Answer::Found(e)
        }
        None => {
            count("unknown-amc");
            Answer::UnknownAmc
        }
    };
    Some(xml(
        StatusCode::OK,
        SoapVersion::V11,
        search_response(&answer),
    ))
}

/// The entry of the AMC looked up, with the services asked for: a simulated AMC first, else
/// a configured extra entry.
fn entry(state: &State, lookup: &Lookup) -> Option<Entry> {
    let wanted = |service: &str| {
        lookup.code_service.is_empty() || lookup.code_service.eq_ignore_ascii_case(service)
    };
    match (
        state.amcs.get(&lookup.numero_amc),
        state.directory.get(&lookup.numero_amc),
    ) {
        (Some(a), _) => Some(Entry {
            numero_amc: a.numero.clone(),
            libelle: a.libelle.clone(),
            services: a
                .services
                .iter()
                .filter(|s| wanted(s))
                .map(|s| (s.clone(), format!("{}/{s}", a.base_url)))
                .collect(),
        }),
        (None, Some(e)) => Some(Entry {
            numero_amc: e.numero.clone(),
            libelle: e.libelle.clone(),
            services: e
                .services
                .iter()
                .filter(|(s, _)| wanted(s))
                .map(|(s, u)| (s.to_ascii_lowercase(), u.clone()))
                .collect(),
        }),
        (None, None) => None,
    }
}

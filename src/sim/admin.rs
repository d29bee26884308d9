//! The simulator's plain-HTTP admin port: `/healthz`, its own `/metrics` (the counters the
//! handlers update) and the fault-injection API (`/faults`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::listener::Body;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use prometheus::{IntCounterVec, Opts, Registry};

use super::server::{read_body, State};
use super::Faults;
use crate::listener::{self, HttpResponse};

/// The simulator's metrics.
pub(super) struct Counters {
    registry: Registry,
    pub(super) requests: IntCounterVec,
    pub(super) annuaire: IntCounterVec,
}

impl Counters {
    pub(super) fn new() -> Counters {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "rocgw_sim_requests_total",
                "Requests received by the simulated AMCs, by outcome (accepted, refused, \
                 injected) and reason",
            ),
            &["amc", "service", "outcome", "reason"],
        )
        .expect("valid metric");
        let annuaire = IntCounterVec::new(
            Opts::new(
                "rocgw_sim_annuaire_requests_total",
                "Lookups answered by the simulated annuaire, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("register");
        registry
            .register(Box::new(annuaire.clone()))
            .expect("register");
        Counters {
            registry,
            requests,
            annuaire,
        }
    }
}

pub(super) fn render(state: &State) -> String {
    use prometheus::Encoder as _;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&state.counters.registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

pub(super) async fn handle(state: &State, req: Request<Body>) -> HttpResponse {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => listener::text(StatusCode::OK, "ok\n"),
        ("GET", "/metrics") => {
            let mut r = listener::text(StatusCode::OK, render(state));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        ("GET", "/faults") => {
            let mut all: BTreeMap<&str, Faults> = state
                .amcs
                .values()
                .map(|a| (a.numero.as_str(), (**a.faults.load()).clone()))
                .collect();
            all.insert("annuaire", (**state.annuaire_faults.load()).clone());
            json(StatusCode::OK, &all)
        }
        (m, p) if p.starts_with("/faults/") => {
            let name = &p["/faults/".len()..];
            let (slot, configured) = match (name, state.amcs.get(name)) {
                ("annuaire", _) => (&state.annuaire_faults, Faults::default()),
                (_, Some(amc)) => (&amc.faults, amc.configured.clone()),
                _ => {
                    return listener::text(
                        StatusCode::NOT_FOUND,
                        format!("unknown AMC {name:?} (or \"annuaire\")\n"),
                    )
                }
            };
            faults_of(name, slot, configured, m, req).await
        }
        _ => listener::text(
            StatusCode::NOT_FOUND,
            "GET /metrics, GET /faults, PUT|DELETE /faults/{numero_amc}\n",
        ),
    }
}

/// `GET`, `PUT` or `DELETE /faults/{name}`: the faults in `slot`, `configured` being what
/// `DELETE` restores.
async fn faults_of(
    name: &str,
    slot: &ArcSwap<Faults>,
    configured: Faults,
    method: &str,
    req: Request<Body>,
) -> HttpResponse {
    match method {
        "GET" => json(StatusCode::OK, &(**slot.load()).clone()),
        "DELETE" => {
            slot.store(Arc::new(configured.clone()));
            tracing::info!(faults_of = %name, "simulator faults reset");
            json(StatusCode::OK, &configured)
        }
        "PUT" => {
            let Some(body) = read_body(req).await else {
                return listener::text(StatusCode::BAD_REQUEST, "unreadable body\n");
            };
            let f: Faults = match serde_json::from_slice(&body) {
                Ok(f) => f,
                Err(e) => {
                    return listener::text(
                        StatusCode::BAD_REQUEST,
                        format!("invalid faults: {e}\n"),
                    )
                }
            };
            if let Some(p) = f.problem() {
                return listener::text(StatusCode::BAD_REQUEST, format!("{p}\n"));
            }
            tracing::info!(faults_of = %name, faults = ?f, "simulator faults changed");
            slot.store(Arc::new(f.clone()));
            json(StatusCode::OK, &f)
        }
        _ => listener::text(StatusCode::METHOD_NOT_ALLOWED, "GET, PUT or DELETE\n"),
    }
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> HttpResponse {
    let text = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let mut r = Response::new(Bytes::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::header::HeaderValue::from_static("application/json"),
    );
    r
}

//! The running simulator: the state its handlers share, binding every listener before serving
//! (the annuaire's endpoints carry the real ports), and the helpers the handlers have in common.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::listener::Body;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::admin::{self, Counters};
use super::tls::{self, ServerCerts};
use super::{amc, annuaire, Action, Checker, DirectoryEntry, Faults, Policy, SimConfig, TimeRules};
use crate::clock::now_unix;
use crate::listener::{self, HttpResponse};
use crate::soap::SoapVersion;
use crate::trust::{Anchors, CrlSet};

/// Largest request body the simulator reads.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A simulated AMC at run time.
pub(super) struct Amc {
    pub(super) numero: String,
    pub(super) libelle: String,
    pub(super) services: Vec<String>,
    /// `https://host:port/amc/{numero}` and the configured extras.
    pub(super) audiences: Vec<String>,
    pub(super) base_url: String,
    pub(super) configured: Faults,
    pub(super) faults: ArcSwap<Faults>,
}

pub(super) struct State {
    pub(super) amcs: BTreeMap<String, Arc<Amc>>,
    /// The annuaire's own faults (`PUT /faults/annuaire`); its certificate does not change.
    pub(super) annuaire_faults: ArcSwap<Faults>,
    /// Annuaire entries of AMCs that are not simulated here.
    pub(super) directory: BTreeMap<String, DirectoryEntry>,
    pub(super) checker: Checker,
    pub(super) unknown_marker: String,
    pub(super) counters: Counters,
    /// Signs the AMCs' answers, when `[signing]` is set.
    pub(super) signer: Option<super::sign::AnswerSigner>,
}

/// A started simulator: where everything listens.
pub struct Sim {
    pub admin: SocketAddr,
    pub annuaire: SocketAddr,
    /// (numero, address) of each AMC's TLS listener.
    pub amcs: Vec<(String, SocketAddr)>,
    host: String,
    state: Arc<State>,
}

/// Each AMC's listener, with the AMC it serves.
type AmcListeners = Vec<(TcpListener, Arc<Amc>)>;

impl Sim {
    /// Loads the certificates, binds every listener and serves in the background.
    pub async fn start(cfg: SimConfig) -> Result<Sim, String> {
        let (checker, anchors) = checker(&cfg)?;
        let certs = Arc::new(ServerCerts::load(&cfg.certificates)?);

        // Bind first: the endpoints written in the annuaire carry the real ports.
        let admin_l = listener::bind("admin_listen", cfg.admin_listen).await?;
        let annuaire_l = listener::bind("annuaire.listen", cfg.annuaire.listen).await?;
        let (amc_ls, amcs) = bind_amcs(&cfg).await?;
        let directory = cfg
            .annuaire
            .entries
            .iter()
            .map(|e| (e.numero.clone(), e.clone()))
            .collect();
        let state = Arc::new(State {
            amcs,
            annuaire_faults: ArcSwap::from_pointee(Faults::default()),
            directory,
            checker,
            unknown_marker: cfg.unknown_marker.clone(),
            counters: Counters::new(),
            signer: cfg
                .signing
                .as_ref()
                .map(super::sign::AnswerSigner::load)
                .transpose()?,
        });

        let local = |l: &TcpListener| l.local_addr().map_err(|e| e.to_string());
        let sim = Sim {
            admin: local(&admin_l)?,
            annuaire: local(&annuaire_l)?,
            amcs: amc_ls
                .iter()
                .map(|(l, a)| Ok((a.numero.clone(), local(l)?)))
                .collect::<Result<_, String>>()?,
            host: cfg.host.clone(),
            state: state.clone(),
        };

        let annuaire_tls = tls::annuaire_tls(&cfg, &anchors)?;
        tokio::spawn(tls::serve_tls(annuaire_l, annuaire_tls, {
            let state = state.clone();
            Arc::new(move |req: Request<Body>| {
                let state = state.clone();
                async move { annuaire::handle(&state, req).await }
            })
        }));
        for (l, amc) in amc_ls {
            let tls = tls::amc_tls(amc.clone(), certs.clone())?;
            let state = state.clone();
            tokio::spawn(tls::serve_tls(
                l,
                tls,
                Arc::new(move |req: Request<Body>| {
                    let (state, amc) = (state.clone(), amc.clone());
                    amc::handle(state, amc, req)
                }),
            ));
        }
        tokio::spawn(listener::serve(
            admin_l,
            Arc::new(move |req, _peer| {
                let state = state.clone();
                async move { admin::handle(&state, req).await }
            }),
        ));
        Ok(sim)
    }

    /// `https://host:port/annuaire` of the simulated annuaire.
    pub fn annuaire_url(&self) -> String {
        format!("https://{}:{}/annuaire", self.host, self.annuaire.port())
    }

    /// The URL of an AMC's service, as the annuaire returns it.
    pub fn endpoint(&self, numero: &str, service: &str) -> Option<String> {
        let a = self.state.amcs.get(numero)?;
        a.services
            .iter()
            .any(|s| s == service)
            .then(|| format!("{}/{service}", a.base_url))
    }

    /// (numero, service, URL) of every simulated service.
    pub fn endpoints(&self) -> Vec<(String, String, String)> {
        self.state
            .amcs
            .values()
            .flat_map(|a| {
                a.services
                    .iter()
                    .map(move |s| (a.numero.clone(), s.clone(), format!("{}/{s}", a.base_url)))
            })
            .collect()
    }

    /// The simulator's metrics, in the Prometheus text format.
    pub fn render_metrics(&self) -> String {
        admin::render(&self.state)
    }
}

/// The request checker over the configured IGC-Santé authorities, and the anchors (the
/// annuaire's client verifier needs them too).
fn checker(cfg: &SimConfig) -> Result<(Checker, Anchors), String> {
    let now = now_unix();
    let anchors = Anchors::load("igc_sante.anchors", &cfg.igc_sante.anchors, now)
        .map_err(|e| e.to_string())?;
    let intermediates = Anchors::load("igc_sante.intermediates", &cfg.igc_sante.intermediates, now)
        .map_err(|e| e.to_string())?;
    let crls = CrlSet::load(
        "igc_sante.crls",
        &cfg.igc_sante.crls,
        &[&anchors, &intermediates],
        now,
    )
    .map_err(|e| e.to_string())?;
    let der = |a: &Anchors| -> Vec<Vec<u8>> {
        a.anchors.iter().map(|x| x.der.as_ref().to_vec()).collect()
    };
    let checker = Checker::new(
        der(&anchors),
        der(&intermediates),
        crls,
        Policy {
            times: TimeRules {
                skew_s: cfg.clock_skew_s as i64,
                max_validity_s: cfg.max_validity_s as i64,
            },
            replay_check: cfg.replay_check,
        },
    );
    Ok((checker, anchors))
}

/// Binds each AMC's listener and builds the AMC with its URL (which carries the bound port).
async fn bind_amcs(cfg: &SimConfig) -> Result<(AmcListeners, BTreeMap<String, Arc<Amc>>), String> {
    let mut amc_ls = Vec::new();
    let mut amcs = BTreeMap::new();
    for (i, a) in cfg.amcs.iter().enumerate() {
        let l = listener::bind(&format!("amc[{i}].listen"), a.listen).await?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        let base_url = format!("https://{}:{port}/amc/{}", cfg.host, a.numero);
        let mut audiences = vec![base_url.clone()];
        audiences.extend(a.audiences.iter().cloned());
        let amc = Arc::new(Amc {
            numero: a.numero.clone(),
            libelle: a.libelle.clone(),
            services: a.services.iter().map(|s| s.to_ascii_lowercase()).collect(),
            audiences,
            base_url,
            configured: a.faults.clone(),
            faults: ArcSwap::from_pointee(a.faults.clone()),
        });
        if amcs.insert(a.numero.clone(), amc.clone()).is_some() {
            return Err(format!("amc[{i}].numero: {} is listed twice", a.numero));
        }
        amc_ls.push((l, amc));
    }
    Ok((amc_ls, amcs))
}

/// Starts the simulator from `cfg`, prints where everything listens and serves until stopped.
pub async fn run(cfg: SimConfig) -> Result<(), String> {
    let sim = Sim::start(cfg).await?;
    println!("rocgw sim: admin listening on http://{}", sim.admin);
    println!("rocgw sim: annuaire listening on {}", sim.annuaire_url());
    for (numero, service, url) in sim.endpoints() {
        println!("rocgw sim: AMC {numero} {service} {url}");
    }
    tracing::info!(admin = %sim.admin, annuaire = %sim.annuaire, "simulator ready");
    std::future::pending::<()>().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the handlers share
// ---------------------------------------------------------------------------------------------

pub(super) async fn read_body(req: Request<Body>) -> Option<Bytes> {
    req.into_body().collect(MAX_BODY).await
}

pub(super) fn xml(status: StatusCode, version: SoapVersion, body: String) -> HttpResponse {
    let mut r = Response::new(Bytes::from(body));
    *r.status_mut() = status;
    let ct = match version {
        SoapVersion::V11 => "text/xml; charset=utf-8",
        SoapVersion::V12 => "application/soap+xml; charset=utf-8",
    };
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::header::HeaderValue::from_static(ct),
    );
    r
}

pub(super) fn with_reason(mut r: HttpResponse, reason: &str) -> HttpResponse {
    if let Ok(v) = http::header::HeaderValue::from_str(reason) {
        r.headers_mut().insert("x-rocsim-reason", v);
    }
    r
}

/// Waits the latency the current `faults` add and draws what to do with this request.
pub(super) async fn inject(faults: &ArcSwap<Faults>) -> Action {
    let faults = faults.load_full();
    let (delay, action) = {
        let mut rng = fastrand::Rng::new();
        (faults.latency(&mut rng), faults.action(&mut rng))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    action
}

/// The status of an injected HTTP failure: 503 for `http-503`, 500 for the others.
pub(super) fn injected_status(action: Action) -> StatusCode {
    if action == Action::Http503 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

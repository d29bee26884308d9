//! The AMC simulator (`rocgw sim`, and in-process in the sandbox): an Annuaire AMC over mutual
//! TLS and AMC services (`idb`, `simulation`, `clc`, `annulation`) that verify every request
//! as a real AMC would, with fault injection and their own `/metrics`.
//!
//! Each simulated AMC has its own TLS port (so each can present its own, possibly broken,
//! server certificate); the annuaire has one; a plain-HTTP admin port serves `/metrics`,
//! `/healthz` and the fault-injection API:
//!
//! - `GET /faults` — every AMC's current faults, and the annuaire's (JSON);
//! - `PUT /faults/{numero_amc}` — replace them (JSON body, the fields of `[amc.faults]`);
//!   `PUT /faults/annuaire` — the same for the annuaire (latency, errors, resets: an outage);
//! - `DELETE /faults/{numero_amc|annuaire}` — back to the configured faults.

mod answer;
mod check;
mod inject;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, Opts, Registry};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use check::{same_dn, Checker, Refusal, REASONS};
pub use inject::{Action, CertMode, Distribution, Faults};

use crate::annuaire;
use crate::clock::now_unix;
use crate::config::{parse_toml, ConfigError};
use crate::listener::{self, HttpResponse};
use crate::soap::SoapVersion;
use crate::trust::{Anchors, CrlSet};

/// Largest request body the simulator reads.
const MAX_BODY: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// A certificate chain (leaf first) and its key, as PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The IGC-Santé authorities the simulator trusts for AUTH_CLI (annuaire) and SIGN (assertions).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgcSante {
    pub anchors: Vec<PathBuf>,
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnuaireCfg {
    pub listen: SocketAddr,
    #[serde(flatten)]
    pub tls: CertKey,
    /// AMCs the annuaire knows besides the simulated ones, with any endpoints (an AMC served
    /// elsewhere, or a deliberately bad answer: an `http` or non-OSI address).
    #[serde(default)]
    pub entries: Vec<DirectoryEntry>,
}

/// One annuaire entry: AMC number, label, service → address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryEntry {
    pub numero: String,
    #[serde(default)]
    pub libelle: String,
    pub services: BTreeMap<String, String>,
}

/// The server certificates an AMC can present (fault injection picks one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificates {
    pub valid: CertKey,
    pub expired: Option<CertKey>,
    pub revoked: Option<CertKey>,
    pub unknown_ca: Option<CertKey>,
    pub wrong_host: Option<CertKey>,
}

/// One simulated AMC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmcCfg {
    pub numero: String,
    #[serde(default)]
    pub libelle: String,
    pub listen: SocketAddr,
    #[serde(default = "default_services")]
    pub services: Vec<String>,
    /// Accepted audiences besides this AMC's own URL.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub faults: Faults,
}

fn default_services() -> Vec<String> {
    crate::config::DEFAULT_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The simulator's configuration file (`rocgw sim --config FILE`); relative paths are relative
/// to the file's folder. `config/sim.example.toml` documents every field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    pub admin_listen: SocketAddr,
    /// Host name written in the endpoints the annuaire returns (must match the certificates).
    #[serde(default = "default_host")]
    pub host: String,
    /// Tolerated clock difference with the signer, seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_s: u64,
    /// Refuse an assertion ID already accepted (turn off for a gateway that reuses assertions).
    #[serde(default = "yes")]
    pub replay_check: bool,
    /// A request body containing this text is about an unknown beneficiary.
    #[serde(default = "default_marker")]
    pub unknown_marker: String,
    pub igc_sante: IgcSante,
    pub annuaire: AnnuaireCfg,
    pub certificates: Certificates,
    #[serde(rename = "amc")]
    pub amcs: Vec<AmcCfg>,
}

fn default_host() -> String {
    "localhost".into()
}
fn default_skew() -> u64 {
    60
}
fn yes() -> bool {
    true
}
fn default_marker() -> String {
    "INCONNU".into()
}

impl SimConfig {
    /// Reads and checks a configuration file; errors name the file, field and line.
    pub fn load(path: &Path) -> Result<SimConfig, ConfigError> {
        let err = |field: &str, message: String| ConfigError {
            file: path.to_path_buf(),
            field: field.into(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read the simulator configuration: {e}")))?;
        let mut cfg: SimConfig = parse_toml(&text, path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        cfg.rebase(base);
        for (i, a) in cfg.amcs.iter().enumerate() {
            if let Some(p) = a.faults.problem() {
                return Err(err(&format!("amc[{i}].faults"), p));
            }
            if a.numero.is_empty() || !a.numero.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(err(
                    &format!("amc[{i}].numero"),
                    "letters and digits only".into(),
                ));
            }
        }
        Ok(cfg)
    }

    fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let fix_pair = |c: &mut CertKey| {
            fix(&mut c.cert);
            fix(&mut c.key);
        };
        self.igc_sante
            .anchors
            .iter_mut()
            .chain(self.igc_sante.intermediates.iter_mut())
            .chain(self.igc_sante.crls.iter_mut())
            .for_each(fix);
        fix_pair(&mut self.annuaire.tls);
        let c = &mut self.certificates;
        fix_pair(&mut c.valid);
        for o in [
            &mut c.expired,
            &mut c.revoked,
            &mut c.unknown_ca,
            &mut c.wrong_host,
        ]
        .into_iter()
        .flatten()
        {
            fix_pair(o);
        }
    }

    /// The ready table of test AMCs over a test PKI (`rocgw pki init`): what the sandbox and a
    /// bare `rocgw sim` run. `ephemeral` puts every listener on port 0.
    pub fn sandbox(pki: &Path, ephemeral: bool) -> SimConfig {
        let p = |s: &str| pki.join(s);
        let pair = |name: &str| CertKey {
            cert: p(&format!("{name}.chain.pem")),
            key: p(&format!("{name}.key")),
        };
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], if ephemeral { 0 } else { port }));
        SimConfig {
            admin_listen: addr(SANDBOX_ADMIN_PORT),
            host: default_host(),
            clock_skew_s: default_skew(),
            replay_check: true,
            unknown_marker: default_marker(),
            igc_sante: IgcSante {
                anchors: vec![p("igc-sante/acr.pem")],
                intermediates: vec![p("igc-sante/aci-el-org.pem")],
                crls: vec![
                    p("igc-sante/aci-el-org.crl.pem"),
                    p("igc-sante/acr.crl.pem"),
                ],
            },
            annuaire: AnnuaireCfg {
                listen: addr(8582),
                tls: pair("osi/annuaire"),
                entries: Vec::new(),
            },
            certificates: Certificates {
                valid: pair("osi/amc-a"),
                expired: Some(pair("negative/server-expired")),
                revoked: Some(pair("negative/server-revoked")),
                unknown_ca: Some(pair("negative/server-unknown-ca")),
                wrong_host: Some(pair("negative/server-wrong-host")),
            },
            amcs: SANDBOX_AMCS
                .iter()
                .map(|(numero, libelle, port, services)| AmcCfg {
                    numero: numero.to_string(),
                    libelle: libelle.to_string(),
                    listen: addr(*port),
                    services: services.iter().map(|s| s.to_string()).collect(),
                    audiences: Vec::new(),
                    faults: Faults::default(),
                })
                .collect(),
        }
    }
}

/// Admin port of the sandbox simulator.
pub const SANDBOX_ADMIN_PORT: u16 = 9581;

/// The sandbox's test AMCs: number, label, port, services.
pub const SANDBOX_AMCS: [(&str, &str, u16, &[&str]); 2] = [
    (
        "99999991",
        "MUTUELLE TEST UN (toutes prestations)",
        8581,
        &["idb", "simulation", "clc", "annulation"],
    ),
    (
        "99999992",
        "MUTUELLE TEST DEUX (IDB et CLC)",
        8583,
        &["idb", "clc"],
    ),
];

// ---------------------------------------------------------------------------------------------
// Running simulator
// ---------------------------------------------------------------------------------------------

/// A simulated AMC at run time.
struct Amc {
    numero: String,
    libelle: String,
    services: Vec<String>,
    /// `https://host:port/amc/{numero}` and the configured extras.
    audiences: Vec<String>,
    base_url: String,
    configured: Faults,
    faults: ArcSwap<Faults>,
}

struct Counters {
    registry: Registry,
    requests: IntCounterVec,
    annuaire: IntCounterVec,
}

impl Counters {
    fn new() -> Counters {
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

struct State {
    amcs: BTreeMap<String, Arc<Amc>>,
    /// The annuaire's own faults (`PUT /faults/annuaire`); its certificate does not change.
    annuaire_faults: ArcSwap<Faults>,
    /// Annuaire entries of AMCs that are not simulated here.
    directory: BTreeMap<String, DirectoryEntry>,
    checker: Checker,
    unknown_marker: String,
    counters: Counters,
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

impl Sim {
    /// Loads the certificates, binds every listener and serves in the background.
    pub async fn start(cfg: SimConfig) -> Result<Sim, String> {
        let now = now_unix();
        let anchors = Anchors::load("igc_sante.anchors", &cfg.igc_sante.anchors, now)?;
        let intermediates =
            Anchors::load("igc_sante.intermediates", &cfg.igc_sante.intermediates, now)?;
        let crls = CrlSet::load(
            "igc_sante.crls",
            &cfg.igc_sante.crls,
            &[&anchors, &intermediates],
            now,
        )?;
        let der = |a: &Anchors| -> Vec<Vec<u8>> {
            a.anchors.iter().map(|x| x.der.as_ref().to_vec()).collect()
        };
        let checker = Checker::new(
            der(&anchors),
            der(&intermediates),
            crls,
            cfg.clock_skew_s as i64,
            cfg.replay_check,
        );
        let certs = Arc::new(ServerCerts::load(&cfg.certificates)?);

        // Bind first: the endpoints written in the annuaire carry the real ports.
        let admin_l = listener::bind("admin_listen", cfg.admin_listen).await?;
        let annuaire_l = listener::bind("annuaire.listen", cfg.annuaire.listen).await?;
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

        let annuaire_tls = annuaire_tls(&cfg, &anchors)?;
        tokio::spawn(serve_tls(annuaire_l, annuaire_tls, {
            let state = state.clone();
            Arc::new(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { handle_annuaire(&state, req).await }
            })
        }));
        for (l, amc) in amc_ls {
            let tls = Arc::new(
                ServerConfig::builder_with_provider(crate::crypto::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_no_client_auth()
                    .with_cert_resolver(Arc::new(AmcCertResolver {
                        amc: amc.clone(),
                        certs: certs.clone(),
                    })),
            );
            let state = state.clone();
            tokio::spawn(serve_tls(
                l,
                tls,
                Arc::new(move |req: Request<Incoming>| {
                    let (state, amc) = (state.clone(), amc.clone());
                    handle_amc(state, amc, req)
                }),
            ));
        }
        let admin_state = state.clone();
        tokio::spawn(listener::serve(
            admin_l,
            Arc::new(move |req, _peer| {
                let state = admin_state.clone();
                async move { handle_admin(&state, req).await }
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
        render(&self.state)
    }
}

fn render(state: &State) -> String {
    use prometheus::Encoder as _;
    let mut buf = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&state.counters.registry.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

fn certified(c: &CertKey) -> Result<Arc<CertifiedKey>, String> {
    crate::identity::certified_key_from_pem(&c.cert, &c.key)
}

/// The server certificates, one per [`CertMode`] configured.
struct ServerCerts {
    by_mode: Vec<(CertMode, Arc<CertifiedKey>)>,
}

impl ServerCerts {
    fn load(c: &Certificates) -> Result<ServerCerts, String> {
        let mut by_mode = vec![(CertMode::Valid, certified(&c.valid)?)];
        for (mode, pair) in [
            (CertMode::Expired, &c.expired),
            (CertMode::Revoked, &c.revoked),
            (CertMode::UnknownCa, &c.unknown_ca),
            (CertMode::WrongHost, &c.wrong_host),
        ] {
            if let Some(p) = pair {
                by_mode.push((mode, certified(p)?));
            }
        }
        Ok(ServerCerts { by_mode })
    }

    fn get(&self, mode: CertMode) -> Option<Arc<CertifiedKey>> {
        self.by_mode
            .iter()
            .find(|(m, _)| *m == mode)
            .map(|(_, k)| k.clone())
    }
}

/// Presents the certificate the AMC's current faults ask for.
struct AmcCertResolver {
    amc: Arc<Amc>,
    certs: Arc<ServerCerts>,
}

impl std::fmt::Debug for AmcCertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AmcCertResolver({})", self.amc.numero)
    }
}

impl ResolvesServerCert for AmcCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mode = self.amc.faults.load().certificate;
        self.certs
            .get(mode)
            .or_else(|| self.certs.get(CertMode::Valid))
    }
}

/// The annuaire's TLS: a client certificate chaining to the IGC-Santé anchors, with the
/// clientAuth usage (webpki checks it), not revoked by the configured CRLs.
fn annuaire_tls(cfg: &SimConfig, anchors: &Anchors) -> Result<Arc<ServerConfig>, String> {
    let roots = Arc::new(anchors.root_store()?);
    let crls = crate::trust::crl_ders(&cfg.igc_sante.crls)?;
    let inner = WebPkiClientVerifier::builder_with_provider(roots, crate::crypto::provider())
        .with_crls(crls)
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| format!("annuaire client verifier: {e}"))?;
    let verifier = Arc::new(AuthCliVerifier { inner });
    let tls = crate::local_tls::tls_config(&cfg.annuaire.tls.cert, &cfg.annuaire.tls.key, verifier)
        .map_err(|e| format!("annuaire certificate: {e}"))?;
    Ok(Arc::new(tls))
}

/// webpki's client verification (chain, dates, CRLs), plus what webpki leaves optional: the
/// certificate must carry the clientAuth extended key usage (an ORG AUTH_CLI, not a SIGN).
#[derive(Debug)]
struct AuthCliVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for AuthCliVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let info = crate::identity::CertInfo::parse(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        match info.role_problem(crate::identity::Role::AuthCli) {
            None => Ok(ok),
            Some(p) => {
                tracing::info!(subject = %info.subject, problem = %p, "simulated annuaire refused a client certificate");
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::InvalidPurpose,
                ))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Serves HTTPS on `l`. A handler answering `None` wants the connection reset (RST).
async fn serve_tls<H, F>(l: TcpListener, tls: Arc<ServerConfig>, handler: Arc<H>)
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Option<HttpResponse>> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, peer)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, handler) = (acceptor.clone(), handler.clone());
        tokio::spawn(async move {
            // A second descriptor of the socket, to reset it after the TLS stream is gone.
            let dup = tcp
                .into_std()
                .and_then(|s| Ok((s.try_clone()?, s)))
                .and_then(|(d, s)| Ok((d, tokio::net::TcpStream::from_std(s)?)));
            let Ok((dup, tcp)) = dup else { return };
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "simulator: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let reset = Arc::new(tokio::sync::Notify::new());
            let svc = {
                let reset = reset.clone();
                hyper::service::service_fn(move |req| {
                    let (handler, reset) = (handler.clone(), reset.clone());
                    async move {
                        match handler(req).await {
                            Some(r) => Ok::<_, std::convert::Infallible>(r),
                            None => {
                                reset.notify_one();
                                std::future::pending().await
                            }
                        }
                    }
                })
            };
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(listener::HEADER_READ_TIMEOUT);
            let conn = b.serve_connection(TokioIo::new(tls), svc);
            tokio::select! {
                _ = conn => {}
                _ = reset.notified() => {
                    // The TLS stream is dropped; linger 0 on the last descriptor sends RST.
                    if let Ok(s) = tokio::net::TcpStream::from_std(dup) {
                        let _ = s.set_zero_linger();
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------------

async fn read_body(req: Request<Incoming>) -> Option<Bytes> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

fn xml(status: StatusCode, version: SoapVersion, body: String) -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let ct = match version {
        SoapVersion::V11 => "text/xml; charset=utf-8",
        SoapVersion::V12 => "application/soap+xml; charset=utf-8",
    };
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ct),
    );
    r
}

fn with_reason(mut r: HttpResponse, reason: &str) -> HttpResponse {
    if let Ok(v) = hyper::header::HeaderValue::from_str(reason) {
        r.headers_mut().insert("x-rocsim-reason", v);
    }
    r
}

async fn handle_annuaire(state: &State, req: Request<Incoming>) -> Option<HttpResponse> {
    let count = |r: &str| state.counters.annuaire.with_label_values(&[r]).inc();
    let path = req.uri().path().to_string();
    if req.method() != hyper::Method::POST || !path.starts_with("/annuaire") {
        count("not-found");
        return Some(listener::text(StatusCode::NOT_FOUND, "POST /annuaire\n"));
    }
    let Some(body) = read_body(req).await else {
        count("bad-request");
        return Some(listener::text(StatusCode::BAD_REQUEST, "unreadable body\n"));
    };
    let faults = state.annuaire_faults.load_full();
    let (delay, action) = {
        let mut rng = fastrand::Rng::new();
        (faults.latency(&mut rng), faults.action(&mut rng))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match action {
        Action::Answer => {}
        Action::Reset => {
            count("injected-reset");
            return None;
        }
        Action::Http500 | Action::Http503 | Action::SoapFault => {
            count(&format!("injected-{}", action.as_str()));
            let status = if action == Action::Http503 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return Some(listener::text(status, "simulated annuaire failure\n"));
        }
    }
    let lookup = match annuaire::parse_search_request(&body) {
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
    let wanted = |service: &str| {
        lookup.code_service.is_empty() || lookup.code_service.eq_ignore_ascii_case(service)
    };
    let entry = match (
        state.amcs.get(&lookup.numero_amc),
        state.directory.get(&lookup.numero_amc),
    ) {
        (Some(a), _) => Some(annuaire::Entry {
            numero_amc: a.numero.clone(),
            libelle: a.libelle.clone(),
            services: a
                .services
                .iter()
                .filter(|s| wanted(s))
                .map(|s| (s.clone(), format!("{}/{s}", a.base_url)))
                .collect(),
        }),
        (None, Some(e)) => Some(annuaire::Entry {
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
    };
    let answer = match entry {
        Some(e) => {
            count("found");
            annuaire::Answer::Found(e)
        }
        None => {
            count("unknown-amc");
            annuaire::Answer::UnknownAmc
        }
    };
    Some(xml(
        StatusCode::OK,
        SoapVersion::V11,
        annuaire::search_response(&answer),
    ))
}

async fn handle_amc(
    state: Arc<State>,
    amc: Arc<Amc>,
    req: Request<Incoming>,
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
    let Some(body) = read_body(req).await else {
        count("refused", "not-soap");
        return Some(listener::text(StatusCode::BAD_REQUEST, "unreadable body\n"));
    };
    let version = crate::soap::sniff(&body).unwrap_or(crate::soap::DEFAULT_FAULT_VERSION);
    let faults = amc.faults.load_full();
    let (delay, action) = {
        let mut rng = fastrand::Rng::new();
        (faults.latency(&mut rng), faults.action(&mut rng))
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
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
            xml(StatusCode::NOT_FOUND, version, f),
            "unknown-service",
        ));
    }
    match action {
        Action::Answer => {}
        Action::Reset => {
            count("injected", action.as_str());
            return None;
        }
        Action::Http500 | Action::Http503 => {
            count("injected", action.as_str());
            let status = if action == Action::Http500 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Some(with_reason(
                listener::text(status, "simulated failure\n"),
                action.as_str(),
            ));
        }
        Action::SoapFault => {
            count("injected", action.as_str());
            let f = answer::fault(
                version,
                false,
                "injected-fault",
                "Erreur technique simulée",
                "fault injected by the simulator",
            );
            let status = StatusCode::INTERNAL_SERVER_ERROR;
            return Some(with_reason(xml(status, version, f), "injected-fault"));
        }
    }
    // The checks cost a signature verification and a DOM parse: off the async workers.
    let checked = {
        let (state, amc, body) = (state.clone(), amc.clone(), body.clone());
        tokio::task::spawn_blocking(move || state.checker.check(&body, &amc.audiences, now_unix()))
            .await
            .unwrap_or_else(|_| {
                Err(Refusal {
                    reason: "not-soap",
                    detail: "the check failed".into(),
                })
            })
    };
    match checked {
        Ok(a) => {
            count("accepted", "");
            let known = state.unknown_marker.is_empty()
                || memchr::memmem::find(&body, state.unknown_marker.as_bytes()).is_none();
            let text = answer::answer(
                version,
                &amc.numero,
                &service,
                known,
                answer::seed(&body),
                &a.id,
            );
            Some(xml(StatusCode::OK, version, text))
        }
        Err(r) => {
            count("refused", r.reason);
            tracing::info!(amc = %amc.numero, service = %service, reason = r.reason, "simulator refused a request");
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
            Some(with_reason(xml(status, version, f), r.reason))
        }
    }
}

async fn handle_admin(state: &State, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => listener::text(StatusCode::OK, "ok\n"),
        ("GET", "/metrics") => {
            let mut r = listener::text(StatusCode::OK, render(state));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
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
            match m {
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
        _ => listener::text(
            StatusCode::NOT_FOUND,
            "GET /metrics, GET /faults, PUT|DELETE /faults/{numero_amc}\n",
        ),
    }
}

fn json<T: serde::Serialize>(status: StatusCode, v: &T) -> HttpResponse {
    let text = serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// `rocgw sim`: starts the simulator from `config`, or the sandbox's test AMCs over the
/// sandbox's test PKI, prints where everything listens and serves until stopped.
pub async fn run(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<(), String> {
    let cfg = match config {
        Some(p) => SimConfig::load(&p).map_err(|e| e.to_string())?,
        None => {
            let dir = crate::sandbox::data_dir(data_dir.as_deref());
            let d = dir.clone();
            let (_, generated) =
                tokio::task::spawn_blocking(move || crate::sandbox::prepare_pki(&d))
                    .await
                    .map_err(|e| e.to_string())??;
            if generated {
                tracing::info!(dir = %dir.join("pki").display(), "generated a new test PKI");
            }
            println!(
                "rocgw sim: TEST AMCs over the sandbox test PKI in {}",
                dir.join("pki").display()
            );
            SimConfig::sandbox(&dir.join("pki"), false)
        }
    };
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

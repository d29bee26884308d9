//! The credentials and clients in force, composed from reloadable parts that each keep their old
//! state when their reload fails (`identity::ReloadableIdentity`, `wssec::ReloadableSigner`,
//! `trust::ReloadableTrust`, `local_tls::ReloadableLocalTls`).
//!
//! The hospital's credentials are held per structure (EJ or EG), keyed by structure
//! identifier; one structure today, the gateway default. A reload rebuilds only what changed:
//! new upstream clients when an AUTH_CLI certificate or the trust material changed (which clears
//! the TLS session cache and retires pooled connections: TLS 1.3 resumption skips the
//! certificate check and does not resend the client certificate); the signer and its reused
//! assertions only when the SIGN certificate changed. In-flight requests finish on what they
//! started with. Triggers (SIGHUP, file check, daily expiry alert) are in [`watch`].

mod report;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::clock::{fmt_time, now_unix};
use crate::config::Config;
use crate::identity::{Identity, ReloadableIdentity, Role};
use crate::local_tls::{LocalTls, ReloadableLocalTls};
use crate::metrics;
use crate::trust::{OsiVerifier, ReloadableTrust, Trust};
use crate::upstream::{client_config, Kind, Upstream};
use crate::wssec::ReloadableSigner;

/// The upstream clients in force.
#[derive(Debug)]
pub struct Upstreams {
    /// The annuaire client (AUTH_CLI presented), when an annuaire is configured.
    pub annuaire: Option<(Upstream, hyper::Uri)>,
    /// The AMC client (IGC OSI verified).
    pub amc: Upstream,
}

/// One hospital structure's credentials: ORG AUTH_CLI for the annuaire's mutual TLS, ORG SIGN
/// for the assertions.
#[derive(Debug)]
pub struct Structure {
    /// `1`+FINESS or `3`+SIRET, from the SIGN certificate (`default` when it names none).
    pub id: String,
    pub auth_cli: ReloadableIdentity,
    pub sign: ReloadableSigner,
}

/// Everything that can be reloaded, composed.
#[derive(Debug)]
pub struct Runtime {
    cfg: Config,
    /// The structures served, by identifier.
    structures: BTreeMap<String, Structure>,
    /// The structure a request uses when it names none.
    default_structure: String,
    trust: ReloadableTrust,
    upstreams: ArcSwap<Upstreams>,
    /// The gateway listener's TLS (`[server.tls]`), shared with the listener.
    local_tls: Option<ReloadableLocalTls>,
    /// What the timed check saw last (`watch`).
    fingerprint: Mutex<watch::Fingerprint>,
    /// Serialises reloads (SIGHUP and the timer may fire together).
    reloading: tokio::sync::Mutex<()>,
}

fn build_upstreams(cfg: &Config, s: &Structure, trust: &Trust) -> Result<Upstreams, String> {
    let auth = s.auth_cli.current();
    let amc_verifier = OsiVerifier::new(&trust.amc, cfg.amc.revocation, Kind::Amc.label())
        .map_err(|e| e.to_string())?;
    let amc_tls = client_config(
        amc_verifier,
        cfg.amc.present_client_cert.then_some(auth.as_ref()),
    )?;
    let amc = Upstream::new(Kind::Amc, amc_tls, &cfg.upstream, cfg.proxy.as_ref());
    let annuaire = match &cfg.annuaire {
        Some(a) => {
            let v = OsiVerifier::new(&trust.annuaire, a.revocation, Kind::Annuaire.label())
                .map_err(|e| e.to_string())?;
            let tls = client_config(v, Some(auth.as_ref()))?;
            Some((
                Upstream::new(Kind::Annuaire, tls, &cfg.upstream, cfg.proxy.as_ref()),
                a.url.clone(),
            ))
        }
        None => None,
    };
    Ok(Upstreams { annuaire, amc })
}

/// Logs a reload step that failed: the part named keeps its old state.
fn kept(part: &str, e: &dyn std::fmt::Display) {
    tracing::error!(error = %e, "reload failed: keeping the previous {part}");
}

impl Runtime {
    /// Loads every credential for the first time; any failure is a start-up error (one line).
    pub fn start(cfg: Config) -> Result<Arc<Runtime>, String> {
        let now = now_unix();
        let ids = &cfg.identities;
        let auth_cli = ReloadableIdentity::new(&ids.auth_cli, Role::AuthCli, now)
            .map_err(|e| e.to_string())?;
        let sign = ReloadableSigner::new(&ids.sign, now).map_err(|e| e.to_string())?;
        let id = sign
            .identity()
            .info
            .structure_id
            .clone()
            .unwrap_or_else(|| "default".into());
        let structure = Structure {
            id: id.clone(),
            auth_cli,
            sign,
        };
        let trust = ReloadableTrust::new(&cfg.trust, now).map_err(|e| e.to_string())?;
        let upstreams = build_upstreams(&cfg, &structure, &trust.current())?;
        let local_tls = cfg
            .server
            .tls
            .as_ref()
            .map(ReloadableLocalTls::new)
            .transpose()?;
        let rt = Runtime {
            structures: BTreeMap::from([(id.clone(), structure)]),
            default_structure: id,
            trust,
            upstreams: ArcSwap::from_pointee(upstreams),
            local_tls,
            fingerprint: Mutex::new(Vec::new()),
            reloading: tokio::sync::Mutex::new(()),
            cfg,
        };
        *rt.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) = rt.fingerprint_now();
        metrics::get().generation.inc();
        rt.report();
        Ok(Arc::new(rt))
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The gateway's default structure (the one every request uses today).
    pub fn structure(&self) -> &Structure {
        &self.structures[&self.default_structure]
    }

    /// Every structure served, by identifier.
    pub fn structures(&self) -> impl Iterator<Item = &Structure> {
        self.structures.values()
    }

    /// The upstream clients in force; a request keeps the ones it started with.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    /// The IGC OSI trust material in force.
    pub fn trust(&self) -> Arc<Trust> {
        self.trust.current()
    }

    /// The gateway listener's TLS configuration point, when `[server.tls]` is set.
    pub fn local_tls(&self) -> Option<Arc<ArcSwap<LocalTls>>> {
        self.local_tls.as_ref().map(ReloadableLocalTls::swap_point)
    }

    /// Reloads each part; a part that fails keeps its old material, a part that did not change
    /// keeps what was built from it. Returns true when every part succeeded.
    pub async fn reload(&self, why: &str) -> bool {
        let _guard = self.reloading.lock().await;
        let now = now_unix();
        let mut ok = true;
        let mut new_clients = false;
        for s in self.structures.values() {
            match s.auth_cli.reload(now) {
                Ok(changed) => {
                    if changed {
                        new_certificate(s, &s.auth_cli.current());
                    }
                    new_clients |= changed;
                }
                Err(e) => {
                    ok = false;
                    kept("identity", &e);
                }
            }
            match s.sign.reload(now) {
                Ok(true) => new_certificate(s, &s.sign.identity()),
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    kept("signing identity", &e);
                }
            }
        }
        match self.trust.reload(now) {
            Ok(changed) => new_clients |= changed,
            Err(e) => {
                ok = false;
                kept("anchors and CRLs", &e);
            }
        }
        if new_clients {
            match build_upstreams(&self.cfg, self.structure(), &self.trust.current()) {
                Ok(u) => self.upstreams.store(Arc::new(u)),
                Err(e) => {
                    ok = false;
                    kept("upstream clients", &e);
                }
            }
        }
        if let Some(Err(e)) = self.local_tls.as_ref().map(ReloadableLocalTls::reload) {
            ok = false;
            kept("local TLS", &e);
        }
        let outcome = if ok { "ok" } else { "failed" };
        metrics::get().reloads.with_label_values(&[outcome]).inc();
        tracing::info!(trigger = why, outcome, "credentials reloaded");
        if ok {
            metrics::get().generation.inc();
            self.report();
        }
        ok
    }
}

/// Logs a certificate that a reload put in force.
fn new_certificate(s: &Structure, id: &Identity) {
    tracing::info!(
        structure = %s.id,
        identity = id.role.as_str(),
        serial = %id.info.serial,
        not_after = %fmt_time(id.info.not_after),
        "new certificate loaded"
    );
}

//! The credentials and clients in force, composed from reloadable parts that each keep their old
//! state when their reload fails (`identity::ReloadableIdentity`, `wssec::ReloadableSigner`,
//! `trust::ReloadableTrust`, `local_tls::ReloadableLocalTls`).
//!
//! The hospital's credentials are held per structure (EJ or EG), keyed by structure
//! identifier, one of them the gateway default. A reload rebuilds only what changed: a
//! structure's upstream clients when its AUTH_CLI certificate changed, every structure's when
//! the trust material changed (new clients clear the TLS session cache and retire pooled
//! connections: TLS 1.3 resumption skips the certificate check and does not resend the client
//! certificate); a structure's signer and its reused assertions only when its SIGN certificate
//! changed. A structure whose file is wrong keeps its old material and touches no other.
//! In-flight requests finish on what they started with. Triggers (SIGHUP, file check, daily
//! expiry alert) are in [`watch`].

mod report;
mod watch;
pub use watch::Signals;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::clock::{fmt_time, now_unix};
use crate::config::{Config, Profile, StructureConfig};
use crate::identity::{Identity, ReloadableIdentity, Role};
use crate::local_tls::{LocalTls, ReloadableLocalTls};
use crate::metrics;
use crate::trust::{OsiVerifier, ReloadableTrust, Trust};
use crate::upstream::{client_config, HostLimits, Kind, Upstream};
use crate::wssec::ReloadableSigner;

/// One structure's upstream clients. Only clients that present the structure's AUTH_CLI are
/// its own (the annuaire; the AMCs with `present_client_cert`): a TLS session opened with one
/// AUTH_CLI is never reused for another. Otherwise the AMC client is shared.
#[derive(Debug)]
pub struct Clients {
    /// The AMC client (IGC OSI verified).
    pub amc: Arc<Upstream>,
    /// The annuaire client (this structure's AUTH_CLI presented), when an annuaire is configured.
    pub annuaire: Option<(Arc<Upstream>, http::Uri)>,
}

/// The upstream clients in force, by structure.
#[derive(Debug)]
pub struct Upstreams {
    by_structure: BTreeMap<String, Arc<Clients>>,
}

impl Upstreams {
    /// The clients of `structure` (a configured structure: the gateway resolved it).
    pub fn of(&self, structure: &str) -> &Clients {
        &self.by_structure[structure]
    }
}

/// One hospital structure's credentials: ORG AUTH_CLI for the annuaire's mutual TLS, ORG SIGN
/// for the assertions, and what its assertions say of it.
#[derive(Debug)]
pub struct Structure {
    /// `1`+FINESS or `3`+SIRET (in the `[identity.*]` form, the SIGN certificate's; `default`
    /// when it names none).
    pub id: String,
    pub auth_cli: ReloadableIdentity,
    pub sign: ReloadableSigner,
    /// `[assertion]` with this structure's NameID and attributes.
    pub profile: Profile,
}

/// The structure's identifier when its certificates name none.
const DEFAULT_STRUCTURE: &str = "default";

impl Structure {
    /// Loads a structure's identities; in the `[structures.*]` form both certificates must name
    /// the configured identifier.
    fn load(cfg: &StructureConfig, global: &Profile, now: i64) -> Result<Structure, String> {
        let auth_cli = ReloadableIdentity::new(&cfg.auth_cli, Role::AuthCli, now)
            .map_err(|e| e.to_string())?;
        let sign = ReloadableSigner::new(&cfg.sign, now).map_err(|e| e.to_string())?;
        let named = |id: &Identity| id.info.structure_id.clone().unwrap_or_default();
        let id = match &cfg.id {
            Some(id) => {
                for (field, cert) in [
                    (cfg.auth_cli.field(), named(&auth_cli.current())),
                    (cfg.sign.field(), named(&sign.identity())),
                ] {
                    if cert != *id {
                        return Err(format!(
                            "{field}: the certificate is structure {cert:?}, not {id} (the \
                             section's key must be the structure its certificates name, their OU)"
                        ));
                    }
                }
                id.clone()
            }
            None => Some(named(&sign.identity()))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_STRUCTURE.into()),
        };
        let mut profile = global.clone();
        if cfg.name_id.is_some() {
            profile.name_id.clone_from(&cfg.name_id);
        }
        profile.attributes.extend(cfg.attributes.iter().cloned());
        Ok(Structure {
            id,
            auth_cli,
            sign,
            profile,
        })
    }
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
    /// Per-host connection caps, one set per upstream kind, kept across structures and reloads.
    limits: [HostLimits; 2],
    /// The gateway listener's TLS (`[server.tls]`), shared with the listener.
    local_tls: Option<ReloadableLocalTls>,
    /// What the timed check saw last (`watch`).
    fingerprint: Mutex<watch::Fingerprint>,
    /// Serialises reloads (SIGHUP and the timer may fire together).
    reloading: tokio::sync::Mutex<()>,
}

/// Logs a reload step that failed: the part named keeps its old state.
fn kept(part: &str, e: &dyn std::fmt::Display) {
    tracing::error!(error = %e, "reload failed: keeping the previous {part}");
}

impl Runtime {
    /// Loads every credential for the first time; any failure is a start-up error (one line).
    /// Logs nothing: the caller reports what is in force ([`Runtime::report`]) once it starts.
    pub fn start(cfg: Config) -> Result<Arc<Runtime>, String> {
        let now = now_unix();
        let mut structures = BTreeMap::new();
        for st in &cfg.identities.structures {
            let s = Structure::load(st, &cfg.assertion, now)?;
            if structures.contains_key(&s.id) {
                return Err(format!(
                    "{}: structure {} is configured twice",
                    st.field, s.id
                ));
            }
            structures.insert(s.id.clone(), s);
        }
        // In the `[identity.*]` form the one structure is named by its certificates.
        let default_structure = match &cfg.identities.default_structure().id {
            Some(id) => id.clone(),
            None => structures.keys().next().cloned().expect("one structure"),
        };
        let trust = ReloadableTrust::new(&cfg.trust, now).map_err(|e| e.to_string())?;
        let local_tls = cfg
            .server
            .tls
            .as_ref()
            .map(ReloadableLocalTls::new)
            .transpose()?;
        let rt = Runtime {
            upstreams: ArcSwap::from_pointee(Upstreams {
                by_structure: BTreeMap::new(),
            }),
            limits: Default::default(),
            structures,
            default_structure,
            trust,
            local_tls,
            fingerprint: Mutex::new(Vec::new()),
            reloading: tokio::sync::Mutex::new(()),
            cfg,
        };
        rt.check_environment()?;
        let all: Vec<&str> = rt.structures.keys().map(String::as_str).collect();
        rt.upstreams
            .store(Arc::new(rt.build_upstreams(&all, None)?));
        *rt.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) = rt.fingerprint_now();
        metrics::get().generation.inc();
        Ok(Arc::new(rt))
    }

    /// New clients for the structures in `changed`; the others keep theirs from `old`.
    fn build_upstreams(
        &self,
        changed: &[&str],
        old: Option<&Upstreams>,
    ) -> Result<Upstreams, String> {
        let cfg = &self.cfg;
        let trust = self.trust.current();
        let [amc_limits, annuaire_limits] = &self.limits;
        let amc_verifier = || {
            OsiVerifier::new(&trust.amc, cfg.amc.revocation, Kind::Amc.label())
                .map_err(|e| e.to_string())
        };
        let amc_client = |auth: Option<&Identity>| -> Result<Arc<Upstream>, String> {
            let tls = client_config(amc_verifier()?, auth)?;
            let (up, proxy) = (&cfg.upstream, cfg.proxy.as_ref());
            Ok(Arc::new(Upstream::new(
                Kind::Amc,
                tls,
                up,
                proxy,
                amc_limits.clone(),
            )))
        };
        // Without a client certificate, one AMC client serves every structure; it changes only
        // with the trust material (which changes every structure).
        let all_changed = changed.len() == self.structures.len();
        let shared = match old.and_then(|o| o.by_structure.values().next()) {
            _ if cfg.amc.present_client_cert => None,
            Some(c) if !all_changed => Some(c.amc.clone()),
            _ => Some(amc_client(None)?),
        };
        let mut by_structure = BTreeMap::new();
        for (id, s) in &self.structures {
            if let (false, Some(old)) = (changed.contains(&id.as_str()), old) {
                if let Some(c) = old.by_structure.get(id) {
                    by_structure.insert(id.clone(), c.clone());
                    continue;
                }
            }
            let auth = s.auth_cli.current();
            let amc = match &shared {
                Some(c) => c.clone(),
                None => amc_client(Some(&auth))?,
            };
            let annuaire = match &cfg.annuaire {
                Some(a) => {
                    let v = OsiVerifier::new(&trust.annuaire, a.revocation, Kind::Annuaire.label())
                        .map_err(|e| e.to_string())?;
                    let tls = client_config(v, Some(auth.as_ref()))?;
                    let limits = annuaire_limits.clone();
                    let up = Upstream::new(
                        Kind::Annuaire,
                        tls,
                        &cfg.upstream,
                        cfg.proxy.as_ref(),
                        limits,
                    );
                    Some((Arc::new(up), a.url.clone()))
                }
                None => None,
            };
            by_structure.insert(id.clone(), Arc::new(Clients { amc, annuaire }));
        }
        Ok(Upstreams { by_structure })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The gateway's default structure.
    pub fn structure(&self) -> &Structure {
        &self.structures[&self.default_structure]
    }

    /// A configured structure, by identifier.
    pub fn structure_by_id(&self, id: &str) -> Option<&Structure> {
        self.structures.get(id)
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
        let mut new_auth = Vec::new();
        let crls = crate::trust::IdentityCrls::load(&self.cfg.trust.identity_crls);
        for s in self.structures.values() {
            let fit = |id: &Identity| self.fit(s, id, &crls);
            match s.auth_cli.reload(now, &fit) {
                Ok(true) => {
                    new_certificate(s, &s.auth_cli.current());
                    new_auth.push(s.id.as_str());
                }
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    kept("identity", &e);
                }
            }
            match s.sign.reload(now, &fit) {
                Ok(true) => new_certificate(s, &s.sign.identity()),
                Ok(false) => {}
                Err(e) => {
                    ok = false;
                    kept("signing identity", &e);
                }
            }
        }
        let changed: Vec<&str> = match self.trust.reload(now) {
            Ok(true) => self.structures.keys().map(String::as_str).collect(),
            Ok(false) => new_auth,
            Err(e) => {
                ok = false;
                kept("anchors and CRLs", &e);
                new_auth
            }
        };
        if !changed.is_empty() {
            match self.build_upstreams(&changed, Some(&self.upstreams.load())) {
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
        metrics::get().reloaded(ok);
        tracing::info!(trigger = why, outcome, "credentials reloaded");
        if ok {
            metrics::get().generation.inc();
            self.report();
        }
        ok
    }

    /// What a reload must not put in force, beyond the certificate's own checks: one naming
    /// another structure than `s` (a reload keeps the structures: `s.id` keys them; a
    /// certificate without one belongs to the `default` structure), and what start-up refuses
    /// (`cert doctor`'s chain, hierarchy and revocation checks): a root other than IGC-Santé's,
    /// the other IGC-Santé hierarchy than `environment`, a certificate the IGC-Santé CRLs list
    /// (`crls`: those read, and why any could not be).
    fn fit(
        &self,
        s: &Structure,
        id: &Identity,
        crls: &(crate::trust::IdentityCrls, Vec<String>),
    ) -> Result<(), String> {
        let named = id.info.structure_id.as_deref().unwrap_or(DEFAULT_STRUCTURE);
        if named != s.id {
            return Err(format!(
                "a certificate of structure {named}, not of structure {} (in force): a reload \
                 keeps the structures; to change one, change the configuration and restart",
                s.id
            ));
        }
        if !crate::identity::is_igc_sante_root(&id.root) {
            return Err(format!(
                "its chain ends at {}, not at an IGC-Santé root",
                id.root
            ));
        }
        if let Some(env) = self.cfg.environment {
            let test = crate::identity::is_test(&id.info);
            if test != (env == crate::config::Environment::Test) {
                return Err(format!(
                    "a {} certificate with environment = \"{}\"",
                    if test { "TEST" } else { "production" },
                    env.as_str()
                ));
            }
        }
        let (crls, unreadable) = crls;
        if let Some(e) = unreadable.first() {
            return Err(format!(
                "cannot check it against [trust] identity_crls: {e}"
            ));
        }
        if id.chain.first().is_some_and(|leaf| crls.revokes(leaf)) {
            return Err(format!(
                "serial {} is in the IGC-Santé CRL: this certificate was revoked",
                id.info.serial
            ));
        }
        Ok(())
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

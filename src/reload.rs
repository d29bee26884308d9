//! Credentials in force and their hot reload: identities, trust anchors, CRLs, and the upstream
//! clients built from them.
//!
//! `SIGHUP` reloads at once; a timed check reloads when a watched file changed. Each part keeps
//! its old material when its reload fails. A successful reload builds new upstream clients,
//! which clears the TLS session cache and retires pooled connections (TLS 1.3 resumption skips
//! the certificate check and does not resend the client certificate), so new handshakes use the
//! new material; in-flight requests finish on the connection they started on.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::clock::{fmt_time, now_unix};
use crate::config::Config;
use crate::identity::{ReloadableIdentity, Role, EXPIRY_WARNING_DAYS};
use crate::metrics;
use crate::trust::{Anchors, CrlSet, OsiVerifier, TrustSet};
use crate::upstream::{client_config, Kind, Upstream};
use crate::wssec::{AssertionCache, Signer};

/// What the timed check compares: each watched file with its modification time and size.
type Fingerprint = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

/// The upstream clients in force.
#[derive(Debug)]
pub struct Upstreams {
    /// The annuaire client (AUTH_CLI presented), when an annuaire is configured.
    pub annuaire: Option<(Upstream, hyper::Uri)>,
    /// The AMC client (IGC OSI verified).
    pub amc: Upstream,
}

/// Everything that can be reloaded, behind swap points.
pub struct Runtime {
    cfg: Config,
    pub auth_cli: ReloadableIdentity,
    pub sign: ReloadableIdentity,
    amc_trust: ArcSwap<TrustSet>,
    annuaire_trust: ArcSwap<TrustSet>,
    upstreams: ArcSwap<Upstreams>,
    signer: ArcSwap<Signer>,
    /// The gateway listener's TLS (`[server.tls]`), shared with the listener.
    local_tls: Option<Arc<ArcSwap<crate::local_tls::LocalTls>>>,
    /// Reused assertions (when `[assertion] reuse_s` > 0), cleared on reload.
    pub assertions: AssertionCache,
    fingerprint: Mutex<Fingerprint>,
    /// Serialises reloads (SIGHUP and the timer may fire together).
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("auth_cli", &self.auth_cli)
            .field("sign", &self.sign)
            .finish()
    }
}

fn load_trust(cfg: &Config, now: i64) -> Result<(TrustSet, TrustSet), String> {
    let amc = Anchors::load("trust.amc_anchors", &cfg.trust.amc_anchors, now)?;
    let annuaire = Anchors::load("trust.annuaire_anchors", &cfg.trust.annuaire_anchors, now)?;
    let crls = Arc::new(CrlSet::load(
        "trust.crls",
        &cfg.trust.crls,
        &[&amc, &annuaire],
        now,
    )?);
    Ok((
        TrustSet {
            anchors: amc,
            crls: crls.clone(),
        },
        TrustSet {
            anchors: annuaire,
            crls,
        },
    ))
}

fn build_upstreams(
    cfg: &Config,
    auth_cli: &ReloadableIdentity,
    amc_trust: &TrustSet,
    annuaire_trust: &TrustSet,
) -> Result<Upstreams, String> {
    let auth = auth_cli.current();
    let amc_verifier = OsiVerifier::new(amc_trust, cfg.amc.revocation, Kind::Amc.label())?;
    let amc_tls = client_config(
        amc_verifier,
        cfg.amc.present_client_cert.then_some(auth.as_ref()),
    )?;
    let amc = Upstream::new(Kind::Amc, amc_tls, &cfg.upstream, cfg.proxy.as_ref());
    let annuaire = match &cfg.annuaire {
        Some(a) => {
            let v = OsiVerifier::new(annuaire_trust, a.revocation, Kind::Annuaire.label())?;
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

impl Runtime {
    /// Loads every credential for the first time; any failure is a start-up error (one line).
    pub fn start(cfg: Config) -> Result<Arc<Runtime>, String> {
        let now = now_unix();
        let auth_cli = ReloadableIdentity::new(&cfg.identities.auth_cli, Role::AuthCli, now)
            .map_err(|e| e.0)?;
        let sign =
            ReloadableIdentity::new(&cfg.identities.sign, Role::Sign, now).map_err(|e| e.0)?;
        let (amc_trust, annuaire_trust) = load_trust(&cfg, now)?;
        let upstreams = build_upstreams(&cfg, &auth_cli, &amc_trust, &annuaire_trust)?;
        let signer = Signer::new(&sign.current())?;
        let local_tls = match &cfg.server.tls {
            Some(t) => Some(Arc::new(ArcSwap::from_pointee(crate::local_tls::load(t)?))),
            None => None,
        };
        let rt = Runtime {
            local_tls,
            signer: ArcSwap::from_pointee(signer),
            assertions: AssertionCache::default(),
            auth_cli,
            sign,
            amc_trust: ArcSwap::from_pointee(amc_trust),
            annuaire_trust: ArcSwap::from_pointee(annuaire_trust),
            upstreams: ArcSwap::from_pointee(upstreams),
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

    /// The upstream clients in force; a request keeps the ones it started with.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    /// The SIGN key, prepared for signing.
    pub fn signer(&self) -> Arc<Signer> {
        self.signer.load_full()
    }

    pub fn amc_trust(&self) -> Arc<TrustSet> {
        self.amc_trust.load_full()
    }

    /// The gateway listener's TLS configuration point, when `[server.tls]` is set.
    pub fn local_tls(&self) -> Option<Arc<ArcSwap<crate::local_tls::LocalTls>>> {
        self.local_tls.clone()
    }

    /// Files whose change calls for a reload.
    fn watched(&self) -> Vec<PathBuf> {
        let mut files = self.auth_cli.files();
        files.extend(self.sign.files());
        files.extend(self.cfg.trust.amc_anchors.iter().cloned());
        files.extend(self.cfg.trust.annuaire_anchors.iter().cloned());
        files.extend(self.cfg.trust.crls.iter().cloned());
        files.extend(self.cfg.server.tls.iter().flat_map(|t| t.files()));
        files.sort();
        files.dedup();
        files
    }

    fn fingerprint_now(&self) -> Fingerprint {
        self.watched()
            .into_iter()
            .map(|p| {
                let m = std::fs::metadata(&p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())));
                (p, m)
            })
            .collect()
    }

    /// Whether a watched file changed since the last look (and remembers what it saw).
    fn files_changed(&self) -> bool {
        let now = self.fingerprint_now();
        let mut last = self.fingerprint.lock().unwrap_or_else(|e| e.into_inner());
        if *last != now {
            *last = now;
            true
        } else {
            false
        }
    }

    /// Reloads identities, anchors and CRLs; each part that fails keeps its old material. New
    /// upstream clients are built when anything was reloaded. Returns true when all succeeded.
    pub async fn reload(&self, why: &str) -> bool {
        let _guard = self.reloading.lock().await;
        let now = now_unix();
        let mut ok = true;
        for id in [&self.auth_cli, &self.sign] {
            match id.reload(now) {
                Ok(changed) => {
                    if changed {
                        let cur = id.current();
                        tracing::info!(
                            identity = cur.role.as_str(),
                            serial = %cur.info.serial,
                            not_after = %fmt_time(cur.info.not_after),
                            "new certificate loaded"
                        );
                    }
                }
                Err(e) => {
                    ok = false;
                    tracing::error!(error = %e, "reload failed: keeping the previous identity");
                }
            }
        }
        match Signer::new(&self.sign.current()) {
            Ok(signer) => {
                self.signer.store(Arc::new(signer));
                self.assertions.clear();
            }
            Err(e) => {
                ok = false;
                tracing::error!(error = %e, "reload failed: keeping the previous signing key");
            }
        }
        match load_trust(&self.cfg, now) {
            Ok((amc, annuaire)) => {
                self.amc_trust.store(Arc::new(amc));
                self.annuaire_trust.store(Arc::new(annuaire));
            }
            Err(e) => {
                ok = false;
                tracing::error!(error = %e, "reload failed: keeping the previous anchors and CRLs");
            }
        }
        match build_upstreams(
            &self.cfg,
            &self.auth_cli,
            &self.amc_trust.load(),
            &self.annuaire_trust.load(),
        ) {
            Ok(u) => self.upstreams.store(Arc::new(u)),
            Err(e) => {
                ok = false;
                tracing::error!(error = %e, "reload failed: keeping the previous upstream clients");
            }
        }
        if let (Some(swap), Some(t)) = (&self.local_tls, &self.cfg.server.tls) {
            match crate::local_tls::load(t) {
                Ok(c) => swap.store(Arc::new(c)),
                Err(e) => {
                    ok = false;
                    tracing::error!(error = %e, "reload failed: keeping the previous local TLS");
                }
            }
        }
        let outcome = if ok { "ok" } else { "failed" };
        metrics::get().reloads.with_label_values(&[outcome]).inc();
        if ok {
            metrics::get().generation.inc();
        }
        tracing::info!(trigger = why, outcome, "credentials reloaded");
        if ok {
            self.report();
        }
        ok
    }

    /// Logs the expiry alerts of the procedure: a warning when an identity has fewer than 30
    /// days left, an error under 7 (or once expired).
    pub fn expiry_alerts(&self, now: i64) {
        for id in [self.auth_cli.current(), self.sign.current()] {
            let days = id.days_left(now);
            if days < 7 {
                tracing::error!(
                    identity = id.role.as_str(),
                    days_left = days,
                    not_after = %fmt_time(id.info.not_after),
                    "certificate expires in less than 7 days: install its renewal now"
                );
            } else if days < EXPIRY_WARNING_DAYS {
                tracing::warn!(
                    identity = id.role.as_str(),
                    days_left = days,
                    not_after = %fmt_time(id.info.not_after),
                    "certificate expires in less than {EXPIRY_WARNING_DAYS} days: order its renewal"
                );
            }
        }
    }

    /// The IGC OSI trust material of the annuaire side.
    pub fn annuaire_trust(&self) -> Arc<TrustSet> {
        self.annuaire_trust.load_full()
    }

    /// Logs what is in force, with the expiry warnings of the procedure (one month).
    pub fn report(&self) {
        self.expiry_alerts(now_unix());
        let s = &self.cfg.server;
        if s.max_buffered_bytes < s.max_body_bytes + self.cfg.upstream.max_response_bytes {
            tracing::warn!(
                max_buffered_bytes = s.max_buffered_bytes,
                "server.max_buffered_bytes is below max_body_bytes + upstream.max_response_bytes: \
                 a large AMC answer may be refused after the AMC has acted on the call"
            );
        }
        // Keys, P12 files and password files are secrets: readable by rocgw only.
        let local_key = self.config().server.tls.as_ref().map(|t| t.key.clone());
        for f in self
            .auth_cli
            .files()
            .into_iter()
            .chain(self.sign.files())
            .chain(local_key)
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(m) = std::fs::metadata(&f) {
                let mode = m.permissions().mode() & 0o777;
                if mode & 0o044 != 0 {
                    tracing::warn!(
                        file = %f.display(),
                        mode = format!("{mode:o}"),
                        "a key or password file is readable by its group or by everyone: chmod 600"
                    );
                }
            }
        }
        let now = now_unix();
        let auth = self.auth_cli.current();
        let sign = self.sign.current();
        for id in [&auth, &sign] {
            let days = id.days_left(now);
            tracing::info!(
                identity = id.role.as_str(),
                subject = %id.info.subject,
                serial = %id.info.serial,
                not_after = %fmt_time(id.info.not_after),
                days_left = days,
                "identity loaded"
            );
            if id.info.common_name.as_deref() != Some(id.role.recommended_cn()) {
                tracing::warn!(
                    identity = id.role.as_str(),
                    cn = id.info.common_name.as_deref().unwrap_or(""),
                    recommended = id.role.recommended_cn(),
                    "certificate CN differs from the recommended service name"
                );
            }
        }
        if auth.info.structure_id != sign.info.structure_id {
            tracing::warn!(
                auth_cli = auth.info.structure_id.as_deref().unwrap_or("?"),
                sign = sign.info.structure_id.as_deref().unwrap_or("?"),
                "AUTH_CLI and SIGN certificates name different structures"
            );
        }
        let amc = self.amc_trust.load();
        tracing::info!(
            amc_anchors = amc.anchors.len(),
            annuaire_anchors = self.annuaire_trust.load().anchors.len(),
            crls = amc.crls.len(),
            "trust material loaded"
        );
        for c in amc.crls.crls() {
            if c.is_stale(now) {
                tracing::warn!(issuer = %c.issuer, source = %c.source.display(), "CRL is past its next update");
            }
        }
    }

    /// Starts the reload triggers: SIGHUP, and the timed check of the watched files.
    pub fn spawn_watchers(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            let rt = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    tracing::warn!("cannot listen for SIGHUP: reload by file check only");
                    return;
                };
                while hup.recv().await.is_some() {
                    rt.files_changed();
                    rt.reload("SIGHUP").await;
                }
            });
        }
        // The procedure's one-month alert, every day: a warning under 30 days, an error under 7.
        {
            let rt = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(86_400));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    rt.expiry_alerts(now_unix());
                }
            });
        }
        let every = self.cfg.reload_check_interval_s;
        if every > 0 {
            let rt = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(every));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if rt.files_changed() {
                        rt.reload("file change").await;
                    }
                }
            });
        }
    }
}

//! The TLS of rocgw's own listeners: the gateway's `[server.tls]` (local certificate, client
//! certificates of the hospital's local CA, their CRLs) and the simulator's servers. Built here
//! once per (re)load; the listener only swaps and uses it.

use std::path::Path;
use std::sync::Arc;

use crate::config::ServerTls;

/// The TLS of a listener with client certificates: the configuration, and its client verifier
/// (kept to re-check the certificates of open connections after a reload).
#[derive(Debug)]
pub struct LocalTls {
    pub config: Arc<rustls::ServerConfig>,
    pub verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

/// The TLS configuration of a gateway listener with `[server.tls]`: rocgw's local certificate,
/// and client certificates required, chaining to the local CA(s), not revoked by `client_crls`
/// (end-entity certificates checked). Reloaded with the other credentials.
pub fn load(cfg: &ServerTls) -> Result<LocalTls, String> {
    let now = crate::clock::now_unix();
    let roots = crate::trust::Anchors::load("server.tls.client_ca", &cfg.client_ca, now)
        .and_then(|a| a.root_store())
        .map_err(|e| e.to_string())?;
    let crls = crate::trust::crl_ders(&cfg.client_crls)
        .map_err(|e| format!("server.tls.client_crls: {e}"))?;
    let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        crate::crypto::provider(),
    );
    if !crls.is_empty() {
        verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
    }
    let verifier = verifier
        .build()
        .map_err(|e| format!("server.tls.client_ca: {e}"))?;
    let config = tls_config(&cfg.cert, &cfg.key, verifier.clone())
        .map_err(|e| format!("server.tls: {e}"))?;
    Ok(LocalTls {
        config: Arc::new(config),
        verifier,
    })
}

/// A TLS server configuration: the PEM chain and key at `cert` and `key`, clients checked by
/// `verifier`.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> Result<rustls::ServerConfig, String> {
    let ck = crate::identity::certified_key_from_pem(cert, key)?;
    Ok(
        rustls::ServerConfig::builder_with_provider(crate::crypto::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck))),
    )
}

/// The gateway listener's `[server.tls]` behind the swap point the listener reads at each
/// accept, reloadable from its files.
///
/// Contract: if reloading fails, the old configuration is kept and keeps serving. It is rebuilt
/// at every reload, changed files or not: the listener then checks each open connection's
/// client certificate again (one that expired or was revoked since cannot keep its
/// keep-alive connection), which a reload is the operator's way to ask for.
#[derive(Debug)]
pub struct ReloadableLocalTls {
    cfg: ServerTls,
    current: Arc<arc_swap::ArcSwap<LocalTls>>,
}

impl ReloadableLocalTls {
    /// Builds the listener's TLS for the first time; a failure here is a start-up error.
    pub fn new(cfg: &ServerTls) -> Result<Self, String> {
        Ok(ReloadableLocalTls {
            current: Arc::new(arc_swap::ArcSwap::from_pointee(load(cfg)?)),
            cfg: cfg.clone(),
        })
    }

    /// The swap point, shared with the listener.
    pub fn swap_point(&self) -> Arc<arc_swap::ArcSwap<LocalTls>> {
        self.current.clone()
    }

    /// The files whose change calls for a reload.
    pub fn files(&self) -> Vec<std::path::PathBuf> {
        self.cfg.files()
    }

    /// Builds it again and puts it in force.
    pub fn reload(&self) -> Result<(), String> {
        self.current.store(Arc::new(load(&self.cfg)?));
        Ok(())
    }
}

//! The simulator's TLS: the server certificates an AMC can present (fault injection picks one),
//! the annuaire's client-certificate check (an IGC-Santé AUTH_CLI), and the accept loop that
//! can reset a connection on purpose.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use super::server::Amc;
use super::{CertKey, CertMode, Certificates, SimConfig};
use crate::listener::{Body, HttpResponse};
use crate::trust::Anchors;

fn certified(c: &CertKey) -> Result<Arc<CertifiedKey>, String> {
    crate::identity::certified_key_from_pem(&c.cert, &c.key)
}

/// The server certificates, one per [`CertMode`] configured.
pub(super) struct ServerCerts {
    by_mode: Vec<(CertMode, Arc<CertifiedKey>)>,
}

impl ServerCerts {
    pub(super) fn load(c: &Certificates) -> Result<ServerCerts, String> {
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

/// An AMC's TLS: no client certificate asked, the server certificate its faults choose.
pub(super) fn amc_tls(amc: Arc<Amc>, certs: Arc<ServerCerts>) -> Result<Arc<ServerConfig>, String> {
    Ok(Arc::new(
        ServerConfig::builder_with_provider(crate::crypto::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(AmcCertResolver { amc, certs })),
    ))
}

/// The annuaire's TLS: a client certificate chaining to the IGC-Santé anchors, with the
/// clientAuth usage (webpki checks it), not revoked by the configured CRLs.
pub(super) fn annuaire_tls(
    cfg: &SimConfig,
    anchors: &Anchors,
) -> Result<Arc<ServerConfig>, String> {
    let roots = Arc::new(anchors.root_store().map_err(|e| e.to_string())?);
    let crls = crate::trust::crl_ders(&cfg.igc_sante.crls).map_err(|e| e.to_string())?;
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
pub(super) async fn serve_tls<H, F>(l: TcpListener, tls: Arc<ServerConfig>, handler: Arc<H>)
where
    H: Fn(Request<Body>) -> F + Send + Sync + 'static,
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
            let handle = |req| {
                let (handler, reset) = (handler.clone(), reset.clone());
                async move {
                    match handler(req).await {
                        Some(r) => r,
                        None => {
                            reset.notify_one();
                            std::future::pending().await
                        }
                    }
                }
            };
            let settings = crate::listener::Settings::from(&crate::config::Limits::default());
            let (_running, stop) = tokio::sync::watch::channel(false);
            let conn = crate::listener::serve_http1(Box::new(tls), settings, handle, stop, None);
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

//! The upstream server-certificate verifier: chain to the anchors, validity dates and host name
//! by rustls-webpki (aws-lc-rs); then revocation from pre-verified CRLs under a policy, up the
//! path and past an intermediate anchor to its issuer's CRL; then the server role (the path goes
//! through an AC-SERVEUR authority).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError};
use x509_parser::prelude::*;

use super::{CrlSet, Role, Roles, Status, TrustError, TrustSet, WrongRole};
use crate::config::RevocationPolicy;
use crate::metrics;

/// Verifies upstream server certificates: chain to the anchors, validity dates and host name by
/// rustls-webpki (aws-lc-rs), then revocation from pre-verified CRLs under a policy.
pub struct OsiVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// The anchors' certificates: where the revocation and role walks end (or go on, past an
    /// intermediate anchor).
    anchors: Vec<CertificateDer<'static>>,
    crls: Arc<CrlSet>,
    /// Server-role authorities the path must go through (`None`: no role check).
    roles: Option<Arc<Roles>>,
    policy: RevocationPolicy,
    /// Metric label of the upstream (`annuaire`, `amc`).
    upstream: &'static str,
    /// Unix time of the last "unknown revocation status" warning, to log it at most once a minute.
    last_warning: AtomicI64,
}

impl std::fmt::Debug for OsiVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsiVerifier")
            .field("upstream", &self.upstream)
            .field("policy", &self.policy)
            .field("crls", &self.crls.len())
            .finish()
    }
}

/// The `reason` labels of `rocgw_revocation_unknown_total`.
const UNKNOWN_REASONS: [&str; 2] = ["no-crl", "stale-crl"];

impl OsiVerifier {
    pub fn new(
        trust: &TrustSet,
        policy: RevocationPolicy,
        upstream: &'static str,
    ) -> Result<Arc<OsiVerifier>, TrustError> {
        let roots = Arc::new(trust.anchors.root_store()?);
        let inner = WebPkiServerVerifier::builder_with_provider(roots, crate::crypto::provider())
            .build()
            .map_err(TrustError::Verifier)?;
        for reason in UNKNOWN_REASONS {
            metrics::get()
                .revocation_unknown
                .with_label_values(&[upstream, reason]);
        }
        Ok(Arc::new(OsiVerifier {
            inner,
            anchors: trust
                .anchors
                .anchors
                .iter()
                .map(|a| a.der.clone())
                .collect(),
            crls: trust.crls.clone(),
            roles: trust.roles.clone(),
            policy,
            upstream,
            last_warning: AtomicI64::new(0),
        }))
    }

    /// Checks the revocation status of the end-entity certificate and of each certificate
    /// above it on its path that is not a self-signed root: presented intermediates, and an
    /// anchor that is itself an intermediate (AC-SERVEUR configured as anchor is checked
    /// against the root's CRL).
    fn check_revocation(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: i64,
    ) -> Result<(), TlsError> {
        let bad = || TlsError::InvalidCertificate(CertificateError::BadEncoding);
        let (_, mut cert) = X509Certificate::from_der(end_entity).map_err(|_| bad())?;
        // Parsed only when the path goes past the end-entity's issuer.
        let mut above: Option<Vec<X509Certificate<'_>>> = None;
        for _ in 0..=intermediates.len() + self.anchors.len() {
            self.status(&cert, now)?;
            let above = above.get_or_insert_with(|| {
                intermediates
                    .iter()
                    .map(|d| d.as_ref())
                    .chain(self.anchors.iter().map(|d| d.as_ref()))
                    .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
                    .collect()
            });
            let issuer = cert.issuer().as_raw();
            match above.iter().find(|c| c.subject().as_raw() == issuer) {
                // A self-signed root has no CRL above it.
                Some(next) if next.subject().as_raw() != next.issuer().as_raw() => {
                    cert = next.clone();
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// One certificate's revocation status under the policy.
    fn status(&self, cert: &X509Certificate<'_>, now: i64) -> Result<(), TlsError> {
        match self.crls.status(cert, now) {
            Status::Good => Ok(()),
            Status::Revoked => Err(TlsError::InvalidCertificate(CertificateError::Revoked)),
            unknown @ (Status::NoCrl | Status::Stale) => {
                let reason = UNKNOWN_REASONS[usize::from(unknown == Status::Stale)];
                if self.policy == RevocationPolicy::Hard {
                    return Err(TlsError::InvalidCertificate(if unknown == Status::Stale {
                        CertificateError::ExpiredRevocationList
                    } else {
                        CertificateError::UnknownRevocationStatus
                    }));
                }
                metrics::get()
                    .revocation_unknown
                    .with_label_values(&[self.upstream, reason])
                    .inc();
                let last = self.last_warning.load(Ordering::Relaxed);
                if now - last >= 60
                    && self
                        .last_warning
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        upstream = self.upstream,
                        reason,
                        issuer = %cert.issuer(),
                        "revocation status unknown: allowed by the soft policy"
                    );
                }
                Ok(())
            }
        }
    }

    /// The path goes through a server-role authority (AC-SERVEUR), whatever else is an anchor.
    fn check_role(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), TlsError> {
        let Some(roles) = &self.roles else {
            return Ok(());
        };
        let pool: Vec<&[u8]> = intermediates
            .iter()
            .map(|d| d.as_ref())
            .chain(self.anchors.iter().map(|d| d.as_ref()))
            .collect();
        if roles.path_has(Role::Server, end_entity, &pool) {
            Ok(())
        } else {
            Err(TlsError::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(WrongRole)),
            )))
        }
    }
}

impl ServerCertVerifier for OsiVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if self.policy != RevocationPolicy::Off {
            self.check_revocation(end_entity, intermediates, now.as_secs() as i64)?;
        }
        self.check_role(end_entity, intermediates)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

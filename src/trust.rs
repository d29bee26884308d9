//! Trust: the GIE SESAM-Vitale IGC OSI authorities (AC-SERVEUR, AC-SERVICES-APPLICATIFS and
//! their root) that every AMC and annuaire server certificate must chain to, their CRLs, and the
//! `ServerCertVerifier` that applies both at handshake time.
//!
//! Revocation is cheap on the hot path: rustls-webpki re-verifies a CRL's signature on every
//! lookup (its source has a TODO for this, webpki issue 81), so a 100,000-entry CRL would cost
//! milliseconds per handshake. Here each CRL's signature, issuer and dates are checked once, when
//! it is loaded, and its revoked serials kept in a hash set; `OsiVerifier` lets rustls-webpki
//! validate the chain, dates and host name, then looks serials up. CRLs are read from disk only
//! (on change or on a timer, see `reload`), never fetched during a handshake. Which CRL answers
//! for which certificate (scopes, the newest per scope, what is refused): `crl`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls::pki_types::CertificateDer;
use rustls::{Error as TlsError, RootCertStore};
use x509_parser::prelude::*;

use crate::clock::fmt_time;
use crate::config::TrustConfig;
use crate::identity::{read_pem_certs, CertInfo};

mod crl;
mod identity_crls;
mod roles;
mod verifier;
pub use crl::{crl_ders, read_crl_file, Certs, Crl, CrlSet, Scope, Status, Superseded};
pub use identity_crls::IdentityCrls;
pub use roles::{Role, Roles, WrongRole};
pub use verifier::OsiVerifier;

/// A refused anchor, CRL or verifier: one line naming the file and what is wrong with it.
///
/// The texts are those start-up prints and the integration tests match, so a variant's
/// `Display` is the contract; the fields let callers and tests tell the failures apart. Inner
/// errors are shown in the line rather than chained as `source`, so that a reporter walking the
/// chain does not print them twice.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A file error, from the `index`-th file of the config list `field` (`trust.crls[2]: …`).
    #[error("{field}[{index}]: {inner}")]
    InField {
        field: String,
        index: usize,
        inner: Box<TrustError>,
    },
    /// A certificate file that `identity::read_pem_certs` refused (unreadable, invalid PEM, no
    /// certificate): its message, which names the file.
    #[error("{0}")]
    CertificateFile(String),
    /// No server-role (AC-SERVEUR) authority configured or recognised among the anchors.
    #[error("trust.server_authorities: no server-role authority (AC-SERVEUR) configured or found among the anchors: list its certificate here")]
    NoServerRole,
    /// A certificate that does not parse.
    #[error("{}: {why}", path.display())]
    BadCertificate { path: PathBuf, why: String },
    #[error("{}: {subject} is not a CA certificate (basicConstraints CA:TRUE missing)", path.display())]
    NotCa { path: PathBuf, subject: String },
    #[error("{}: anchor {subject} expired on {}", path.display(), fmt_time(*not_after))]
    AnchorExpired {
        path: PathBuf,
        subject: String,
        not_after: i64,
    },
    /// An anchor that rustls will not take into a root store.
    #[error("{}: unusable anchor: {error}", path.display())]
    UnusableAnchor { path: PathBuf, error: TlsError },
    #[error("cannot read {}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: invalid PEM: {error}", path.display())]
    InvalidPem {
        path: PathBuf,
        error: rustls_pki_types::pem::Error,
    },
    #[error("{}: no CRL found", path.display())]
    NoCrl { path: PathBuf },
    #[error("{}: not a valid CRL: {error}", path.display())]
    InvalidCrl { path: PathBuf, error: X509Failure },
    #[error("{}: CRL issuer {issuer} is not among the trust anchors", path.display())]
    UnknownCrlIssuer { path: PathBuf, issuer: String },
    /// The public key of the anchor named as the CRL's issuer does not parse.
    #[error("{}: issuer key unreadable: {error}", path.display())]
    IssuerKeyUnreadable { path: PathBuf, error: X509Failure },
    /// The line does not show why (it never did); the x509-parser error is kept as the source.
    #[error("{}: CRL signature does not verify with the key of {issuer}", path.display())]
    CrlSignature {
        path: PathBuf,
        issuer: String,
        #[source]
        error: X509Error,
    },
    /// thisUpdate is more than five minutes ahead of our clock.
    #[error("{}: CRL of {issuer} is not valid before {}", path.display(), fmt_time(*this_update))]
    CrlNotYetValid {
        path: PathBuf,
        issuer: String,
        this_update: i64,
    },
    /// A delta CRL (deltaCRLIndicator): only complete CRLs are read.
    #[error("{}: delta CRL of {issuer} (deltaCRLIndicator): not supported, list the authority's complete CRL instead", path.display())]
    DeltaCrl { path: PathBuf, issuer: String },
    /// An indirect CRL: `how` says what makes it one (the IDP's indirectCRL, a certificateIssuer
    /// entry extension).
    #[error("{}: indirect CRL of {issuer} ({how}): not supported, list each authority's own CRL", path.display())]
    IndirectCrl {
        path: PathBuf,
        issuer: String,
        how: &'static str,
    },
    /// A CRL for some revocation reasons only (the IDP's onlySomeReasons).
    #[error("{}: CRL of {issuer} for some revocation reasons only (issuingDistributionPoint onlySomeReasons: {reasons}): not supported, list the authority's CRL for all reasons", path.display())]
    PartialCrl {
        path: PathBuf,
        issuer: String,
        reasons: String,
    },
    /// A critical extension rocgw does not understand, of the CRL or of the entry of `serial`.
    #[error("{}: CRL of {issuer} has an unknown critical extension {oid}{}: rocgw cannot apply it", path.display(), serial.as_ref().map(|s| format!(" on the entry of serial {s}")).unwrap_or_default())]
    CrlCriticalExtension {
        path: PathBuf,
        issuer: String,
        oid: String,
        serial: Option<String>,
    },
    /// An issuing distribution point that does not parse or contradicts itself.
    #[error("{}: CRL of {issuer}: invalid issuingDistributionPoint: {why}", path.display())]
    InvalidIdp {
        path: PathBuf,
        issuer: String,
        why: String,
    },
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(rustls::client::VerifierBuilderError),
}

/// What x509-parser returns when DER does not parse.
pub type X509Failure = x509_parser::nom::Err<X509Error>;

impl TrustError {
    /// Adds the config list and position of the file the error is about.
    fn in_field(field: &str, index: usize) -> impl FnOnce(TrustError) -> TrustError + '_ {
        move |inner| TrustError::InField {
            field: field.to_string(),
            index,
            inner: Box::new(inner),
        }
    }
}

/// One anchor certificate and where it came from.
#[derive(Debug, Clone)]
pub struct Anchor {
    pub source: PathBuf,
    pub der: CertificateDer<'static>,
    pub info: CertInfo,
}

/// A set of anchors, as configured for one sphere (AMC or annuaire).
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub anchors: Vec<Anchor>,
}

impl Anchors {
    /// Loads every certificate of every file; each must be a CA certificate inside its validity.
    /// Errors name the config `field` and the file.
    pub fn load(field: &str, paths: &[PathBuf], now: i64) -> Result<Anchors, TrustError> {
        let mut anchors = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let file = load_anchor_file(p, now).map_err(TrustError::in_field(field, i))?;
            anchors.extend(file);
        }
        Ok(Anchors { anchors })
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// The anchors' certificates (DER).
    pub fn certificates(&self) -> impl Iterator<Item = &[u8]> {
        self.anchors.iter().map(|a| a.der.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// A rustls root store of these anchors.
    pub fn root_store(&self) -> Result<RootCertStore, TrustError> {
        let mut store = RootCertStore::empty();
        for a in &self.anchors {
            store
                .add(a.der.clone())
                .map_err(|error| TrustError::UnusableAnchor {
                    path: a.source.clone(),
                    error,
                })?;
        }
        Ok(store)
    }
}

/// The certificates of one anchor file, each a CA certificate inside its validity at `now`.
fn load_anchor_file(p: &Path, now: i64) -> Result<Vec<Anchor>, TrustError> {
    let mut anchors = Vec::new();
    for der in read_pem_certs(p).map_err(TrustError::CertificateFile)? {
        let info = CertInfo::parse(&der).map_err(|why| TrustError::BadCertificate {
            path: p.to_path_buf(),
            why,
        })?;
        if !info.is_ca {
            return Err(TrustError::NotCa {
                path: p.to_path_buf(),
                subject: info.subject,
            });
        }
        if now >= info.not_after {
            return Err(TrustError::AnchorExpired {
                path: p.to_path_buf(),
                subject: info.subject,
                not_after: info.not_after,
            });
        }
        anchors.push(Anchor {
            source: p.to_path_buf(),
            der,
            info,
        });
    }
    Ok(anchors)
}

/// Who may sign `[trust] crls`: the anchors, and the role authorities (`server_authorities`,
/// `signature_authorities`) issued by one of them — an AC-SERVEUR signs its own CRL, so a
/// root-only `amc_anchors` with the authorities listed apart loads its CRLs too.
pub fn crl_signers(
    cfg: &TrustConfig,
    anchors: &[&Anchors],
    now: i64,
) -> Result<Anchors, TrustError> {
    let mut signers = Anchors::load("trust.server_authorities", &cfg.server_authorities, now)?;
    let more = Anchors::load(
        "trust.signature_authorities",
        &cfg.signature_authorities,
        now,
    )?;
    signers.anchors.extend(more.anchors);
    let known: Vec<&[u8]> = anchors.iter().flat_map(|a| a.certificates()).collect();
    signers
        .anchors
        .retain(|s| known.iter().any(|k| crate::identity::issued_by(&s.der, k)));
    Ok(signers)
}

/// The trust material of one sphere: anchors and the CRLs that apply to certificates under them.
#[derive(Debug, Clone, Default)]
pub struct TrustSet {
    pub anchors: Anchors,
    pub crls: Arc<CrlSet>,
    /// The authorities' roles; `None` only for a verifier built outside the configuration
    /// (benchmarks), which then checks no role.
    pub roles: Option<Arc<Roles>>,
}

/// The IGC OSI trust material of both upstreams: the AMC side and the annuaire side, sharing
/// one CRL set.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub amc: TrustSet,
    pub annuaire: TrustSet,
}

impl Trust {
    /// Loads `[trust]`: anchors of each side (checked for dates), then the CRLs, each verified
    /// against the anchors of either side.
    pub fn load(cfg: &TrustConfig, now: i64) -> Result<Trust, TrustError> {
        let amc = Anchors::load("trust.amc_anchors", &cfg.amc_anchors, now)?;
        let annuaire = Anchors::load("trust.annuaire_anchors", &cfg.annuaire_anchors, now)?;
        let signers = crl_signers(cfg, &[&amc, &annuaire], now)?;
        let crls = Arc::new(CrlSet::load(
            "trust.crls",
            &cfg.crls,
            &[&amc, &annuaire, &signers],
            now,
        )?);
        crls.warn_superseded("trust.crls");
        let roles = Some(Arc::new(Roles::load(cfg, &[&amc, &annuaire])?));
        Ok(Trust {
            amc: TrustSet {
                anchors: amc,
                crls: crls.clone(),
                roles: roles.clone(),
            },
            annuaire: TrustSet {
                anchors: annuaire,
                crls,
                roles,
            },
        })
    }
}

/// The trust material of `[trust]` behind one swap point, reloadable from its files.
///
/// Contract: if reloading fails (a missing or expired anchor, a CRL that does not verify), the
/// old anchors and CRLs are kept and keep being used. When no file changed, nothing is loaded
/// again and the result says so.
#[derive(Debug)]
pub struct ReloadableTrust {
    cfg: TrustConfig,
    current: ArcSwap<Trust>,
    seen: crate::crypto::FilesSeen,
}

impl ReloadableTrust {
    /// Loads the trust material for the first time; a failure here is a start-up error.
    pub fn new(cfg: &TrustConfig, now: i64) -> Result<Self, TrustError> {
        let mut files: Vec<PathBuf> = cfg.amc_anchors.clone();
        files.extend(cfg.annuaire_anchors.iter().cloned());
        files.extend(cfg.crls.iter().cloned());
        let seen = crate::crypto::FilesSeen::new(files);
        Ok(ReloadableTrust {
            current: ArcSwap::from_pointee(Trust::load(cfg, now)?),
            cfg: cfg.clone(),
            seen,
        })
    }

    /// The trust material in force.
    pub fn current(&self) -> Arc<Trust> {
        self.current.load_full()
    }

    /// The files whose change calls for a reload.
    pub fn files(&self) -> &[PathBuf] {
        self.seen.files()
    }

    /// Loads the files again when they changed; returns whether new material is in force.
    pub fn reload(&self, now: i64) -> Result<bool, TrustError> {
        self.seen.reload_if_changed(|| {
            let trust = Trust::load(&self.cfg, now)?;
            self.current.store(Arc::new(trust));
            Ok(())
        })
    }
}

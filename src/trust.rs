//! Trust: the GIE SESAM-Vitale IGC OSI authorities (AC-SERVEUR, AC-SERVICES-APPLICATIFS and
//! their root) that every AMC and annuaire server certificate must chain to, their CRLs, and the
//! `ServerCertVerifier` that applies both at handshake time.
//!
//! Revocation is cheap on the hot path: rustls-webpki re-verifies a CRL's signature on every
//! lookup (its source has a TODO for this, webpki issue 81), so a 100,000-entry CRL would cost
//! milliseconds per handshake. Here each CRL's signature, issuer and dates are checked once, when
//! it is loaded, and its revoked serials kept in a hash set; `OsiVerifier` lets rustls-webpki
//! validate the chain, dates and host name, then looks serials up. CRLs are read from disk only
//! (on change or on a timer, see `reload`), never fetched during a handshake.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::{Error as TlsError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::*;

use crate::clock::fmt_time;
use crate::config::TrustConfig;
use crate::identity::{read_pem_certs, CertInfo};

mod roles;
mod verifier;
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

/// A CRL checked once at load time: signature by a known authority, dates; then only serials.
#[derive(Debug, Clone)]
pub struct Crl {
    pub source: PathBuf,
    pub issuer: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    serials: HashSet<Box<[u8]>>,
}

impl Crl {
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    pub fn is_stale(&self, now: i64) -> bool {
        self.next_update.is_some_and(|n| now > n)
    }
}

/// Every CRL of these files, for a rustls verifier (which checks them itself).
pub fn crl_ders(
    paths: &[PathBuf],
) -> Result<Vec<rustls::pki_types::CertificateRevocationListDer<'static>>, TrustError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(
            read_crl_file(p)?
                .into_iter()
                .map(rustls::pki_types::CertificateRevocationListDer::from),
        );
    }
    Ok(out)
}

/// Every CRL of a PEM file, or the one CRL of a DER file (DER bytes, not yet checked).
pub fn read_crl_file(p: &Path) -> Result<Vec<Vec<u8>>, TrustError> {
    let data = std::fs::read(p).map_err(|error| TrustError::Unreadable {
        path: p.to_path_buf(),
        error,
    })?;
    let ders: Vec<Vec<u8>> = if data.first() == Some(&0x30) {
        vec![data]
    } else {
        CertificateRevocationListDer::pem_slice_iter(&data)
            .map(|r| r.map(|d| d.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|error| TrustError::InvalidPem {
                path: p.to_path_buf(),
                error,
            })?
    };
    if ders.is_empty() {
        return Err(TrustError::NoCrl {
            path: p.to_path_buf(),
        });
    }
    Ok(ders)
}

/// DER integers may carry a leading zero byte; serials are compared without it.
fn serial_key(raw: &[u8]) -> &[u8] {
    let mut s = raw;
    while s.len() > 1 && s[0] == 0 {
        s = &s[1..];
    }
    s
}

/// The revocation status of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked,
    /// No CRL for this issuer.
    NoCrl,
    /// The issuer's CRL is past its next update.
    Stale,
}

/// CRLs indexed by the raw DER name of their issuer.
#[derive(Debug, Clone, Default)]
pub struct CrlSet {
    by_issuer: HashMap<Vec<u8>, Crl>,
}

impl CrlSet {
    /// Loads the CRL files named by `field`. Each CRL must be signed by one of `issuers` (the
    /// configured anchors); a CRL that is not yet valid is refused, a stale one kept (its
    /// staleness is a matter of policy, at handshake time).
    pub fn load(
        field: &str,
        paths: &[PathBuf],
        issuers: &[&Anchors],
        now: i64,
    ) -> Result<CrlSet, TrustError> {
        let mut by_issuer = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            let in_field = || TrustError::in_field(field, i);
            for der in read_crl_file(p).map_err(in_field())? {
                let (raw_issuer, crl) = parse_crl(&der, p, issuers, now).map_err(in_field())?;
                by_issuer.insert(raw_issuer, crl);
            }
        }
        Ok(CrlSet { by_issuer })
    }

    /// Revocation status of a certificate given its issuer's raw name and its raw serial.
    pub fn status(&self, issuer_raw: &[u8], serial_raw: &[u8], now: i64) -> Status {
        match self.by_issuer.get(issuer_raw) {
            None => Status::NoCrl,
            Some(c) if c.serials.contains(serial_key(serial_raw)) => Status::Revoked,
            Some(c) if c.is_stale(now) => Status::Stale,
            Some(_) => Status::Good,
        }
    }

    pub fn crls(&self) -> impl Iterator<Item = &Crl> {
        self.by_issuer.values()
    }

    pub fn len(&self) -> usize {
        self.by_issuer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }
}

/// Checks one CRL (issuer among `issuers`, signature, thisUpdate) and keeps its serials.
fn parse_crl(
    der: &[u8],
    path: &Path,
    issuers: &[&Anchors],
    now: i64,
) -> Result<(Vec<u8>, Crl), TrustError> {
    let (_, crl) =
        CertificateRevocationList::from_der(der).map_err(|error| TrustError::InvalidCrl {
            path: path.to_path_buf(),
            error,
        })?;
    let issuer_raw = crl.issuer().as_raw().to_vec();
    let issuer = crl.issuer().to_string();
    let signer = issuers
        .iter()
        .flat_map(|a| a.anchors.iter())
        .find_map(|a| {
            let (_, c) = X509Certificate::from_der(&a.der).ok()?;
            (c.subject().as_raw() == issuer_raw.as_slice()).then(|| c.public_key().raw.to_vec())
        })
        .ok_or_else(|| TrustError::UnknownCrlIssuer {
            path: path.to_path_buf(),
            issuer: issuer.clone(),
        })?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(&signer).map_err(|error| {
        TrustError::IssuerKeyUnreadable {
            path: path.to_path_buf(),
            error,
        }
    })?;
    crl.verify_signature(&spki)
        .map_err(|error| TrustError::CrlSignature {
            path: path.to_path_buf(),
            issuer: issuer.clone(),
            error,
        })?;
    let this_update = crl.last_update().timestamp();
    if this_update > now + 300 {
        return Err(TrustError::CrlNotYetValid {
            path: path.to_path_buf(),
            issuer,
            this_update,
        });
    }
    let serials = crl
        .iter_revoked_certificates()
        .map(|r| serial_key(r.raw_serial()).to_vec().into_boxed_slice())
        .collect();
    Ok((
        issuer_raw,
        Crl {
            source: path.to_path_buf(),
            issuer,
            this_update,
            next_update: crl.next_update().map(|t| t.timestamp()),
            serials,
        },
    ))
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
        let crls = Arc::new(CrlSet::load(
            "trust.crls",
            &cfg.crls,
            &[&amc, &annuaire],
            now,
        )?);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_without_leading_zeros() {
        assert_eq!(serial_key(&[0, 0x80, 1]), &[0x80, 1]);
        assert_eq!(serial_key(&[0]), &[0]);
        let mut serials = HashSet::new();
        serials.insert(serial_key(&[0x00, 0x9a]).to_vec().into_boxed_slice());
        let set = CrlSet {
            by_issuer: HashMap::from([(
                b"issuer".to_vec(),
                Crl {
                    source: PathBuf::from("x.crl"),
                    issuer: "CN=x".into(),
                    this_update: 0,
                    next_update: Some(1_000),
                    serials,
                },
            )]),
        };
        assert_eq!(set.status(b"issuer", &[0x9a], 10), Status::Revoked);
        assert_eq!(set.status(b"issuer", &[0x9b], 10), Status::Good);
        assert_eq!(set.status(b"issuer", &[0x9b], 2_000), Status::Stale);
        assert_eq!(set.status(b"issuer", &[0x9a], 2_000), Status::Revoked);
        assert_eq!(set.status(b"other", &[0x9a], 10), Status::NoCrl);
    }

    /// A CA named `CN=TEST ROCGW CA`, with a key of its own: two of them share a name only.
    fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "TEST ROCGW CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("key");
        rcgen::CertifiedIssuer::self_signed(p, key).expect("CA certificate")
    }

    /// An empty CRL signed by `ca`, as DER.
    fn empty_crl(ca: &rcgen::Issuer<'_, rcgen::KeyPair>) -> Vec<u8> {
        // `::time`: the x509-parser prelude brings a `time` module of its own.
        let now = ::time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - ::time::Duration::hours(1),
            next_update: now + ::time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(vec![1u8]),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(ca).expect("CRL").der().to_vec()
    }

    #[test]
    fn a_crl_signed_by_another_key_gives_the_signature_error_with_its_field() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (anchor, impostor) = (test_ca(), test_ca());
        let anchor_file = dir.path().join("anchor.pem");
        std::fs::write(&anchor_file, anchor.pem()).expect("write");
        let good = dir.path().join("good.crl");
        std::fs::write(&good, empty_crl(&anchor)).expect("write");
        let forged = dir.path().join("forged.crl");
        std::fs::write(&forged, empty_crl(&impostor)).expect("write");
        let now = crate::clock::now_unix();
        let anchors = Anchors::load("trust.amc_anchors", &[anchor_file], now).expect("anchor");
        let set = CrlSet::load("trust.crls", std::slice::from_ref(&good), &[&anchors], now)
            .expect("good");
        assert_eq!(set.len(), 1);

        let err = CrlSet::load("trust.crls", &[good, forged.clone()], &[&anchors], now)
            .expect_err("a CRL signed by another key");
        let TrustError::InField {
            field,
            index,
            inner,
        } = &err
        else {
            panic!("not wrapped with its field: {err:?}");
        };
        assert_eq!((field.as_str(), *index), ("trust.crls", 1));
        assert!(
            matches!(inner.as_ref(), TrustError::CrlSignature { path, issuer, .. }
                if *path == forged && issuer == "CN=TEST ROCGW CA"),
            "{inner:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "trust.crls[1]: {}: CRL signature does not verify with the key of CN=TEST ROCGW CA",
                forged.display()
            )
        );
    }
}

//! CRLs: each checked once, at load (issuer among the anchors, signature, thisUpdate, and only
//! what we understand: a complete, direct CRL for all reasons), then kept as a hash set of
//! serials with the scope of its issuing distribution point; per handshake only serials are
//! looked up, in the CRLs whose scope covers the certificate.
//!
//! Several CRLs of one issuer (RFC 5280 §6.3.3, simplified): CRLs of the same scope compete and
//! the newest wins — highest cRLNumber, else latest thisUpdate — whatever their order in the
//! configuration; the others are kept aside as [`Superseded`], for a warning. CRLs of different
//! scopes (a root's CRL for end entities and its ARL for CA certificates) are all in force, each
//! for the certificates it covers. A certificate that no CRL covers has an unknown status
//! ([`Status::NoCrl`]): the revocation policy decides.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateRevocationListDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::num_bigint::BigUint;
use x509_parser::oid_registry::{
    Oid, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_CRL_NUMBER,
    OID_X509_EXT_DELTA_CRL_INDICATOR, OID_X509_EXT_HOLD_INSTRUCTION_CODE,
    OID_X509_EXT_INVALIDITY_DATE, OID_X509_EXT_ISSUER, OID_X509_EXT_ISSUER_ALT_NAME,
    OID_X509_EXT_ISSUER_DISTRIBUTION_POINT, OID_X509_EXT_REASON_CODE,
};
use x509_parser::prelude::*;

use super::{Anchors, TrustError};
use crate::clock::fmt_time;

/// Which certificates of its issuer a CRL answers for, from its issuing distribution point
/// (none: all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub certs: Certs,
    /// The distribution point names of the IDP: a certificate is covered only when one of its
    /// CRL distribution points has one of these names. Empty: no name, no such condition.
    names: Vec<DpName>,
}

/// The kind of certificates a CRL answers for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Certs {
    #[default]
    All,
    /// onlyContainsUserCerts: certificates that are not CAs.
    EndEntities,
    /// onlyContainsCACerts: CA certificates (an authority revocation list, ARL).
    Authorities,
    /// onlyContainsAttributeCerts: none of the certificates rocgw checks.
    Attributes,
}

/// A distribution point name, as compared: URIs exactly, directory names by their DER, others
/// by their parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DpName {
    Uri(String),
    Directory(Vec<u8>),
    Other(String),
    /// nameRelativeToCRLIssuer: the CRL's and the certificate's issuer are the same here.
    Relative(String),
}

impl DpName {
    fn of(name: &GeneralName<'_>) -> DpName {
        match name {
            GeneralName::URI(u) => DpName::Uri(u.to_string()),
            GeneralName::DirectoryName(n) => DpName::Directory(n.as_raw().to_vec()),
            other => DpName::Other(format!("{other:?}")),
        }
    }

    /// Whether this name is the certificate's distribution point `dp`.
    fn names(&self, dp: &DistributionPointName<'_>) -> bool {
        match (self, dp) {
            (DpName::Relative(r), DistributionPointName::NameRelativeToCRLIssuer(rdn)) => {
                *r == format!("{rdn:?}")
            }
            (DpName::Relative(_), _) | (_, DistributionPointName::NameRelativeToCRLIssuer(_)) => {
                false
            }
            (_, DistributionPointName::FullName(names)) => names.iter().any(|n| match (self, n) {
                (DpName::Uri(a), GeneralName::URI(b)) => a == b,
                (DpName::Directory(a), GeneralName::DirectoryName(b)) => a == b.as_raw(),
                (DpName::Other(a), n) => *a == format!("{n:?}"),
                _ => false,
            }),
        }
    }
}

impl std::fmt::Display for DpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DpName::Uri(u) => f.write_str(u),
            DpName::Directory(_) => f.write_str("a directory name"),
            DpName::Other(o) | DpName::Relative(o) => f.write_str(o),
        }
    }
}

impl Scope {
    /// Whether a CRL of this scope answers for `cert` (already known to be of its issuer).
    fn covers(&self, cert: &X509Certificate<'_>) -> bool {
        let kind = match self.certs {
            Certs::All => true,
            Certs::EndEntities => !cert.is_ca(),
            Certs::Authorities => cert.is_ca(),
            Certs::Attributes => false,
        };
        kind && (self.names.is_empty() || self.named_by(cert))
    }

    /// One of the certificate's CRL distribution points (of its own issuer: not those with a
    /// cRLIssuer) has one of the IDP's names.
    fn named_by(&self, cert: &X509Certificate<'_>) -> bool {
        cert.extensions()
            .iter()
            .filter_map(|e| match e.parsed_extension() {
                ParsedExtension::CRLDistributionPoints(points) => Some(points),
                _ => None,
            })
            .flat_map(|points| points.iter())
            .filter(|p| p.crl_issuer.is_none())
            .filter_map(|p| p.distribution_point.as_ref())
            .any(|dp| self.names.iter().any(|n| n.names(dp)))
    }

    /// What the scope limits, for messages; `None` for a CRL of all certificates.
    pub fn describe(&self) -> Option<String> {
        let certs = match self.certs {
            Certs::All => None,
            Certs::EndEntities => Some("end-entity certificates only"),
            Certs::Authorities => Some("CA certificates only (ARL)"),
            Certs::Attributes => Some("attribute certificates only: applies to no server"),
        };
        let names = (!self.names.is_empty()).then(|| {
            let list: Vec<String> = self.names.iter().map(DpName::to_string).collect();
            format!("distribution point {}", list.join(", "))
        });
        match (certs, names) {
            (None, None) => None,
            (Some(c), None) => Some(c.to_string()),
            (None, Some(n)) => Some(n),
            (Some(c), Some(n)) => Some(format!("{c}, {n}")),
        }
    }
}

/// A CRL checked once at load time: signature by a known authority, dates, extensions; then
/// only serials.
#[derive(Debug, Clone)]
pub struct Crl {
    pub source: PathBuf,
    pub issuer: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// cRLNumber, when the CRL has one.
    pub number: Option<BigUint>,
    pub scope: Scope,
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

    /// Newer than `other` (of the same issuer and scope): a higher cRLNumber when both have
    /// one and they differ, else a later thisUpdate. A tie keeps the one listed first.
    fn newer_than(&self, other: &Crl) -> bool {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) if a != b => a > b,
            _ => self.this_update > other.this_update,
        }
    }

    /// Why this CRL lost to `winner`.
    fn older_than(&self, winner: &Crl) -> String {
        let by_date = || {
            if self.this_update < winner.this_update {
                format!(
                    "thisUpdate {} before {}",
                    fmt_time(self.this_update),
                    fmt_time(winner.this_update)
                )
            } else {
                "the same thisUpdate: listed twice".to_string()
            }
        };
        match (&self.number, &winner.number) {
            (Some(a), Some(b)) if a != b => format!("cRLNumber {a} below {b}"),
            (Some(_), Some(_)) => format!("the same cRLNumber, {}", by_date()),
            _ => by_date(),
        }
    }
}

/// A CRL left out because another of the same issuer and scope is newer.
#[derive(Debug, Clone)]
pub struct Superseded {
    pub crl: Crl,
    /// The file of the CRL in force instead.
    pub by: PathBuf,
    /// Why: `cRLNumber 3 below 4`, `thisUpdate … before …`.
    pub why: String,
}

impl std::fmt::Display for Superseded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: CRL of {} superseded by {} ({}): not used",
            self.crl.source.display(),
            self.crl.issuer,
            self.by.display(),
            self.why
        )
    }
}

/// Every CRL of these files, for a rustls verifier (which checks them itself).
pub fn crl_ders(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TrustError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(
            read_crl_file(p)?
                .into_iter()
                .map(CertificateRevocationListDer::from),
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
pub(super) fn serial_key(raw: &[u8]) -> &[u8] {
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
    /// No CRL of its issuer covers it.
    NoCrl,
    /// Every CRL that covers it is past its next update.
    Stale,
}

/// The CRLs in force, by the raw DER name of their issuer, and those superseded.
#[derive(Debug, Clone, Default)]
pub struct CrlSet {
    by_issuer: HashMap<Vec<u8>, Vec<Crl>>,
    superseded: Vec<Superseded>,
}

impl CrlSet {
    /// Loads the CRL files named by `field`. Each CRL must be signed by one of `issuers` (the
    /// configured anchors); a CRL that is not yet valid, a delta, indirect or partial CRL, or
    /// one with a critical extension not understood is refused; a stale one kept (its
    /// staleness is a matter of policy, at handshake time). Of CRLs of one issuer and scope,
    /// the newest is in force (see [`CrlSet::superseded`]).
    pub fn load(
        field: &str,
        paths: &[PathBuf],
        issuers: &[&Anchors],
        now: i64,
    ) -> Result<CrlSet, TrustError> {
        let mut set = CrlSet::default();
        for (i, p) in paths.iter().enumerate() {
            let in_field = || TrustError::in_field(field, i);
            for der in read_crl_file(p).map_err(in_field())? {
                let (raw_issuer, crl) = parse_crl(&der, p, issuers, now).map_err(in_field())?;
                set.insert(raw_issuer, crl);
            }
        }
        Ok(set)
    }

    /// Adds a CRL; of two with the same issuer and scope, the newer stays in force.
    fn insert(&mut self, issuer: Vec<u8>, crl: Crl) {
        let list = self.by_issuer.entry(issuer).or_default();
        let Some(kept) = list.iter_mut().find(|c| c.scope == crl.scope) else {
            list.push(crl);
            return;
        };
        let loser = if crl.newer_than(kept) {
            std::mem::replace(kept, crl)
        } else {
            crl
        };
        self.superseded.push(Superseded {
            why: loser.older_than(kept),
            by: kept.source.clone(),
            crl: loser,
        });
    }

    /// Logs a warning for each superseded CRL (at start-up and at each reload).
    pub fn warn_superseded(&self, field: &str) {
        for s in &self.superseded {
            tracing::warn!(
                field,
                issuer = %s.crl.issuer,
                source = %s.crl.source.display(),
                superseded_by = %s.by.display(),
                why = %s.why,
                "CRL superseded by a newer one of the same issuer and scope: not used"
            );
        }
    }

    /// Revocation status of `cert` from the CRLs of its issuer that cover it: revoked when one
    /// lists it; else good when one is fresh; else stale; no CRL covering it is `NoCrl`.
    pub fn status(&self, cert: &X509Certificate<'_>, now: i64) -> Status {
        let Some(crls) = self.by_issuer.get(cert.issuer().as_raw()) else {
            return Status::NoCrl;
        };
        let serial = serial_key(cert.raw_serial());
        let mut status = Status::NoCrl;
        for c in crls.iter().filter(|c| c.scope.covers(cert)) {
            if c.serials.contains(serial) {
                return Status::Revoked;
            }
            if !c.is_stale(now) {
                status = Status::Good;
            } else if status == Status::NoCrl {
                status = Status::Stale;
            }
        }
        status
    }

    /// The CRLs in force.
    pub fn crls(&self) -> impl Iterator<Item = &Crl> {
        self.by_issuer.values().flatten()
    }

    /// The CRLs left out, each for a newer one of the same issuer and scope.
    pub fn superseded(&self) -> &[Superseded] {
        &self.superseded
    }

    /// How many CRLs are in force.
    pub fn len(&self) -> usize {
        self.by_issuer.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }
}

/// Checks one CRL (issuer among `issuers`, signature, thisUpdate, extensions) and keeps its
/// serials and scope.
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
    let scope = understood(&crl, path, &issuer)?;
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
            number: crl.crl_number().cloned(),
            scope,
            serials,
        },
    ))
}

/// The CRL's scope, if rocgw understands everything the CRL says: a complete CRL (no
/// deltaCRLIndicator), direct (no indirectCRL, no certificateIssuer entry), for all reasons (no
/// onlySomeReasons), and no critical extension, of the CRL or of an entry, beyond those known.
fn understood(
    crl: &CertificateRevocationList<'_>,
    path: &Path,
    issuer: &str,
) -> Result<Scope, TrustError> {
    let mut scope = Scope::default();
    for ext in crl.extensions() {
        if ext.oid == OID_X509_EXT_DELTA_CRL_INDICATOR {
            return Err(TrustError::DeltaCrl {
                path: path.to_path_buf(),
                issuer: issuer.to_string(),
            });
        }
        if ext.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT {
            scope = match ext.parsed_extension() {
                ParsedExtension::IssuingDistributionPoint(idp) => idp_scope(idp, path, issuer)?,
                other => {
                    return Err(TrustError::InvalidIdp {
                        path: path.to_path_buf(),
                        issuer: issuer.to_string(),
                        why: match other.error() {
                            Some(e) => format!("does not parse: {e}"),
                            None => "does not parse".to_string(),
                        },
                    })
                }
            };
            continue;
        }
        let known = [
            &OID_X509_EXT_CRL_NUMBER,
            &OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
            &OID_X509_EXT_ISSUER_ALT_NAME,
        ];
        if ext.critical && !known.contains(&&ext.oid) {
            return Err(critical(path, issuer, &ext.oid, None));
        }
    }
    let entry_known: [&Oid<'_>; 3] = [
        &OID_X509_EXT_REASON_CODE,
        &OID_X509_EXT_INVALIDITY_DATE,
        &OID_X509_EXT_HOLD_INSTRUCTION_CODE,
    ];
    for entry in crl.iter_revoked_certificates() {
        for ext in entry.extensions() {
            if ext.oid == OID_X509_EXT_ISSUER {
                return Err(TrustError::IndirectCrl {
                    path: path.to_path_buf(),
                    issuer: issuer.to_string(),
                    how: "a certificateIssuer entry extension",
                });
            }
            if ext.critical && !entry_known.contains(&&ext.oid) {
                let serial = entry.raw_serial_as_string();
                return Err(critical(path, issuer, &ext.oid, Some(serial)));
            }
        }
    }
    Ok(scope)
}

fn critical(path: &Path, issuer: &str, oid: &Oid<'_>, serial: Option<String>) -> TrustError {
    TrustError::CrlCriticalExtension {
        path: path.to_path_buf(),
        issuer: issuer.to_string(),
        oid: oid.to_id_string(),
        serial,
    }
}

/// The scope of an issuing distribution point rocgw can apply.
fn idp_scope(
    idp: &IssuingDistributionPoint<'_>,
    path: &Path,
    issuer: &str,
) -> Result<Scope, TrustError> {
    if idp.indirect_crl {
        return Err(TrustError::IndirectCrl {
            path: path.to_path_buf(),
            issuer: issuer.to_string(),
            how: "issuingDistributionPoint indirectCRL",
        });
    }
    if let Some(reasons) = &idp.only_some_reasons {
        return Err(TrustError::PartialCrl {
            path: path.to_path_buf(),
            issuer: issuer.to_string(),
            reasons: reasons.to_string(),
        });
    }
    let certs = match (
        idp.only_contains_user_certs,
        idp.only_contains_ca_certs,
        idp.only_contains_attribute_certs,
    ) {
        (false, false, false) => Certs::All,
        (true, false, false) => Certs::EndEntities,
        (false, true, false) => Certs::Authorities,
        (false, false, true) => Certs::Attributes,
        _ => {
            return Err(TrustError::InvalidIdp {
                path: path.to_path_buf(),
                issuer: issuer.to_string(),
                why: "more than one of onlyContainsUserCerts, onlyContainsCACerts and \
                      onlyContainsAttributeCerts"
                    .into(),
            })
        }
    };
    let names = match &idp.distribution_point {
        None => Vec::new(),
        Some(DistributionPointName::FullName(names)) => names.iter().map(DpName::of).collect(),
        Some(DistributionPointName::NameRelativeToCRLIssuer(rdn)) => {
            vec![DpName::Relative(format!("{rdn:?}"))]
        }
    };
    Ok(Scope { certs, names })
}

#[cfg(test)]
mod tests;

//! The hospital's identities: the ORG AUTH_CLI certificate (TLS client to the Annuaire AMC) and
//! the ORG SIGN certificate (SAML signatures for the AMC web services), loaded from PKCS#12 (AES,
//! legacy 3DES and RC2-40) or from PEM.
//!
//! Loading refuses, with one clear line, an identity whose file cannot be opened, whose key does
//! not match its certificate, that is outside its validity dates, or whose key usage is wrong for
//! its role. Private keys stay in zeroizing memory and never appear in `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::*;

use crate::clock::fmt_time;
use zeroize::Zeroizing;

use crate::config::IdentitySource;

mod chain;
mod files;
pub use chain::{chain_up, is_igc_sante_root, is_test, issued_by, missing_is_aci_el_org, Chain};
pub use files::{
    certified_key, certified_key_from_pem, read_p12, read_pem, read_pem_certs, RawIdentity,
};

/// Days before expiry from which rocgw warns (the procedure's one-month alert).
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What an identity is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// ORG AUTH_CLI: TLS client authentication (annuaire).
    AuthCli,
    /// ORG SIGN: signature of the SAML assertion (AMC web services).
    Sign,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::AuthCli => "auth_cli",
            Role::Sign => "sign",
        }
    }

    /// The service name the procedure recommends as the certificate's CN.
    pub fn recommended_cn(self) -> &'static str {
        match self {
            Role::AuthCli => "Client_ROC_Annuaire_AMC",
            Role::Sign => "Client_ROC_WebServices_AMC",
        }
    }
}

/// Facts read off a certificate, safe to log and display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Upper-case hex, no separators.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    /// `1`+FINESS or `3`+SIRET, from the subject's OU.
    pub structure_id: Option<String>,
    pub common_name: Option<String>,
    pub digital_signature: bool,
    pub non_repudiation: bool,
    pub key_usage_present: bool,
    pub client_auth: bool,
    pub eku_present: bool,
    pub is_ca: bool,
    /// RSAPublicKey DER (PKCS#1), for matching against the private key.
    pub public_key: Vec<u8>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
        let subject = cert.subject();
        let ou: Vec<String> = subject
            .iter_organizational_unit()
            .filter_map(|a| a.as_str().ok().map(str::to_string))
            .collect();
        let structure_id = ou
            .iter()
            .find(|v| {
                v.len() >= 2
                    && (v.starts_with('1') || v.starts_with('3'))
                    && v.bytes().all(|b| b.is_ascii_alphanumeric())
            })
            .cloned();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string);
        let (ku_present, ds, nr) = match cert.key_usage() {
            Ok(Some(ku)) => (
                true,
                ku.value.digital_signature(),
                ku.value.non_repudiation(),
            ),
            _ => (false, false, false),
        };
        let (eku_present, client_auth) = match cert.extended_key_usage() {
            Ok(Some(eku)) => (true, eku.value.client_auth),
            _ => (false, false),
        };
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        Ok(CertInfo {
            subject: subject.to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().replace(':', "").to_uppercase(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            structure_id,
            common_name,
            digital_signature: ds,
            non_repudiation: nr,
            key_usage_present: ku_present,
            client_auth,
            eku_present,
            is_ca,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Whole days until `not_after`, negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// Why this certificate cannot serve `role`, if it cannot.
    pub fn role_problem(&self, role: Role) -> Option<String> {
        if self.is_ca {
            return Some("this is a CA certificate, not an ORG end-entity certificate".into());
        }
        match role {
            Role::AuthCli => {
                if self.key_usage_present && !self.digital_signature {
                    return Some(
                        "keyUsage lacks digitalSignature: not an AUTH_CLI certificate".into(),
                    );
                }
                if !(self.eku_present && self.client_auth) {
                    return Some(
                        "extendedKeyUsage lacks clientAuth: not an AUTH_CLI certificate".into(),
                    );
                }
                None
            }
            Role::Sign => {
                if self.eku_present && self.client_auth {
                    return Some(
                        "extendedKeyUsage is clientAuth: this is an AUTH_CLI certificate, not a \
                         SIGN certificate"
                            .into(),
                    );
                }
                if self.key_usage_present && !(self.digital_signature || self.non_repudiation) {
                    return Some(
                        "keyUsage lacks digitalSignature/nonRepudiation: not a SIGN certificate"
                            .into(),
                    );
                }
                None
            }
        }
    }
}

/// A loaded identity: private key, certificate chain (leaf first) and the leaf's facts.
pub struct Identity {
    pub role: Role,
    /// The config field it came from (`identity.sign`).
    pub field: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub info: CertInfo,
    /// The subject of the self-signed root its chain reaches, once read from a source (the
    /// chain then found complete); empty before.
    pub root: String,
    key_pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("role", &self.role)
            .field("subject", &self.info.subject)
            .field("serial", &self.info.serial)
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A refused identity: one line naming the config field and the problem. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The file could not be read or opened (I/O, password, format); `why` names the file.
    #[error("{field}: {why}")]
    Unreadable { field: String, why: String },
    #[error("{field}: no private key")]
    NoKey { field: String },
    #[error("{field}: no certificate")]
    NoCertificate { field: String },
    #[error("{field}: {why}")]
    BadCertificate { field: String, why: String },
    #[error("{field}: the private key is not an RSA key (IGC-Santé ORG certificates use RSA)")]
    NotRsa { field: String },
    #[error("{field}: the private key does not match the certificate (subject {subject}, serial {serial})")]
    KeyMismatch {
        field: String,
        subject: String,
        serial: String,
    },
    #[error("{field}: certificate expired on {} (subject {subject}, serial {serial})", fmt_time(*not_after))]
    Expired {
        field: String,
        not_after: i64,
        subject: String,
        serial: String,
    },
    #[error("{field}: certificate not valid before {} (subject {subject})", fmt_time(*not_before))]
    NotYetValid {
        field: String,
        not_before: i64,
        subject: String,
    },
    /// The key usage or extended key usage does not fit the role (AUTH_CLI vs SIGN).
    #[error("{field}: {problem} (subject {subject})")]
    WrongRole {
        field: String,
        problem: String,
        subject: String,
    },
    /// Loaded, but the signing layer cannot use the key; `why` names the field.
    #[error("{why}")]
    Unusable { why: String },
    /// Read by a reload, but not for the gateway in force (another structure, another root,
    /// the other hierarchy, revoked): `new` when it is not the certificate in force.
    #[error("{field}: {}", if *new { format!("{why}; the certificate in force is kept") } else { format!("the certificate in force: {why}") })]
    Unfit {
        field: String,
        why: String,
        new: bool,
    },
    /// The file's chain stops before a root: the issuer `missing` is not in it.
    #[error("{field}: the certificate chain in the file stops at {missing}: {advice}")]
    IncompleteChain {
        field: String,
        missing: String,
        advice: &'static str,
    },
}

impl Identity {
    /// Loads and checks the identity named by `source` for `role`, at time `now` (Unix seconds).
    pub fn load(source: &IdentitySource, role: Role, now: i64) -> Result<Identity, IdentityError> {
        let src = open(source);
        let raw = src.read().map_err(|why| IdentityError::Unreadable {
            field: src.field().to_string(),
            why,
        })?;
        Identity::check(raw, role, src.field().to_string(), now)
    }

    /// Applies the start-up checks to key and chain read from a file.
    pub fn check(
        raw: RawIdentity,
        role: Role,
        field: String,
        now: i64,
    ) -> Result<Identity, IdentityError> {
        let field_ = || field.clone();
        let key = raw
            .key_pkcs8
            .ok_or_else(|| IdentityError::NoKey { field: field_() })?;
        let leaf = raw
            .chain
            .first()
            .ok_or_else(|| IdentityError::NoCertificate { field: field_() })?;
        let info = CertInfo::parse(leaf).map_err(|why| IdentityError::BadCertificate {
            field: field_(),
            why,
        })?;
        let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(&key)
            .map_err(|_| IdentityError::NotRsa { field: field_() })?;
        use aws_lc_rs::signature::KeyPair as _;
        if kp.public_key().as_ref() != info.public_key.as_slice() {
            return Err(IdentityError::KeyMismatch {
                field,
                subject: info.subject,
                serial: info.serial,
            });
        }
        if now >= info.not_after {
            return Err(IdentityError::Expired {
                field,
                not_after: info.not_after,
                subject: info.subject,
                serial: info.serial,
            });
        }
        if now < info.not_before {
            return Err(IdentityError::NotYetValid {
                field,
                not_before: info.not_before,
                subject: info.subject,
            });
        }
        if let Some(problem) = info.role_problem(role) {
            return Err(IdentityError::WrongRole {
                field,
                problem,
                subject: info.subject,
            });
        }
        Ok(Identity {
            role,
            field,
            chain: raw.chain,
            info,
            root: String::new(),
            key_pkcs8: key,
        })
    }

    /// The file's chain reaches a self-signed root: rocgw presents AUTH_CLI's chain and the AMCs
    /// build SIGN's from it. A certificate made from a CSR and bundled without ACI-EL-ORG is
    /// refused here, at start-up, rather than at the annuaire's handshake. The root's subject.
    pub fn complete_chain(&self) -> Result<String, IdentityError> {
        let ders: Vec<Vec<u8>> = self.chain.iter().map(|c| c.as_ref().to_vec()).collect();
        let Some((leaf, pool)) = ders.split_first() else {
            return Ok(String::new());
        };
        let found = match chain_up(leaf, pool) {
            Chain::Complete(chain) => {
                let root = chain.last().and_then(|c| CertInfo::parse(c).ok());
                return Ok(root.map(|i| i.subject).unwrap_or_default());
            }
            Chain::Incomplete(found) => found,
        };
        let last = found.last().expect("the leaf at least");
        let missing = X509Certificate::from_der(last)
            .map(|(_, c)| c.issuer().to_string())
            .unwrap_or_default();
        let advice = if missing_is_aci_el_org(&missing) {
            "add the ACI-EL-ORG intermediate (AC IGC-SANTE ELEMENTAIRE ORGANISATIONS) and the \
             ACR to the file, as the procedure says for a certificate made from a CSR \
             (`rocgw cert bundle` does it)"
        } else {
            "add the missing authorities' certificates to the file (`rocgw cert bundle`)"
        };
        Err(IdentityError::IncompleteChain {
            field: self.field.clone(),
            missing,
            advice,
        })
    }

    /// The private key, PKCS#8 DER. Only the TLS and signing layers call this.
    pub fn key_pkcs8(&self) -> &[u8] {
        &self.key_pkcs8
    }

    pub fn days_left(&self, now: i64) -> i64 {
        self.info.days_left(now)
    }
}

/// Where an identity is read from, read again at each reload. One type per source format.
pub trait Source: Send + Sync {
    /// The config field (`identity.sign`), for messages.
    fn field(&self) -> &str;
    /// Reads key and chain. Errors never contain a secret.
    fn read(&self) -> Result<RawIdentity, String>;
    /// The files whose change calls for a reload.
    fn files(&self) -> Vec<PathBuf>;
    /// The files that give the key to whoever reads them (a P12 and its password, a PEM key):
    /// readable by rocgw only. Certificates are public.
    fn secret_files(&self) -> Vec<PathBuf>;
}

/// A PKCS#12 file; its password is re-read from its file, when it has one, at each reload.
pub struct P12File {
    field: String,
    path: PathBuf,
    password: Zeroizing<String>,
    password_file: Option<PathBuf>,
}

impl Source for P12File {
    fn field(&self) -> &str {
        &self.field
    }

    fn read(&self) -> Result<RawIdentity, String> {
        match &self.password_file {
            Some(pf) => {
                let pw = std::fs::read_to_string(pf)
                    .map_err(|e| format!("cannot read the password file {}: {e}", pf.display()))?;
                let pw = Zeroizing::new(pw);
                read_p12(&self.path, pw.trim_end_matches(['\r', '\n']))
            }
            None => read_p12(&self.path, &self.password),
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut f = vec![self.path.clone()];
        f.extend(self.password_file.clone());
        f
    }

    fn secret_files(&self) -> Vec<PathBuf> {
        self.files()
    }
}

/// A PEM certificate chain and a PEM private key.
pub struct PemFiles {
    field: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Source for PemFiles {
    fn field(&self) -> &str {
        &self.field
    }

    fn read(&self) -> Result<RawIdentity, String> {
        read_pem(&self.cert, &self.key)
    }

    fn files(&self) -> Vec<PathBuf> {
        vec![self.cert.clone(), self.key.clone()]
    }

    fn secret_files(&self) -> Vec<PathBuf> {
        vec![self.key.clone()]
    }
}

/// The source a configuration names.
pub fn open(cfg: &IdentitySource) -> Box<dyn Source> {
    match cfg {
        IdentitySource::P12 {
            field,
            path,
            password,
            password_file,
        } => Box::new(P12File {
            field: field.clone(),
            path: path.clone(),
            password: password.clone(),
            password_file: password_file.clone(),
        }),
        IdentitySource::Pem { field, cert, key } => Box::new(PemFiles {
            field: field.clone(),
            cert: cert.clone(),
            key: key.clone(),
        }),
    }
}

/// An identity behind one swap point, reloadable from its source.
///
/// Contract: if reloading fails, the old identity is kept and keeps being served.
pub struct ReloadableIdentity {
    role: Role,
    source: Box<dyn Source>,
    current: ArcSwap<Identity>,
}

impl fmt::Debug for ReloadableIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableIdentity")
            .field("role", &self.role)
            .field("current", &self.current.load())
            .finish()
    }
}

impl ReloadableIdentity {
    /// Loads the identity for the first time; a failure here is a start-up error.
    pub fn new(cfg: &IdentitySource, role: Role, now: i64) -> Result<Self, IdentityError> {
        let source = open(cfg);
        let id = Self::read(source.as_ref(), role, now)?;
        Ok(ReloadableIdentity {
            role,
            source,
            current: ArcSwap::from_pointee(id),
        })
    }

    fn read(source: &dyn Source, role: Role, now: i64) -> Result<Identity, IdentityError> {
        let raw = source.read().map_err(|why| IdentityError::Unreadable {
            field: source.field().to_string(),
            why,
        })?;
        let mut id = Identity::check(raw, role, source.field().to_string(), now)?;
        id.root = id.complete_chain()?;
        Ok(id)
    }

    /// The identity in force.
    pub fn current(&self) -> Arc<Identity> {
        self.current.load_full()
    }

    /// Reads the source again. On success (and when `fit` accepts it) the new identity replaces
    /// the old one and the result says whether the certificate changed; on failure the old
    /// identity stays.
    pub fn reload(
        &self,
        now: i64,
        fit: &dyn Fn(&Identity) -> Result<(), String>,
    ) -> Result<bool, IdentityError> {
        let (id, changed) = self.read_fit(now, fit)?;
        self.current.store(Arc::new(id));
        Ok(changed)
    }

    /// Reads the source again and checks it with `fit`, without putting it in force; whether
    /// the certificate differs from the one in force.
    pub fn read_fit(
        &self,
        now: i64,
        fit: &dyn Fn(&Identity) -> Result<(), String>,
    ) -> Result<(Identity, bool), IdentityError> {
        let id = self.read_again(now)?;
        let changed = id.chain != self.current.load().chain;
        fit(&id).map_err(|why| IdentityError::Unfit {
            field: id.field.clone(),
            why,
            new: changed,
        })?;
        Ok((id, changed))
    }

    /// Reads and checks the source without putting it in force (for a holder that must swap
    /// the identity together with what it derives from it).
    pub fn read_again(&self, now: i64) -> Result<Identity, IdentityError> {
        Self::read(self.source.as_ref(), self.role, now)
    }

    /// Puts `id`, read by [`Self::read_again`], in force.
    pub fn put(&self, id: Identity) {
        self.current.store(Arc::new(id));
    }

    pub fn files(&self) -> Vec<PathBuf> {
        self.source.files()
    }

    /// The files that hold or unlock the key (see [`Source::secret_files`]).
    pub fn secret_files(&self) -> Vec<PathBuf> {
        self.source.secret_files()
    }
}

//! `[trust]`: the IGC OSI anchors AMC and annuaire servers must chain to, the roles of its
//! authorities (server: AC-SERVEUR; signature: AC-SERVICES-APPLICATIFS), the CRLs that go with
//! them, and how strictly revocation is enforced on each upstream (`revocation` in `[amc]` and
//! `[annuaire]`).

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTrust {
    #[serde(default)]
    amc_anchors: Vec<PathBuf>,
    annuaire_anchors: Option<Vec<PathBuf>>,
    #[serde(default)]
    crls: Vec<PathBuf>,
    #[serde(default)]
    identity_crls: Vec<PathBuf>,
    #[serde(default)]
    server_authorities: Vec<PathBuf>,
    #[serde(default)]
    signature_authorities: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// IGC OSI anchors (AC-SERVEUR, AC-SERVICES-APPLICATIFS and their root).
    pub amc_anchors: Vec<PathBuf>,
    /// Anchors for the annuaire's server certificate (defaults to `amc_anchors`).
    pub annuaire_anchors: Vec<PathBuf>,
    /// CRL files (PEM or DER) of the anchors' authorities.
    pub crls: Vec<PathBuf>,
    /// IGC-Santé CRL files, to check that the hospital's own certificates are not revoked
    /// (`rocgw cert doctor`, and `serve` at start-up through it).
    pub identity_crls: Vec<PathBuf>,
    /// Certificates of the server-role authorities (AC-SERVEUR): every AMC and annuaire server
    /// certificate's path must go through one. Empty: the anchors whose name says AC-SERVEUR.
    pub server_authorities: Vec<PathBuf>,
    /// Certificates of the signature-role authorities (AC-SERVICES-APPLICATIFS), which sign the
    /// AMCs' responses. Empty: the anchors whose name says AC-SERVICES-APPLICATIFS.
    pub signature_authorities: Vec<PathBuf>,
}

/// What to do about an upstream certificate's revocation status (per upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationPolicy {
    /// No revocation check.
    Off,
    /// Revoked certificates are refused; unknown status (no CRL that covers the certificate, or
    /// only CRLs past their next update) is allowed, logged and counted.
    #[default]
    Soft,
    /// Revoked certificates and unknown status are refused.
    Hard,
}

impl RevocationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationPolicy::Off => "off",
            RevocationPolicy::Soft => "soft",
            RevocationPolicy::Hard => "hard",
        }
    }
}

pub(super) fn validate(v: &Validator<'_>, raw: &RawTrust) -> Result<TrustConfig, ConfigError> {
    if raw.amc_anchors.is_empty() {
        return Err(v.err(
            "trust.amc_anchors",
            "missing: list the IGC OSI authorities (AC-SERVEUR, AC-SERVICES-APPLICATIFS, root)",
        ));
    }
    let amc_anchors = v.files("trust.amc_anchors", &raw.amc_anchors)?;
    let annuaire_anchors = match &raw.annuaire_anchors {
        Some(a) if !a.is_empty() => v.files("trust.annuaire_anchors", a)?,
        Some(_) => return Err(v.err("trust.annuaire_anchors", "empty list")),
        None => amc_anchors.clone(),
    };
    Ok(TrustConfig {
        amc_anchors,
        annuaire_anchors,
        crls: v.files("trust.crls", &raw.crls)?,
        // Read by `cert doctor` only, which reports a missing one itself: not required here.
        identity_crls: raw.identity_crls.iter().map(|p| v.resolve(p)).collect(),
        server_authorities: v.files("trust.server_authorities", &raw.server_authorities)?,
        signature_authorities: v
            .files("trust.signature_authorities", &raw.signature_authorities)?,
    })
}

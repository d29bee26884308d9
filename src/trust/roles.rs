//! The two roles of the GIE SESAM-Vitale IGC OSI authorities: **server** (AC-SERVEUR: AMC and
//! annuaire servers) and **signature** (AC-SERVICES-APPLICATIFS: AMC applications' signatures).
//!
//! Roles are configuration (`[trust] server_authorities`, `signature_authorities`); recognising
//! the authority names among the anchors is only a convenience, used when a list is empty (the
//! production names are not public). A certificate has a role when its signed path goes through
//! an authority of that role, whatever else is an anchor: with only the root as anchor, a
//! server certificate from AC-SERVICES-APPLICATIFS chains, but has no server role.

use std::path::PathBuf;

use x509_parser::prelude::*;

use super::{Anchors, TrustError};
use crate::config::TrustConfig;
use crate::identity::read_pem_certs;

/// What an IGC OSI authority is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// AC-SERVEUR: TLS servers of the AMCs and the annuaire.
    Server,
    /// AC-SERVICES-APPLICATIFS: signatures of the AMCs' applications.
    Signature,
}

impl Role {
    /// The authority name that gives the role when the configuration lists none.
    fn name_hint(self) -> &'static str {
        match self {
            Role::Server => "AC-SERVEUR",
            Role::Signature => "AC-SERVICES-APPLICATIFS",
        }
    }
}

/// An authority, by subject and public key (a re-keyed authority is another authority).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    subject: Vec<u8>,
    spki: Vec<u8>,
}

impl Authority {
    fn of(c: &X509Certificate<'_>) -> Authority {
        Authority {
            subject: c.subject().as_raw().to_vec(),
            spki: c.public_key().raw.to_vec(),
        }
    }
}

/// The server-role and signature-role authorities.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    server: Vec<Authority>,
    signature: Vec<Authority>,
}

impl Roles {
    /// The configured role lists, else the anchors named like the role's authority. No
    /// server-role authority at all is a start-up error naming the setting.
    pub fn load(cfg: &TrustConfig, anchors: &[&Anchors]) -> Result<Roles, TrustError> {
        let roles = Roles {
            server: authorities(Role::Server, &cfg.server_authorities, anchors)?,
            signature: authorities(Role::Signature, &cfg.signature_authorities, anchors)?,
        };
        if roles.server.is_empty() {
            return Err(TrustError::NoServerRole);
        }
        Ok(roles)
    }

    fn of(&self, role: Role) -> &[Authority] {
        match role {
            Role::Server => &self.server,
            Role::Signature => &self.signature,
        }
    }

    /// Whether the signed path from `leaf` through `pool` (the presented intermediates and
    /// the anchors) goes through an authority of `role`. Each step is a verified signature,
    /// never a name match alone.
    pub fn path_has(&self, role: Role, leaf: &[u8], pool: &[&[u8]]) -> bool {
        let Ok((_, mut cur)) = X509Certificate::from_der(leaf) else {
            return false;
        };
        let pool: Vec<X509Certificate<'_>> = pool
            .iter()
            .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        let wanted = self.of(role);
        for _ in 0..=pool.len() {
            let Some(issuer) = pool.iter().find(|c| {
                c.subject().as_raw() == cur.issuer().as_raw()
                    && cur.verify_signature(Some(c.public_key())).is_ok()
            }) else {
                return false;
            };
            if wanted.contains(&Authority::of(issuer)) {
                return true;
            }
            if issuer.subject().as_raw() == issuer.issuer().as_raw() {
                return false;
            }
            cur = issuer.clone();
        }
        false
    }
}

/// The authorities of `role`: from `files`, else the anchors whose name says the role.
fn authorities(
    role: Role,
    files: &[PathBuf],
    anchors: &[&Anchors],
) -> Result<Vec<Authority>, TrustError> {
    let mut out = Vec::new();
    if files.is_empty() {
        for a in anchors.iter().flat_map(|a| a.anchors.iter()) {
            let upper = a.info.subject.to_ascii_uppercase();
            if upper.contains(role.name_hint()) {
                if let Ok((_, c)) = X509Certificate::from_der(&a.der) {
                    out.push(Authority::of(&c));
                }
            }
        }
    }
    for f in files {
        for der in read_pem_certs(f).map_err(TrustError::CertificateFile)? {
            let (_, c) =
                X509Certificate::from_der(&der).map_err(|e| TrustError::BadCertificate {
                    path: f.clone(),
                    why: e.to_string(),
                })?;
            out.push(Authority::of(&c));
        }
    }
    out.dedup();
    Ok(out)
}

/// The TLS refusal of a server certificate whose path has no server-role authority.
#[derive(Debug, thiserror::Error)]
#[error("not issued under a server-role (AC-SERVEUR) authority")]
pub struct WrongRole;

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
#[derive(Debug, Default)]
pub struct Roles {
    server: Vec<Authority>,
    signature: Vec<Authority>,
    /// Roles found above each response signer already seen: the path of a certificate does
    /// not change while this trust material is in force (a reload builds new `Roles`), and
    /// walking it costs RSA verifications on every answer.
    signers: std::sync::Mutex<std::collections::HashMap<Vec<u8>, Vec<Role>>>,
}

impl Roles {
    /// The configured role lists, else the anchors named like the role's authority. No
    /// server-role authority at all is a start-up error naming the setting.
    pub fn load(cfg: &TrustConfig, anchors: &[&Anchors]) -> Result<Roles, TrustError> {
        let roles = Roles {
            server: authorities(Role::Server, &cfg.server_authorities, anchors)?,
            signature: authorities(Role::Signature, &cfg.signature_authorities, anchors)?,
            signers: Default::default(),
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
        self.on_path(leaf, pool, Some(role)).contains(&role)
    }

    /// `on_path` for a response signer, remembered per certificate (at most 1,000).
    pub fn of_signer(&self, signer: &[u8], pool: &[&[u8]]) -> Vec<Role> {
        let mut seen = self.signers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = seen.get(signer) {
            return r.clone();
        }
        let roles = self.on_path(signer, pool, None);
        if seen.len() >= 1_000 {
            seen.clear();
        }
        seen.insert(signer.to_vec(), roles.clone());
        roles
    }

    /// The roles of the authorities on the signed path from `leaf` through `pool`, up to a
    /// self-signed root or a missing issuer (`stop_at`: stop at the first authority of that
    /// role). One walk for both roles: a response signer must have one and not the other.
    pub fn on_path(&self, leaf: &[u8], pool: &[&[u8]], stop_at: Option<Role>) -> Vec<Role> {
        let mut found = Vec::new();
        let Ok((_, mut cur)) = X509Certificate::from_der(leaf) else {
            return found;
        };
        let pool: Vec<X509Certificate<'_>> = pool
            .iter()
            .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        for _ in 0..=pool.len() {
            let Some(issuer) = pool.iter().find(|c| {
                c.subject().as_raw() == cur.issuer().as_raw()
                    && cur.verify_signature(Some(c.public_key())).is_ok()
            }) else {
                break;
            };
            let authority = Authority::of(issuer);
            for role in [Role::Server, Role::Signature] {
                if self.of(role).contains(&authority) && !found.contains(&role) {
                    found.push(role);
                }
            }
            if stop_at.is_some_and(|r| found.contains(&r))
                || issuer.subject().as_raw() == issuer.issuer().as_raw()
            {
                break;
            }
            cur = issuer.clone();
        }
        found
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

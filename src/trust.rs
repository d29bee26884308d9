//! Trust anchors: the GIE SESAM-Vitale IGC OSI authorities (AC-SERVEUR, AC-SERVICES-APPLICATIFS
//! and their root) that every AMC and annuaire server certificate must chain to.
//!
//! This module loads and checks the anchor files at start-up; handshake-time verification
//! (chain, dates, host name, CRLs) builds on it.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;

use crate::identity::{fmt_time, read_pem_certs, CertInfo};

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
    pub fn load(field: &str, paths: &[PathBuf], now: i64) -> Result<Anchors, String> {
        let mut anchors = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let f = format!("{field}[{i}]");
            for der in read_pem_certs(p).map_err(|m| format!("{f}: {m}"))? {
                let info =
                    CertInfo::parse(&der).map_err(|m| format!("{f}: {}: {m}", p.display()))?;
                check_anchor(&info, p, now).map_err(|m| format!("{f}: {m}"))?;
                anchors.push(Anchor {
                    source: p.clone(),
                    der,
                    info,
                });
            }
        }
        Ok(Anchors { anchors })
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

fn check_anchor(info: &CertInfo, path: &Path, now: i64) -> Result<(), String> {
    if !info.is_ca {
        return Err(format!(
            "{}: {} is not a CA certificate (basicConstraints CA:TRUE missing)",
            path.display(),
            info.subject
        ));
    }
    if now >= info.not_after {
        return Err(format!(
            "{}: anchor {} expired on {}",
            path.display(),
            info.subject,
            fmt_time(info.not_after)
        ));
    }
    Ok(())
}

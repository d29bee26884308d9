//! `rocgw cert doctor --candidate FILE`: a renewed certificate checked against the running
//! configuration's structure before it is swapped in — the doctor's identity checks (role,
//! key, chain, validity, name, hierarchy, revocation), and that it names the same structure.

use std::path::{Path, PathBuf};

use super::doctor::{identity, load_crls, Check, Expect, Level, Report};
use crate::clock::now_unix;
use crate::config::{Config, IdentitySource, Overrides, StructureConfig};
use crate::identity::{CertInfo, Role};

/// What `--candidate` names.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// A PKCS#12 file, or a PEM chain with `key`.
    pub path: PathBuf,
    pub key: Option<PathBuf>,
    pub role: Role,
    /// The structure it renews (default: the gateway's default structure).
    pub structure: Option<String>,
    /// The P12's password file (default: the configured identity's password).
    pub password_file: Option<PathBuf>,
}

/// The candidate's checks, on the configuration at `cfg_path`.
pub fn check(cfg_path: &Path, c: &Candidate, allow_test: bool) -> Vec<Check> {
    let mut r = Report(Vec::new());
    let cfg = match Config::load(cfg_path, &Overrides::default()) {
        Ok(cfg) => cfg,
        Err(e) => {
            r.add(Level::Fail, "configuration", e.to_string(), None);
            return r.0;
        }
    };
    let ids = &cfg.identities;
    let st = match &c.structure {
        None => ids.default_structure(),
        Some(want) => match ids.structures.iter().find(|s| s.id.as_ref() == Some(want)) {
            Some(st) => st,
            None => {
                let detail = format!("no structure {want} in this configuration");
                r.add(Level::Fail, "candidate", detail, None);
                return r.0;
            }
        },
    };
    let current = match c.role {
        Role::AuthCli => &st.auth_cli,
        Role::Sign => &st.sign,
    };
    let source = source(c, current);
    let crls = load_crls(&cfg.trust.identity_crls, &mut r);
    let found = identity(
        &mut r,
        "candidate",
        c.role,
        &source,
        now_unix(),
        Expect::of(cfg.environment, allow_test),
        &crls,
    );
    if let (Some(found), Some(expected)) = (found, structure_of(st, current)) {
        if found == expected {
            let detail = format!("renews structure {expected} ({})", st.field);
            r.add(Level::Ok, "candidate: structure", detail, None);
        } else {
            r.add(
                Level::Fail,
                "candidate: structure",
                format!("the candidate is structure {found}; {} is structure {expected}", st.field),
                Some("a renewal is ordered for the same structure (OU) as the certificate it replaces"),
            );
        }
    }
    r.0
}

/// The candidate as an identity source: its own files, the configured identity's password
/// unless another is given.
fn source(c: &Candidate, current: &IdentitySource) -> IdentitySource {
    let field = "candidate".to_string();
    if let Some(key) = &c.key {
        return IdentitySource::Pem {
            field,
            cert: c.path.clone(),
            key: key.clone(),
        };
    }
    let (password, password_file) = match (&c.password_file, current) {
        (Some(f), _) => {
            let pw = std::fs::read_to_string(f).unwrap_or_default();
            (
                zeroize::Zeroizing::new(pw.trim_end().to_string()),
                Some(f.clone()),
            )
        }
        (
            None,
            IdentitySource::P12 {
                password,
                password_file,
                ..
            },
        ) => (password.clone(), password_file.clone()),
        (None, IdentitySource::Pem { .. }) => (Default::default(), None),
    };
    IdentitySource::P12 {
        field,
        path: c.path.clone(),
        password,
        password_file,
    }
}

/// The structure the candidate must name: the configured key, else the one the certificate in
/// force names.
fn structure_of(st: &StructureConfig, current: &IdentitySource) -> Option<String> {
    if let Some(id) = &st.id {
        return Some(id.clone());
    }
    let raw = crate::identity::open(current).read().ok()?;
    CertInfo::parse(raw.chain.first()?).ok()?.structure_id
}

//! The hospital structures rocgw signs for, each with its two IGC-Santé ORG certificates and
//! keys: `[structures."<identifier>"]` (a hospital group: the EJ and EGs, one marked
//! `default = true`), or the one-structure form `[identity.auth_cli]` / `[identity.sign]`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{AttributeSpec, ConfigError, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentities {
    auth_cli: Option<RawIdentity>,
    sign: Option<RawIdentity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    p12: Option<PathBuf>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// `[structures."<identifier>"]`: one structure of a hospital group.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStructure {
    #[serde(default)]
    default: bool,
    auth_cli: Option<RawIdentity>,
    sign: Option<RawIdentity>,
    name_id: Option<String>,
    #[serde(default)]
    attributes: Vec<AttributeSpec>,
}

/// One hospital structure (EJ or EG): its two identities and what its assertions say of it.
#[derive(Debug, Clone)]
pub struct StructureConfig {
    /// `1`+FINESS or `3`+SIRET as configured; `None` in the `[identity.*]` form, where the
    /// certificates name it.
    pub id: Option<String>,
    /// The config field of the section (`structures.1990000012`, `identity`).
    pub field: String,
    pub auth_cli: IdentitySource,
    pub sign: IdentitySource,
    /// The assertion's NameID for this structure (else `[assertion] name_id`, else the id).
    pub name_id: Option<String>,
    /// Attributes added to `[assertion] attributes` in this structure's assertions.
    pub attributes: Vec<AttributeSpec>,
}

/// The structures served; one is the gateway default.
#[derive(Debug, Clone)]
pub struct Identities {
    pub structures: Vec<StructureConfig>,
    /// Index of the default structure in `structures`.
    pub default: usize,
}

impl Identities {
    /// The structure a request uses when nothing else names one.
    pub fn default_structure(&self) -> &StructureConfig {
        &self.structures[self.default]
    }
}

/// Where an identity's key and certificates come from.
#[derive(Clone)]
pub enum IdentitySource {
    /// A PKCS#12 file and its password.
    P12 {
        /// The config field, for error messages (`identity.sign`).
        field: String,
        path: PathBuf,
        password: Zeroizing<String>,
        /// Where the password came from, when a file: re-read on reload, so a rotation may
        /// change both.
        password_file: Option<PathBuf>,
    },
    /// PEM certificate chain (leaf first) and PEM private key.
    Pem {
        field: String,
        cert: PathBuf,
        key: PathBuf,
    },
}

impl IdentitySource {
    pub fn field(&self) -> &str {
        match self {
            IdentitySource::P12 { field, .. } | IdentitySource::Pem { field, .. } => field,
        }
    }
}

impl fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentitySource::P12 {
                field,
                path,
                password_file,
                ..
            } => f
                .debug_struct("P12")
                .field("field", field)
                .field("path", path)
                .field("password_file", password_file)
                .field("password", &"<redacted>")
                .finish(),
            IdentitySource::Pem { field, cert, key } => f
                .debug_struct("Pem")
                .field("field", field)
                .field("cert", cert)
                .field("key", key)
                .finish(),
        }
    }
}

pub(super) fn validate(
    v: &Validator<'_>,
    raw: RawIdentities,
    structures: BTreeMap<String, RawStructure>,
) -> Result<Identities, ConfigError> {
    if structures.is_empty() {
        let one = StructureConfig {
            id: None,
            field: "identity".into(),
            auth_cli: identity(v, "identity.auth_cli", raw.auth_cli)?,
            sign: identity(v, "identity.sign", raw.sign)?,
            name_id: None,
            attributes: Vec::new(),
        };
        return Ok(Identities {
            structures: vec![one],
            default: 0,
        });
    }
    if raw.auth_cli.is_some() || raw.sign.is_some() {
        return Err(v.err(
            "identity",
            "give the identities either in [identity.*] (one structure) or in [structures.*], not both",
        ));
    }
    let several = structures.len() > 1;
    let mut out = Vec::new();
    let mut defaults = Vec::new();
    for (id, raw) in structures {
        let field = format!("structures.{id}");
        if !is_structure_id(&id) {
            return Err(v.err(
                &field,
                "a structure identifier is 1 + FINESS (10 digits) or 3 + SIRET (15 digits)",
            ));
        }
        super::assertion::attributes(v, &format!("{field}.attributes"), &raw.attributes)?;
        if raw.default {
            defaults.push(out.len());
        }
        out.push(StructureConfig {
            auth_cli: identity(v, &format!("{field}.auth_cli"), raw.auth_cli)?,
            sign: identity(v, &format!("{field}.sign"), raw.sign)?,
            name_id: raw.name_id,
            attributes: raw.attributes,
            id: Some(id),
            field,
        });
    }
    let default = match (defaults.as_slice(), several) {
        ([d], _) => *d,
        ([], false) => 0,
        _ => {
            return Err(v.err(
                "structures",
                "mark exactly one structure `default = true` (the one requests use when they name none)",
            ))
        }
    };
    Ok(Identities {
        structures: out,
        default,
    })
}

/// `1` + FINESS (9 digits) or `3` + SIRET (14 digits).
pub fn is_structure_id(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
        && matches!(
            (s.as_bytes().first(), s.len()),
            (Some(b'1'), 10) | (Some(b'3'), 15)
        )
}

fn identity(
    v: &Validator<'_>,
    field: &str,
    raw: Option<RawIdentity>,
) -> Result<IdentitySource, ConfigError> {
    let field = field.to_string();
    let Some(raw) = raw else {
        return Err(v.err(
            &field,
            "missing section: give p12 + password_env/password_file, or cert + key (PEM)",
        ));
    };
    match (&raw.p12, &raw.cert, &raw.key) {
        (Some(p12), None, None) => {
            let path = v.file(&format!("{field}.p12"), p12)?;
            let password = v
                .secret(
                    &field,
                    "password",
                    raw.password_env.as_deref(),
                    raw.password_file.as_deref(),
                    true,
                )?
                .expect("required secret");
            let password_file = raw.password_file.as_deref().map(|p| v.resolve(p));
            Ok(IdentitySource::P12 {
                field,
                path,
                password,
                password_file,
            })
        }
        (None, Some(cert), Some(key)) => {
            if raw.password_env.is_some() || raw.password_file.is_some() {
                return Err(v.err(
                    &field,
                    "encrypted PEM keys are not supported: use an unencrypted PKCS#8 key \
                     readable only by rocgw, or a PKCS#12 file",
                ));
            }
            let cert = v.file(&format!("{field}.cert"), cert)?;
            let key = v.file(&format!("{field}.key"), key)?;
            Ok(IdentitySource::Pem { field, cert, key })
        }
        _ => Err(v.err(
            &field,
            "give either p12 (with password_env or password_file), or cert and key",
        )),
    }
}

//! `[identity.auth_cli]` and `[identity.sign]`: where the hospital's two IGC-Santé ORG
//! certificates and their keys are read from.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, Validator};

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

#[derive(Debug, Clone)]
pub struct Identities {
    pub auth_cli: IdentitySource,
    pub sign: IdentitySource,
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

pub(super) fn validate(v: &Validator<'_>, raw: RawIdentities) -> Result<Identities, ConfigError> {
    Ok(Identities {
        auth_cli: identity(v, "auth_cli", raw.auth_cli)?,
        sign: identity(v, "sign", raw.sign)?,
    })
}

fn identity(
    v: &Validator<'_>,
    name: &str,
    raw: Option<RawIdentity>,
) -> Result<IdentitySource, ConfigError> {
    let field = format!("identity.{name}");
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

//! `[annuaire]`: the Annuaire AMC's address, how its answers are cached, and who rocgw says it is
//! in its lookups.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, RevocationPolicy, Validator};

/// Longest any annuaire answer is kept (cache, staleness, unknown AMCs).
const MAX_CACHE_S: u64 = 30 * 86_400;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnnuaire {
    url: String,
    #[serde(default)]
    revocation: RevocationPolicy,
    cache_ttl_s: Option<u64>,
    stale_s: Option<u64>,
    negative_ttl_s: Option<u64>,
    cache_max_entries: Option<usize>,
    editeur: Option<String>,
    logiciel: Option<String>,
    version_logiciel: Option<String>,
    message_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AnnuaireConfig {
    pub url: http::Uri,
    pub revocation: RevocationPolicy,
    /// How lookups are cached, and who rocgw says it is in them.
    pub directory: DirectoryConfig,
}

/// How lookups are cached (`[annuaire]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// A found AMC's answer is used without asking again for this long.
    pub ttl: Duration,
    /// After `ttl`, the last good answer is still served for this long while a background
    /// refresh asks the annuaire (stale-while-revalidate); beyond it, a caller waits for a
    /// fresh answer or gets `annuaire-unavailable`.
    pub stale: Duration,
    /// An "AMC inconnue" answer is remembered this long.
    pub negative_ttl: Duration,
    /// Cached answers at most; the oldest goes first.
    pub max_entries: usize,
    pub requester: Requester,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            ttl: Duration::from_secs(3_600),
            stale: Duration::from_secs(86_400),
            negative_ttl: Duration::from_secs(60),
            max_entries: 10_000,
            requester: Requester::default(),
        }
    }
}

/// Who is asking (`requete`): version of the message and software identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub version: String,
    pub editeur: String,
    pub logiciel: String,
    pub version_logiciel: String,
}

impl Default for Requester {
    fn default() -> Self {
        Requester {
            version: "1.0".into(),
            editeur: "rocgw".into(),
            logiciel: "rocgw".into(),
            version_logiciel: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

pub(super) fn validate(v: &Validator<'_>, a: &RawAnnuaire) -> Result<AnnuaireConfig, ConfigError> {
    let d = DirectoryConfig::default();
    let text = |field: &str, value: &Option<String>, default: &str| match value {
        Some(t) if t.trim().is_empty() => {
            Err(v.err(&format!("annuaire.{field}"), "must not be empty"))
        }
        Some(t) => Ok(t.trim().to_string()),
        None => Ok(default.to_string()),
    };
    let max_entries = v.ranged(
        "annuaire.cache_max_entries",
        a.cache_max_entries,
        d.max_entries,
        1..=10_000_000,
    )?;
    Ok(AnnuaireConfig {
        url: v.https_uri("annuaire.url", &a.url)?,
        revocation: a.revocation,
        directory: DirectoryConfig {
            ttl: v.secs(
                "annuaire.cache_ttl_s",
                a.cache_ttl_s,
                d.ttl,
                1..=MAX_CACHE_S,
            )?,
            stale: v.secs("annuaire.stale_s", a.stale_s, d.stale, 0..=MAX_CACHE_S)?,
            negative_ttl: v.secs(
                "annuaire.negative_ttl_s",
                a.negative_ttl_s,
                d.negative_ttl,
                0..=MAX_CACHE_S,
            )?,
            max_entries,
            requester: Requester {
                version: text("message_version", &a.message_version, &d.requester.version)?,
                editeur: text("editeur", &a.editeur, &d.requester.editeur)?,
                logiciel: text("logiciel", &a.logiciel, &d.requester.logiciel)?,
                version_logiciel: text(
                    "version_logiciel",
                    &a.version_logiciel,
                    &d.requester.version_logiciel,
                )?,
            },
        },
    })
}

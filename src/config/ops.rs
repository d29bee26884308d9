//! `[log]`, `[reload]` and `[audit]`: how the running process reports what it does and notices
//! changed certificate files.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReload {
    check_interval_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    file: Option<PathBuf>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// These sections' settings; `Config` keeps them as top-level fields.
pub(super) struct Ops {
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub reload_check_interval_s: u64,
    pub audit_file: Option<PathBuf>,
}

pub(super) fn validate(
    v: &Validator<'_>,
    log: RawLog,
    reload: &RawReload,
    audit: &RawAudit,
) -> Result<Ops, ConfigError> {
    Ok(Ops {
        log_format: log.format.unwrap_or_default(),
        log_level: log.level,
        // Up to a day: 0 turns the check off, and a longer period is no check in practice.
        reload_check_interval_s: v.ranged(
            "reload.check_interval_s",
            reload.check_interval_s,
            30,
            0..=86_400,
        )?,
        audit_file: audit.file.as_ref().map(|p| v.resolve(p)),
    })
}

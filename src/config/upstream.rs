//! `[upstream]`: timeouts, pool and size limits of the connections to the annuaire and the AMCs.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};

/// Longest upstream timeout: 10 minutes.
const MAX_TIMEOUT_MS: u64 = 600_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    connect_timeout_ms: Option<u64>,
    tls_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    max_connections_per_host: Option<usize>,
    max_response_bytes: Option<usize>,
    connect_retries: Option<u64>,
}

/// Timeouts and limits of the upstream clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub tls_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub total_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub max_connections_per_host: usize,
    pub max_response_bytes: usize,
    /// Retries of a request whose connection could not be opened (nothing was sent).
    pub connect_retries: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Duration::from_millis(3_000),
            tls_timeout: Duration::from_millis(5_000),
            first_byte_timeout: Duration::from_millis(20_000),
            total_timeout: Duration::from_millis(30_000),
            pool_idle_timeout: Duration::from_millis(20_000),
            max_connections_per_host: 32,
            max_response_bytes: 8 * 1024 * 1024,
            connect_retries: 2,
        }
    }
}

pub(super) fn validate(
    v: &Validator<'_>,
    raw: &RawUpstream,
) -> Result<UpstreamConfig, ConfigError> {
    let d = UpstreamConfig::default();
    let ms = |field: &str, value: Option<u64>, default: Duration| {
        v.millis(
            &format!("upstream.{field}"),
            value,
            default,
            1..=MAX_TIMEOUT_MS,
        )
    };
    let u = UpstreamConfig {
        connect_timeout: ms(
            "connect_timeout_ms",
            raw.connect_timeout_ms,
            d.connect_timeout,
        )?,
        tls_timeout: ms("tls_timeout_ms", raw.tls_timeout_ms, d.tls_timeout)?,
        first_byte_timeout: ms(
            "first_byte_timeout_ms",
            raw.first_byte_timeout_ms,
            d.first_byte_timeout,
        )?,
        total_timeout: ms("total_timeout_ms", raw.total_timeout_ms, d.total_timeout)?,
        pool_idle_timeout: ms(
            "pool_idle_timeout_ms",
            raw.pool_idle_timeout_ms,
            d.pool_idle_timeout,
        )?,
        max_connections_per_host: v.ranged(
            "upstream.max_connections_per_host",
            raw.max_connections_per_host,
            d.max_connections_per_host,
            1..=100_000,
        )?,
        max_response_bytes: v.ranged(
            "upstream.max_response_bytes",
            raw.max_response_bytes,
            d.max_response_bytes,
            1024..=1024 * 1024 * 1024,
        )?,
        connect_retries: v.ranged(
            "upstream.connect_retries",
            raw.connect_retries,
            u64::from(d.connect_retries),
            0..=5,
        )? as u32,
    };
    if u.total_timeout < u.first_byte_timeout {
        return Err(v.err(
            "upstream.total_timeout_ms",
            "must not be shorter than first_byte_timeout_ms",
        ));
    }
    Ok(u)
}

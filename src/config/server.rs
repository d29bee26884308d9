//! `[server]` and `[server.tls]`: the gateway's listen addresses, its Unix socket, mutual TLS on
//! `listen`, and the request and connection limits of its listeners.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Overrides, Validator};
use crate::fault::StatusMode;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8580";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9580";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Time a client gets to send its request headers (default).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<String>,
    admin_listen: Option<String>,
    #[serde(default)]
    http_status: StatusMode,
    max_body_bytes: Option<usize>,
    drain_timeout_s: Option<u64>,
    max_concurrent_requests: Option<usize>,
    max_buffered_bytes: Option<u64>,
    request_deadline_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    queue_ms: Option<u64>,
    max_queued_requests: Option<usize>,
    min_body_rate: Option<u64>,
    max_requests_per_caller: Option<usize>,
    max_buffered_bytes_per_caller: Option<u64>,
    unix_socket: Option<PathBuf>,
    unix_socket_mode: Option<String>,
    header_read_timeout_ms: Option<u64>,
    max_headers: Option<u64>,
    max_header_bytes: Option<u64>,
    max_connections: Option<u64>,
    write_timeout_ms: Option<u64>,
    tls: Option<RawServerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Vec<PathBuf>,
    #[serde(default)]
    client_crls: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub http_status: StatusMode,
    pub max_body_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
    /// Requests handled at once; beyond, a request waits up to `queue_wait` for a slot among
    /// at most `max_queued_requests` others, else `overloaded` (load shedding).
    pub max_concurrent_requests: usize,
    pub queue_wait: Duration,
    pub max_queued_requests: usize,
    /// Bytes of request bodies held at once; beyond, `overloaded` (bounds memory).
    pub max_buffered_bytes: usize,
    /// End-to-end deadline of a request; an SIH's `X-Rocgw-Deadline-Ms` may only shorten it.
    pub request_deadline: Duration,
    /// A request body must have come within this time plus one second per `min_body_rate`
    /// bytes received; else `body-timeout`. Read before a request slot is taken.
    pub body_timeout: Duration,
    /// Bytes per second a body must keep up after `body_timeout` (0: none).
    pub min_body_rate: u64,
    /// Per caller (`[access]` name, or the peer): requests in progress and body bytes held at
    /// once (0: no cap, the default — one SIH is often one caller).
    pub max_requests_per_caller: usize,
    pub max_buffered_bytes_per_caller: usize,
    /// A Unix domain socket the gateway also listens on, and its file mode.
    pub unix_socket: Option<(PathBuf, u32)>,
    /// HTTPS with client certificates on `listen`.
    pub tls: Option<ServerTls>,
    /// Header size, count and read-time limits of the gateway listener.
    pub limits: Limits,
}

/// Mutual TLS on the gateway listener: rocgw's local server certificate, and the local CA(s)
/// whose client certificates identify SIH applications.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Vec<PathBuf>,
    /// CRLs of the local CA: a revoked SIH application certificate is refused.
    pub client_crls: Vec<PathBuf>,
}

impl ServerTls {
    /// The files it is made of (watched for changes).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut f = vec![self.cert.clone(), self.key.clone()];
        f.extend(self.client_ca.iter().cloned());
        f.extend(self.client_crls.iter().cloned());
        f
    }
}

/// Per-connection limits. Beyond them the listener answers `431` (headers too large or too
/// many) or closes the connection (headers too slow) before any handler runs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    /// Header fields per request.
    pub max_headers: usize,
    /// Bytes of request line and headers.
    pub max_header_bytes: usize,
    /// Connections open at once on one listener; beyond, new ones are closed at once.
    pub max_connections: usize,
    /// A connection whose writes make no progress this long (a client that stopped reading
    /// its answer) is cut.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_headers: 64,
            max_header_bytes: 32 * 1024,
            max_connections: 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

pub(super) fn validate(
    v: &Validator<'_>,
    raw: &RawServer,
    ov: &Overrides,
) -> Result<ServerConfig, ConfigError> {
    let listen = match ov.listen {
        Some(a) => a,
        None => v.addr("server.listen", raw.listen.as_deref(), DEFAULT_LISTEN)?,
    };
    let admin_listen = match ov.admin_listen {
        Some(a) => a,
        None => v.addr(
            "server.admin_listen",
            raw.admin_listen.as_deref(),
            DEFAULT_ADMIN_LISTEN,
        )?,
    };
    let max_body_bytes = v.ranged(
        "server.max_body_bytes",
        raw.max_body_bytes,
        DEFAULT_MAX_BODY_BYTES,
        1024..=64 * 1024 * 1024,
    )?;
    let tls = raw.tls.as_ref().map(|t| tls(v, t)).transpose()?;
    let unix_socket = match &raw.unix_socket {
        None => None,
        Some(p) => Some((v.resolve(p), unix_socket_mode(v, raw)?)),
    };
    let limits = limits(v, raw)?;
    let request_deadline = v.millis(
        "server.request_deadline_ms",
        raw.request_deadline_ms,
        Duration::from_secs(30),
        100..=600_000,
    )?;
    let deadline_ms = request_deadline.as_millis() as u64;
    let body_timeout = v.millis(
        "server.body_timeout_ms",
        raw.body_timeout_ms,
        Duration::from_secs(10).min(request_deadline / 2),
        1..=deadline_ms,
    )?;
    let max_concurrent_requests = v.ranged(
        "server.max_concurrent_requests",
        raw.max_concurrent_requests,
        512,
        1..=100_000,
    )?;
    Ok(ServerConfig {
        queue_wait: v.millis(
            "server.queue_ms",
            raw.queue_ms,
            Duration::from_millis(50),
            0..=deadline_ms,
        )?,
        max_queued_requests: v.ranged(
            "server.max_queued_requests",
            raw.max_queued_requests,
            2 * max_concurrent_requests,
            0..=1_000_000,
        )?,
        max_concurrent_requests,
        body_timeout,
        min_body_rate: v.ranged(
            "server.min_body_rate",
            raw.min_body_rate,
            16 * 1024,
            0..=1024 * 1024 * 1024,
        )?,
        max_requests_per_caller: v.ranged(
            "server.max_requests_per_caller",
            raw.max_requests_per_caller,
            0,
            0..=100_000,
        )?,
        max_buffered_bytes_per_caller: v.ranged(
            "server.max_buffered_bytes_per_caller",
            raw.max_buffered_bytes_per_caller,
            0,
            0..=4 * 1024 * 1024 * 1024,
        )? as usize,
        listen,
        admin_listen,
        http_status: raw.http_status,
        max_body_bytes,
        max_buffered_bytes: v.ranged(
            "server.max_buffered_bytes",
            raw.max_buffered_bytes,
            (64 * 1024 * 1024).max(max_body_bytes as u64),
            max_body_bytes as u64..=4 * 1024 * 1024 * 1024,
        )? as usize,
        request_deadline,
        unix_socket,
        tls,
        limits,
        drain_timeout: v.secs(
            "server.drain_timeout_s",
            raw.drain_timeout_s,
            Duration::from_secs(30),
            0..=3_600,
        )?,
    })
}

fn tls(v: &Validator<'_>, t: &RawServerTls) -> Result<ServerTls, ConfigError> {
    if t.client_ca.is_empty() {
        return Err(v.err(
            "server.tls.client_ca",
            "name the local CA that issues the SIH applications' certificates",
        ));
    }
    Ok(ServerTls {
        cert: v.file("server.tls.cert", &t.cert)?,
        key: v.file("server.tls.key", &t.key)?,
        client_ca: v.files("server.tls.client_ca", &t.client_ca)?,
        client_crls: v.files("server.tls.client_crls", &t.client_crls)?,
    })
}

fn unix_socket_mode(v: &Validator<'_>, raw: &RawServer) -> Result<u32, ConfigError> {
    let Some(m) = &raw.unix_socket_mode else {
        return Ok(0o660);
    };
    match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
        Ok(mode) if mode <= 0o777 && mode & 0o007 == 0 => Ok(mode),
        _ => Err(v.err(
            "server.unix_socket_mode",
            "an octal mode without rights for others, like \"0660\" or \"0600\"",
        )),
    }
}

fn limits(v: &Validator<'_>, raw: &RawServer) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    Ok(Limits {
        // The gateway's own default, shorter than a bare listener's.
        header_read_timeout: v.millis(
            "server.header_read_timeout_ms",
            raw.header_read_timeout_ms,
            Duration::from_secs(10),
            100..=300_000,
        )?,
        max_headers: v.ranged(
            "server.max_headers",
            raw.max_headers,
            d.max_headers as u64,
            8..=1_000,
        )? as usize,
        max_header_bytes: v.ranged(
            "server.max_header_bytes",
            raw.max_header_bytes,
            d.max_header_bytes as u64,
            8_192..=1024 * 1024,
        )? as usize,
        max_connections: v.ranged(
            "server.max_connections",
            raw.max_connections,
            d.max_connections as u64,
            1..=1_000_000,
        )? as usize,
        write_timeout: v.millis(
            "server.write_timeout_ms",
            raw.write_timeout_ms,
            d.write_timeout,
            100..=600_000,
        )?,
    })
}

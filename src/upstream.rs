//! The upstream clients: every byte rocgw sends to the Annuaire AMC or an AMC leaves through
//! here, over TLS that rocgw controls (the client certificate it presents, the server
//! certificates it accepts, see `trust::OsiVerifier`).
//!
//! One client per upstream kind, each with its own pool (keep-alive, idle timeout shorter than
//! the servers'), TLS session resumption, connect / TLS / first-byte / total timeouts, a hard cap
//! on connections per host (hyper-util only caps idle ones, so the connector holds a semaphore
//! permit for the life of each connection), and an optional HTTP `CONNECT` proxy with TLS end to
//! end through the tunnel. A reload builds new clients: a fresh session cache and pool, so new
//! handshakes use the new material, while in-flight requests finish on their old connections.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{HeaderMap, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::{ProxyConfig, UpstreamConfig};
use crate::fault::FaultCode;
use crate::identity::Identity;
use crate::metrics;
use crate::trust::OsiVerifier;

/// The User-Agent of rocgw's upstream requests.
pub const USER_AGENT: &str = concat!("rocgw/", env!("CARGO_PKG_VERSION"));

/// Which upstream a client talks to; decides metric labels and fault codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Annuaire,
    Amc,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Annuaire => "annuaire",
            Kind::Amc => "amc",
        }
    }

    pub fn unavailable(self) -> FaultCode {
        match self {
            Kind::Annuaire => FaultCode::AnnuaireUnavailable,
            Kind::Amc => FaultCode::AmcUnavailable,
        }
    }

    fn timeout(self) -> FaultCode {
        match self {
            Kind::Annuaire => FaultCode::AnnuaireUnavailable,
            Kind::Amc => FaultCode::AmcTimeout,
        }
    }
}

/// The TLS client configuration: our verifier, and the client certificate when one is presented.
pub fn client_config(
    verifier: Arc<OsiVerifier>,
    client_identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match client_identity {
        Some(id) => {
            let ck =
                crate::identity::certified_key(id.chain.clone(), id.key_pkcs8()).map_err(|e| {
                    format!("{}: unusable for TLS client authentication: {e}", id.field)
                })?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck)))
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// Only https upstreams exist.
    NotHttps,
    Connect(std::io::Error),
    ConnectTimeout,
    TlsTimeout,
    Tls(std::io::Error),
    ProxyRefused(String),
    Proxy(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::NotHttps => f.write_str("only https upstreams are used"),
            ConnectError::Connect(e) => write!(f, "connection failed: {e}"),
            ConnectError::ConnectTimeout => f.write_str("connection timed out"),
            ConnectError::TlsTimeout => f.write_str("TLS handshake timed out"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            ConnectError::ProxyRefused(s) => write!(f, "proxy refused CONNECT: {s}"),
            ConnectError::Proxy(s) => write!(f, "proxy error: {s}"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Connect(e) | ConnectError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// An established upstream connection; holds its per-host permit until it closes.
pub struct Conn {
    io: TokioIo<TlsStream<TcpStream>>,
    _permit: OwnedSemaphorePermit,
    kind: Kind,
}

impl Drop for Conn {
    fn drop(&mut self) {
        metrics::get()
            .upstream_open
            .with_label_values(&[self.kind.label()])
            .dec();
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// Makes TLS connections for the pool: TCP (directly or through the proxy), then TLS.
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
    proxy: Option<Arc<ProxyConfig>>,
    connect_timeout: Duration,
    tls_timeout: Duration,
    max_per_host: usize,
    limits: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    kind: Kind,
}

impl Connector {
    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut m = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(key.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_per_host)))
            .clone()
    }

    async fn connect(self, uri: Uri) -> Result<Conn, ConnectError> {
        if uri.scheme_str() != Some("https") {
            return Err(ConnectError::NotHttps);
        }
        let host = uri
            .host()
            .ok_or(ConnectError::NotHttps)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let permit = self
            .semaphore(&format!("{host}:{port}"))
            .acquire_owned()
            .await
            .map_err(|_| ConnectError::Proxy("connection limiter closed".into()))?;
        let tcp = match &self.proxy {
            Some(p) if !p.bypass(&host) => self.tunnel(p, &host, port).await?,
            _ => tokio::time::timeout(
                self.connect_timeout,
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| ConnectError::ConnectTimeout)?
            .map_err(ConnectError::Connect)?,
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone())
            .map_err(|_| ConnectError::Proxy(format!("invalid server name {host:?}")))?;
        let tls = tokio::time::timeout(self.tls_timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| ConnectError::TlsTimeout)?
            .map_err(ConnectError::Tls)?;
        let m = metrics::get();
        m.upstream_connections
            .with_label_values(&[self.kind.label()])
            .inc();
        m.upstream_open
            .with_label_values(&[self.kind.label()])
            .inc();
        Ok(Conn {
            io: TokioIo::new(tls),
            _permit: permit,
            kind: self.kind,
        })
    }

    /// Opens a `CONNECT` tunnel through the proxy.
    async fn tunnel(
        &self,
        p: &ProxyConfig,
        host: &str,
        port: u16,
    ) -> Result<TcpStream, ConnectError> {
        let work = async {
            let mut s = TcpStream::connect((p.host.as_str(), p.port))
                .await
                .map_err(ConnectError::Connect)?;
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
            if let Some(c) = &p.credentials {
                let token = base64::engine::general_purpose::STANDARD.encode(c.as_bytes());
                req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes())
                .await
                .map_err(ConnectError::Connect)?;
            let mut buf = Vec::with_capacity(512);
            let mut chunk = [0u8; 512];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                if buf.len() > 16 * 1024 {
                    return Err(ConnectError::Proxy("response headers too long".into()));
                }
                let n = s.read(&mut chunk).await.map_err(ConnectError::Connect)?;
                if n == 0 {
                    return Err(ConnectError::Proxy("closed during CONNECT".into()));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let head = String::from_utf8_lossy(&buf);
            let status_line = head.lines().next().unwrap_or("").trim().to_string();
            let code = status_line.split_whitespace().nth(1).unwrap_or("");
            if code != "200" {
                return Err(ConnectError::ProxyRefused(status_line));
            }
            Ok(s)
        };
        tokio::time::timeout(self.connect_timeout + self.tls_timeout, work)
            .await
            .map_err(|_| ConnectError::ConnectTimeout)?
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// Why an upstream exchange failed. `as_str` is the stable metric label and log word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Timeout,
    Proxy,
    NotHttps,
    Connect,
    ClosedDuringHandshake,
    TlsError,
    Io,
    CertExpired,
    CertNotYetValid,
    CertRevoked,
    UnknownCa,
    WrongHost,
    RevocationUnknown,
    PeerRejectedClientCert,
    TlsAlert,
    ResponseTooLarge,
    MemoryBudget,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Proxy => "proxy",
            Reason::NotHttps => "not-https",
            Reason::Connect => "connect",
            Reason::ClosedDuringHandshake => "closed-during-handshake",
            Reason::TlsError => "tls-error",
            Reason::Io => "io",
            Reason::CertExpired => "cert-expired",
            Reason::CertNotYetValid => "cert-not-yet-valid",
            Reason::CertRevoked => "cert-revoked",
            Reason::UnknownCa => "unknown-ca",
            Reason::WrongHost => "wrong-host",
            Reason::RevocationUnknown => "revocation-unknown",
            Reason::PeerRejectedClientCert => "peer-rejected-client-cert",
            Reason::TlsAlert => "tls-alert",
            Reason::ResponseTooLarge => "response-too-large",
            Reason::MemoryBudget => "memory-budget",
        }
    }

    /// A failure of the TLS handshake (counted in `rocgw_upstream_tls_failures_total`).
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Reason::CertExpired
                | Reason::CertRevoked
                | Reason::UnknownCa
                | Reason::WrongHost
                | Reason::CertNotYetValid
                | Reason::RevocationUnknown
                | Reason::PeerRejectedClientCert
                | Reason::TlsAlert
                | Reason::ClosedDuringHandshake
                | Reason::TlsError
        )
    }

    /// Nothing reached the upstream (the TCP connection could not be opened): the only case
    /// where a call may be tried again, since the AMC cannot have acted on it.
    pub fn nothing_sent(self) -> bool {
        self == Reason::Connect
    }
}

/// An upstream failure, classified for the SIH.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct UpstreamError {
    pub code: FaultCode,
    pub reason: Reason,
    /// One sentence for the fault detail and the log; no secrets, no bodies.
    pub detail: String,
}

/// A response read from upstream.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body's share of the memory budget, when read within one.
    pub held: Option<crate::budget::Held>,
}

/// A pooled client for one upstream kind.
pub struct Upstream {
    kind: Kind,
    client: Client<Connector, Full<Bytes>>,
    first_byte_timeout: Duration,
    total_timeout: Duration,
    max_response_bytes: usize,
    connect_retries: u32,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("kind", &self.kind)
            .finish()
    }
}

impl Upstream {
    pub fn new(
        kind: Kind,
        tls: Arc<ClientConfig>,
        cfg: &UpstreamConfig,
        proxy: Option<&ProxyConfig>,
    ) -> Upstream {
        let connector = Connector {
            tls: TlsConnector::from(tls),
            proxy: proxy.cloned().map(Arc::new),
            connect_timeout: cfg.connect_timeout,
            tls_timeout: cfg.tls_timeout,
            max_per_host: cfg.max_connections_per_host,
            limits: Arc::new(Mutex::new(HashMap::new())),
            kind,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(cfg.max_connections_per_host)
            .timer(TokioTimer::new())
            .build(connector);
        Upstream {
            kind,
            client,
            first_byte_timeout: cfg.first_byte_timeout,
            total_timeout: cfg.total_timeout,
            max_response_bytes: cfg.max_response_bytes,
            connect_retries: cfg.connect_retries,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Sends one request and reads the whole response under the timeouts.
    ///
    /// Retried only when no byte of it can have reached the peer: the TCP connection could not
    /// be opened (refused, unreachable, reset while connecting), at most `connect_retries`
    /// times, after a random pause (full jitter) below 50 ms, 100 ms, 200 ms… A request on a
    /// pooled connection the peer closed before it was written is re-sent by hyper's pool
    /// itself. Anything later (TLS verdicts, timeouts, a connection lost mid-exchange) is never
    /// retried: the AMC may have acted on it.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<UpstreamResponse, UpstreamError> {
        self.send_within(req, None).await
    }

    /// `send`, the response body read within the memory `budget`: one that does not fit gets
    /// `overloaded`.
    pub async fn send_within(
        &self,
        req: Request<Full<Bytes>>,
        budget: Option<&crate::budget::Budget>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let mut attempt = 0;
        let result = loop {
            let r = self
                .exchange(
                    Request::from_parts(parts.clone(), body.clone()),
                    started,
                    budget,
                )
                .await;
            match r {
                Err(e) if e.reason.nothing_sent() && attempt < self.connect_retries => {
                    attempt += 1;
                    metrics::get()
                        .upstream_retries
                        .with_label_values(&[self.kind.label()])
                        .inc();
                    tokio::time::sleep(jitter(attempt)).await;
                }
                r => break r,
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        metrics::get()
            .upstream_requests
            .with_label_values(&[self.kind.label(), outcome])
            .inc();
        metrics::get()
            .upstream_seconds
            .with_label_values(&[self.kind.label()])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            if e.reason.is_tls() {
                metrics::get()
                    .tls_failures
                    .with_label_values(&[self.kind.label(), e.reason.as_str()])
                    .inc();
            }
        }
        result
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        started: Instant,
        budget: Option<&crate::budget::Budget>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let timeout = |what: &str| UpstreamError {
            code: self.kind.timeout(),
            reason: Reason::Timeout,
            detail: format!("no {what} from the {} in time", self.kind.label()),
        };
        let resp =
            match tokio::time::timeout(self.first_byte_timeout, self.client.request(req)).await {
                Err(_) => return Err(timeout("response")),
                Ok(Err(e)) => return Err(classify(self.kind, &e)),
                Ok(Ok(r)) => r,
            };
        let (parts, body) = resp.into_parts();
        let left = self.total_timeout.saturating_sub(started.elapsed());
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let (body, held) =
            match tokio::time::timeout(left, self.read_body(body, declared, budget)).await {
                Err(_) => return Err(timeout("complete response")),
                Ok(r) => r?,
            };
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body,
            held,
        })
    }

    /// Reads a response body under `max_response_bytes` and, when given, the memory budget
    /// (answers over 64 KiB count against it).
    async fn read_body(
        &self,
        mut body: hyper::body::Incoming,
        declared: usize,
        budget: Option<&crate::budget::Budget>,
    ) -> Result<(Bytes, Option<crate::budget::Held>), UpstreamError> {
        use crate::budget::{read, ReadError, UNCOUNTED_ANSWER};
        let label = self.kind.label();
        let max = self.max_response_bytes;
        read(&mut body, declared, max, budget, UNCOUNTED_ANSWER)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => UpstreamError {
                    code: self.kind.unavailable(),
                    reason: Reason::ResponseTooLarge,
                    detail: format!("the {label} response exceeds {max} bytes"),
                },
                ReadError::OverBudget => UpstreamError {
                    code: FaultCode::Overloaded,
                    reason: Reason::MemoryBudget,
                    detail: format!(
                        "the {label} answered, but its answer did not fit in the memory for \
                         bodies in progress (server.max_buffered_bytes): the call may have been \
                         processed, check before sending it again"
                    ),
                },
                ReadError::Body(e) => classify(self.kind, &e),
            })
    }
}

/// A random pause in [0, 25 ms × 2^attempt): retries of many callers do not land together.
fn jitter(attempt: u32) -> Duration {
    let cap_us = 25_000u64 << attempt.min(6);
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    Duration::from_micros(u64::from_le_bytes(b) % cap_us)
}

/// Walks an error's sources and says what the SIH should hear.
pub fn classify(kind: Kind, err: &(dyn StdError + 'static)) -> UpstreamError {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut in_tls = false;
    while let Some(e) = cur {
        if let Some(ce) = e.downcast_ref::<ConnectError>() {
            match ce {
                ConnectError::ConnectTimeout | ConnectError::TlsTimeout => {
                    return UpstreamError {
                        code: kind.timeout(),
                        reason: Reason::Timeout,
                        detail: format!("{} {ce}", kind.label()),
                    }
                }
                ConnectError::ProxyRefused(_) | ConnectError::Proxy(_) => {
                    return UpstreamError {
                        code: kind.unavailable(),
                        reason: Reason::Proxy,
                        detail: ce.to_string(),
                    }
                }
                ConnectError::NotHttps => {
                    return UpstreamError {
                        code: kind.unavailable(),
                        reason: Reason::NotHttps,
                        detail: ce.to_string(),
                    }
                }
                ConnectError::Connect(_) => {
                    return UpstreamError {
                        code: kind.unavailable(),
                        reason: Reason::Connect,
                        detail: format!("{} {ce}", kind.label()),
                    }
                }
                ConnectError::Tls(_) => in_tls = true,
            }
        }
        if let Some(te) = e.downcast_ref::<rustls::Error>() {
            return tls_error(kind, te);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(te) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_error(kind, te);
            }
            if in_tls
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                )
            {
                return UpstreamError {
                    code: FaultCode::UpstreamTls,
                    reason: Reason::ClosedDuringHandshake,
                    detail: format!(
                        "the {} closed the connection during the TLS handshake",
                        kind.label()
                    ),
                };
            }
        }
        cur = e.source();
    }
    UpstreamError {
        code: if in_tls {
            FaultCode::UpstreamTls
        } else {
            kind.unavailable()
        },
        reason: if in_tls { Reason::TlsError } else { Reason::Io },
        detail: format!("{} exchange failed: {}", kind.label(), short_chain(err)),
    }
}

fn tls_error(kind: Kind, e: &rustls::Error) -> UpstreamError {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let who = kind.label();
    let (code, reason, detail) = match e {
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
            FaultCode::UpstreamCertExpired,
            Reason::CertExpired,
            format!("the {who} server certificate has expired"),
        ),
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => (
            FaultCode::UpstreamTls,
            Reason::CertNotYetValid,
            format!("the {who} server certificate is not valid yet"),
        ),
        E::InvalidCertificate(C::Revoked) => (
            FaultCode::UpstreamCertRevoked,
            Reason::CertRevoked,
            format!("the {who} server certificate is revoked"),
        ),
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => (
            FaultCode::UpstreamCertUnknownCa,
            Reason::UnknownCa,
            format!("the {who} server certificate does not chain to a configured IGC OSI anchor"),
        ),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => (
            FaultCode::UpstreamTls,
            Reason::WrongHost,
            format!("the {who} server certificate does not name the host"),
        ),
        E::InvalidCertificate(
            C::UnknownRevocationStatus
            | C::ExpiredRevocationList
            | C::ExpiredRevocationListContext { .. },
        ) => (
            FaultCode::UpstreamTls,
            Reason::RevocationUnknown,
            format!(
                "the revocation status of the {who} server certificate is unknown (hard policy)"
            ),
        ),
        E::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::AccessDenied
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired,
        ) => (
            FaultCode::UpstreamTls,
            Reason::PeerRejectedClientCert,
            format!("the {who} server rejected our client certificate ({e})"),
        ),
        E::AlertReceived(_) => (
            FaultCode::UpstreamTls,
            Reason::TlsAlert,
            format!("the {who} server sent a TLS alert ({e})"),
        ),
        _ => (
            FaultCode::UpstreamTls,
            Reason::TlsError,
            format!("TLS with the {who} server failed: {e}"),
        ),
    };
    UpstreamError {
        code,
        reason,
        detail,
    }
}

/// The error and its sources on one line.
fn short_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

//! How rocgw reaches an upstream host: TCP (or an HTTP `CONNECT` tunnel through the proxy),
//! then TLS with the client's configuration, under the per-host connection cap and the connect
//! and handshake timeouts. The pool asks this connector for every new connection.

use crate::config::ProxyConfig;
use crate::metrics;
use base64::Engine as _;
use http::Uri;
use rustls::pki_types::ServerName;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::Kind;

/// The per-host caps of one upstream kind, shared by every client of that kind (one per
/// hospital structure, one per reload generation): the cap protects the host, whoever
/// connects. One semaphore per `host:port` for connections, one for calls in progress.
#[derive(Clone, Default)]
pub struct HostLimits {
    conns: Arc<Mutex<super::HostMap<Arc<Semaphore>>>>,
    calls: Arc<Mutex<super::HostMap<Arc<Semaphore>>>>,
    /// The pools whose connections hold those permits: a connection one pool needs can be
    /// freed by closing an idle one of another (another structure's, another generation's).
    pools: Arc<Mutex<Vec<Weak<dyn Evict>>>>,
}

impl std::fmt::Debug for HostLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLimits").finish_non_exhaustive()
    }
}

/// A pool that can close one of its idle connections to a host.
pub trait Evict: Send + Sync {
    /// Closes the oldest idle connection to `key`, if any; true when it did.
    fn evict_one(&self, key: &str) -> bool;
}

impl HostLimits {
    /// The semaphore of `key` in `map`, made with `max` permits on first use.
    fn of(map: &Mutex<super::HostMap<Arc<Semaphore>>>, key: &str, max: usize) -> Arc<Semaphore> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(key) {
            Some(s) => s.clone(),
            None => m
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(max)))
                .clone(),
        }
    }

    /// A call slot for `host:port`, waited for: at most `max` calls in progress to one host,
    /// so that no more connections are ever asked of the pool than the connection cap allows
    /// (a call beyond it would start a connection attempt that only waits for a permit).
    pub async fn call_slot(&self, key: &str, max: usize) -> Option<OwnedSemaphorePermit> {
        Self::of(&self.calls, key, max).acquire_owned().await.ok()
    }

    /// Makes a pool's idle connections available to the others sharing these limits.
    pub fn register(&self, pool: Weak<dyn Evict>) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|p| p.strong_count() > 0);
        pools.push(pool);
    }

    /// Closes one idle connection to `key` in any pool; true when one was.
    fn evict_idle(&self, key: &str) -> bool {
        let pools: Vec<Arc<dyn Evict>> = self
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        pools.iter().any(|p| p.evict_one(key))
    }
}

/// How long one wait for a connection permit lasts before the pool is looked in again and an
/// idle connection closed again.
const EVICT_AGAIN: Duration = Duration::from_millis(20);

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
    io: TlsStream<TcpStream>,
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

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
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
}

/// Where a connection goes: an https URL's host (without IPv6 brackets) and port.
pub(super) struct Target {
    host: String,
    port: u16,
}

/// The [`Target`] of `uri`, checked before any wait for a connection permit: only https
/// upstreams exist.
pub(super) fn target(uri: &Uri) -> Result<Target, ConnectError> {
    if uri.scheme_str() != Some("https") {
        return Err(ConnectError::NotHttps);
    }
    let host = uri
        .host()
        .ok_or(ConnectError::NotHttps)?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        host,
        port: uri.port_u16().unwrap_or(443),
    })
}

/// Makes TLS connections for the pool: TCP (directly or through the proxy), then TLS.
#[derive(Clone)]
pub struct Connector {
    pub(super) tls: TlsConnector,
    pub(super) proxy: Option<Arc<ProxyConfig>>,
    pub(super) connect_timeout: Duration,
    pub(super) tls_timeout: Duration,
    pub(super) max_per_host: usize,
    pub(super) limits: HostLimits,
    pub(super) kind: Kind,
}

impl Connector {
    fn semaphore(&self, key: &str) -> Arc<Semaphore> {
        HostLimits::of(&self.limits.conns, key, self.max_per_host)
    }

    /// A connection permit for `key` if one is free, or becomes free within [`EVICT_AGAIN`]:
    /// every permit may be held by connections in use or idle in some pool, so an idle one is
    /// closed first (another structure's pool may hold them all). `None` when the wait ran
    /// out: the caller looks in its own pool again, where a connection may have come back
    /// meanwhile (a cut call's, finished in the background), before it waits again. Closed
    /// limiter: an error.
    pub(super) async fn permit(
        &self,
        key: &str,
    ) -> Result<Option<OwnedSemaphorePermit>, ConnectError> {
        let sem = self.semaphore(key);
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        self.limits.evict_idle(key);
        match tokio::time::timeout(EVICT_AGAIN, sem.acquire_owned()).await {
            Ok(Ok(p)) => Ok(Some(p)),
            Ok(Err(_)) => Err(ConnectError::Proxy("connection limiter closed".into())),
            Err(_) => Ok(None),
        }
    }

    /// A new connection to `target` (from [`target`]) under `permit` (from
    /// [`Connector::permit`]).
    pub(super) async fn connect(
        &self,
        target: &Target,
        permit: OwnedSemaphorePermit,
    ) -> Result<Conn, ConnectError> {
        let (host, port) = (&target.host, target.port);
        let tcp = match &self.proxy {
            Some(p) if !p.bypass(host) => self.tunnel(p, host, port).await?,
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
            io: tls,
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

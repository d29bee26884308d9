//! The upstream clients: every byte rocgw sends to the Annuaire AMC or an AMC leaves through
//! here, over TLS that rocgw controls (the client certificate it presents, the server
//! certificates it accepts, see `trust::OsiVerifier`).
//!
//! One client per upstream kind, each with its own pool (`upstream::pool`: keep-alive, idle
//! timeout shorter than the servers'), rocgw's own HTTP/1.1 exchange on each connection
//! (`upstream::h1`, read and written by the request using it; a call its SIH abandons closes
//! its connection), TLS
//! session resumption, connect / TLS / first-byte / total timeouts, a hard cap on connections
//! per host (the connector holds a semaphore permit for the life of each connection, and calls
//! in progress per host are capped alike), and an optional HTTP `CONNECT` proxy with TLS end to
//! end through the tunnel. A reload builds new clients: a fresh session cache and pool, so new
//! handshakes use the new material, while in-flight requests finish on their old connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use rustls::ClientConfig;
use tokio_rustls::TlsConnector;

use crate::config::{ProxyConfig, UpstreamConfig};
use crate::fault::FaultCode;
use crate::identity::Identity;
use crate::metrics;
use crate::trust::OsiVerifier;

mod classify;
mod connect;
mod h1;
mod pool;
pub use classify::{classify, Reason, UpstreamError};
pub use connect::{Conn, ConnectError, Connector, HostLimits};
pub use h1::KEPT_HEADERS;
use h1::{Head, Link, SendError};
use pool::Pool;

/// Maps keyed by upstream host (`host:port`), looked up a few times per call. The keys come
/// from the configuration, not from callers, so a hash that resists chosen keys (std's
/// SipHash, three times the cost) buys nothing here: FNV-1a (the `fnv` crate).
type HostMap<V> = std::collections::HashMap<String, V, fnv::FnvBuildHasher>;

/// How long a call cut by its caller keeps its connection to read the rest of the answer, and
/// how much of it it reads for that ([`Exchange`]).
const SALVAGE_TIME: Duration = Duration::from_secs(1);
const SALVAGE_BYTES: usize = 1024 * 1024;

/// The connection of a call in progress. Dropped with its call before the answer was read
/// whole (the SIH hung up, the request's deadline passed), it is not closed at once: the rest
/// of the answer is read and dropped in the background, within [`SALVAGE_TIME`], and the
/// connection goes back to the pool (a new one would cost the AMC a mutual-TLS handshake; a
/// load test's end cuts many calls at once). Cut mid-request, or on an error or a timeout of
/// the call itself, it is closed.
struct Exchange<'a> {
    link: Option<Box<Link>>,
    pool: &'a Pool,
    key: &'a str,
    kind: Kind,
}

impl Drop for Exchange<'_> {
    fn drop(&mut self) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !link.answer_pending() {
            return;
        }
        let (pool, key) = (self.pool.clone(), self.key.to_string());
        let kept = metrics::get()
            .upstream_kept
            .with_label_values(&[self.kind.label()]);
        rt.spawn(async move {
            let finished = tokio::time::timeout(SALVAGE_TIME, link.finish(SALVAGE_BYTES)).await;
            if matches!(finished, Ok(Ok(()))) {
                tracing::debug!(host = %key, "connection of a cut call kept");
                kept.inc();
                pool.checkin(&key, link);
            }
        });
    }
}

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

/// A response read from upstream.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    /// The header fields in [`KEPT_HEADERS`].
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body's share of the memory budget, when read within one.
    pub held: Option<crate::budget::Held>,
}

/// A pooled client for one upstream kind.
pub struct Upstream {
    kind: Kind,
    connector: Connector,
    pool: Pool,
    first_byte_timeout: Duration,
    total_timeout: Duration,
    max_response_bytes: usize,
    connect_retries: u32,
    /// This kind's series of the calls that succeed and of the call durations, looked up once.
    ok_calls: prometheus::IntCounter,
    seconds: prometheus::Histogram,
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
        limits: HostLimits,
    ) -> Upstream {
        let connector = Connector {
            tls: TlsConnector::from(tls),
            proxy: proxy.cloned().map(Arc::new),
            connect_timeout: cfg.connect_timeout,
            tls_timeout: cfg.tls_timeout,
            max_per_host: cfg.max_connections_per_host,
            limits: limits.clone(),
            kind,
        };
        let m = metrics::get();
        // Every TLS failure reason exists from the start, at 0.
        for reason in Reason::TLS {
            m.tls_failures
                .with_label_values(&[kind.label(), reason.as_str()]);
        }
        Upstream {
            kind,
            connector,
            pool: Pool::new(cfg.pool_idle_timeout, cfg.max_connections_per_host, &limits),
            first_byte_timeout: cfg.first_byte_timeout,
            total_timeout: cfg.total_timeout,
            max_response_bytes: cfg.max_response_bytes,
            connect_retries: cfg.connect_retries,
            ok_calls: m.upstream_requests.with_label_values(&[kind.label(), "ok"]),
            seconds: m.upstream_seconds.with_label_values(&[kind.label()]),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Sends one request and reads the whole response under the timeouts.
    ///
    /// Retried only when no byte of it can have reached the peer: the TCP connection could not
    /// be opened (refused, unreachable, reset while connecting), at most `connect_retries`
    /// times, after a random pause (full jitter) below 50 ms, 100 ms, 200 ms… (the attempts
    /// and pauses all within `first_byte_timeout`); or a pooled
    /// connection was found closed by the server before the request was written (sent again on
    /// another connection). Anything later (TLS verdicts, timeouts, a connection lost
    /// mid-exchange) is never retried: the AMC may have acted on it.
    pub async fn send(&self, req: Request<Bytes>) -> Result<UpstreamResponse, UpstreamError> {
        self.send_within(req, None).await
    }

    /// `send`, the response body read within the memory `budget`: one that does not fit gets
    /// `overloaded`.
    pub async fn send_within(
        &self,
        req: Request<Bytes>,
        budget: Option<&crate::budget::Budget>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let key = host_key(req.uri());
        // Calls in progress per host, at most the connection cap (waited for, within the
        // request's deadline).
        let c = &self.connector;
        let _slot = c.limits.call_slot(&key, c.max_per_host).await;
        let started = Instant::now();
        let result = self.exchange(&req, &key, started, budget).await;
        self.seconds.observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => self.ok_calls.inc(),
            Err(e) => {
                let m = metrics::get();
                m.upstream_requests
                    .with_label_values(&[self.kind.label(), e.code.as_str()])
                    .inc();
                if e.reason.is_tls() {
                    m.tls_failures
                        .with_label_values(&[self.kind.label(), e.reason.as_str()])
                        .inc();
                }
            }
        }
        result
    }

    /// A connection to `key`: an idle pooled one, or a new one (its opening retried while
    /// nothing can have been sent). While every connection permit of the host is held, the
    /// pool is looked in again after each wait: a connection put back meanwhile (a cut call's)
    /// is reused.
    async fn link(&self, key: &str, uri: &Uri) -> Result<Box<Link>, UpstreamError> {
        if let Some(link) = self.pool.checkout(key) {
            return Ok(link);
        }
        let target = connect::target(uri).map_err(|e| classify(self.kind, &e))?;
        let mut attempt = 0;
        loop {
            let permit = loop {
                match self.connector.permit(key).await {
                    Ok(Some(p)) => break p,
                    Ok(None) => {
                        if let Some(link) = self.pool.checkout(key) {
                            return Ok(link);
                        }
                    }
                    Err(e) => return Err(classify(self.kind, &e)),
                }
            };
            // Boxed, and the connection boxed within: a handshake's state and a connection are
            // large and rare, and every call's future would carry room for them.
            let opened =
                Box::pin(async { self.connector.connect(&target, permit).await.map(Link::new) });
            let e = match opened.await {
                Ok(link) => return Ok(link),
                Err(e) => classify(self.kind, &e),
            };
            if !e.reason.nothing_sent() || attempt >= self.connect_retries {
                return Err(e);
            }
            attempt += 1;
            metrics::get()
                .upstream_retries
                .with_label_values(&[self.kind.label()])
                .inc();
            tokio::time::sleep(jitter(attempt)).await;
        }
    }

    /// The request sent and its answer's head read, on a pooled or new connection, which is
    /// left in `slot` (emptied on an error).
    async fn head(
        &self,
        req: &Request<Bytes>,
        key: &str,
        slot: &mut Option<Box<Link>>,
    ) -> Result<Head, UpstreamError> {
        loop {
            let link = slot.insert(self.link(key, req.uri()).await?);
            let failed = match link.send(req).await {
                Ok(head) => return Ok(head),
                // A pooled connection the server closed before the request was written whole.
                Err(SendError::NotSent(_)) if link.reused => None,
                Err(SendError::NotSent(e)) => Some(classify(self.kind, &e)),
                Err(SendError::Failed(e)) => Some(classify(self.kind, &e)),
            };
            *slot = None;
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }

    async fn exchange(
        &self,
        req: &Request<Bytes>,
        key: &str,
        started: Instant,
        budget: Option<&crate::budget::Budget>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let timeout = |what: &str| UpstreamError {
            code: self.kind.timeout(),
            reason: Reason::Timeout,
            detail: format!("no {what} from the {} in time", self.kind.label()),
        };
        let mut call = Exchange {
            link: None,
            pool: &self.pool,
            key,
            kind: self.kind,
        };
        let head =
            tokio::time::timeout(self.first_byte_timeout, self.head(req, key, &mut call.link));
        let head = match head.await {
            Err(_) => {
                // A slow AMC: its connection is closed, not waited for.
                call.link = None;
                return Err(timeout("response"));
            }
            Ok(r) => r?,
        };
        let until = tokio::time::Instant::from_std(started + self.total_timeout);
        let declared = head
            .length
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let Some(link) = call.link.as_deref_mut() else {
            return Err(timeout("response"));
        };
        let read = crate::clock::within(until, self.read_body(link, declared, budget)).await;
        // Past here the call is not cut by its caller: the connection is pooled or closed.
        let link = call.link.take();
        let (body, held) = match read {
            None => return Err(timeout("complete response")),
            Some(r) => r?,
        };
        if let Some(link) = link {
            self.pool.checkin(key, link);
        }
        Ok(UpstreamResponse {
            status: head.status,
            headers: head.headers,
            body,
            held,
        })
    }

    /// Reads a response body under `max_response_bytes` and, when given, the memory budget
    /// (answers over 64 KiB count against it).
    async fn read_body(
        &self,
        link: &mut Link,
        declared: usize,
        budget: Option<&crate::budget::Budget>,
    ) -> Result<(Bytes, Option<crate::budget::Held>), UpstreamError> {
        use crate::budget::{read, ReadError, UNCOUNTED_ANSWER};
        let label = self.kind.label();
        let max = self.max_response_bytes;
        read(link, declared, max, budget, UNCOUNTED_ANSWER, None)
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
                ReadError::Body(e) => classify(self.kind, &*e),
                // Answers are read without a pace: their deadlines are the upstream's own.
                ReadError::TooSlow => UpstreamError {
                    code: self.kind.timeout(),
                    reason: Reason::Timeout,
                    detail: format!("the {label} answer came too slowly"),
                },
            })
    }
}

/// `host:port` of `uri`, the key of its pool and limits: its authority as written when that is
/// exactly it (no allocation), otherwise made.
fn host_key(uri: &Uri) -> std::borrow::Cow<'_, str> {
    match uri.authority() {
        Some(a) if a.port().is_some() && !a.as_str().contains('@') => a.as_str().into(),
        _ => format!(
            "{}:{}",
            uri.host().unwrap_or_default(),
            uri.port_u16().unwrap_or(443)
        )
        .into(),
    }
}

/// A random pause in [0, 25 ms × 2^attempt): retries of many callers do not land together.
fn jitter(attempt: u32) -> Duration {
    let cap_us = 25_000u64 << attempt.min(6);
    let mut b = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut b);
    Duration::from_micros(u64::from_le_bytes(b) % cap_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_key_is_host_and_port_whatever_the_url_says() {
        let key = |u: &str| host_key(&u.parse().unwrap()).into_owned();
        assert_eq!(key("https://amc.example:8443/ws"), "amc.example:8443");
        assert_eq!(key("https://amc.example/ws"), "amc.example:443");
        assert_eq!(
            key("https://user:pw@amc.example:8443/ws"),
            "amc.example:8443"
        );
        assert_eq!(key("https://[::1]:9443/"), "[::1]:9443");
        assert!(matches!(
            host_key(&"https://h:1/".parse().unwrap()),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn host_maps_hash_with_fnv1a() {
        use std::hash::BuildHasher as _;
        // The published FNV-1a 64 test vectors; `str` hashes add a 0xff terminator.
        let fnv = |b: &[u8]| {
            let mut h = fnv::FnvHasher::default();
            std::hash::Hasher::write(&mut h, b);
            std::hash::Hasher::finish(&h)
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
        let b = fnv::FnvBuildHasher::default();
        assert_ne!(b.hash_one("amc-a:443"), b.hash_one("amc-b:443"));
        let mut m: HostMap<u8> = HostMap::default();
        m.insert("amc-a:443".into(), 1);
        assert_eq!(m.get("amc-a:443"), Some(&1));
    }
}

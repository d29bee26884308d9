//! How `rocgw load` reaches the gateway: TCP, the Unix socket or HTTPS with a client
//! certificate, through a pool of HTTP/1.1 connections kept alive unless told otherwise.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

use crate::upstream::pool::Link;

const CONTENT_TYPE_SOAP12: &str = "application/soap+xml; charset=utf-8";

/// How the load reaches the gateway: the listeners it may have.
#[derive(Clone, Default)]
pub enum Transport {
    /// Plain HTTP over TCP to `target`.
    #[default]
    Tcp,
    /// Plain HTTP over the gateway's Unix socket.
    Unix(PathBuf),
    /// HTTPS to `target` (`[server.tls]`), with the client certificate of the configuration.
    Tls {
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
    },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Tcp => f.write_str("tcp"),
            Transport::Unix(p) => write!(f, "unix:{}", p.display()),
            Transport::Tls { name, .. } => write!(f, "tls ({})", name.to_str()),
        }
    }
}

/// HTTPS to the gateway's `[server.tls]` listener: its certificate checked against `ca` for
/// `name`, with a client certificate and key when given.
pub fn tls_transport(
    ca: &std::path::Path,
    client: Option<(&std::path::Path, &std::path::Path)>,
    name: &str,
) -> Result<Transport, String> {
    let now = crate::clock::now_unix();
    let roots = crate::trust::Anchors::load("--tls-ca", &[ca.to_path_buf()], now)
        .and_then(|a| a.root_store())
        .map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let ck = crate::identity::certified_key_from_pem(cert, key)
                .map_err(|e| format!("--tls-cert: {e}"))?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(ck)))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| format!("--tls-name {name:?}: not a host name or address"))?;
    Ok(Transport::Tls {
        config: Arc::new(config),
        name,
    })
}

/// A connection of any transport.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A connection and its HTTP/1.1 state, driven by the request that uses it (as the gateway
/// drives its upstream connections: no connection task, no channel hop per request).
type Connection = Box<Link<TokioIo<Box<dyn Io>>>>;

/// At most `connections` HTTP/1.1 connections to the target, reused unless told otherwise.
pub(super) struct Pool {
    target: SocketAddr,
    transport: Transport,
    authorization: Option<HeaderValue>,
    /// The `Host` header, written once.
    host: HeaderValue,
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
    reuse: bool,
    pub(super) opened: AtomicU64,
}

impl Pool {
    pub(super) fn new(
        target: SocketAddr,
        transport: Transport,
        authorization: Option<HeaderValue>,
        connections: usize,
        reuse: bool,
    ) -> Pool {
        Pool {
            target,
            transport,
            authorization,
            host: HeaderValue::from_str(&target.to_string()).expect("an address is a valid Host"),
            permits: Semaphore::new(connections.max(1)),
            idle: Mutex::new(Vec::new()),
            reuse,
            opened: AtomicU64::new(0),
        }
    }

    async fn connect(&self) -> Result<Connection, &'static str> {
        let tcp = || async {
            let tcp = tokio::net::TcpStream::connect(self.target)
                .await
                .map_err(|_| "connect")?;
            let _ = tcp.set_nodelay(true);
            Ok::<_, &'static str>(tcp)
        };
        let io: Box<dyn Io> = match &self.transport {
            Transport::Tcp => Box::new(tcp().await?),
            Transport::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|_| "connect")?,
            ),
            Transport::Tls { config, name } => Box::new(
                tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp().await?)
                    .await
                    .map_err(|_| "tls")?,
            ),
        };
        let link = Link::handshake(TokioIo::new(io))
            .await
            .map_err(|_| "connect")?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(link)
    }

    /// Sends one request; returns the status and the gateway's `X-Rocgw-Error`, or an error
    /// kind for a transport failure.
    pub(super) async fn send(
        &self,
        body: Bytes,
        path: &Uri,
    ) -> Result<(StatusCode, Option<String>), &'static str> {
        let _permit = self.permits.acquire().await.map_err(|_| "closed")?;
        let reused = if self.reuse {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find_map(|mut l| l.still_open().then_some(l))
        } else {
            None
        };
        let mut link = match reused {
            Some(l) => l,
            None => self.connect().await?,
        };
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = path.clone();
        let h = req.headers_mut();
        h.insert(HOST, self.host.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_SOAP12));
        if let Some(auth) = &self.authorization {
            h.insert(AUTHORIZATION, auth.clone());
        }
        let resp = link.send(req).await.map_err(|_| "io")?;
        let status = resp.status();
        let code = resp
            .headers()
            .get("x-rocgw-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match link.drive(resp.into_body().collect()).await {
            Some(Ok(_)) => {}
            _ => return Err("io"),
        }
        if self.reuse && link.idle_ready() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(link);
        }
        Ok((status, code))
    }
}

//! How `rocgw load` reaches the gateway: TCP, the Unix socket or HTTPS with a client
//! certificate, through a pool of HTTP/1.1 connections kept alive unless told otherwise (each
//! spoken by `load::wire`).

use http::header::HeaderValue;

use crate::soap::SoapVersion;
use http::StatusCode;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

use super::wire::Wire;

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

type Connection = Box<Wire<Box<dyn Io>>>;

/// At most `connections` HTTP/1.1 connections to the target, reused unless told otherwise.
pub(super) struct Pool {
    target: SocketAddr,
    transport: Transport,
    /// `Host`, then `Authorization` when given: the part of every request head after its
    /// request line and before its content type.
    common_head: String,
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
    reuse: bool,
    pub(super) opened: AtomicU64,
}

impl Pool {
    pub(super) fn new(
        target: SocketAddr,
        transport: Transport,
        authorization: Option<&HeaderValue>,
        connections: usize,
        reuse: bool,
    ) -> Pool {
        let mut common_head = format!("Host: {target}\r\n");
        if let Some(auth) = authorization.and_then(|a| a.to_str().ok()) {
            common_head.push_str(&format!("Authorization: {auth}\r\n"));
        }
        Pool {
            target,
            transport,
            common_head,
            permits: Semaphore::new(connections.max(1)),
            idle: Mutex::new(Vec::new()),
            reuse,
            opened: AtomicU64::new(0),
        }
    }

    /// The head of every request to `path`, but its Content-Length: sent as the HTTP binding
    /// of its envelope's SOAP `version` says (SOAP 1.1: `text/xml` and `action`, quoted).
    pub(super) fn head(
        &self,
        path: &str,
        version: SoapVersion,
        action: &str,
    ) -> Result<Vec<u8>, String> {
        let ok = path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(format!("--mix: {path:?} is not a valid request path"));
        }
        let binding = match version {
            SoapVersion::V11 => {
                format!("Content-Type: text/xml; charset=utf-8\r\nSOAPAction: {action}\r\n")
            }
            SoapVersion::V12 => "Content-Type: application/soap+xml; charset=utf-8\r\n".into(),
        };
        Ok(format!("POST {path} HTTP/1.1\r\n{}{binding}", self.common_head).into_bytes())
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
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Wire::new(io)))
    }

    /// Sends one request; returns the status and the gateway's `X-Rocgw-Error`, or an error
    /// kind for a transport failure.
    pub(super) async fn send(
        &self,
        body: &[u8],
        head: &[u8],
    ) -> Result<(StatusCode, Option<String>), &'static str> {
        let _permit = self.permits.acquire().await.map_err(|_| "closed")?;
        let reused = if self.reuse {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find_map(|mut c| c.still_open().then_some(c))
        } else {
            None
        };
        let mut conn = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        let answer = conn.exchange(head, body).await?;
        if self.reuse && answer.keep_alive {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
        Ok((answer.status, answer.error_code))
    }
}

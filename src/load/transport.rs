//! How `rocgw load` reaches the gateway: TCP, the Unix socket or HTTPS with a client
//! certificate, through a pool of HTTP/1.1 connections kept alive unless told otherwise.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

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

/// At most `connections` HTTP/1.1 connections to the target, reused unless told otherwise.
pub(super) struct Pool {
    pub(super) target: SocketAddr,
    pub(super) transport: Transport,
    pub(super) authorization: Option<hyper::header::HeaderValue>,
    pub(super) permits: Semaphore,
    pub(super) idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    pub(super) reuse: bool,
    pub(super) opened: AtomicU64,
}

impl Pool {
    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, &'static str> {
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
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|_| "connect")?;
        tokio::spawn(conn);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(send)
    }

    /// Sends one request; returns the status and the gateway's `X-Rocgw-Error`, or an error
    /// kind for a transport failure.
    pub(super) async fn send(
        &self,
        body: Bytes,
        path: &str,
    ) -> Result<(StatusCode, Option<String>), &'static str> {
        let _permit = self.permits.acquire().await.map_err(|_| "closed")?;
        let reused = if self.reuse {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            std::iter::from_fn(|| idle.pop()).find(|s| !s.is_closed())
        } else {
            None
        };
        let mut sender = match reused {
            Some(s) => s,
            None => self.connect().await?,
        };
        sender.ready().await.map_err(|_| "io")?;
        let mut req = Request::post(path);
        if let Some(auth) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, auth.clone());
        }
        let req = req
            .header(hyper::header::HOST, self.target.to_string())
            .header(
                hyper::header::CONTENT_TYPE,
                "application/soap+xml; charset=utf-8",
            )
            .body(Full::new(body))
            .map_err(|_| "request")?;
        let resp = sender.send_request(req).await.map_err(|_| "io")?;
        let status = resp.status();
        let code = resp
            .headers()
            .get("x-rocgw-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        resp.into_body().collect().await.map_err(|_| "io")?;
        if self.reuse {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(sender);
        }
        Ok((status, code))
    }
}

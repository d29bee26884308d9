//! The HTTP/1.1 accept loop shared by the gateway and admin listeners: one task per connection,
//! header limits and a header read timeout against slow or hostile clients, and a handler that
//! gets the caller's transport identity (`Peer`).
//!
//! A listener is TCP, TCP with mutual TLS (client certificates from a local CA), or a Unix
//! domain socket (file permissions, peer credentials).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::config::Limits;
use crate::local_tls::LocalTls;

mod h1;
pub use h1::{serve as serve_http1, Body, Gate, Io, Settings};

/// Time a client gets to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Response header present on every response of a sandbox process.
pub const SANDBOX_HEADER: &str = "x-rocgw-sandbox";

pub type HttpResponse = Response<Bytes>;

/// The words of a bind failure (`<field>: cannot listen on <addr>: <reason>`): the sandbox
/// tells it apart from other start-up errors by them.
pub const CANNOT_LISTEN: &str = "cannot listen on";

/// Who is on the other end of a connection, as far as the transport can tell.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    /// The TCP peer; `None` on a Unix socket.
    pub addr: Option<SocketAddr>,
    /// The peer process's user id (Unix socket peer credentials).
    pub uid: Option<u32>,
    /// The subject common name of the client certificate, verified against the local CA.
    pub tls_client: Option<Arc<str>>,
    /// The name this connection's caller has when no named token says otherwise (its
    /// certificate, user id or address): made once per connection by `access`, shared by the
    /// copies each request gets.
    pub name: Arc<std::sync::OnceLock<Arc<str>>>,
}

impl Peer {
    pub fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            addr: Some(addr),
            ..Peer::default()
        }
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.addr.map(|a| a.ip())
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.addr, self.uid) {
            (Some(a), _) => write!(f, "{}", a.ip()),
            (None, Some(uid)) => write!(f, "unix:uid={uid}"),
            (None, None) => f.write_str("unix"),
        }
    }
}

/// A bound listener.
pub enum Bound {
    Tcp(TcpListener),
    /// TCP with TLS; the configuration in force (swapped on reload) decides whether client
    /// certificates are required.
    Tls(TcpListener, Arc<arc_swap::ArcSwap<LocalTls>>),
    /// A Unix domain socket, and its path (removed when serving ends).
    Unix(UnixListener, PathBuf),
}

impl Bound {
    /// Where callers reach it, for the start-up lines (`http://…`, `https://…`, `unix:…`).
    pub fn url(&self) -> String {
        match self {
            Bound::Tcp(l) => format!("http://{}", local(l)),
            Bound::Tls(l, _) => format!("https://{}", local(l)),
            Bound::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }

    /// The TCP address, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Bound::Tcp(l) | Bound::Tls(l, _) => Some(local(l)),
            Bound::Unix(..) => None,
        }
    }
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr().expect("bound listener has an address")
}

/// The TCP listen backlog: connections the kernel completes before they are accepted. The
/// kernel's maximum (`net.core.somaxconn`, 4096 by default; it caps any larger value), as for
/// the Unix socket (`UnixListener::bind`). std's, and so `TcpListener::bind`'s, is 128: 600 SIH
/// connections opened at once overflowed it, and the kernel fell back on SYN cookies, which
/// now and then reset a connection the gateway never saw.
const BACKLOG: u32 = i32::MAX as u32;

/// Binds `addr`; the error names the config `field` so start-up failures are one clear line.
pub async fn bind(field: &str, addr: SocketAddr) -> Result<TcpListener, String> {
    listen_on(addr).map_err(|e| format!("{field}: {CANNOT_LISTEN} {addr}: {e}"))
}

/// A TCP listener on `addr` with [`BACKLOG`] (and `SO_REUSEADDR`, as std sets it: a restart
/// binds again while the last run's connections linger in `TIME_WAIT`).
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Binds a Unix domain socket at `path` with file mode `mode`. The socket is made under a
/// temporary name, given its mode, then renamed into place: nobody can connect before the mode
/// holds. A stale socket file (connection refused: nobody listening) is replaced; a live one, or
/// any other file, is an error.
pub fn bind_unix(field: &str, path: &Path, mode: u32) -> Result<Bound, String> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let fail = |what: String| format!("{field}: {}: {what}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(fail("exists and is not a socket".into()));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Ok(_) => return Err(fail("another process is listening on it".into())),
            Err(e) => return Err(fail(format!("cannot tell whether it is in use: {e}"))),
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let l = UnixListener::bind(&tmp).map_err(|e| fail(format!("cannot listen: {e}")))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(format!("cannot set its mode to {mode:o}: {e}")))
        .and_then(|_| {
            std::fs::rename(&tmp, path).map_err(|e| fail(format!("cannot put it in place: {e}")))
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Bound::Unix(l, path.to_path_buf()))
}

/// After a reload, an open connection's client certificate is checked again with the new
/// verifier (a certificate revoked since cannot keep a keep-alive connection): still valid,
/// the request is served and the connection closed, so the client shakes hands anew.
struct Recheck {
    at: Arc<LocalTls>,
    current: Arc<arc_swap::ArcSwap<LocalTls>>,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
}

enum Verdict {
    Fresh,
    CloseAfter,
    Refused,
}

impl Recheck {
    fn verdict(&self) -> Verdict {
        let now = self.current.load();
        if Arc::ptr_eq(&self.at, &now) {
            return Verdict::Fresh;
        }
        let Some((ee, rest)) = self.chain.split_first() else {
            return Verdict::Refused;
        };
        match now
            .verifier
            .verify_client_cert(ee, rest, rustls::pki_types::UnixTime::now())
        {
            Ok(_) => Verdict::CloseAfter,
            Err(_) => Verdict::Refused,
        }
    }
}

/// A connection accepted, before any TLS handshake.
enum Conn {
    Tcp(TcpStream),
    Tls(TcpStream, Arc<LocalTls>, Arc<arc_swap::ArcSwap<LocalTls>>),
    Unix(UnixStream),
}

impl Bound {
    async fn accept(&self) -> std::io::Result<(Conn, Peer)> {
        match self {
            Bound::Tcp(l) => {
                let (s, a) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Conn::Tcp(s), Peer::tcp(a)))
            }
            Bound::Tls(l, tls) => {
                let (s, a) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Conn::Tls(s, tls.load_full(), tls.clone()), Peer::tcp(a)))
            }
            Bound::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                let uid = s.peer_cred().ok().map(|c| c.uid());
                Ok((
                    Conn::Unix(s),
                    Peer {
                        uid,
                        ..Peer::default()
                    },
                ))
            }
        }
    }
}

/// Serves connections from `listener` with `handler` until the process ends.
pub async fn serve<H, F>(listener: TcpListener, handler: Arc<H>)
where
    H: Fn(Request<Body>, Peer) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let (_keep, stop) = tokio::sync::watch::channel(false);
    serve_until(
        Bound::Tcp(listener),
        Limits::default(),
        handler,
        stop,
        Duration::ZERO,
        None,
    )
    .await;
}

/// Serves until `stop` turns true, then stops accepting, lets every connection finish the
/// request it is serving (keep-alive connections close after it), and returns once all are
/// done or `drain` has passed. With a `gate`, each request waits there for its slot before
/// its head is parsed (`h1::serve`).
pub async fn serve_until<H, F>(
    bound: Bound,
    limits: Limits,
    handler: Arc<H>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    drain: Duration,
    gate: Option<Gate>,
) where
    H: Fn(Request<Body>, Peer) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            a = bound.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (conn, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Too many open connections (idle keep-alives, slow clients): this one is closed at
            // once rather than let the process run out of file descriptors.
            crate::metrics::get().connections_refused.inc();
            drop(conn);
            tracing::debug!(peer = %peer, "connection refused: max_connections reached");
            continue;
        };
        let handler = handler.clone();
        let watcher = stop.clone();
        let gate = gate.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let on = (limits, watcher, gate);
            match conn {
                Conn::Tcp(s) => serve_conn(s, peer, None, handler, on).await,
                Conn::Unix(s) => serve_conn(s, peer, None, handler, on).await,
                // Boxed: a TLS handshake's state is large, and every plain connection's task
                // would otherwise carry room for it (4.5 KiB instead of 2.2 KiB per task).
                Conn::Tls(s, at, current) => {
                    Box::pin(serve_tls(s, (at, current), peer, handler, on)).await;
                }
            }
        });
    }
    if let Bound::Unix(_, path) = &bound {
        let _ = std::fs::remove_file(path);
    }
    drop(bound);
    // Each connection holds a slot until it ends: all of them back, every connection is done.
    let open = limits.max_connections - slots.available_permits();
    tracing::info!(
        connections = open,
        drain_s = drain.as_secs_f64(),
        "draining"
    );
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed: remaining connections are cut");
    }
}

/// The TLS handshake of a connection on a mutual-TLS listener, then its requests.
async fn serve_tls<H, F>(
    s: TcpStream,
    (at, current): (Arc<LocalTls>, Arc<arc_swap::ArcSwap<LocalTls>>),
    mut peer: Peer,
    handler: Arc<H>,
    on: Under,
) where
    H: Fn(Request<Body>, Peer) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(at.config.clone());
    let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::info!(peer = %peer, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };
    let chain: Vec<_> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    peer.tls_client = chain
        .first()
        .and_then(|c| crate::identity::CertInfo::parse(c.as_ref()).ok())
        .and_then(|i| i.common_name)
        .map(Arc::from);
    let recheck = Recheck { at, current, chain };
    serve_conn(tls, peer, Some(recheck), handler, on).await;
}

/// What a connection is served under: the listener's limits, its stop signal and its gate.
type Under = (Limits, tokio::sync::watch::Receiver<bool>, Option<Gate>);

async fn serve_conn<IO, H, F>(
    io: IO,
    peer: Peer,
    recheck: Option<Recheck>,
    handler: Arc<H>,
    (limits, stop, gate): Under,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Body>, Peer) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let handle = |req: Request<Body>| {
        let verdict = recheck.as_ref().map_or(Verdict::Fresh, Recheck::verdict);
        let fut = match verdict {
            Verdict::Refused => None,
            _ => Some(handler(req, peer.clone())),
        };
        async move {
            let mut resp = match fut {
                Some(f) => f.await,
                None => text(
                    http::StatusCode::FORBIDDEN,
                    "client certificate no longer accepted\n",
                ),
            };
            if !matches!(verdict, Verdict::Fresh) {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::header::HeaderValue::from_static("close"),
                );
            }
            resp
        }
    };
    let settings = Settings::from(&limits);
    let io = WriteTimeout {
        io,
        limit: limits.write_timeout,
        stalled: None,
    };
    h1::serve(Box::new(io), settings, handle, stop, gate).await;
}

/// Cuts a connection whose writes make no progress for `limit`: a client that stops reading
/// its answer would otherwise keep the connection, its task and the answer forever.
struct WriteTimeout<IO> {
    io: IO,
    limit: Duration,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<IO> WriteTimeout<IO> {
    /// `Pending` from the inner writer: starts (or checks) the stall timer.
    fn stall<T>(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => {
                crate::metrics::get().write_timeouts.inc();
                std::task::Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        r: std::task::Poll<std::io::Result<T>>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        match r {
            std::task::Poll::Pending => self.stall(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WriteTimeout<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.progressed(r, cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.io).poll_flush(cx);
        self.progressed(r, cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        // A TLS close (its close_notify) is a write too: a client that stopped reading
        // cannot hold it.
        let r = std::pin::Pin::new(&mut self.io).poll_shutdown(cx);
        self.progressed(r, cx)
    }
}

/// A plain-text response (admin endpoints).
pub fn text(status: http::StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use std::time::Duration;
    use tokio::net::TcpStream;

    /// Connections opened at once, before any is accepted, wait in the kernel's backlog until
    /// they are: more of them than std's 128, none dropped (a dropped SYN is retried a second
    /// later) nor answered with a SYN cookie. 200 (400 descriptors), or fewer where
    /// `net.core.somaxconn` is lower, as the gateway's backlog then is.
    #[tokio::test]
    async fn two_hundred_connections_opened_at_once_wait_to_be_accepted() {
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(4096);
        let n = 200.min(somaxconn);
        let l = super::bind("server.listen", "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        let opening: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(700),
                    TcpStream::connect(addr),
                ))
            })
            .collect();
        let (mut open, mut failed) = (Vec::new(), None);
        for o in opening {
            match o.await.unwrap() {
                Ok(Ok(s)) => open.push(s),
                Ok(Err(e)) => failed = failed.or(Some(e.to_string())),
                Err(_) => failed = failed.or(Some("no connection within 700 ms".into())),
            }
        }
        let mut accepted = 0;
        let ended = loop {
            match tokio::time::timeout(Duration::from_millis(300), l.accept()).await {
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(e)) => break e.to_string(),
                Err(_) => break "nothing more to accept".into(),
            }
        };
        assert_eq!(
            (open.len(), accepted),
            (n, n),
            "net.core.somaxconn = {somaxconn}; first connect failure: {failed:?}; accept: {ended}"
        );
    }
}

//! A real TLS server on 127.0.0.1 for the upstream tests, with certificates of the test PKI: it
//! serves HTTP/1.1 over rustls, optionally demands a client certificate, records the serials of
//! the client certificates it sees and the connections it accepts, and can misbehave.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::support::pki_path;

/// How the server behaves.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answers 200 with a small SOAP body naming the client certificate serial.
    Echo,
    /// Answers after a delay.
    Delay(Duration),
    /// Answers with this status and a SOAP fault body of its own.
    Fault(u16),
    /// Reads the ClientHello and closes the connection.
    CloseMidHandshake,
    /// Answers 200 with a SOAP body of about this many bytes.
    Large(usize),
    /// Answers with this status and exactly this body (a prepared, e.g. signed, answer).
    Answer(u16, std::sync::Arc<str>),
    /// Echoes, and hangs up each connection this long after accepting it, without a word
    /// (as a server's keep-alive timeout does).
    HangUpAfter(Duration),
    /// Answers each request with these bytes as they are, written piece by piece (each piece
    /// flushed, then a short pause, so the client reads the answer in fragments); closes the
    /// connection after the answer when `close`.
    Raw {
        pieces: Arc<Vec<Vec<u8>>>,
        close: bool,
    },
}

/// What the server saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub serials: Mutex<Vec<String>>,
    pub connections: AtomicUsize,
    pub requests: AtomicUsize,
    pub open: AtomicUsize,
    pub max_open: AtomicUsize,
    pub bodies: Mutex<Vec<String>>,
    /// Request targets (path and query) as they arrived.
    pub paths: Mutex<Vec<String>>,
    /// Request header fields as they arrived.
    pub heads: Mutex<Vec<http::HeaderMap>>,
}

impl Seen {
    /// The request's target (path and query) and header fields, as they arrived.
    fn note_head<B>(&self, req: &Request<B>) {
        let target = req.uri().path_and_query().map(|p| p.to_string());
        self.paths.lock().unwrap().push(target.unwrap_or_default());
        self.heads.lock().unwrap().push(req.headers().clone());
    }
}

pub struct TlsServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    _rt: tokio::runtime::Runtime,
}

/// The server's TLS: `cert` (chain PEM) and `key` from the test PKI, client certificates
/// chaining to `client_roots` required when given.
fn server_config(cert: &str, key: &str, client_roots: Option<&[&str]>) -> ServerConfig {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pki_path(cert))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(pki_path(key)).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_roots {
        Some(roots) => {
            let mut store = RootCertStore::empty();
            for r in roots {
                for c in CertificateDer::pem_file_iter(pki_path(r)).unwrap() {
                    store.add(c.unwrap()).unwrap();
                }
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
                .build()
                .unwrap();
            builder.with_client_cert_verifier(v)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg
}

impl TlsServer {
    /// Starts a server with `cert` (chain PEM) and `key` from the test PKI, demanding a client
    /// certificate chaining to `client_roots` when given.
    pub fn start(
        cert: &str,
        key: &str,
        client_roots: Option<&[&str]>,
        behavior: Behavior,
    ) -> TlsServer {
        let cfg = server_config(cert, key, client_roots);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let seen2 = seen.clone();
        rt.spawn(async move {
            loop {
                let Ok((mut tcp, _)) = listener.accept().await else {
                    continue;
                };
                seen2.connections.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let seen = seen2.clone();
                let behavior = behavior.clone();
                tokio::spawn(async move {
                    if let Behavior::CloseMidHandshake = behavior {
                        let mut buf = [0u8; 64];
                        let _ = tcp.read(&mut buf).await;
                        return;
                    }
                    let tls = match acceptor.accept(tcp).into_fallible().await {
                        Ok(tls) => tls,
                        Err((_, mut tcp)) => {
                            // Lingering close, as web servers do: read what the client
                            // already sent (a TLS 1.3 client writes its request before it
                            // learns its certificate was refused), so the kernel does not
                            // answer with a reset that overtakes our alert.
                            let mut buf = [0u8; 4096];
                            let drain = async {
                                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                            };
                            let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
                            return;
                        }
                    };
                    let serial = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| serial_of(c.as_ref()))
                        .unwrap_or_default();
                    let open = seen.open.fetch_add(1, Ordering::SeqCst) + 1;
                    seen.max_open.fetch_max(open, Ordering::SeqCst);
                    if let Behavior::Raw { pieces, close } = &behavior {
                        raw_answers(tls, &seen, pieces, *close).await;
                        seen.open.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    let seen_c = seen.clone();
                    let hang_up = match behavior {
                        Behavior::HangUpAfter(d) => Some(d),
                        _ => None,
                    };
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = seen_c.clone();
                        let serial = serial.clone();
                        let behavior = behavior.clone();
                        async move {
                            seen.note_head(&req);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            seen.requests.fetch_add(1, Ordering::SeqCst);
                            seen.serials.lock().unwrap().push(serial.clone());
                            seen.bodies
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).to_string());
                            let (status, text) = match behavior {
                                Behavior::Fault(code) => (code, FAULT.to_string()),
                                Behavior::Delay(d) => {
                                    tokio::time::sleep(d).await;
                                    (200, ok_body(&serial))
                                }
                                Behavior::Large(n) => (
                                    200,
                                    ok_body(&serial).replacen(
                                        "</",
                                        &format!("{}</", "x".repeat(n)),
                                        1,
                                    ),
                                ),
                                Behavior::Answer(status, body) => (status, body.to_string()),
                                _ => (200, ok_body(&serial)),
                            };
                            let mut r = Response::new(Full::new(Bytes::from(text)));
                            *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            r.headers_mut()
                                .insert("content-type", "text/xml; charset=utf-8".parse().unwrap());
                            r.headers_mut()
                                .insert("x-upstream-secret", "must-not-pass".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let serving = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc);
                    match hang_up {
                        Some(d) => {
                            let _ = tokio::time::timeout(d, serving).await;
                        }
                        None => {
                            let _ = serving.await;
                        }
                    }
                    seen.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TlsServer {
            addr,
            seen,
            _rt: rt,
        }
    }

    /// Starts a server with the test PKI's `<base>.chain.pem` and `<base>.key`.
    pub fn fixture(base: &str, client_roots: Option<&[&str]>, behavior: Behavior) -> TlsServer {
        TlsServer::start(
            &format!("{base}.chain.pem"),
            &format!("{base}.key"),
            client_roots,
            behavior,
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn serials(&self) -> Vec<String> {
        self.seen.serials.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Connections open now (TLS accepted, not yet closed).
    pub fn open(&self) -> usize {
        self.seen.open.load(Ordering::SeqCst)
    }

    /// Bodies received, in order.
    pub fn bodies(&self) -> Vec<String> {
        self.seen.bodies.lock().unwrap().clone()
    }

    /// Request targets received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.seen.paths.lock().unwrap().clone()
    }

    /// HTTP requests that reached the handler (after a successful handshake).
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }
}

/// Serves [`Behavior::Raw`]: reads each request (head, then its Content-Length body) and
/// writes the answer's pieces.
async fn raw_answers<IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut io: IO,
    seen: &Seen,
    pieces: &[Vec<u8>],
    close: bool,
) {
    use tokio::io::AsyncWriteExt;
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        seen.requests.fetch_add(1, Ordering::SeqCst);
        seen.bodies
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).to_string());
        for piece in pieces {
            if io.write_all(piece).await.is_err() || io.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if close {
            let _ = io.shutdown().await;
            return;
        }
    }
}

pub const FAULT: &str = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>Adhérent inconnu (AMC)</faultstring></s:Fault></s:Body></s:Envelope>"#;

fn ok_body(serial: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ok client-serial="{serial}"/></s:Body></s:Envelope>"#
    )
}

/// Upper-case hex serial of a DER certificate.
pub fn serial_of(der: &[u8]) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.raw_serial_as_string().replace(':', "").to_uppercase()
}

/// The serial of a certificate file of the test PKI, as the manifest records it.
pub fn pki_serial(rel: &str) -> String {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pki_path("manifest.json")).unwrap()).unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == rel)
        .and_then(|f| f["serial"].as_str())
        .unwrap_or_else(|| panic!("no serial for {rel}"))
        .to_string()
}

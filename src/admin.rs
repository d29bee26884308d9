//! The admin listener: probes for supervisors and load balancers (`/healthz`, `/readyz`) and
//! Prometheus metrics (`/metrics`). Nothing here is reachable from the gateway listener.
//! Probes are always open; `/metrics` goes through the caller checks of `[access]`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use crate::access::Access;
use crate::listener::{text, HttpResponse, SANDBOX_HEADER};
use crate::metrics;

/// State the admin endpoints report on.
#[derive(Debug, Default)]
pub struct Admin {
    /// True once configuration and credentials are loaded.
    pub ready: AtomicBool,
    pub sandbox: bool,
    /// Caller checks for everything but the probes; set once the configuration is loaded.
    pub access: std::sync::OnceLock<Access>,
}

impl Admin {
    pub fn new(sandbox: bool) -> Arc<Admin> {
        Arc::new(Admin {
            ready: AtomicBool::new(false),
            sandbox,
            access: std::sync::OnceLock::new(),
        })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let mut resp = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/readyz") => {
                if self.ready.load(Ordering::SeqCst) {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: configuration and credentials not loaded yet\n",
                    )
                }
            }
            (&Method::GET, "/metrics") => {
                let allowed = self
                    .access
                    .get()
                    .map(|a| a.check(peer.ip(), req.headers()).is_ok())
                    .unwrap_or(false);
                if allowed {
                    let mut r = text(StatusCode::OK, metrics::get().render());
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    r
                } else {
                    text(StatusCode::UNAUTHORIZED, "unauthorized\n")
                }
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /readyz or /metrics\n",
            ),
        };
        if self.sandbox {
            resp.headers_mut()
                .insert(SANDBOX_HEADER, HeaderValue::from_static("1"));
        }
        resp
    }
}

//! The admin listener: probes for supervisors and load balancers (`/healthz`, `/readyz`), and
//! later metrics and status. Nothing here is reachable from the gateway listener.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use crate::listener::{text, HttpResponse, SANDBOX_HEADER};

/// State the admin endpoints report on.
#[derive(Debug, Default)]
pub struct Admin {
    /// True once configuration and credentials are loaded.
    pub ready: AtomicBool,
    pub sandbox: bool,
}

impl Admin {
    pub fn new(sandbox: bool) -> Arc<Admin> {
        Arc::new(Admin {
            ready: AtomicBool::new(false),
            sandbox,
        })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        _peer: SocketAddr,
    ) -> HttpResponse {
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
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /healthz or /readyz\n",
            ),
        };
        if self.sandbox {
            resp.headers_mut()
                .insert(SANDBOX_HEADER, HeaderValue::from_static("1"));
        }
        resp
    }
}

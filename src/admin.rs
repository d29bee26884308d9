//! The admin listener: probes for supervisors and load balancers (`/healthz`, `/readyz`),
//! Prometheus metrics (`/metrics`) and what is in force (`/status`, JSON or HTML). Nothing here
//! is reachable from the gateway listener. Probes are always open; `/metrics` and `/status`
//! go through the caller checks of `[access]`.

pub mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::listener::Body;
use http::header::HeaderValue;
use http::{Method, Request, StatusCode};

use crate::access::Access;
use crate::annuaire::Directory;
use crate::listener::{text, HttpResponse, Peer, SANDBOX_HEADER};
use crate::metrics;
use crate::runtime::Runtime;

/// State the admin endpoints report on.
#[derive(Debug, Default)]
pub struct Admin {
    /// True once configuration and credentials are loaded.
    pub ready: AtomicBool,
    pub sandbox: bool,
    /// Caller checks for everything but the probes; set once the configuration is loaded.
    pub access: std::sync::OnceLock<Access>,
    /// The credentials in force and the annuaire cache, once loaded.
    pub runtime: std::sync::OnceLock<(Arc<Runtime>, Vec<Arc<Directory>>)>,
}

impl Admin {
    pub fn new(sandbox: bool) -> Arc<Admin> {
        // The metrics' clock starts here, first thing in start-up: `process_start_time_seconds`
        // and the uptime of `/status` count from it (the sandbox's PKI takes seconds to make).
        let _ = metrics::get();
        Arc::new(Admin {
            ready: AtomicBool::new(false),
            sandbox,
            access: std::sync::OnceLock::new(),
            runtime: std::sync::OnceLock::new(),
        })
    }

    /// What `/status`, `/readyz` and the certificate gauges report on.
    pub fn attach(&self, runtime: Arc<Runtime>, directories: Vec<Arc<Directory>>) {
        let _ = self.runtime.set((runtime, directories));
    }

    fn status(&self) -> Option<status::Status> {
        let (rt, dir) = self.runtime.get()?;
        let mut s = status::Status::snapshot(
            rt,
            self.ready.load(Ordering::SeqCst),
            (!dir.is_empty()).then(|| dir.iter().map(|d| d.len()).sum()),
            crate::clock::now_unix(),
        );
        s.sandbox = self.sandbox;
        Some(s)
    }

    fn allowed(&self, req: &Request<Body>, peer: &Peer) -> bool {
        self.access
            .get()
            .map(|a| a.check_admin(peer, req.headers()).is_ok())
            .unwrap_or(false)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub async fn handle(self: Arc<Self>, req: Request<Body>, peer: Peer) -> HttpResponse {
        let mut resp = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/readyz") => {
                let problems = self
                    .runtime
                    .get()
                    .map(|(rt, _)| status::Status::problems(rt, crate::clock::now_unix()))
                    .unwrap_or_default();
                if !self.ready.load(Ordering::SeqCst) {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: configuration and credentials not loaded yet\n",
                    )
                } else if !problems.is_empty() {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {}\n", problems.join("; ")),
                    )
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            }
            (&Method::GET, "/metrics") => {
                if self.allowed(&req, &peer) {
                    if let Some((rt, _)) = self.runtime.get() {
                        status::Certificates::of(rt, crate::clock::now_unix()).set_gauges();
                    }
                    let mut r = text(StatusCode::OK, metrics::get().render());
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    r
                } else {
                    text(StatusCode::UNAUTHORIZED, "unauthorized\n")
                }
            }
            (&Method::GET, "/status") => match (self.allowed(&req, &peer), self.status()) {
                (false, _) => text(StatusCode::UNAUTHORIZED, "unauthorized\n"),
                (true, None) => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
                (true, Some(s)) => {
                    let html = req
                        .headers()
                        .get(http::header::ACCEPT)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|a| a.contains("text/html"));
                    let (body, ct) = if html {
                        (s.to_html(), "text/html; charset=utf-8")
                    } else {
                        (s.to_json(), "application/json")
                    };
                    let mut r = text(StatusCode::OK, body);
                    r.headers_mut()
                        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
                    r
                }
            },
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /healthz, /readyz, /metrics or /status\n",
            ),
        };
        if self.sandbox {
            resp.headers_mut()
                .insert(SANDBOX_HEADER, HeaderValue::from_static("1"));
        }
        resp
    }
}

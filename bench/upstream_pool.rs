//! Pooled request throughput through rocgw's upstream client (TLS, IGC OSI verifier, keep-alive
//! pool, per-host cap) against a local TLS server, with the connection reuse ratio.
//!
//! cargo bench --bench upstream_pool [-- REQUESTS CONCURRENCY]

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rocgw::config::{RevocationPolicy, UpstreamConfig};
use rocgw::trust::{Anchors, CrlSet, OsiVerifier, TrustSet};
use rocgw::upstream::{client_config, Kind, Upstream};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let requests: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let pki = common::mini_pki(100_000);
    let (addr, _server_rt) = common::tls_server(&pki, 1);
    let now = rocgw::clock::now_unix();
    let anchors = Anchors::load("bench", std::slice::from_ref(&pki.anchors), now).unwrap();
    let trust = TrustSet {
        crls: Arc::new(
            CrlSet::load(
                "bench",
                &[pki.crl_big.clone(), pki.crl_root.clone()],
                &[&anchors],
                now,
            )
            .unwrap(),
        ),
        anchors,
        roles: None,
    };
    let verifier = OsiVerifier::new(&trust, RevocationPolicy::Hard, "amc").unwrap();
    let cfg = UpstreamConfig::default();
    let up = Arc::new(Upstream::new(
        Kind::Amc,
        client_config(verifier, None).unwrap(),
        &cfg,
        None,
        Default::default(),
    ));
    let url: hyper::Uri = format!("https://localhost:{}/idb", addr.port())
        .parse()
        .unwrap();
    let body = Bytes::from_static(b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><idb/></s:Body></s:Envelope>");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let failures = rt.block_on(async {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (up, url, body, next) = (up.clone(), url.clone(), body.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let mut failed = 0;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                    let req = hyper::Request::post(url.clone())
                        .header("content-type", "text/xml; charset=utf-8")
                        .body(body.clone())
                        .unwrap();
                    if let Err(e) = up.send(req).await {
                        if failed == 0 {
                            eprintln!("  first failure: {e}");
                        }
                        failed += 1;
                    }
                }
                failed
            }));
        }
        let mut failed = 0;
        for t in tasks {
            failed += t.await.unwrap();
        }
        failed
    });
    let secs = started.elapsed().as_secs_f64();
    let m = rocgw::metrics::get();
    let opened = m.upstream_connections.with_label_values(&["amc"]).get();
    println!("upstream_pool: {requests} requests, concurrency {concurrency}, 1 server thread");
    println!(
        "  throughput   {:.0} requests/s ({secs:.2} s)",
        requests as f64 / secs
    );
    println!("  connections  {opened} opened, reuse ratio {:.4} (requests served on a reused connection)", 1.0 - opened as f64 / requests as f64);
    println!("  failures     {failures}");
    assert_eq!(failures, 0);
}

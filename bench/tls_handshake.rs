//! Full TLS handshakes per second against a local server, with rocgw's verifier and no CRL,
//! with rocgw's verifier and a 100,000-entry CRL (serials in a hash set, signature checked once
//! at load), and, for the record, rustls-webpki's own CRL path (signature re-verified on every
//! lookup). Session resumption is off so that every handshake is full.
//!
//! cargo bench --bench tls_handshake

#[path = "common.rs"]
mod common;

use std::sync::Arc;

use criterion::{criterion_group, Criterion, Throughput};
use rocgw::config::RevocationPolicy;
use rocgw::trust::{Anchors, CrlSet, OsiVerifier, TrustSet};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateRevocationListDer, ServerName, UnixTime};
use rustls::ClientConfig;
use tokio::net::TcpStream;

const REVOKED: usize = 100_000;

fn client(verifier: Arc<dyn ServerCertVerifier>) -> tokio_rustls::TlsConnector {
    let mut cfg = ClientConfig::builder_with_provider(rocgw::crypto::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.resumption = Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// The three verifiers compared: rocgw without CRL, rocgw with the 100k CRL, rustls-webpki with it.
fn verifiers(pki: &common::MiniPki) -> [(&'static str, Arc<dyn ServerCertVerifier>); 3] {
    let now = rocgw::clock::now_unix();
    let anchors = Anchors::load("bench", std::slice::from_ref(&pki.anchors), now).unwrap();
    let trust = |crl: &std::path::Path| TrustSet {
        crls: Arc::new(
            CrlSet::load(
                "bench",
                &[crl.to_path_buf(), pki.crl_root.clone()],
                &[&anchors],
                now,
            )
            .unwrap(),
        ),
        anchors: anchors.clone(),
        // The bench's mini PKI has no IGC OSI roles: the handshake cost measured is webpki's
        // and the CRL lookup's.
        roles: None,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(
        Arc::new(anchors.root_store().unwrap()),
        rocgw::crypto::provider(),
    )
    .with_crls(vec![CertificateRevocationListDer::from(
        pki.crl_big_der.clone(),
    )])
    .build()
    .unwrap();
    [
        (
            "rocgw_no_crl",
            OsiVerifier::new(&trust(&pki.crl_empty), RevocationPolicy::Off, "amc").unwrap(),
        ),
        (
            "rocgw_crl_100k",
            OsiVerifier::new(&trust(&pki.crl_big), RevocationPolicy::Hard, "amc").unwrap(),
        ),
        ("webpki_crl_100k", webpki),
    ]
}

fn handshakes(c: &mut Criterion) {
    let pki = common::mini_pki(REVOKED);
    let (addr, _server_rt) = common::tls_server(&pki, 1);
    let variants = verifiers(&pki);

    // The verifier alone, in process: what each handshake pays for the server certificate.
    let mut g = c.benchmark_group("verify_server_cert");
    let name = ServerName::try_from("localhost").unwrap();
    let at = UnixTime::now();
    for (label, verifier) in &variants {
        g.bench_function(*label, |b| {
            b.iter(|| {
                verifier
                    .verify_server_cert(
                        &pki.server_chain[0],
                        &pki.server_chain[1..],
                        &name,
                        &[],
                        at,
                    )
                    .expect("valid chain")
            })
        });
    }
    g.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("full_handshake");
    g.throughput(Throughput::Elements(1));
    g.sample_size(40);
    for (name, verifier) in variants {
        let connector = client(verifier);
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let tcp = TcpStream::connect(addr).await.unwrap();
                    let tls = connector
                        .connect(ServerName::try_from("localhost").unwrap(), tcp)
                        .await
                        .expect("handshake");
                    drop(tls);
                })
            })
        });
    }
    g.finish();
}

/// Handshakes of the three verifiers interleaved round by round, so that the machine's drift
/// (frequency, neighbours) weighs on all three alike; prints medians and the ratios.
fn interleaved(rounds: usize) {
    let pki = common::mini_pki(REVOKED);
    let (addr, _server_rt) = common::tls_server(&pki, 1);
    let connectors = verifiers(&pki).map(|(_, v)| client(v));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut times: [Vec<f64>; 3] = Default::default();
    for round in 0..rounds {
        for i in 0..3 {
            let k = (i + round) % 3;
            let t = std::time::Instant::now();
            rt.block_on(async {
                let tcp = TcpStream::connect(addr).await.unwrap();
                connectors[k]
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await
                    .expect("handshake");
            });
            times[k].push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let m: Vec<f64> = times.iter_mut().map(median).collect();
    println!("interleaved full handshakes, {rounds} rounds, median µs (handshakes/s):");
    for (label, us) in ["rocgw_no_crl", "rocgw_crl_100k", "webpki_crl_100k"]
        .iter()
        .zip(&m)
    {
        println!("  {label:<16} {us:>8.0} µs  ({:>5.0}/s)", 1e6 / us);
    }
    println!(
        "  rocgw 100k CRL vs no CRL: {:+.1}%   webpki 100k CRL vs no CRL: {:+.1}%",
        (m[1] / m[0] - 1.0) * 100.0,
        (m[2] / m[0] - 1.0) * 100.0
    );
}

criterion_group!(benches, handshakes);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let rounds = std::env::var("ROCGW_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    interleaved(rounds);
}

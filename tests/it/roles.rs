//! The two IGC OSI roles kept apart: an AMC or annuaire server certificate must come from a
//! server-role authority (AC-SERVEUR), whatever else is an anchor; an intermediate anchor is
//! itself checked against its issuer's CRL.

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};

const WRONG_ROLE: &str = "negative/server-under-services-applicatifs";

/// The test configuration with `trust` in place of its anchors line, AMC 10000001 routed to
/// `server` under the AMC `revocation` policy.
fn config(server: &TlsServer, trust: &str, revocation: &str) -> String {
    let anchors = format!(
        "amc_anchors = [\"{}\"]",
        pki_path("osi/anchors.pem").display()
    );
    let base = base_config(
        pki_path("org/auth_cli.p12").to_str().unwrap(),
        pki_path("secrets/p12-password").to_str().unwrap(),
        "",
        "",
    )
    .replace(&anchors, trust);
    format!(
        "{base}\n[amc]\nrevocation = \"{revocation}\"\n\n[routes.\"10000001\"]\nidb = \"{}\"\n",
        server.url("/idb")
    )
}

/// A gateway on `config`.
fn gateway(server: &TlsServer, trust: &str, revocation: &str) -> (Proc, tempfile::TempDir) {
    let tmp = scratch();
    let cfg = write_config(tmp.path(), &config(server, trust, revocation));
    (Proc::with_config(&cfg), tmp)
}

fn files(list: &[&str]) -> String {
    let quoted: Vec<String> = list
        .iter()
        .map(|f| format!("\"{}\"", pki_path(f).display()))
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn idb(p: &Proc) -> Resp {
    post(p.gateway, "/amc/10000001/idb", CT12, &envelope12("<q/>"))
}

#[test]
fn the_fixture_is_a_valid_tls_server_certificate_of_the_signature_authority() {
    let out = tool(
        "openssl",
        &[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            pki_path("osi/root.pem").to_str().unwrap(),
            "-untrusted",
            pki_path("osi/ac-services-applicatifs.pem")
                .to_str()
                .unwrap(),
            pki_path(&format!("{WRONG_ROLE}.pem")).to_str().unwrap(),
        ],
        std::path::Path::new("."),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(": OK"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(pki_path("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let entries: Vec<&serde_json::Value> = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"].as_str().unwrap().starts_with(WRONG_ROLE))
        .collect();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        ["cert", "chain", "key"].iter().all(|k| kinds.contains(k)),
        "{kinds:?}"
    );
    assert!(entries
        .iter()
        .all(|e| e["defect"] == "wrong-role" && e["role"] == "amc-server-wrong-role"));
}

/// Under `trust`: amc-a's certificate (from AC-SERVEUR) is served, the wrong-role fixture's is
/// refused at the handshake. Returns that fixture's server and its gateway.
fn server_role_required(trust: &str) -> (TlsServer, Proc, tempfile::TempDir) {
    let good = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let (p, _t) = gateway(&good, trust, "soft");
    assert_eq!(idb(&p).status, 200, "AC-SERVEUR on the path gives the role");
    drop(p);
    let wrong = TlsServer::fixture(WRONG_ROLE, None, Behavior::Echo);
    let (p, t) = gateway(&wrong, trust, "soft");
    let r = idb(&p);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("upstream-cert-unknown-ca"),
        "{}",
        r.body
    );
    assert!(r.body.contains("server-role (AC-SERVEUR)"), "{}", r.body);
    (wrong, p, t)
}

#[test]
fn a_server_certificate_from_the_signature_authority_is_refused_at_the_handshake() {
    let bundle = format!("amc_anchors = {}", files(&["osi/anchors.pem"]));
    let (wrong, p, _t) = server_role_required(&bundle);
    let m = scrape(p.admin);
    let labels = [("upstream", "amc"), ("reason", "wrong-role")];
    assert_eq!(
        metric(&m, "rocgw_upstream_tls_failures_total", &labels),
        1.0
    );
    assert_eq!(
        wrong
            .seen
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[test]
fn with_the_root_as_only_anchor_the_path_must_still_go_through_ac_serveur() {
    let root_only = format!(
        "amc_anchors = {}\nserver_authorities = {}",
        files(&["osi/root.pem"]),
        files(&["osi/ac-serveur.pem"])
    );
    server_role_required(&root_only);
}

#[test]
fn no_server_role_authority_is_a_start_up_error() {
    let wrong = TlsServer::fixture(WRONG_ROLE, None, Behavior::Echo);
    let tmp = scratch();
    let root_only = format!("amc_anchors = {}", files(&["osi/root.pem"]));
    let cfg = write_config(tmp.path(), &config(&wrong, &root_only, "soft"));
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trust.server_authorities"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn an_intermediate_anchor_is_checked_against_its_issuers_crl() {
    let good = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let trust = |root_crl: &str| {
        format!(
            "amc_anchors = {}\ncrls = {}",
            files(&["osi/anchors.pem"]),
            files(&[root_crl, "osi/ac-serveur.crl.pem"])
        )
    };
    // AC-SERVEUR is an anchor, and the root's CRL revokes it: its servers are refused.
    let (p, _t) = gateway(
        &good,
        &trust("negative/osi-root-revokes-ac-serveur.crl.pem"),
        "hard",
    );
    let r = idb(&p);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("upstream-cert-revoked"),
        "{}",
        r.body
    );
    drop(p);
    // The root's ordinary CRL: served.
    let (p, _t) = gateway(&good, &trust("osi/root.crl.pem"), "hard");
    assert_eq!(idb(&p).status, 200);
    drop(p);
    // Hard policy without the root's CRL: AC-SERVEUR's status is unknown, so refused.
    let no_root = format!(
        "amc_anchors = {}\ncrls = {}",
        files(&["osi/anchors.pem"]),
        files(&["osi/ac-serveur.crl.pem"])
    );
    let (p, _t) = gateway(&good, &no_root, "hard");
    assert_eq!(idb(&p).header("x-rocgw-error"), Some("upstream-tls"));
}

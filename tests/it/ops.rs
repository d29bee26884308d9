//! What hospital IT watches: `/metrics` after traffic (names, labels, values, parsed from the
//! exposition format), `/status` as JSON and HTML, `/readyz`.

use crate::routing::{call, gateway};
use crate::sim::SimFixture;
use crate::support::*;

#[test]
fn metrics_and_status_follow_the_traffic() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway(&s, "", "", "");
    for _ in 0..3 {
        assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    }
    assert_eq!(
        call(&gw, "12345678", "idb", &[]).header("x-rocgw-error"),
        Some("unknown-amc")
    );
    let r = post(
        gw.gateway,
        "/amc/55555555/teleportation",
        CT12,
        &envelope12("<a/>"),
    );
    assert_eq!(r.header("x-rocgw-error"), Some("unknown-service"));

    let m = scrape(gw.admin);
    let v = |name: &str, labels: &[(&str, &str)]| metric(&m, name, labels);
    assert_eq!(
        v(
            "rocgw_requests_total",
            &[
                ("route", "amc"),
                ("amc", "99999991"),
                ("service", "idb"),
                ("outcome", "ok")
            ]
        ),
        3.0
    );
    // AMC numbers nobody knows fold into `other`; so do unknown services.
    assert_eq!(
        v(
            "rocgw_requests_total",
            &[("amc", "other"), ("outcome", "unknown-amc")]
        ),
        1.0
    );
    assert_eq!(
        v(
            "rocgw_requests_total",
            &[
                ("amc", "other"),
                ("service", "other"),
                ("outcome", "unknown-service")
            ]
        ),
        1.0
    );
    assert!(!m.iter().any(|s| s
        .labels
        .get("amc")
        .is_some_and(|a| a == "12345678" || a == "55555555")));
    // Histograms: every request observed once end to end; signatures and upstream exchanges.
    assert_eq!(
        v("rocgw_request_duration_seconds_count", &[("route", "amc")]),
        5.0
    );
    assert_eq!(v("rocgw_signing_duration_seconds_count", &[]), 3.0);
    assert!(
        v(
            "rocgw_upstream_duration_seconds_count",
            &[("upstream", "amc")]
        ) >= 3.0
    );
    assert!(
        v(
            "rocgw_upstream_duration_seconds_count",
            &[("upstream", "annuaire")]
        ) >= 2.0
    );
    let le = m
        .iter()
        .filter(|s| s.name == "rocgw_request_duration_seconds_bucket")
        .filter(|s| s.labels.get("le").is_some_and(|l| l == "+Inf"))
        .map(|s| s.value)
        .sum::<f64>();
    assert_eq!(le, 5.0);
    // Annuaire cache, upstream connections.
    assert_eq!(v("rocgw_annuaire_lookups_total", &[("result", "hit")]), 2.0);
    assert_eq!(
        v("rocgw_annuaire_calls_total", &[("outcome", "found")]),
        1.0
    );
    assert!(
        v(
            "rocgw_upstream_connections_opened_total",
            &[("upstream", "amc")]
        ) >= 1.0
    );
    certificate_and_crl_gauges(&m);
    status_follows_the_traffic(gw.admin);
}

/// Expiry of the identities and anchors, and the CRLs' update times, as Unix timestamps.
fn certificate_and_crl_gauges(m: &[Sample]) {
    let v = |name: &str, labels: &[(&str, &str)]| metric(m, name, labels);
    let now = rocgw::clock::now_unix() as f64;
    // Certificates: both identities (3-year test certificates) and anchors.
    for role in ["auth_cli", "sign"] {
        let left = v(
            "rocgw_certificate_not_after_timestamp_seconds",
            &[("kind", "identity"), ("name", role)],
        ) - now;
        assert!(
            left > 1_000.0 * 86_400.0 && left < 1_100.0 * 86_400.0,
            "{role}: {left}"
        );
    }
    assert!(
        v(
            "rocgw_certificate_not_after_timestamp_seconds",
            &[("kind", "anchor-amc"), ("name", "TEST AC-SERVEUR")]
        ) > now
    );
    let crl = [("sphere", "amc"), ("issuer", "TEST AC-SERVEUR")];
    let next = v("rocgw_crl_next_update_timestamp_seconds", &crl);
    assert!(next > now, "fresh CRL: {next}");
    let this = v("rocgw_crl_this_update_timestamp_seconds", &crl);
    assert!(this <= now && this > now - 86_400.0, "{this}");
}

/// `/status` as JSON and HTML, and `/readyz`, after the traffic above.
fn status_follows_the_traffic(admin: std::net::SocketAddr) {
    // /status, JSON and HTML.
    let st = http(admin, "GET", "/status", &[], b"");
    assert_eq!(st.status, 200);
    let j: serde_json::Value = serde_json::from_str(&st.body).unwrap();
    assert_eq!(j["ready"], true);
    // The unknown AMC and service were the caller's mistakes: nothing degrades.
    assert_eq!(j["state"], "ready", "{j}");
    assert_eq!(j["reasons"], serde_json::json!([]));
    assert_eq!(j["amc_failure_rate"], 0.0);
    let per_amc = j["amcs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["amc"] == "99999991")
        .unwrap();
    assert_eq!(per_amc["calls"], 3);
    assert_eq!(per_amc["outcomes"]["ok"], 3);
    assert_eq!(per_amc["recent"]["calls"], 3);
    assert_eq!(j["identities"].as_array().unwrap().len(), 2);
    assert_eq!(j["identities"][1]["role"], "sign");
    assert_eq!(j["identities"][1]["structure_id"], "1990000012");
    assert!(j["identities"][0]["days_left"].as_i64().unwrap() > 1000);
    assert!(j["anchors"].as_array().unwrap().len() >= 3);
    assert!(j["crls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["entries"] == 1));
    let amc = j["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "amc")
        .unwrap();
    assert_eq!(amc["requests_ok"], 3);
    assert!(j["annuaire_cache_entries"].as_u64().unwrap() >= 2);
    assert_eq!(j["version"], env!("CARGO_PKG_VERSION"));
    let page = http(admin, "GET", "/status", &[("Accept", "text/html")], b"");
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.body.contains("<table>") && page.body.contains("Client_ROC_WebServices_AMC"));
    assert!(
        page.body.contains("class=\"state ready\">READY<"),
        "{}",
        page.body
    );
    assert_eq!(http(admin, "GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn the_audit_log_says_what_was_signed_for_whom_and_when() {
    let s = SimFixture::start(|_| {});
    let dir = scratch();
    let file = audit_file(dir.path());
    let (gw, _t) = gateway(
        &s,
        "",
        "",
        &format!("[audit]\nfile = \"{}\"\n", file.display()),
    );
    for _ in 0..2 {
        assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    }
    s.set_faults(
        "99999991",
        &rocgw::sim::Faults {
            soap_fault_rate: 1.0,
            ..Default::default()
        },
    );
    assert_eq!(call(&gw, "99999991", "clc", &[]).status, 500);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    let serial = {
        let der = rocgw::identity::read_pem_certs(&pki_path("org/sign.pem")).unwrap();
        rocgw::identity::CertInfo::parse(&der[0]).unwrap().serial
    };
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["amc"], "99999991");
        assert_eq!(l["signer_serial"], serial.as_str());
        assert_eq!(l["reused"], false);
        assert!(l["assertion_id"].as_str().unwrap().starts_with('_'));
        assert!(l["audience"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:"));
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
        assert!(l["latency_ms"].as_f64().unwrap() > 0.0, "{i}");
    }
    assert_ne!(lines[0]["assertion_id"], lines[1]["assertion_id"]);
    assert_eq!(
        (lines[0]["outcome"].as_str(), lines[0]["status"].as_u64()),
        (Some("ok"), Some(200))
    );
    assert_eq!(
        (lines[2]["service"].as_str(), lines[2]["outcome"].as_str()),
        (Some("clc"), Some("amc-error"))
    );
    // Never a body: the request's beneficiary data is not there.
    assert!(
        !text.contains("<r:nir>") && !text.contains("Envelope"),
        "{text}"
    );
}

/// The `kubernetes-validate` command (`.ci/run` installs it and names it in
/// ROCGW_KUBERNETES_VALIDATE).
fn kubernetes_validate(args: &[&str]) -> std::process::Output {
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/ci-venv/bin/kubernetes-validate"
    );
    let run = |path: &str| {
        std::process::Command::new(path)
            .args(args)
            .output()
            .unwrap()
    };
    match std::env::var("ROCGW_KUBERNETES_VALIDATE") {
        Ok(path) => run(&path),
        // Where `.ci/run` installed it, for a later `cargo nextest run`.
        Err(_) if std::path::Path::new(venv).exists() => run(venv),
        Err(_) => tool("kubernetes-validate", args, std::path::Path::new(".")),
    }
}

#[test]
fn the_kubernetes_manifests_are_valid_and_carry_a_valid_rocgw_config() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/rocgw.yaml");
    let out = kubernetes_validate(&["--strict", dir]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for kind in [
        "deployment/rocgw",
        "service/rocgw",
        "service/rocgw-admin",
        "poddisruptionbudget/rocgw",
        "configmap/rocgw-config",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{kind}: {text}"
        );
    }
    // The validator does catch mistakes.
    let yaml = std::fs::read_to_string(dir).unwrap();
    let tmp = scratch();
    let broken = tmp.path().join("broken.yaml");
    std::fs::write(
        &broken,
        yaml.replace("minAvailable: 1", "minAvailable: 1\n  maxUnavailibility: 2"),
    )
    .unwrap();
    assert!(
        !kubernetes_validate(&["--strict", broken.to_str().unwrap()])
            .status
            .success()
    );

    // The ConfigMap's rocgw.toml loads with the real configuration loader.
    let cfg = crate::deploy::materialize_kubernetes_config(
        &yaml,
        tmp.path(),
        "it-secret-prometheus-token-4567",
    );
    let loaded = rocgw::config::Config::load(&cfg, &Default::default());
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

#[test]
fn readyz_fails_on_a_stale_crl_under_the_hard_policy() {
    let tmp = scratch();
    let d = tmp.path();
    stale_crl(d);
    let config = |policy: &str| {
        let p = |r: &str| pki_path(r).display().to_string();
        let mut t = base_config(
            &p("org/auth_cli.p12"),
            &p("secrets/p12-password"),
            "",
            &format!("crls = [\"{}\"]", d.join("stale.crl").display()),
        )
        .replace(
            &format!("amc_anchors = [\"{}\"]", p("osi/anchors.pem")),
            &format!(
                "amc_anchors = [\"{}\", \"{}\"]",
                p("osi/anchors.pem"),
                d.join("ca.pem").display()
            ),
        );
        t.push_str(&format!("\n[amc]\nrevocation = \"{policy}\"\n"));
        let dir = scratch();
        let cfg = write_config(dir.path(), &t);
        (Proc::with_config(&cfg), dir)
    };
    let (hard, _a) = config("hard");
    let r = http(hard.admin, "GET", "/readyz", &[], b"");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body.contains("stale.crl is past its next update"),
        "{}",
        r.body
    );
    let st: serde_json::Value =
        serde_json::from_str(&http(hard.admin, "GET", "/status", &[], b"").body).unwrap();
    assert_eq!(st["ready"], false);
    assert_eq!(st["state"], "not ready");
    assert!(st["reasons"][0]
        .as_str()
        .unwrap()
        .contains("stale.crl is past its next update (hard revocation policy)"));
    let page = http(
        hard.admin,
        "GET",
        "/status",
        &[("Accept", "text/html")],
        b"",
    );
    assert!(page.body.contains("NOT READY"), "{}", page.body);
    assert!(st["crls"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["stale"] == true));
    // The soft policy tolerates it, and /status says so.
    let (soft, _b) = config("soft");
    assert_eq!(http(soft.admin, "GET", "/readyz", &[], b"").status, 200);
    let st: serde_json::Value =
        serde_json::from_str(&http(soft.admin, "GET", "/status", &[], b"").body).unwrap();
    assert_eq!(st["state"], "degraded", "{st}");
    assert!(
        st["reasons"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .contains("stale.crl is past its next update (soft")),
        "{st}"
    );
}

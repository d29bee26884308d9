//! `/status` tells the truth: a stopped AMC, a certificate near expiry and a failed reload each
//! make it say `degraded`, with the reason, in JSON and in HTML, while `/readyz` (local
//! conditions only) stays 200. AMC failures are counted once, with the caller's mistakes and
//! the AMC's own SOAP faults left out.

use std::time::Duration;

use rocgw::sim::Faults;

use crate::routing::call;
use crate::sim::SimFixture;
use crate::support::*;

fn status(admin: std::net::SocketAddr) -> serde_json::Value {
    let r = http(admin, "GET", "/status", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

fn page(admin: std::net::SocketAddr) -> String {
    let r = http(admin, "GET", "/status", &[("Accept", "text/html")], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

fn reasons(st: &serde_json::Value) -> Vec<String> {
    st["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_stopped_amc_makes_status_degraded_with_its_open_circuit_and_failure_rate_while_readyz_stays_200(
) {
    let s = SimFixture::start(|_| {});
    let stopped = free_port();
    let (gw, _t) = s.gateway(
        "breaker_failures = 3\nbreaker_open_s = 60",
        "",
        &format!("[routes.\"88888888\"]\nidb = \"https://localhost:{stopped}/idb\"\n"),
        3_000,
    );
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    // The AMC's own SOAP fault is an answer; a body that is not SOAP is the caller's mistake.
    s.set_faults(
        "99999992",
        &Faults {
            soap_fault_rate: 1.0,
            ..Faults::default()
        },
    );
    let r = call(&gw, "99999992", "idb", &[]);
    assert_eq!(r.header("x-rocgw-error"), None, "{}", r.body);
    assert!(r.body.contains("Fault"), "{}", r.body);
    let r = post(gw.gateway, "/amc/99999991/idb", CT12, "not an envelope");
    assert_eq!(r.header("x-rocgw-error"), Some("not-soap"));
    let st = status(gw.admin);
    assert_eq!(st["state"], "ready", "{st}");
    assert!(page(gw.admin).contains("class=\"state ready\">READY<"));

    // The stopped AMC: three transport failures open its circuit, the fourth fails fast.
    for _ in 0..4 {
        let r = call(&gw, "88888888", "idb", &[]);
        assert_eq!(
            r.header("x-rocgw-error"),
            Some("amc-unavailable"),
            "{}",
            r.body
        );
    }
    let st = status(gw.admin);
    assert_eq!(st["state"], "degraded", "{st}");
    assert_eq!(st["ready"], true);
    let why = reasons(&st);
    assert!(
        why.iter()
            .any(|r| r.starts_with("1 AMC endpoint circuit(s) open")),
        "{why:?}"
    );
    // 4 failures out of 6 AMC calls (the not-soap request never reached the AMC stage).
    assert!(
        why.iter().any(|r| r
            .starts_with("AMC failure rate 66.7 % over the last 5 min (4 of 6 calls;")
            && r.contains("88888888 4/4")),
        "{why:?}"
    );
    assert_eq!(st["circuits_open"], 1);
    let amc = |n: &str| {
        st["amcs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["amc"] == n)
            .unwrap_or_else(|| panic!("{n} in {st}"))
            .clone()
    };
    assert_eq!(
        amc("88888888")["failures"],
        serde_json::json!({"transport": 3, "circuit-open": 1})
    );
    assert_eq!(amc("88888888")["recent"]["failures"], 4);
    assert_eq!(amc("99999992")["outcomes"]["amc-error"], 1);
    assert_eq!(amc("99999992")["failures"], serde_json::json!({}));
    assert_eq!(amc("99999991")["calls"], 1);
    assert_eq!(amc("99999991")["outcomes"]["not-soap"], 1);

    // The metrics say the same, for the alert.
    let m = scrape(gw.admin);
    let v = |name: &str, labels: &[(&str, &str)]| metric(&m, name, labels);
    let dead = [("amc", "88888888")];
    assert_eq!(v("rocgw_amc_calls_total", &dead), 4.0);
    assert_eq!(v("rocgw_amc_failures_total", &dead), 4.0);
    assert_eq!(
        v(
            "rocgw_amc_failures_total",
            &[("amc", "88888888"), ("reason", "circuit-open")]
        ),
        1.0
    );
    assert_eq!(v("rocgw_amc_calls_total", &[]), 6.0);
    assert_eq!(v("rocgw_amc_failures_total", &[]), 4.0);

    // The page: state first, the reasons, page time, refresh, dates that never wrap.
    let html = page(gw.admin);
    assert!(
        html.starts_with("<!DOCTYPE html><html lang=\"en\">"),
        "{html}"
    );
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    assert!(
        html.contains("class=\"state degraded\">DEGRADED<"),
        "{html}"
    );
    let state_at = html.find("DEGRADED<").unwrap();
    assert!(html.find("Identities").unwrap() > state_at);
    assert!(
        html.contains("<li>1 AMC endpoint circuit(s) open"),
        "{html}"
    );
    assert!(html.contains("<li>AMC failure rate 66.7 %"), "{html}");
    assert!(html.contains(".date{white-space:nowrap}"));
    assert!(html.contains(&format!(
        "Page made at <span class=\"date\">{}",
        &status(gw.admin)["generated_at"].as_str().unwrap()[..13]
    )));
    assert!(html.contains("Last reload: none since start"));
    assert!(html.contains("<td>88888888</td>"));

    // One dead AMC does not take the replica out of service.
    let r = http(gw.admin, "GET", "/readyz", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn an_expiring_certificate_and_a_failed_reload_degrade_status_until_fixed() {
    let tmp = scratch();
    let auth = tmp.path().join("auth_cli.p12");
    std::fs::copy(pki_path("negative/auth_cli-expiring.p12"), &auth).unwrap();
    let text = base_config(
        auth.to_str().unwrap(),
        pki_path("secrets/p12-password").to_str().unwrap(),
        "",
        "",
    ) + "\n[routes.\"11111111\"]\nidb = \"https://localhost:9/amc/idb\"\n";
    let p = Proc::with_config(&write_config(tmp.path(), &text));
    let st = status(p.admin);
    assert_eq!(st["state"], "degraded", "{st}");
    assert!(
        reasons(&st)
            .iter()
            .any(|r| r.starts_with("certificate identity.auth_cli (1990000012) expires in ")),
        "{st}"
    );
    assert_eq!(st["last_reload"], serde_json::Value::Null);
    let reloads = |outcome: &str| {
        metric(
            &scrape(p.admin),
            "rocgw_reloads_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(reloads("failed"), 0.0, "born at 0");

    // A broken file: the reload fails, the old certificate stays, /status says so.
    std::fs::write(tmp.path().join("broken.p12"), b"not a PKCS#12 file").unwrap();
    replace_file(&tmp.path().join("broken.p12"), &auth);
    p.signal("HUP");
    wait_for("the failed reload", Duration::from_secs(10), || {
        reloads("failed") == 1.0
    });
    let st = status(p.admin);
    assert_eq!(st["state"], "degraded", "{st}");
    assert_eq!(st["last_reload"]["outcome"], "failed");
    assert!(
        reasons(&st)
            .iter()
            .any(|r| r.starts_with("the last reload, at ")
                && r.ends_with("failed: each part that failed keeps its previous certificates or CRLs (the log says which, and why)")),
        "{st}"
    );
    assert!(page(p.admin).contains("Last reload: <span class=\"bad\">FAILED</span> at"));
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);

    // The renewed certificate: the reload succeeds and nothing is left to report.
    replace_file(&pki_path("org/auth_cli.p12"), &auth);
    p.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        reloads("ok") == 1.0
    });
    let st = status(p.admin);
    assert_eq!(st["state"], "ready", "{st}");
    assert_eq!(st["reasons"], serde_json::json!([]));
    assert_eq!(st["last_reload"]["outcome"], "ok");
}

#[test]
fn an_amc_call_cut_by_the_deadline_is_an_amc_timeout_and_one_the_sih_abandons_is_not_a_failure() {
    use crate::tls_server::{Behavior, TlsServer};
    let hanging = TlsServer::fixture("osi/amc-b", None, Behavior::Delay(Duration::from_secs(60)));
    let s = SimFixture::start(|_| {});
    let (gw, _t) = s.gateway(
        "",
        "",
        &format!("[routes.\"88888882\"]\nidb = \"{}\"\n", hanging.url("/idb")),
        30_000,
    );
    let r = call(&gw, "88888882", "idb", &[("X-Rocgw-Deadline-Ms", "300")]);
    assert_eq!(r.header("x-rocgw-error"), Some("amc-timeout"), "{}", r.body);
    // The SIH hangs up while its call waits for the AMC.
    let sih = post_unread(gw.gateway, "/amc/88888882/idb");
    wait_for("the call upstream", Duration::from_secs(5), || {
        hanging.requests() == 2
    });
    drop(sih);
    wait_for("the abandoned call", Duration::from_secs(5), || {
        metric(&scrape(gw.admin), "rocgw_in_flight_requests", &[]) == 0.0
    });
    let m = scrape(gw.admin);
    let amc = [("amc", "88888882")];
    assert_eq!(metric(&m, "rocgw_amc_calls_total", &amc), 2.0);
    assert_eq!(metric(&m, "rocgw_amc_failures_total", &amc), 1.0);
    assert_eq!(
        metric(
            &m,
            "rocgw_amc_failures_total",
            &[("amc", "88888882"), ("reason", "timeout")]
        ),
        1.0
    );
}

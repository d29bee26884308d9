//! `rocgw load` against the sandbox (gateway and in-process simulator): progress lines, the
//! report, JSON and HTML files, numbers that agree with the simulator's own counters, and
//! the exit code of a threshold.

use crate::support::*;

/// A sandbox process whose data folder reuses the run's test PKI (no generation).
fn sandbox() -> (Proc, tempfile::TempDir, std::net::SocketAddr) {
    let tmp = scratch();
    sandbox_data(tmp.path());
    let p = Proc::start(&sandbox_args(&[], tmp.path()), &[]);
    let admin = sim_admin(&p);
    (p, tmp, admin)
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn a_ten_second_load_run_reports_what_the_simulator_counted() {
    let (gw, tmp, sim_admin) = sandbox();
    let (j, h) = (tmp.path().join("r.json"), tmp.path().join("r.html"));
    let out = run(
        &[
            "load",
            "--target",
            &gw.gateway.to_string(),
            "--duration",
            "10s",
            "--warmup",
            "1s",
            "--concurrency",
            "4",
            "--json",
            j.to_str().unwrap(),
            "--html",
            h.to_str().unwrap(),
            "--max-error-rate",
            "0.01",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let progress = stderr
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .count();
    assert!(progress >= 8, "one progress line per second: {stderr}");
    assert!(
        stderr.contains("req/s") && stderr.contains("p99"),
        "{stderr}"
    );
    for needle in [
        "throughput",
        "latency     p50",
        "errors      none",
        "99999991/idb",
        "max-error-rate",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }

    let r = json(&j);
    let ok = r["ok"].as_u64().unwrap();
    assert!(ok > 10, "{r}");
    assert_eq!(r["errors"], 0);
    assert_eq!(r["duration_s"], 10.0);
    let lat = &r["latency_ms"];
    let p = |k: &str| lat[k].as_f64().unwrap();
    assert!(0.0 < p("p50") && p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"));
    assert!(r["timeline"].as_array().unwrap().len() >= 10);
    assert_eq!(r["connections_opened"], 4);
    assert_eq!(r["thresholds"][0]["passed"], true);

    // The simulator counted every request the load generator saw succeed, warm-up included.
    let samples = scrape(sim_admin);
    let accepted = metric(
        &samples,
        "rocgw_sim_requests_total",
        &[("outcome", "accepted")],
    );
    let refused = metric(
        &samples,
        "rocgw_sim_requests_total",
        &[("outcome", "refused")],
    );
    assert_eq!(accepted as u64, ok + r["warmup_ok"].as_u64().unwrap());
    assert_eq!(refused, 0.0);
    let routes = r["by_route"].as_object().unwrap();
    let idb = metric(
        &samples,
        "rocgw_sim_requests_total",
        &[
            ("amc", "99999991"),
            ("service", "idb"),
            ("outcome", "accepted"),
        ],
    );
    assert!(idb as u64 >= routes["99999991/idb"]["ok"].as_u64().unwrap());
    assert_eq!(routes["99999991/idb"]["errors"], 0);
    // No error: nothing reported for failed requests; the run says what and when.
    assert!(r["error_latency_ms"].is_null(), "{r}");
    assert_eq!(r["passed"], true);
    assert_eq!(r["throughput_rps"].as_f64(), r["attempted_rps"].as_f64());
    let version = r["rocgw_version"].as_str().unwrap();
    assert!(
        version.starts_with(env!("CARGO_PKG_VERSION")) && version.contains("(commit "),
        "{version}"
    );
    let started = r["started_at"].as_str().unwrap();
    assert!(started.len() == 20 && started.ends_with('Z'), "{started}");
    assert!(stdout.contains(&format!("run         {started}, rocgw {version}")));

    let html = std::fs::read_to_string(&h).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "three plots");
    assert!(
        html.contains("Latency over time")
            && html.contains("Errors over time")
            && html.contains("Latency distribution")
    );
    // Each plot names its y axis with the unit.
    assert_eq!(html.matches("class=\"y-axis\"").count(), 3);
    assert_eq!(html.matches(">latency (ms)</text>").count(), 2);
    assert!(html.contains(">errors per second</text>"));
    assert!(html.contains(&format!("<time datetime=\"{started}\">")));
    assert!(html.contains(&format!("rocgw {version}")));
    assert!(html.contains("<polyline"), "plots have data");
    assert!(
        !html.contains("http://") || !html.contains("<script"),
        "self-contained"
    );
}

#[test]
fn a_threshold_exceeded_fails_the_run_and_open_loop_counts_new_connections() {
    let (gw, tmp, _) = sandbox();
    let j = tmp.path().join("r.json");
    let out = run(
        &[
            "load",
            "--target",
            &gw.gateway.to_string(),
            "--rate",
            "20",
            "--duration",
            "2s",
            "--warmup",
            "0s",
            "--new-connection-per-request",
            "--mix",
            "99999992/clc",
            "--max-p99",
            "1us",
            "--quiet",
            "--json",
            j.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("EXCEEDED"), "{stdout}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("progress: "),
        "--quiet"
    );
    let r = json(&j);
    assert_eq!(r["mode"], "open-loop");
    let n = r["requests"].as_u64().unwrap();
    assert!((35..=45).contains(&n), "20/s for 2 s: {n}");
    assert_eq!(r["connections_opened"].as_u64().unwrap(), n);
    assert_eq!(r["by_route"]["99999992/clc"]["ok"].as_u64().unwrap(), n);

    let bad = run(
        &[
            "load",
            "--target",
            &gw.gateway.to_string(),
            "--mix",
            "nonsense",
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mix"));
}

/// Against a port nobody listens on: every request fails to connect. The report says no request
/// succeeded, counts no throughput, keeps how long the failures took apart, and exits 1.
#[test]
fn a_run_in_which_no_request_succeeded_fails() {
    let dead = format!("127.0.0.1:{}", free_port());
    let tmp = scratch();
    let (j, h) = (tmp.path().join("r.json"), tmp.path().join("r.html"));
    let out = run(
        &[
            "load",
            "--target",
            &dead.to_string(),
            "--requests",
            "300",
            "--warmup",
            "0s",
            "--quiet",
            "--json",
            j.to_str().unwrap(),
            "--html",
            h.to_str().unwrap(),
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("throughput  0.0 req/s successful")
            && stdout.contains("latency     none: no request succeeded")
            && stdout.contains("result      FAILED: no request succeeded"),
        "{stdout}"
    );
    let r = json(&j);
    assert_eq!(
        (r["ok"].as_u64(), r["passed"].as_bool()),
        (Some(0), Some(false))
    );
    assert_eq!(r["errors_by_kind"]["connect"], r["requests"]);
    assert_eq!(r["throughput_rps"], 0.0);
    assert!(r["attempted_rps"].as_f64().unwrap() > 0.0, "{r}");
    // The failures' latency is reported apart, not as the requests' latency.
    assert_eq!(r["latency_ms"]["max"], 0.0);
    assert!(r["error_latency_ms"]["max"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["distribution"].as_array().unwrap().is_empty());
    assert!(r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["p50_ms"].is_null() && p["errors"].as_u64().is_some()));
    let html = std::fs::read_to_string(&h).unwrap();
    assert!(html.contains("FAILED: no request succeeded"));
    assert!(html.contains("Failed requests (not in the table above)"));
}

/// A SOAP 1.1 template goes out as SOAP 1.1's binding says (`text/xml` and a `SOAPAction`): the
/// simulator, which refuses an envelope sent as the other version's media type, accepts them.
#[test]
fn a_soap11_template_is_sent_as_soap11() {
    let (gw, tmp, sim_admin) = sandbox();
    let template = tmp.path().join("idb11.xml");
    let body = "<r:identificationDroits xmlns:r=\"urn:rocgw:load\"><r:numeroAmc>{{amc}}</r:numeroAmc><r:nir>{{nir}}</r:nir></r:identificationDroits>";
    std::fs::write(&template, envelope11(body)).unwrap();
    let j = tmp.path().join("r.json");
    let idb = format!("idb={}", template.display());
    let out = run(
        &[
            "load",
            "--target",
            &gw.gateway.to_string(),
            "--requests",
            "20",
            "--warmup",
            "0s",
            "--concurrency",
            "2",
            "--mix",
            "99999991/idb",
            "--template",
            &idb,
            "--quiet",
            "--json",
            j.to_str().unwrap(),
        ],
        &[],
    );
    let r = json(&j);
    assert!(out.status.success(), "{r}");
    assert_eq!(
        (r["ok"].as_u64(), r["errors"].as_u64()),
        (Some(20), Some(0))
    );
    let metrics = http(sim_admin, "GET", "/metrics", &[], b"").body;
    assert!(
        !metrics
            .lines()
            .any(|l| l.contains("wrong-content-type") && !l.ends_with(" 0")),
        "{metrics}"
    );
}

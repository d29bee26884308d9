//! The alert rules and the Grafana dashboard, checked with Prometheus's own `promtool` (Debian
//! `prometheus`, installed by `.ci/run`): the rules load, their unit tests pass (one firing and
//! one quiet case per alert) and catch the mistakes they were written against; every metric
//! they and the dashboard use is in a real `/metrics` right after start-up, in the shape the
//! unit tests feed; `promtool check metrics` passes on that scrape.

use std::collections::{BTreeMap, BTreeSet};

use crate::sim::SimFixture;
use crate::support::*;

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/monitoring/rocgw-alerts.yaml"
);
const RULE_TESTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/monitoring/tests/rocgw-alerts.test.yaml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/monitoring/grafana-dashboard.json"
);

/// Runs `promtool args…` with `stdin`; (success, stdout + stderr).
fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("`promtool` is needed by this test ({e}): run `bash .ci/run` (Debian package prometheus)")
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `promtool test rules` on the repository's unit tests run against `rules` (a rules text).
fn unit_tests_against(rules: &str) -> (bool, String) {
    let tmp = scratch();
    std::fs::create_dir(tmp.path().join("tests")).unwrap();
    std::fs::write(tmp.path().join("rocgw-alerts.yaml"), rules).unwrap();
    let tests = tmp.path().join("tests/rocgw-alerts.test.yaml");
    std::fs::copy(RULE_TESTS, &tests).unwrap();
    promtool(&["test", "rules", tests.to_str().unwrap()], None)
}

/// Alert names (`- alert: Name`) of a rules text.
fn alert_names(rules: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests_catch_the_old_mistakes() {
    let (ok, out) = promtool(&["check", "rules", RULES], None);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let (ok, out) = promtool(&["test", "rules", RULE_TESTS], None);
    assert!(ok && out.contains("SUCCESS"), "{out}");

    // One firing and one quiet case per alert.
    let rules = std::fs::read_to_string(RULES).unwrap();
    let tests = std::fs::read_to_string(RULE_TESTS).unwrap();
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(name) = l.strip_prefix("alertname: ") {
            match lines.get(i + 1) {
                Some(&"exp_alerts: []") => quiet.insert(name.to_string()),
                Some(&"exp_alerts:") => firing.insert(name.to_string()),
                other => panic!("{name}: unexpected {other:?}"),
            };
        }
    }
    let alerts = alert_names(&rules);
    assert!(alerts.len() >= 13, "{alerts:?}");
    assert_eq!(firing, alerts, "alerts without a firing case");
    assert_eq!(quiet, alerts, "alerts without a quiet case");

    // The unit tests catch the mistakes of the first rules: a plain `and` between series of
    // different label sets never matches; counting every non-ok outcome counts the callers'
    // mistakes (`not-soap`) as failing AMC calls.
    let annuaire = rules.replace(
        "            unless on (job, instance)\n          sum by (job, instance) (increase(rocgw_annuaire_calls_total{outcome!=\"error\"}[15m])) > 0",
        "            and increase(rocgw_annuaire_calls_total{outcome=\"found\"}[15m]) == 0",
    );
    assert_ne!(annuaire, rules);
    let (ok, out) = unit_tests_against(&annuaire);
    assert!(!ok && out.contains("RocgwAnnuaireUnreachable"), "{out}");
    let error_rate = rules
        .replace(
            "rate(rocgw_amc_failures_total[5m])",
            "rate(rocgw_requests_total{route=\"amc\", outcome!=\"ok\"}[5m])",
        )
        .replace(
            "rate(rocgw_amc_calls_total[5m])",
            "rate(rocgw_requests_total{route=\"amc\"}[5m])",
        );
    assert_ne!(error_rate, rules);
    let (ok, out) = unit_tests_against(&error_rate);
    assert!(!ok && out.contains("RocgwErrorRateHigh"), "{out}");
}

/// Metric names (`rocgw_…`, `process_…`) a rules or dashboard text uses.
fn names_used(text: &str) -> BTreeSet<&str> {
    let mut used = BTreeSet::new();
    for prefix in ["rocgw_", "process_"] {
        for (i, _) in text.match_indices(prefix) {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(rest.len());
            if end > prefix.len() && !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric()) {
                used.insert(&rest[..end]);
            }
        }
    }
    used
}

/// The series of the rule unit tests: (name, labels without `job` and `instance`).
fn test_series(tests: &str) -> Vec<(String, BTreeMap<String, String>)> {
    tests
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- series: '"))
        .map(|s| {
            let s = s.trim_end_matches('\'');
            let (name, labels) = s.split_once('{').unwrap_or((s, "}"));
            let labels = labels
                .trim_end_matches('}')
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once("=\"").unwrap();
                    (k.to_string(), v.trim_end_matches('"').to_string())
                })
                .filter(|(k, _)| k != "job" && k != "instance")
                .collect();
            (name.to_string(), labels)
        })
        .collect()
}

#[test]
fn a_scrape_right_after_start_has_every_metric_the_rules_and_dashboard_use_in_the_tested_shape() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = s.gateway("", "", "", 3_000);
    let r = http(gw.admin, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    // Prometheus's own linter on the exposition.
    let (ok, out) = promtool(&["check", "metrics"], Some(&r.body));
    assert!(ok && out.trim().is_empty(), "{out}");
    let scrape = parse_metrics(&r.body);
    let names: BTreeSet<&str> = scrape.iter().map(|m| m.name.as_str()).collect();

    // Born at start, at 0: what rate() and increase() must see before the first event.
    let v = |name: &str, labels: &[(&str, &str)]| {
        let found = scrape.iter().find(|m| {
            m.name == name
                && labels
                    .iter()
                    .all(|(k, v)| m.labels.get(*k).map(String::as_str) == Some(*v))
        });
        found
            .unwrap_or_else(|| panic!("{name} {labels:?} not in the scrape"))
            .value
    };
    for (name, labels) in [
        ("rocgw_reloads_total", &[("outcome", "failed")][..]),
        ("rocgw_reloads_total", &[("outcome", "ok")]),
        ("rocgw_annuaire_calls_total", &[("outcome", "error")]),
        (
            "rocgw_upstream_tls_failures_total",
            &[("upstream", "amc"), ("reason", "unknown-ca")],
        ),
        (
            "rocgw_upstream_tls_failures_total",
            &[("upstream", "annuaire"), ("reason", "cert-revoked")],
        ),
        (
            "rocgw_revocation_unknown_total",
            &[("upstream", "amc"), ("reason", "stale-crl")],
        ),
        (
            "rocgw_amc_failures_total",
            &[("amc", "other"), ("reason", "transport")],
        ),
        ("rocgw_amc_calls_total", &[("amc", "other")]),
    ] {
        assert_eq!(v(name, labels), 0.0, "{name} {labels:?}");
    }
    assert_eq!(
        v(
            "rocgw_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    let now = rocgw::clock::now_unix() as f64;
    let started = v("process_start_time_seconds", &[]);
    assert!(started > now - 600.0 && started <= now + 1.0, "{started}");
    assert!(v("process_resident_memory_bytes", &[]) > 1e6);
    let not_after = v(
        "rocgw_certificate_not_after_timestamp_seconds",
        &[("kind", "identity"), ("name", "sign")],
    );
    assert!(not_after > now + 1_000.0 * 86_400.0, "{not_after}");

    // Every name the rules and the dashboard use.
    for file in [RULES, DASHBOARD] {
        let text = std::fs::read_to_string(file).unwrap();
        let used = names_used(&text);
        assert!(used.len() >= 8, "{file}: {used:?}");
        for n in used {
            assert!(names.contains(n), "{file} uses {n}, absent at start-up");
        }
    }

    // The unit tests' series have the real label names, and the real values of the labels
    // whose values are all known at start.
    let tests = std::fs::read_to_string(RULE_TESTS).unwrap();
    let series = test_series(&tests);
    assert!(series.len() >= 30);
    let free = ["amc", "name", "structure", "issuer"];
    for (name, labels) in series.iter().filter(|(n, _)| n.starts_with("rocgw_")) {
        let real: Vec<_> = scrape.iter().filter(|m| &m.name == name).collect();
        let keys: BTreeSet<&String> = labels.keys().collect();
        assert!(
            real.iter()
                .any(|m| m.labels.keys().collect::<BTreeSet<_>>() == keys),
            "{name} {labels:?}: no such label set in /metrics"
        );
        for (k, val) in labels {
            if !free.contains(&k.as_str()) && name != "rocgw_requests_total" {
                assert!(
                    real.iter().any(|m| m.labels.get(k) == Some(val)),
                    "{name}: {k}=\"{val}\" is not a value rocgw exposes"
                );
            }
        }
    }
}

#[test]
fn the_dashboard_shows_each_replica_with_one_unit_per_panel_and_valid_queries() {
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        vars.contains(&"job") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let panels = dash["panels"].as_array().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut shown = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap();
        let exprs: Vec<&str> = p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["expr"].as_str().unwrap())
            .collect();
        // Per replica: every selector filtered by $job and $instance, every aggregation keeps
        // the instance.
        for e in &exprs {
            let selectors = names_used(e).len();
            assert!(selectors > 0, "{title}: {e}");
            assert_eq!(
                e.matches("instance=~\"$instance\"").count(),
                e.matches('{').count()
            );
            assert_eq!(e.matches("job=~\"$job\"").count(), e.matches('{').count());
            assert!(!e.contains("sum("), "{title}: {e}");
            for by in e.split("by (").skip(1) {
                assert!(by.starts_with("instance"), "{title}: {e}");
            }
            shown.extend(names_used(e));
        }
        // One kind of value per panel: per-second rates, or instant values.
        let rates = exprs.iter().filter(|e| e.contains("rate(")).count();
        assert!(
            rates == 0 || rates == exprs.len(),
            "{title}: mixed {exprs:?}"
        );
        if ["reqps", "ops"].contains(&unit) {
            assert_eq!(rates, exprs.len(), "{title}: {unit} needs rates");
        }
        for (i, e) in exprs.iter().enumerate() {
            let e = e
                .replace("$instance", ".+")
                .replace("$job", "rocgw")
                .replace('\'', "''");
            rules.push_str(&format!(
                "      - record: dashboard:panel{}:{i}\n        expr: '{e}'\n",
                p["id"]
            ));
        }
    }
    for n in [
        "rocgw_connections_refused_total",
        "rocgw_write_timeouts_total",
        "rocgw_revocation_unknown_total",
        "rocgw_amc_failures_total",
    ] {
        assert!(shown.contains(n), "no panel shows {n}");
    }
    // Every query parses (promtool checks them as recording rules).
    let tmp = scratch();
    let file = tmp.path().join("dashboard-rules.yaml");
    std::fs::write(&file, &rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "{out}\n{rules}");
    // The expiry bar gauge: days, red under 7, amber from 7, green from 30.
    let expiry = panels
        .iter()
        .find(|p| p["type"] == "bargauge")
        .expect("the expiry bar gauge");
    assert!(expiry["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .contains("rocgw_certificate_not_after_timestamp_seconds"));
    assert_eq!(expiry["fieldConfig"]["defaults"]["unit"], "d");
    let steps: Vec<(String, Option<f64>)> = expiry["fieldConfig"]["defaults"]["thresholds"]
        ["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["color"].as_str().unwrap().to_string(),
                s["value"].as_f64(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("red".to_string(), None),
            ("#EAB839".to_string(), Some(7.0)),
            ("green".to_string(), Some(30.0))
        ]
    );
}

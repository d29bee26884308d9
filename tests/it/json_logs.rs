//! `--log-format json`: every line the process writes, on stdout and stderr, is one JSON object
//! with a `target` (so the `rocgw::audit` records can be routed apart), the fatal start-up line
//! included; a refused request and a served one name the same facts with the same fields.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// Every line parsed, or the test fails naming the line that is not a JSON object.
fn objects(stream: &str, lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{stream}: not JSON ({e}): {l}"));
            assert!(v.is_object(), "{stream}: not an object: {l}");
            for field in ["timestamp", "level", "target"] {
                assert!(v[field].is_string(), "{stream}: no {field}: {l}");
            }
            v
        })
        .collect()
}

/// Fields the refusal line and the audit record both carry, with the same meaning.
const SHARED: [&str; 7] = [
    "caller",
    "structure",
    "amc",
    "service",
    "outcome",
    "status",
    "latency_ms",
];

#[test]
fn json_logs_are_objects_with_a_target_and_requests_share_field_names() {
    let tmp = scratch();
    let data = tmp.path().join("sandbox");
    std::fs::create_dir(&data).unwrap();
    sandbox_data(&data);
    // The sandbox: its in-process simulator answers the served call, and without `[audit]
    // file` the audit records are log events.
    let mut child = spawn(&sandbox_args(&["--log-format", "json"], &data), &[]);
    let out = lines(child.stdout.take().unwrap(), None);
    let err = lines(child.stderr.take().unwrap(), None);
    let mut stderr: Vec<String> = Vec::new();
    let mut gateway: Option<SocketAddr> = None;
    wait_for("the gateway's listening event", START_TIMEOUT, || {
        stderr.extend(err.try_iter());
        gateway = stderr.iter().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["message"] == "gateway listening").then_some(())?;
            v["url"].as_str()?.strip_prefix("http://")?.parse().ok()
        });
        gateway.is_some()
    });
    let gw = gateway.unwrap();

    let sample = std::fs::read_to_string(data.join("idb-request.xml")).unwrap();
    let served = post(gw, "/amc/99999991/idb", CT12, &sample);
    assert_eq!(served.status, 200, "{}", served.body);
    let refused = post(gw, "/amc/00000000/idb", CT12, &envelope12("<a/>"));
    assert_eq!(refused.header("x-rocgw-error"), Some("unknown-amc"));
    wait_for("the two request lines", Duration::from_secs(10), || {
        stderr.extend(err.try_iter());
        let has = |m: &str| stderr.iter().any(|l| l.contains(m));
        has("signed AMC call") && has("request refused")
    });
    // Stopped the way a service manager does; the rest of the output read to its end.
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "{code:?}");
    stderr.extend(err.iter());
    let stdout: Vec<String> = out.iter().collect();

    objects("stdout", &stdout);
    let logs = objects("stderr", &stderr);
    assert!(
        logs.iter().any(|v| v["message"] == "stopped"),
        "read to the end: {stderr:?}"
    );
    let find = |m: &str| {
        logs.iter()
            .find(|v| v["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} in {stderr:?}"))
    };
    let audit = find("signed AMC call");
    let refusal = find("request refused");
    // The audit records can be filtered by their target, as the README says.
    assert_eq!(audit["target"], "rocgw::audit");
    assert_ne!(refusal["target"], "rocgw::audit");
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let (a, r) = (keys(audit), keys(refusal));
    for field in SHARED {
        assert!(
            a.contains(field) && r.contains(field),
            "{field}: audit {a:?}, refusal {r:?}"
        );
    }
    assert!(!r.contains("fault"), "one name for the outcome: {r:?}");
    // The same caller (anonymous, by its address) under the same name in both.
    assert_eq!(audit["caller"], refusal["caller"], "{audit} / {refusal}");
    assert_eq!(refusal["caller"], "ip:127.0.0.1");
    assert_eq!(
        (&audit["amc"], &audit["service"], &audit["outcome"]),
        (
            &Value::from("99999991"),
            &Value::from("idb"),
            &Value::from("ok")
        )
    );
    assert_eq!(
        (&refusal["amc"], &refusal["service"], &refusal["outcome"]),
        (
            &Value::from("00000000"),
            &Value::from("idb"),
            &Value::from("unknown-amc")
        )
    );
    assert_eq!(refusal["status"].as_u64(), Some(u64::from(refused.status)));
    // Bodies never reach the logs.
    assert!(!stderr.iter().any(|l| l.contains("PATIENT-TEST")));
}

fn fails_in_json(config: &Path) -> (Option<i32>, Vec<String>, Vec<String>) {
    let out = run(
        &[
            "--log-format",
            "json",
            "serve",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let text = |b: &[u8]| {
        String::from_utf8_lossy(b)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_refused_start_up_says_why_in_one_json_line() {
    let tmp = scratch();
    // Before the configuration is read (the logs are not started yet).
    let (code, stdout, stderr) = fails_in_json(&tmp.path().join("missing.toml"));
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout:?}");
    assert_eq!(stderr.len(), 1, "one line: {stderr:?}");
    let v = &objects("stderr", &stderr)[0];
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["message"].as_str().unwrap().contains("missing.toml"),
        "{v}"
    );

    // After it was read: the logs started from it, the credentials refused.
    let text = with_identity("sign", "negative/sign-expired.p12");
    let (code, stdout, stderr) = fails_in_json(&write_config(tmp.path(), &text));
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout:?}");
    let logs = objects("stderr", &stderr);
    let errors: Vec<&Value> = logs.iter().filter(|v| v["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 1, "{stderr:?}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("identity.sign: certificate expired on"),
        "{stderr:?}"
    );
}

#[test]
fn without_a_level_rocgw_logs_at_info_and_a_quiet_level_keeps_the_audit_records() {
    let tmp = scratch();
    let data = tmp.path().join("sandbox");
    std::fs::create_dir(&data).unwrap();
    sandbox_data(&data);
    // No level anywhere (RUST_LOG empty, no configuration): info.
    let p = Proc::start(&sandbox_args(&[], &data), &[("RUST_LOG", "")]);
    p.logs_until(Duration::from_secs(10), |l| {
        l.contains("INFO") && l.contains("gateway listening")
    });
    drop(p);
    let sample = std::fs::read_to_string(data.join("idb-request.xml")).unwrap();

    // `warn`: nothing at info but the audit records.
    let p = Proc::start(&sandbox_args(&["--log-level", "warn"], &data), &[]);
    let served = post(p.gateway, "/amc/99999991/idb", CT12, &sample);
    assert_eq!(served.status, 200, "{}", served.body);
    let logs = p.logs_until(Duration::from_secs(10), |l| l.contains("signed AMC call"));
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("INFO") && !l.contains("signed AMC call")),
        "{logs:?}"
    );
}

//! The zero-setup sandbox: `rocgw serve` with no configuration anywhere generates a test PKI,
//! says SANDBOX loudly, marks every response, and prints a curl command that works as pasted.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn sandbox(data: &Path, extra: &[&str]) -> Proc {
    assert!(
        !Path::new("/etc/rocgw/rocgw.toml").exists(),
        "/etc/rocgw/rocgw.toml exists on this machine: the sandbox cannot be tested here"
    );
    let mut args = vec![
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Proc::start(&args, &[])
}

#[test]
fn sandbox_runs_marked_and_its_curl_example_works_as_printed() {
    let tmp = scratch();
    let p = sandbox(tmp.path(), &[]);
    assert!(
        p.stdout
            .contains("SANDBOX — TEST CERTIFICATES, NOT FOR PATIENTS"),
        "{}",
        p.stdout
    );
    assert!(tmp.path().join("pki/manifest.json").exists());
    assert!(tmp.path().join("rocgw-sandbox.toml").exists());
    let logs = p.stderr_lines().join("\n");
    assert!(
        logs.contains("crls=3"),
        "the sandbox checks revocation with the test CRLs: {logs}"
    );

    let h = http(p.admin, "GET", "/healthz", &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("x-rocgw-sandbox"), Some("1"));
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);

    // One curl per structure of the test group, each signed as its structure.
    let curls: Vec<&str> = p
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    assert_eq!(curls.len(), 2, "one curl per structure in {}", p.stdout);
    for (curl, structure) in curls.iter().zip(["1990000012", "1990000020"]) {
        let url = format!("http://{}/amc/", p.gateway);
        assert!(curl.contains(&url), "{curl} should target {url}");
        assert!(
            curl.contains(&format!("X-Rocgw-Structure: {structure}")),
            "{curl}"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(curl)
            .output()
            .unwrap_or_else(|e| panic!("sh: {e}"));
        assert!(
            out.status.success(),
            "curl failed (is curl installed? `bash .ci/run` installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(text.contains("x-rocgw-sandbox: 1"), "{text}");
        // The gateway found the endpoint through the simulated annuaire; the simulated AMC
        // verified the stamped request and answered.
        assert!(text.starts_with("http/1.1 200"), "{text}");
        assert!(text.contains("droits ouverts"), "{text}");
    }
    // Each structure asks the annuaire with its own AUTH_CLI, into its own cache.
    let m = scrape(p.admin);
    assert_eq!(
        metric(&m, "rocgw_annuaire_calls_total", &[("outcome", "found")]),
        2.0
    );
    for structure in ["1990000012", "1990000020"] {
        let signed = [("structure", structure), ("outcome", "ok")];
        assert_eq!(
            metric(&m, "rocgw_requests_total", &signed),
            1.0,
            "{structure}"
        );
    }
    // The rule holds in the sandbox: an anonymous caller signs as the default structure only.
    let ask = |structure: &str| {
        let h = [("X-Rocgw-Structure", structure), ("Content-Type", CT12)];
        http(
            p.gateway,
            "POST",
            "/amc/99999991/idb",
            &h,
            envelope12("<a/>").as_bytes(),
        )
    };
    assert_eq!(ask("1990000012").status, 200);
    assert_eq!(
        ask("1990000020").header("x-rocgw-error"),
        Some("unauthorized")
    );

    // Every gateway response is marked, faults included.
    let r = post(p.gateway, "/amc/00000000/idb", CT12, &envelope12("<a/>"));
    assert_eq!(r.header("x-rocgw-sandbox"), Some("1"));
    assert_eq!(r.header("x-rocgw-error"), Some("unknown-amc"));
    drop(p);

    // A second start reuses the test PKI.
    let before = std::fs::read_to_string(tmp.path().join("pki/manifest.json")).unwrap();
    let p = sandbox(tmp.path(), &[]);
    assert_eq!(
        before,
        std::fs::read_to_string(tmp.path().join("pki/manifest.json")).unwrap()
    );
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
}

#[test]
fn sandbox_refuses_non_loopback_addresses() {
    let tmp = scratch();
    let out = run(
        &[
            "serve",
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the sandbox listens on loopback only"),
        "{err}"
    );
}

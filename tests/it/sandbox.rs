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
    let mut args = sandbox_args(&[], data);
    args.extend_from_slice(extra);
    Proc::start(&args, &[])
}

/// The sandbox's printed curl commands, one per structure of the test group, each run as
/// pasted: through the gateway, signed as its structure, answered by the simulated AMC.
fn curls_work_as_printed(p: &Proc) {
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

    curls_work_as_printed(&p);
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

/// A port the OS had free a moment ago (the sandbox's simulator keeps its usual ports only when
/// the gateway's port is not 0).
fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Two sandboxes on one machine, sharing the data folder as two runs of a user's would: the
/// second one's simulator finds its usual ports taken and listens on free ones; both answer
/// their printed curl. A gateway port already taken stops the start with what to do.
#[test]
fn two_sandboxes_run_side_by_side_and_a_taken_port_says_what_to_do() {
    let tmp = scratch();
    sandbox_data(tmp.path());
    let with_ports = |listen: &str, admin: &str| {
        let args = [
            "serve",
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--listen",
            listen,
            "--admin-listen",
            admin,
        ];
        args.map(str::to_string)
    };
    let start = |args: &[String; 7]| Proc::start(&args.each_ref().map(String::as_str), &[]);
    let first = start(&with_ports(&free_addr(), &free_addr()));
    let second = start(&with_ports(&free_addr(), &free_addr()));
    // The usual port is the first one's, or another program's: not the second's.
    assert_ne!(sim_admin(&second).port(), 9581, "{}", second.stdout);
    assert_ne!(sim_admin(&first), sim_admin(&second));
    let logs = second.logs_until(std::time::Duration::from_secs(5), |l| {
        l.contains("listens on free ones")
    });
    assert!(logs.iter().any(|l| l.contains("usual ports are taken")));
    for p in [&first, &second] {
        assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
        curls_work_as_printed(p);
    }

    // The gateway's port stays as asked: taken, the start stops and says what to do.
    let out = run(
        &with_ports(&first.gateway.to_string(), "127.0.0.1:0")
            .each_ref()
            .map(String::as_str),
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "server.listen: cannot listen on {}",
            first.gateway
        )) && err.contains("--listen 127.0.0.1:PORT"),
        "{err}"
    );
    // The first sandbox still serves.
    curls_work_as_printed(&first);
}

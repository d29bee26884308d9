//! Local access control: loopback by default; any other bind address needs a caller check; a
//! refused caller gets the `unauthorized` fault.

use std::fs;
use std::net::SocketAddr;

use crate::support::*;

const TOKEN: &str = "it-token-0123456789abcdef";

fn loopback(a: SocketAddr) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], a.port()))
}

fn start(access: &str, extra_server: &str, env: &[(&str, &str)]) -> (Proc, tempfile::TempDir) {
    let tmp = scratch();
    let text = config_text(extra_server, &format!("\n[access]\n{access}\n")).replace(
        "listen = \"127.0.0.1:0\"\nadmin_listen",
        "listen = \"0.0.0.0:0\"\nadmin_listen",
    );
    let cfg = write_config(tmp.path(), &text);
    let p = Proc::start(&["serve", "--config", cfg.to_str().unwrap()], env);
    assert!(p.gateway.ip().is_unspecified(), "{}", p.gateway);
    (p, tmp)
}

#[test]
fn non_loopback_without_a_caller_check_refuses_to_start() {
    let tmp = scratch();
    let text = config_text("", "").replace(
        "listen = \"127.0.0.1:0\"\nadmin",
        "listen = \"0.0.0.0:0\"\nadmin",
    );
    let cfg = write_config(tmp.path(), &text);
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "server.listen: 0.0.0.0:0 is not a loopback address: configure a caller check"
        ),
        "{err}"
    );
    // Same through the command line override.
    let cfg = write_config(tmp.path(), &config_text("", ""));
    let out = run(
        &[
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--admin-listen",
            "0.0.0.0:0",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("server.admin_listen: 0.0.0.0:0 is not a loopback"));
}

#[test]
fn bearer_token_from_a_file_is_required() {
    let tok = scratch();
    let token_file = tok.path().join("token");
    fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (p, _tmp) = start(
        &format!("token_file = \"{}\"", token_file.display()),
        "",
        &[],
    );
    let gw = loopback(p.gateway);
    let body = envelope12("<a/>");

    let r = post(gw, "/amc/22222222/idb", CT12, &body);
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-rocgw-error"), Some("unauthorized"));
    assert_eq!(parse_fault(&r.body).code, "unauthorized");

    let r = http(
        gw,
        "POST",
        "/amc/22222222/idb",
        &[
            ("Content-Type", CT11),
            ("Authorization", "Bearer not-the-token-at-all"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 500, "SOAP 1.1 binding");
    assert_eq!(r.header("x-rocgw-error"), Some("unauthorized"));
    assert_eq!(parse_fault(&r.body).envelope_ns, SOAP11_NS);

    let auth = format!("Bearer {TOKEN}");
    let r = http(
        gw,
        "POST",
        "/amc/22222222/idb",
        &[("Content-Type", CT12), ("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("unknown-amc"),
        "the token lets the request through"
    );

    // Probes stay open for supervisors; the token is never logged.
    assert_eq!(
        http(loopback(p.admin), "GET", "/healthz", &[], b"").status,
        200
    );
    let logs = p.stderr_lines().join("\n");
    assert!(!logs.contains(TOKEN), "token in logs: {logs}");
}

#[test]
fn token_from_env_and_precise_status() {
    let (p, _tmp) = start(
        "token_env = \"ROCGW_IT_TOKEN\"",
        "http_status = \"precise\"",
        &[("ROCGW_IT_TOKEN", TOKEN)],
    );
    let r = post(
        loopback(p.gateway),
        "/amc/22222222/idb",
        CT11,
        &envelope11("<a/>"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-rocgw-error"), Some("unauthorized"));
}

#[test]
fn cidr_allowlist_refuses_other_networks() {
    let (p, _tmp) = start("allow_cidrs = [\"10.99.0.0/16\"]", "", &[]);
    let r = post(
        loopback(p.gateway),
        "/amc/22222222/idb",
        CT12,
        &envelope12("<a/>"),
    );
    assert_eq!(r.header("x-rocgw-error"), Some("unauthorized"));
    assert_eq!(r.status, 400);
    drop(p);

    let (p, _tmp) = start("allow_cidrs = [\"10.99.0.0/16\", \"127.0.0.0/8\"]", "", &[]);
    let r = post(
        loopback(p.gateway),
        "/amc/22222222/idb",
        CT12,
        &envelope12("<a/>"),
    );
    assert_eq!(r.header("x-rocgw-error"), Some("unknown-amc"));
}

#[test]
fn short_tokens_and_bad_cidrs_are_config_errors() {
    let tmp = scratch();
    let cfg = write_config(
        tmp.path(),
        &config_text("", "\n[access]\nallow_cidrs = [\"10.0.0.0/33\"]\n"),
    );
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("access.allow_cidrs[0]: not an IP network")
    );

    let cfg = write_config(
        tmp.path(),
        &config_text("", "\n[access]\ntoken_env = \"ROCGW_IT_SHORT\"\n"),
    );
    let out = run(
        &["serve", "--config", cfg.to_str().unwrap()],
        &[("ROCGW_IT_SHORT", "short")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("access.token_env: the token must be at least 16 characters"),
        "{err}"
    );
}

//! Local access control: loopback by default; any other bind address needs a caller check; a
//! refused caller gets the `unauthorized` fault.

use std::fs;
use std::net::SocketAddr;

use crate::support::*;

/// Test secrets carry the `it-secret-` marker: `.ci/run` fails if it shows up in any output.
const TOKEN: &str = "it-secret-token-0123456789";

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

/// A gateway on the simulator with `server` in its `[server]` section, `access` as its
/// `[access]` section and an audit file; returns the process, its folder and the audit path.
fn sim_gateway(
    s: &crate::sim::SimFixture,
    server: &str,
    access: &str,
) -> (Proc, tempfile::TempDir, std::path::PathBuf) {
    let dir = scratch();
    let audit = audit_file(dir.path());
    let tail = format!(
        "\n[access]\n{access}\n\n[audit]\nfile = \"{}\"\n",
        audit.display()
    );
    let text = s.config_text(
        &server.replace("@DIR", dir.path().to_str().unwrap()),
        "",
        "",
        &tail,
        3_000,
    );
    let cfg = write_config(dir.path(), &text);
    (Proc::with_config(&cfg), dir, audit)
}

const IDB: &str = "/amc/99999991/idb";

/// A `[server.tls]` section with the test PKI's local gateway certificate, `client_ca` and,
/// when given, a client CRL.
fn tls_section(client_ca: &std::path::Path, crl: Option<&std::path::Path>) -> String {
    let crls = crl.map_or(String::new(), |c| {
        format!("client_crls = [\"{}\"]\n", c.display())
    });
    format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = [\"{}\"]\n{crls}",
        pki_path("local/gateway.chain.pem").display(),
        pki_path("local/gateway.key").display(),
        client_ca.display(),
    )
}

/// Puts a copy of the test PKI's `rel` at `dst` the way an operator should: written aside,
/// then renamed into place.
fn install(rel: &str, dst: &std::path::Path) {
    let tmp = dst.with_extension("new");
    fs::copy(pki_path(rel), &tmp).unwrap();
    fs::rename(&tmp, dst).unwrap();
}

fn idb_body() -> String {
    envelope12("<r:req xmlns:r=\"urn:test\"><r:nir>1</r:nir></r:req>")
}

/// The `caller` of each audit record, once there are `n`.
fn audit_callers(audit: &std::path::Path, n: usize) -> Vec<String> {
    audit_records(audit, n)
        .iter()
        .map(|v| v["caller"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn mutual_tls_and_unix_socket_refuse_without_accept_with_and_name_the_caller() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let s = crate::sim::SimFixture::start(|_| {});
    let p = |r: &str| pki_path(r).display().to_string();
    let server = format!(
        "unix_socket = \"@DIR/gw.sock\"\nunix_socket_mode = \"0600\"\n\n{}",
        tls_section(&pki_path("local/ca.pem"), None)
    );
    let me = fs::metadata(scratch().path()).unwrap().uid();
    let (gw, dir, audit) = sim_gateway(&s, &server, &format!("unix_uids = [{me}]"));
    assert!(
        gw.stdout.contains("gateway listening on https://"),
        "{}",
        gw.stdout
    );
    let url = format!("https://localhost:{}{IDB}", gw.gateway.port());
    let ca = p("local/ca.pem");
    let with = |extra: &[&str]| {
        let mut args = vec!["--cacert", ca.as_str()];
        args.extend_from_slice(extra);
        curl(&url, &args, CT12, &idb_body())
    };

    // Refused without a client certificate, and with one from another CA: no HTTP at all.
    let e = with(&[]).unwrap_err();
    assert!(e.contains("curl exit"), "{e}");
    let (fc, fk) = (
        p("negative/local-client-unknown-ca.pem"),
        p("negative/local-client-unknown-ca.key"),
    );
    assert!(with(&["--cert", &fc, "--key", &fk]).is_err());
    // Plain HTTP on the TLS port gets nothing signed either.
    let mut raw = std::net::TcpStream::connect(gw.gateway).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    use std::io::{Read as _, Write as _};
    let _ = raw.write_all(format!("POST {IDB} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    // Accepted with the local CA's client certificate.
    let (cc, ck) = (p("local/client.pem"), p("local/client.key"));
    let r = with(&["--cert", &cc, "--key", &ck]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Droits ouverts"), "{}", r.body);

    // The Unix socket: created with the configured mode, served to an allowed user id.
    let sock = dir.path().join("gw.sock");
    let mode = fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let sock_arg = sock.to_str().unwrap();
    let r = curl(
        &format!("http://localhost{IDB}"),
        &["--unix-socket", sock_arg],
        CT12,
        &idb_body(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    if me == 0 {
        // As root, show the file mode at work too: another user cannot even connect.
        let out = tool(
            "setpriv",
            &[
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "curl",
                "-sS",
                "--unix-socket",
                sock_arg,
                "http://localhost/healthz",
            ],
            dir.path(),
        );
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Couldn't connect"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    assert_eq!(
        audit_callers(&audit, 2),
        ["cert:SIH TEST DPI".to_string(), format!("uid:{me}")]
    );
}

#[test]
fn named_tokens_and_socket_user_ids_refuse_strangers_and_name_the_caller() {
    let s = crate::sim::SimFixture::start(|_| {});
    let tokens = scratch();
    let (dpi, gap) = (tokens.path().join("dpi"), tokens.path().join("gap"));
    fs::write(&dpi, "it-secret-dpi-admission-01\n").unwrap();
    fs::write(&gap, "it-secret-gap-facturation-02\n").unwrap();
    let access = format!(
        "unix_uids = [4242424]\n\n\
         [[access.callers]]\nname = \"dpi-admission\"\ntoken_file = \"{}\"\n\n\
         [[access.callers]]\nname = \"gap-facturation\"\ntoken_file = \"{}\"\n",
        dpi.display(),
        gap.display()
    );
    let (gw, dir, audit) = sim_gateway(&s, "unix_socket = \"@DIR/gw.sock\"", &access);
    let call = |token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut h = vec![("Content-Type", CT12)];
        if let Some(a) = &auth {
            h.push(("Authorization", a.as_str()));
        }
        http(gw.gateway, "POST", IDB, &h, idb_body().as_bytes())
    };
    for bad in [None, Some("it-secret-gap-facturation-03")] {
        let r = call(bad);
        assert_eq!(
            r.header("x-rocgw-error"),
            Some("unauthorized"),
            "{}",
            r.body
        );
    }
    assert_eq!(call(Some("it-secret-gap-facturation-02")).status, 200);
    assert_eq!(call(Some("it-secret-dpi-admission-01")).status, 200);

    // A socket caller whose user id is not listed is refused, whatever its token.
    let r = curl(
        &format!("http://localhost{IDB}"),
        &[
            "--unix-socket",
            dir.path().join("gw.sock").to_str().unwrap(),
            "-H",
            "Authorization: Bearer it-secret-dpi-admission-01",
        ],
        CT12,
        &idb_body(),
    )
    .unwrap();
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("unauthorized"),
        "{}",
        r.body
    );
    assert!(r.body.contains("unix_uids"), "{}", r.body);

    assert_eq!(
        audit_callers(&audit, 2),
        ["token:gap-facturation", "token:dpi-admission"]
    );
    // The log names the refused caller's transport, never the token it presented.
    let logs = gw.stderr_lines().join("\n");
    assert!(!logs.contains("it-secret-gap-facturation-03"), "{logs}");
}

#[test]
fn local_tls_refuses_revoked_clients_and_takes_a_new_client_ca_without_restart() {
    let s = crate::sim::SimFixture::start(|_| {});
    let p = |r: &str| pki_path(r).display().to_string();
    let files = scratch();
    let ca = files.path().join("client-ca.pem");
    // At first the listener trusts another CA than the one of the SIH certificates.
    fs::copy(pki_path("osi/root.pem"), &ca).unwrap();
    let server = tls_section(&ca, Some(&pki_path("local/ca.crl.pem")));
    let (gw, _dir, _audit) = sim_gateway(&s, &server, "");
    let url = format!("https://localhost:{}{IDB}", gw.gateway.port());
    let local_ca = p("local/ca.pem");
    let as_client = |base: &str| {
        let (cert, key) = (p(&format!("{base}.pem")), p(&format!("{base}.key")));
        curl(
            &url,
            &["--cacert", &local_ca, "--cert", &cert, "--key", &key],
            CT12,
            &idb_body(),
        )
    };
    assert!(as_client("local/client").is_err(), "not trusted yet");

    // The hospital installs its local CA and reloads: no restart, the listener stays up.
    install("local/ca.pem", &ca);
    gw.signal("HUP");
    wait_for(
        "the new client CA",
        std::time::Duration::from_secs(10),
        || as_client("local/client").is_ok_and(|r| r.status == 200),
    );
    // A certificate of that CA listed in its CRL is refused.
    let e = as_client("negative/local-client-revoked").unwrap_err();
    assert!(e.contains("curl exit"), "{e}");
}

#[test]
fn the_load_generator_reaches_every_kind_of_listener_with_its_credentials() {
    let s = crate::sim::SimFixture::start(|_| {});
    let p = |r: &str| pki_path(r).display().to_string();
    let tokens = scratch();
    let token = tokens.path().join("load");
    fs::write(&token, "it-secret-load-generator-1\n").unwrap();
    let server = format!(
        "unix_socket = \"@DIR/gw.sock\"\n\n{}",
        tls_section(&pki_path("local/ca.pem"), None)
    );
    let access = format!(
        "[[access.callers]]\nname = \"integrator-load\"\ntoken_file = \"{}\"\n",
        token.display()
    );
    let (gw, dir, audit) = sim_gateway(&s, &server, &access);
    let load = |extra: &[&str]| {
        let report = dir.path().join("load.json");
        let mut args = vec![
            "load",
            "--requests",
            "20",
            "--warmup",
            "0s",
            "--concurrency",
            "2",
            "--mix",
            "99999991/idb",
            "--quiet",
            "--json",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = run(&args, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.code(),
            text,
            fs::read_to_string(&report).unwrap_or_default(),
        )
    };
    let port = gw.gateway.port().to_string();
    let target = format!("127.0.0.1:{port}");
    let tls = [
        "--target",
        target.as_str(),
        "--tls-ca",
        &p("local/ca.pem"),
        "--tls-cert",
        &p("local/client.pem"),
        "--tls-key",
        &p("local/client.key"),
        "--token-file",
        token.to_str().unwrap(),
    ];
    let (code, text, json) = load(&tls);
    assert_eq!(code, Some(0), "{text}");
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (r["ok"].as_u64(), r["errors"].as_u64()),
        (Some(20), Some(0)),
        "{text}"
    );
    assert!(text.contains("https://127.0.0.1:"), "{text}");

    let sock = dir.path().join("gw.sock");
    let (code, text, json) = load(&[
        "--target",
        "127.0.0.1:1",
        "--unix-socket",
        sock.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["ok"].as_u64(), Some(20), "{text}");

    // Without the token, every request is refused, and the run says so.
    let (_, text, json) = load(&tls[..8]);
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["ok"].as_u64(), Some(0), "{text}");
    assert!(text.contains("unauthorized"), "{text}");

    let callers = audit_callers(&audit, 40);
    assert!(
        callers
            .iter()
            .all(|c| c == "cert:SIH TEST DPI" || c == "token:integrator-load"),
        "{callers:?}"
    );
}

/// One request on a kept-alive connection: status, the head (lower-case), the body.
fn exchange(s: &mut (impl std::io::Read + std::io::Write), body: &str) -> (u16, String, String) {
    write!(
        s,
        "POST {IDB} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {CT12}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut b = vec![0u8; len];
    s.read_exact(&mut b).unwrap();
    (status, head, String::from_utf8_lossy(&b).to_string())
}

#[test]
fn an_open_connection_is_checked_again_after_a_reload() {
    let s = crate::sim::SimFixture::start(|_| {});
    let files = scratch();
    let ca = files.path().join("client-ca.pem");
    fs::copy(pki_path("local/ca.pem"), &ca).unwrap();
    let server = tls_section(&ca, None);
    let (gw, _dir, _audit) = sim_gateway(&s, &server, "");
    // An SIH client (rustls, blocking) with the local CA's client certificate.
    let mut roots = rustls::RootCertStore::empty();
    for c in rocgw::identity::read_pem_certs(&pki_path("local/ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let ck = rocgw::identity::certified_key_from_pem(
        &pki_path("local/client.pem"),
        &pki_path("local/client.key"),
    )
    .unwrap();
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(rocgw::crypto::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(std::sync::Arc::new(rustls::sign::SingleCertAndKey::from(
                ck,
            ))),
    );
    let connect = || {
        let conn =
            rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
        let tcp = std::net::TcpStream::connect(gw.gateway).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        rustls::StreamOwned::new(conn, tcp)
    };
    let reloads = || {
        metric(
            &scrape(gw.admin),
            "rocgw_reloads_total",
            &[("outcome", "ok")],
        )
    };
    let reload = |n: f64| {
        gw.signal("HUP");
        wait_for("the reload", std::time::Duration::from_secs(10), || {
            reloads() >= n
        });
    };

    let mut sih = connect();
    let (status, head, _) = exchange(&mut sih, &idb_body());
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");
    // A reload that changes nothing for this client: served, then the connection is closed so
    // the next request shakes hands under the configuration in force.
    reload(1.0);
    let (status, head, _) = exchange(&mut sih, &idb_body());
    assert_eq!(status, 200);
    assert!(head.contains("connection: close"), "{head}");

    // The local CA is no longer trusted: a connection opened before the reload is refused at its
    // next request.
    let mut sih = connect();
    assert_eq!(exchange(&mut sih, &idb_body()).0, 200);
    install("osi/root.pem", &ca);
    reload(2.0);
    let (status, head, body) = exchange(&mut sih, &idb_body());
    assert_eq!(status, 403, "{head}{body}");
    assert!(body.contains("no longer accepted"), "{body}");
}

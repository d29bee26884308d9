//! Start-up: a good configuration starts and prints its ports; every bad configuration or
//! certificate stops the process with exit code 2 and one clear line naming the file and field,
//! never a panic, a backtrace or a secret.

use std::fs;

use crate::support::*;

/// Runs `serve --config <text>` and returns (exit code, stderr).
fn start_fails(text: &str) -> (Option<i32>, String) {
    let tmp = scratch();
    let cfg = write_config(tmp.path(), text);
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.code(), err)
}

fn assert_clear(err: &str) {
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one clear line, got: {err}");
    assert!(lines[0].starts_with("rocgw: error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(!err.contains(&p12_password()), "the password leaked: {err}");
}

#[test]
fn good_config_starts_with_ephemeral_ports_and_is_ready() {
    let tmp = scratch();
    let cfg = write_config(tmp.path(), &config_text("", ""));
    let p = Proc::with_config(&cfg);
    assert_ne!(p.gateway.port(), 0);
    assert_ne!(p.admin.port(), 0);
    assert_ne!(p.gateway, p.admin);
    assert!(p.gateway.ip().is_loopback());
    let r = http(p.admin, "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-rocgw-sandbox"), None, "not a sandbox");
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
    // Probes live on the admin listener only.
    assert_eq!(http(p.gateway, "GET", "/healthz", &[], b"").status, 400);
}

#[test]
fn listen_overrides_on_the_command_line_win() {
    let tmp = scratch();
    let text = config_text("", "").replace("127.0.0.1:0", "127.0.0.1:1");
    let cfg = write_config(tmp.path(), &text);
    let p = Proc::with_config_and_free_ports(&cfg, &[]);
    assert_ne!(p.gateway.port(), 1);
    assert_eq!(http(p.admin, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn missing_config_file_is_one_clear_line() {
    let out = run(&["serve", "--config", "/nonexistent/rocgw.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_clear(&err);
    assert!(
        err.contains("/nonexistent/rocgw.toml: config file not found"),
        "{err}"
    );
    // ROCGW_CONFIG names the file too, and never falls back to the sandbox.
    let out = run(&["serve"], &[("ROCGW_CONFIG", "/nonexistent/env.toml")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("/nonexistent/env.toml: config file not found"));
}

#[test]
fn malformed_and_unknown_keys_name_file_and_field() {
    let (code, err) = start_fails("[server\nlisten = 1");
    assert_eq!(code, Some(2));
    assert_clear(&err);
    assert!(
        err.contains("rocgw.toml: ") && err.contains("line 1"),
        "{err}"
    );

    let (code, err) = start_fails(&config_text("listn = \"127.0.0.1:0\"", ""));
    assert_eq!(code, Some(2));
    assert_clear(&err);
    assert!(
        err.contains("rocgw.toml: server.listn: unknown field `listn`"),
        "{err}"
    );

    let (code, err) = start_fails(&config_text("http_status = \"strict\"", ""));
    assert_eq!(code, Some(2));
    assert!(err.contains("server.http_status"), "{err}");
}

#[test]
fn missing_certificate_file_names_the_field_and_path() {
    let text = config_text("", "").replace(
        pki_path("org/sign.p12").to_str().unwrap(),
        "/etc/rocgw/nowhere/sign.p12",
    );
    let (code, err) = start_fails(&text);
    assert_eq!(code, Some(2));
    assert_clear(&err);
    assert!(
        err.contains("identity.sign.p12: file not found: /etc/rocgw/nowhere/sign.p12"),
        "{err}"
    );
}

#[test]
fn inline_secrets_and_missing_env_are_refused() {
    let pw_line = format!(
        "password_file = \"{}\"",
        pki_path("secrets/p12-password").display()
    );
    let text = config_text("", "").replacen(&pw_line, "password = \"hunter2-inline\"", 1);
    let (code, err) = start_fails(&text);
    assert_eq!(code, Some(2));
    assert_clear(&err);
    assert!(
        err.contains("identity.auth_cli.password: secrets are never written in the config file"),
        "{err}"
    );
    assert!(!err.contains("hunter2-inline"));

    let text = config_text("", "").replacen(&pw_line, "password_env = \"ROCGW_IT_UNSET_VAR\"", 1);
    let (code, err) = start_fails(&text);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(
            "identity.auth_cli.password_env: environment variable ROCGW_IT_UNSET_VAR is not set"
        ),
        "{err}"
    );
}

#[test]
fn wrong_p12_password_names_the_identity_and_hides_the_password() {
    let tmp = scratch();
    let wrong = tmp.path().join("wrong-password");
    fs::write(&wrong, "Sup3r-Secret-Wrong-Pass\n").unwrap();
    let pw = pki_path("secrets/p12-password").display().to_string();
    let text = config_text("", "").replacen(&pw, wrong.to_str().unwrap(), 2);
    let cfg = write_config(tmp.path(), &text);
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_clear(&err);
    assert!(
        err.contains("identity.auth_cli: cannot open PKCS#12") && err.contains("wrong password"),
        "{err}"
    );
    assert!(!err.contains("Sup3r-Secret-Wrong-Pass"), "{err}");
}

#[test]
fn wrong_expired_or_mismatched_certificates_are_refused_at_start_up() {
    let cases = [
        ("sign", "negative/sign-expired.p12", "identity.sign: certificate expired on"),
        ("sign", "negative/sign-key-mismatch.p12", "identity.sign: the private key does not match the certificate"),
        ("sign", "org/auth_cli.p12", "identity.sign: extendedKeyUsage is clientAuth: this is an AUTH_CLI certificate, not a SIGN certificate"),
        ("auth_cli", "org/sign.p12", "identity.auth_cli: extendedKeyUsage lacks clientAuth: not an AUTH_CLI certificate"),
    ];
    for (slot, file, expected) in cases {
        let (code, err) = start_fails(&with_identity(slot, file));
        assert_eq!(code, Some(2), "{file}: {err}");
        assert_clear(&err);
        assert!(
            err.contains(expected),
            "{file}: expected {expected:?} in {err}"
        );
    }
    // Legacy encryptions load like the CA delivers them.
    for (slot, file) in [
        ("auth_cli", "org/auth_cli.3des.p12"),
        ("sign", "org/sign.rc2-40.p12"),
    ] {
        let tmp = scratch();
        let cfg = write_config(tmp.path(), &with_identity(slot, file));
        let p = Proc::with_config(&cfg);
        assert_eq!(
            http(p.admin, "GET", "/readyz", &[], b"").status,
            200,
            "{file}"
        );
    }
}

#[test]
fn pem_identity_with_mismatched_key_is_refused() {
    let text = config_text("", "").replacen(
        &format!(
            "p12 = \"{}\"\npassword_file = \"{}\"",
            pki_path("org/sign.p12").display(),
            pki_path("secrets/p12-password").display()
        ),
        &format!(
            "cert = \"{}\"\nkey = \"{}\"",
            pki_path("negative/sign-key-mismatch.pem").display(),
            pki_path("negative/sign-key-mismatch.key").display()
        ),
        1,
    );
    assert!(text.contains("sign-key-mismatch.key"));
    let (code, err) = start_fails(&text);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("identity.sign: the private key does not match the certificate"),
        "{err}"
    );
}

/// A PEM key `openssl` encrypted (PKCS#8, and OpenSSL's older `Proc-Type` form), or a file
/// with no key in it, is one clear line naming the file.
#[test]
fn pem_identity_with_an_encrypted_or_missing_key_says_so() {
    let tmp = scratch();
    let plain = pki_path("org/sign.key").display().to_string();
    let pkcs8 = tmp.path().join("pkcs8.key");
    let legacy = tmp.path().join("legacy.key");
    for (out, args) in [
        (&pkcs8, &["pkcs8", "-topk8", "-v2", "aes-256-cbc"][..]),
        (&legacy, &["rsa", "-aes256", "-traditional"][..]),
    ] {
        let o = tool(
            "openssl",
            &[
                args,
                &[
                    "-in",
                    &plain,
                    "-passout",
                    "pass:x",
                    "-out",
                    out.to_str().unwrap(),
                ],
            ]
            .concat(),
            tmp.path(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let cert = pki_path("org/sign.chain.pem").display().to_string();
    for (key, says) in [
        (pkcs8.display().to_string(), "an encrypted private key"),
        (legacy.display().to_string(), "an encrypted private key"),
        (cert.clone(), "no PEM private key in it"),
    ] {
        let text = config_text("", "").replacen(
            &format!(
                "p12 = \"{}\"\npassword_file = \"{}\"",
                pki_path("org/sign.p12").display(),
                pki_path("secrets/p12-password").display()
            ),
            &format!("cert = \"{cert}\"\nkey = \"{key}\""),
            1,
        );
        let (code, err) = start_fails(&text);
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains(&format!("identity.sign: {key}: {says}")),
            "{err}"
        );
        assert_clear(&err);
    }
}

#[test]
fn expiring_identity_starts_with_a_warning() {
    let tmp = scratch();
    let cfg = write_config(
        tmp.path(),
        &with_identity("auth_cli", "negative/auth_cli-expiring.p12"),
    );
    let p = Proc::with_config(&cfg);
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
    p.logs_until(std::time::Duration::from_secs(10), |l| {
        l.contains("expires in less than 30 days")
    });
}

#[test]
fn anchors_must_be_ca_certificates() {
    let text = config_text("", "").replace(
        pki_path("osi/anchors.pem").to_str().unwrap(),
        pki_path("osi/amc-a.pem").to_str().unwrap(),
    );
    let (code, err) = start_fails(&text);
    assert_eq!(code, Some(2));
    assert_clear(&err);
    assert!(
        err.contains("trust.amc_anchors[0]") && err.contains("is not a CA certificate"),
        "{err}"
    );
}

#[test]
fn the_documented_example_config_is_valid() {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/rocgw.example.toml"
    ))
    .unwrap();
    let tmp = scratch();
    let secret = tmp.path().join("sign.pass");
    fs::write(&secret, p12_password()).unwrap();
    let p = |r: &str| pki_path(r).display().to_string();
    let text = example
        .replace("/etc/rocgw/certs/auth_cli.p12", &p("org/auth_cli.p12"))
        .replace("/etc/rocgw/certs/sign.p12", &p("org/sign.p12"))
        .replace("/etc/rocgw/secrets/sign.pass", secret.to_str().unwrap())
        .replace("/etc/rocgw/trust/igc-osi-root.pem", &p("osi/root.pem"))
        .replace("/etc/rocgw/trust/ac-serveur.pem", &p("osi/ac-serveur.pem"))
        .replace(
            "/etc/rocgw/trust/ac-services-applicatifs.pem",
            &p("osi/ac-services-applicatifs.pem"),
        )
        .replace("/etc/rocgw/trust/igc-osi-root.crl", &p("osi/root.crl.pem"))
        .replace(
            "/etc/rocgw/trust/ac-serveur.crl",
            &p("osi/ac-serveur.crl.pem"),
        )
        .replace(
            "/etc/rocgw/trust/ac-services-applicatifs.crl",
            &p("osi/ac-services-applicatifs.crl.pem"),
        );
    assert!(
        !text.contains("\n/etc/rocgw/")
            && text.contains("password_env = \"ROCGW_AUTH_CLI_PASSWORD\"")
    );
    let cfg = write_config(tmp.path(), &text);
    let p = Proc::with_config_and_free_ports(&cfg, &[("ROCGW_AUTH_CLI_PASSWORD", &p12_password())]);
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
    // Its static route resolves.
    let r = post(p.gateway, "/amc/12345678/clc", CT11, &envelope11("<a/>"));
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("amc-unavailable"),
        "{}",
        r.body
    );
}

/// A certificate made from a CSR and bundled without ACI-EL-ORG: refused at start-up with the
/// procedure's advice, not at the annuaire's handshake.
#[test]
fn an_identity_without_its_aci_el_org_is_refused_at_start_up() {
    let (code, err) = start_fails(&with_identity("auth_cli", "negative/auth_cli-no-aci.p12"));
    assert_eq!(code, Some(2), "{err}");
    assert_clear(&err);
    assert!(
        err.contains("identity.auth_cli: the certificate chain in the file stops at")
            && err.contains("ELEMENTAIRE ORGANISATIONS")
            && err.contains("ACI-EL-ORG"),
        "{err}"
    );
}

/// `environment`: production refuses TEST certificates and anchors, test refuses production
/// ones; unset, the environment detected is logged.
#[test]
fn the_environment_setting_refuses_the_other_hierarchies() {
    let with = |env: &str, text: &str| format!("environment = \"{env}\"\n{text}");
    // The test PKI in a production gateway.
    let (code, err) = start_fails(&with("production", &config_text("", "")));
    assert_eq!(code, Some(2), "{err}");
    assert_clear(&err);
    assert!(
        err.contains("environment = \"production\": identity.auth_cli")
            && err.contains("is a TEST certificate"),
        "{err}"
    );
    // A production authority (no TEST in its names) among a test gateway's anchors.
    let tmp = scratch();
    let (key, cert) = (tmp.path().join("prod.key"), tmp.path().join("prod.pem"));
    let out = tool(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/C=FR/O=EXEMPLE/CN=AC RACINE PRODUCTION",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let anchors = pki_path("osi/anchors.pem").display().to_string();
    let text = config_text("", "").replace(
        &format!("amc_anchors = [\"{anchors}\"]"),
        &format!("amc_anchors = [\"{anchors}\", \"{}\"]", cert.display()),
    );
    let (code, err) = start_fails(&with("test", &text));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("trust.amc_anchors: ")
            && err.contains("AC RACINE PRODUCTION")
            && err.contains("is a production certificate"),
        "{err}"
    );
    // The test PKI in a test gateway: served, and the environment logged.
    let tmp = scratch();
    let p = Proc::with_config(&write_config(
        tmp.path(),
        &with("test", &config_text("", "")),
    ));
    assert_eq!(http(p.admin, "GET", "/readyz", &[], b"").status, 200);
    assert!(p
        .stderr_lines()
        .iter()
        .any(|l| l.contains("environment") && l.contains("test")));
    // Unset: detected and said.
    let tmp = scratch();
    let p = Proc::with_config(&write_config(tmp.path(), &config_text("", "")));
    let logs = p.logs_until(std::time::Duration::from_secs(5), |l| {
        l.contains("environment detected")
    });
    assert!(
        logs.iter()
            .any(|l| l.contains("environment detected") && l.contains("test")),
        "{logs:?}"
    );
}

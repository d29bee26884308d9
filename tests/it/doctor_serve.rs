//! One rule between `cert doctor` and `serve`: whatever doctor reports as FAIL (exit 2), `serve`
//! refuses at start-up; whatever `serve` accepts is at most a WARN in doctor. Each case is one
//! configuration given to both commands, as real processes.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::support::*;

/// A configuration case: its text, and a line each command must print.
struct Case {
    name: &'static str,
    text: String,
    doctor_says: &'static str,
    /// `Some(line)`: serve refuses with it; `None`: serve starts.
    serve_refuses: Option<&'static str>,
}

/// `rocgw cert doctor --config` (no `--allow-test-pki`): exit code and report.
fn doctor(cfg: &Path) -> (i32, String) {
    let out = run(&["cert", "doctor", "--config", cfg.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (out.status.code().unwrap(), text)
}

/// The test configuration with one identity file replaced.
fn with_file(original: &str, replacement: &Path) -> String {
    let base = config_text("", "");
    let from = pki_path(original).display().to_string();
    assert!(base.contains(&from), "{original}");
    base.replace(&from, replacement.to_str().unwrap())
}

/// A copy of the SIGN P12 readable by everyone; the configuration with a PEM SIGN identity whose
/// certificate file is (public) 0644 and its key 0600.
fn permission_files(dir: &Path, base: &str) -> (std::path::PathBuf, String) {
    let open_p12 = dir.join("sign-0644.p12");
    fs::copy(pki_path("org/sign.p12"), &open_p12).unwrap();
    fs::set_permissions(&open_p12, fs::Permissions::from_mode(0o644)).unwrap();
    let (cert, key) = (dir.join("sign.chain.pem"), dir.join("sign.key"));
    fs::copy(pki_path("org/sign.chain.pem"), &cert).unwrap();
    fs::copy(pki_path("org/sign.key"), &key).unwrap();
    fs::set_permissions(&cert, fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let pem_sign = base.replacen(
        &format!(
            "p12 = \"{}\"\npassword_file = \"{}\"",
            pki_path("org/sign.p12").display(),
            pki_path("secrets/p12-password").display()
        ),
        &format!("cert = \"{}\"\nkey = \"{}\"", cert.display(), key.display()),
        1,
    );
    assert_ne!(pem_sign, base);
    (open_p12, pem_sign)
}

fn cases(dir: &Path) -> Vec<Case> {
    let base = config_text("", "");
    let env = |e: &str| format!("environment = \"{e}\"\n{base}");
    let (open_p12, pem_sign) = permission_files(dir, &base);
    stale_crl(dir);
    let stale_hard = format!(
        "{}\n[amc]\nrevocation = \"hard\"\n",
        base.replace(
            &format!(
                "amc_anchors = [\"{}\"]",
                pki_path("osi/anchors.pem").display()
            ),
            &format!(
                "amc_anchors = [\"{}\", \"{}\"]\ncrls = [\"{}\"]",
                pki_path("osi/anchors.pem").display(),
                dir.join("ca.pem").display(),
                dir.join("stale.crl").display()
            ),
        )
    );
    let revoked_sign = with_file("org/sign.p12", &pki_path("negative/sign-revoked.p12")).replace(
        "[trust]\n",
        &format!(
            "[trust]\nidentity_crls = [\"{}\"]\n",
            pki_path("igc-sante/aci-el-org.crl.pem").display()
        ),
    );
    let file = |f: &str| {
        with_file(
            if f.contains("auth_cli") {
                "org/auth_cli.p12"
            } else {
                "org/sign.p12"
            },
            &pki_path(f),
        )
    };
    vec![
        Case {
            name: "TEST certificates, no environment set",
            text: base.clone(),
            doctor_says: "WARN identity.sign: hierarchy: a TEST IGC-Santé certificate, and no environment set",
            serve_refuses: None,
        },
        Case {
            name: "environment = test",
            text: env("test"),
            doctor_says: "OK   identity.sign: hierarchy: TEST (environment = \"test\")",
            serve_refuses: None,
        },
        Case {
            name: "environment = production",
            text: env("production"),
            doctor_says: "FAIL identity.sign: hierarchy: a TEST certificate with environment = \"production\"",
            serve_refuses: Some("environment = \"production\""),
        },
        Case {
            name: "AUTH_CLI in its renewal month",
            text: file("negative/auth_cli-expiring.p12"),
            doctor_says: "WARN identity.auth_cli: validity: expires in",
            serve_refuses: None,
        },
        Case {
            name: "a P12 readable by everyone",
            text: with_file("org/sign.p12", &open_p12),
            doctor_says: "WARN identity.sign: permissions: ",
            serve_refuses: None,
        },
        Case {
            name: "a public certificate file",
            text: pem_sign,
            doctor_says: "OK   identity.sign: key: the private key matches",
            serve_refuses: None,
        },
        Case {
            name: "a stale CRL under the hard policy",
            text: stale_hard,
            doctor_says: "stale.crl: past its next update: under revocation = \"hard\"",
            serve_refuses: None,
        },
        Case {
            name: "a revoked SIGN certificate",
            text: revoked_sign,
            doctor_says: "FAIL identity.sign: revocation: serial",
            serve_refuses: Some("identity.sign: revocation: serial"),
        },
        Case {
            name: "AUTH_CLI and SIGN of two structures",
            text: file("org2/sign.p12"),
            doctor_says: "FAIL structure: AUTH_CLI is structure 1990000012, SIGN is structure 1990000020",
            serve_refuses: Some("AUTH_CLI is structure 1990000012, SIGN is structure 1990000020"),
        },
        Case {
            name: "a SIGN certificate of another CA",
            text: file("negative/sign-foreign.p12"),
            doctor_says: "FAIL identity.sign: chain:",
            serve_refuses: Some("identity.sign"),
        },
        Case {
            name: "an AUTH_CLI without its ACI-EL-ORG",
            text: file("negative/auth_cli-no-aci.p12"),
            doctor_says: "FAIL identity.auth_cli: chain: incomplete",
            serve_refuses: Some("ACI-EL-ORG"),
        },
    ]
}

#[test]
fn what_cert_doctor_fails_serve_refuses_and_what_serve_accepts_doctor_only_warns() {
    let tmp = scratch();
    for case in cases(tmp.path()) {
        let Case {
            name,
            text,
            doctor_says,
            serve_refuses,
        } = case;
        let dir = scratch();
        let cfg = write_config(dir.path(), &text);
        let (code, report) = doctor(&cfg);
        assert!(
            report.contains(doctor_says),
            "{name}: {doctor_says:?} in\n{report}"
        );
        assert!(
            !report.contains("sign.chain.pem"),
            "{name}: a certificate is public: {report}"
        );
        match serve_refuses {
            Some(line) => {
                assert_eq!(code, 2, "{name}: doctor FAILs\n{report}");
                let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{name}: serve refuses: {err}");
                assert!(err.contains(line), "{name}: {line:?} in {err}");
                assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
            }
            None => {
                assert_eq!(code, 0, "{name}: at most warnings\n{report}");
                assert!(
                    report.contains("OK   start-up: rocgw serve loads these credentials"),
                    "{name}: {report}"
                );
                let p = Proc::with_config(&cfg);
                let r = http(p.admin, "GET", "/healthz", &[], b"");
                assert_eq!(r.status, 200, "{name}: serve starts");
            }
        }
    }
}

/// What only `serve`'s own loading refuses is a FAIL in doctor too: its last line is the
/// start-up `serve` would make.
#[test]
fn doctor_ends_with_the_start_up_serve_would_make() {
    let tmp = scratch();
    let text = format!("environment = \"production\"\n{}", config_text("", ""));
    let (code, report) = doctor(&write_config(tmp.path(), &text));
    assert_eq!(code, 2, "{report}");
    assert!(
        report.contains("FAIL trust.amc_anchors: ") && report.contains("a TEST authority"),
        "{report}"
    );
    let start_up = report
        .lines()
        .find(|l| l.starts_with("FAIL start-up: "))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        start_up.contains("environment = \"production\""),
        "{start_up}"
    );
}

/// Token and proxy credential files are secrets like keys: `serve` warns and doctor WARNs when
/// others can read them. Certificates are public: neither says a word about them.
#[test]
fn token_and_proxy_credential_files_are_secrets_and_certificates_are_not() {
    let dir = scratch();
    let d = dir.path();
    let (token, creds) = (d.join("caller.token"), d.join("proxy.creds"));
    fs::write(&token, "it-secret-open-token-0001\n").unwrap();
    fs::write(&creds, "user:it-secret-proxy-0002\n").unwrap();
    for f in [&token, &creds] {
        fs::set_permissions(f, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (_open_p12, pem_sign) = permission_files(d, &config_text("", ""));
    let text = format!(
        "{pem_sign}\n[access]\n[[access.callers]]\nname = \"dpi\"\ntoken_file = \"{}\"\n\n\
         [proxy]\nurl = \"http://127.0.0.1:9\"\ncredentials_file = \"{}\"\n",
        token.display(),
        creds.display()
    );
    let cfg = write_config(d, &text);
    let (code, report) = doctor(&cfg);
    assert_eq!(code, 0, "{report}");
    for field in ["access.callers[0].token_file", "proxy.credentials_file"] {
        assert!(
            report.contains(&format!("WARN {field}: permissions: ")),
            "{field}: {report}"
        );
    }
    assert!(!report.contains("sign.chain.pem"), "{report}");
    let gw = Proc::with_config(&cfg);
    let logs = gw.logs_until(std::time::Duration::from_secs(10), |l| {
        l.contains("proxy.creds")
    });
    let warned = |name: &str| logs.iter().any(|l| l.contains(name) && l.contains("644"));
    assert!(warned("caller.token") && warned("proxy.creds"), "{logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("sign.chain.pem")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("it-secret-")),
        "a secret leaked"
    );
}

//! `rocgw cert …` on the test PKI, checked with `openssl`: inspect reads what openssl reads,
//! csr makes a request openssl verifies, bundle makes a PKCS#12 openssl opens, and doctor
//! flags each defect of the negative fixtures with the right line.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::support::*;

fn ok_stdout(args: &[&str]) -> String {
    let out = run(args, &[]);
    assert!(
        out.status.success(),
        "rocgw {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn openssl(args: &[&str]) -> String {
    let out = tool("openssl", args, Path::new("."));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn inspect_reads_what_openssl_reads() {
    let pw = pki_path("secrets/p12-password");
    let json = ok_stdout(&[
        "cert",
        "inspect",
        pki_path("org/sign.p12").to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["format"], "PKCS#12");
    assert_eq!(v["key_matches"], true);
    assert_eq!(v["chain_in_order"], true);
    let leaf = &v["certificates"][0];
    assert_eq!(leaf["role"], "SIGN");
    assert_eq!(leaf["structure_id"], "1990000012");
    assert_eq!(leaf["structure_kind"], "FINESS");
    assert_eq!(leaf["key"], "RSA 2048");
    let serial = openssl(&[
        "x509",
        "-in",
        pki_path("org/sign.pem").to_str().unwrap(),
        "-noout",
        "-serial",
    ]);
    assert_eq!(
        serial.trim().trim_start_matches("serial="),
        leaf["serial"].as_str().unwrap()
    );
    assert_eq!(
        v["certificates"].as_array().unwrap().len(),
        3,
        "leaf, ACI, ACR"
    );

    let text = ok_stdout(&[
        "cert",
        "inspect",
        pki_path("org/auth_cli.pem").to_str().unwrap(),
    ]);
    assert!(
        text.contains("AUTH_CLI") && text.contains("clientAuth"),
        "{text}"
    );
    let server = ok_stdout(&[
        "cert",
        "inspect",
        pki_path("osi/amc-a.pem").to_str().unwrap(),
    ]);
    assert!(server.contains("server"), "{server}");
    // A P12 without its password: a clear error, exit 2.
    let out = run(
        &[
            "cert",
            "inspect",
            pki_path("org/sign.p12").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-env"));
}

#[test]
fn csr_and_bundle_make_files_openssl_accepts() {
    let tmp = scratch();
    let (key, csr) = (tmp.path().join("sign.key"), tmp.path().join("sign.csr"));
    let msg = ok_stdout(&[
        "cert",
        "csr",
        "--role",
        "sign",
        "--structure-id",
        "1990000012",
        "--org",
        "CH TEST ROCGW",
        "--state",
        "Bouches-du-Rhône (13)",
        "--key-out",
        key.to_str().unwrap(),
        "--csr-out",
        csr.to_str().unwrap(),
    ]);
    assert!(msg.contains("Client_ROC_WebServices_AMC"), "{msg}");
    let req = openssl(&[
        "req",
        "-in",
        csr.to_str().unwrap(),
        "-noout",
        "-verify",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert!(
        req.contains("CN=Client_ROC_WebServices_AMC,OU=1990000012,O=CH TEST ROCGW"),
        "{req}"
    );
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        openssl(&["rsa", "-in", key.to_str().unwrap(), "-check", "-noout"]).contains("RSA key ok")
    );
    // Not overwritten.
    let again = run(
        &[
            "cert",
            "csr",
            "--role",
            "sign",
            "--structure-id",
            "1990000012",
            "--org",
            "X",
            "--key-out",
            key.to_str().unwrap(),
            "--csr-out",
            csr.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(again.status.code(), Some(2));

    bundle_makes_a_p12_openssl_reads(tmp.path());
}

/// `cert bundle`: the test SIGN certificate with its key and chain, into `dir`.
fn bundle_makes_a_p12_openssl_reads(dir: &Path) {
    // Bundle the test SIGN certificate with its key and chain.
    let pw = pki_path("secrets/p12-password");
    let p = |r: &str| pki_path(r).display().to_string();
    let bundle = |key: &str, chain: &[&str], out: &Path| {
        let mut args = vec![
            "cert".to_string(),
            "bundle".into(),
            "--key".into(),
            p(key),
            "--cert".into(),
            p("org/sign.pem"),
        ];
        for c in chain {
            args.push("--chain".into());
            args.push(p(c));
        }
        args.extend([
            "--out".to_string(),
            out.display().to_string(),
            "--password-file".into(),
            pw.display().to_string(),
        ]);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    let out = dir.join("sign.p12");
    let made = bundle(
        "org/sign.key",
        &["igc-sante/acr.pem", "igc-sante/aci-el-org.pem"],
        &out,
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let info = openssl(&[
        "pkcs12",
        "-in",
        out.to_str().unwrap(),
        "-nokeys",
        "-passin",
        &format!("file:{}", pw.display()),
    ]);
    assert_eq!(info.matches("BEGIN CERTIFICATE").count(), 3, "{info}");
    let inspected = ok_stdout(&[
        "cert",
        "inspect",
        out.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(v["key_matches"], true);
    assert_eq!(v["chain_in_order"], true);

    // Without the ACI-EL-ORG, or with another key: refused, saying what is wrong.
    let missing = bundle("org/sign.key", &["igc-sante/acr.pem"], &dir.join("x.p12"));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        err.contains("ACI-EL-ORG") && err.contains("ELEMENTAIRE ORGANISATIONS"),
        "{err}"
    );
    let wrong = bundle(
        "org2/sign.key",
        &["igc-sante/chain.pem"],
        &dir.join("y.p12"),
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("does not match"));
    assert!(!dir.join("x.p12").exists() && !dir.join("y.p12").exists());
}

/// A configuration on the test PKI with these identity files.
fn doctor_config(
    dir: &Path,
    auth_cli: &str,
    sign: &str,
    extra_trust: &str,
    password_file: &Path,
) -> std::path::PathBuf {
    let p = |r: &str| pki_path(r).display().to_string();
    let text = format!(
        "[identity.auth_cli]\np12 = \"{}\"\npassword_file = \"{pw}\"\n\n[identity.sign]\np12 = \"{}\"\npassword_file = \"{pw}\"\n\n\
         [trust]\namc_anchors = [\"{}\"]\ncrls = [\"{}\", \"{}\", \"{}\"]\n{extra_trust}\n",
        p(auth_cli),
        p(sign),
        p("osi/anchors.pem"),
        p("osi/root.crl.pem"),
        p("osi/ac-serveur.crl.pem"),
        p("osi/ac-services-applicatifs.crl.pem"),
        pw = password_file.display(),
    );
    let f = dir.join("rocgw.toml");
    fs::write(&f, text).unwrap();
    f
}

fn doctor(cfg: &Path, allow_test: bool) -> (i32, String) {
    let mut args = vec!["cert", "doctor", "--config", cfg.to_str().unwrap()];
    if allow_test {
        args.push("--allow-test-pki");
    }
    let out = run(&args, &[]);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// A folder with the P12 password file (0600) and a configuration of the good identities.
fn good_doctor_config() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = scratch();
    let pw = tmp.path().join("pw");
    fs::write(&pw, p12_password()).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = doctor_config(tmp.path(), "org/auth_cli.p12", "org/sign.p12", "", &pw);
    (tmp, pw, cfg)
}

#[test]
fn doctor_flags_each_defect_with_the_right_line() {
    let (_tmp, pw, good) = good_doctor_config();
    let (code, out) = doctor(&good, true);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK   structure: both identities are structure 1990000012"),
        "{out}"
    );
    assert!(
        out.contains("OK   trust.amc_anchors: AC-SERVEUR present"),
        "{out}"
    );
    let revoked_crl = format!(
        "identity_crls = [\"{}\"]",
        pki_path("igc-sante/aci-el-org.crl.pem").display()
    );
    let cases: Vec<(&str, &str, &str, i32, &str)> = vec![
        (
            "negative/auth_cli-expiring.p12",
            "org/sign.p12",
            "",
            0,
            "WARN identity.auth_cli: validity: expires in",
        ),
        (
            "negative/auth_cli-no-aci.p12",
            "org/sign.p12",
            "",
            2,
            "FAIL identity.auth_cli: chain: incomplete",
        ),
        (
            "negative/auth_cli-foreign.p12",
            "org/sign.p12",
            "",
            2,
            "FAIL identity.auth_cli: chain:",
        ),
        (
            "org/auth_cli.p12",
            "negative/sign-key-mismatch.p12",
            "",
            2,
            "FAIL identity.sign: key: the private key does not match",
        ),
        (
            "org/auth_cli.p12",
            "negative/sign-expired.p12",
            "",
            2,
            "FAIL identity.sign: validity: expired on",
        ),
        (
            "org/auth_cli.p12",
            "org/auth_cli.p12",
            "",
            2,
            "swap the AUTH_CLI and SIGN files",
        ),
        (
            "org/auth_cli.p12",
            "org2/sign.p12",
            "",
            2,
            "FAIL structure: AUTH_CLI is structure 1990000012, SIGN is structure 1990000020",
        ),
        (
            "org/auth_cli.p12",
            "negative/sign-revoked.p12",
            &revoked_crl,
            2,
            "FAIL identity.sign: revocation: serial",
        ),
    ];
    for (auth, sign, trust, want, line) in cases {
        let dir = scratch();
        let cfg = doctor_config(dir.path(), auth, sign, trust, &pw);
        let (code, out) = doctor(&cfg, true);
        assert_eq!(code, want, "{auth} + {sign}: {out}");
        assert!(
            out.contains(line),
            "{auth} + {sign}: expected {line:?} in\n{out}"
        );
    }
    let elsewhere = scratch();
    let (_, out) = doctor(
        &doctor_config(
            elsewhere.path(),
            "negative/auth_cli-no-aci.p12",
            "org/sign.p12",
            "",
            &pw,
        ),
        true,
    );
    assert!(
        out.contains("ACI-EL-ORG"),
        "the fix names the missing intermediate: {out}"
    );
}

/// Doctor reads `environment` as serve does, and warns (as serve does) about open secrets.
#[test]
fn doctor_reads_the_environment_and_warns_about_open_secrets() {
    let (_tmp, pw, good) = good_doctor_config();
    // The same TEST certificates without --allow-test-pki: serve accepts them when no
    // environment is set, so doctor warns; with environment = "production" both refuse.
    let (code, out) = doctor(&good, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "WARN identity.sign: hierarchy: a TEST IGC-Santé certificate, and no environment set"
        ),
        "{out}"
    );
    let text = fs::read_to_string(&good).unwrap();
    fs::write(&good, format!("environment = \"production\"\n{text}")).unwrap();
    let (code, out) = doctor(&good, true);
    assert_eq!(
        code, 2,
        "--allow-test-pki does not overrule the environment: {out}"
    );
    assert!(
        out.contains(
            "FAIL identity.sign: hierarchy: a TEST certificate with environment = \"production\""
        ),
        "{out}"
    );
    fs::write(&good, text).unwrap();

    // A password file readable by everyone: serve warns about it, so doctor warns too.
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = doctor(&good, true);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("WARN identity.sign: permissions:"), "{out}");
    assert!(
        out.contains("is readable by everyone (644)") && out.contains("chmod 600"),
        "{out}"
    );
}

#[test]
fn doctor_checks_the_local_listener_too() {
    let (tmp, _pw, cfg) = good_doctor_config();
    let base = fs::read_to_string(&cfg).unwrap();
    let p = |r: &str| pki_path(r).display().to_string();
    let with = |key: &str, socket: &str| {
        fs::write(
            &cfg,
            format!(
                "[server]\nunix_socket = \"{socket}\"\n\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
                 client_ca = [\"{}\"]\nclient_crls = [\"{}\"]\n\n{base}",
                p("local/gateway.chain.pem"),
                p(key),
                p("local/ca.pem"),
                p("local/ca.crl.pem"),
            ),
        )
        .unwrap();
        doctor(&cfg, true)
    };
    let sock = tmp.path().join("gw.sock");
    let (code, out) = with("local/gateway.key", sock.to_str().unwrap());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("OK   server.tls: local certificate") && out.contains("days left"),
        "{out}"
    );
    assert!(out.contains("ca.crl.pem: 1 revoked"), "{out}");
    // The key of another certificate; a socket in a folder that does not exist.
    let (code, out) = with("local/client.key", "/nonexistent-rocgw/gw.sock");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("FAIL server.tls:"), "{out}");
    assert!(
        out.contains("FAIL server.unix_socket: /nonexistent-rocgw: the folder does not exist"),
        "{out}"
    );
}

/// Warnings (a certificate in its renewal month) leave doctor at exit 0, so the systemd unit's
/// pre-start check does not turn a restart into a loop; `--strict` makes them fatal (exit 1).
#[test]
fn doctor_warnings_do_not_block_a_restart_unless_strict() {
    let tmp = scratch();
    let pw = tmp.path().join("pw");
    fs::write(&pw, p12_password()).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = doctor_config(
        tmp.path(),
        "negative/auth_cli-expiring.p12",
        "org/sign.p12",
        "",
        &pw,
    );
    let cfg = cfg.to_str().unwrap();
    // The unit's own ExecStartPre line, on this configuration (TEST certificates: allowed).
    let unit =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/rocgw.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStartPre="))
        .expect("an ExecStartPre line");
    let mut args: Vec<&str> = line.split_whitespace().skip(1).collect();
    assert_eq!(args[..2], ["cert", "doctor"], "{line}");
    let at = args.iter().position(|a| *a == "--config").unwrap() + 1;
    args[at] = cfg;
    args.push("--allow-test-pki");
    let out = run(&args, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("WARN identity.auth_cli: validity") && text.contains("ready, with warnings"),
        "{text}"
    );
    args.push("--strict");
    assert_eq!(run(&args, &[]).status.code(), Some(1));
}

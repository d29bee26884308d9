//! `rocgw pki init`, checked with the `openssl` command line: every good chain verifies, every
//! negative fixture fails for its own reason, every PKCS#12 opens with the password.

use std::fs;

use crate::support::*;

fn openssl(args: &[&str]) -> (bool, String) {
    let out = tool("openssl", args, pki());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Concatenates files into one scratch PEM (openssl takes one -CRLfile).
fn cat(dir: &std::path::Path, name: &str, files: &[&str]) -> String {
    let mut all = String::new();
    for f in files {
        all.push_str(&fs::read_to_string(pki_path(f)).unwrap());
    }
    let p = dir.join(name);
    fs::write(&p, all).unwrap();
    p.display().to_string()
}

fn verify_igc(cert: &str, crl: bool) -> (bool, String) {
    let tmp = scratch();
    let crls = cat(
        tmp.path(),
        "crls.pem",
        &["igc-sante/acr.crl.pem", "igc-sante/aci-el-org.crl.pem"],
    );
    let mut args = vec![
        "verify",
        "-CAfile",
        "igc-sante/acr.pem",
        "-untrusted",
        "igc-sante/aci-el-org.pem",
    ];
    if crl {
        args.extend(["-crl_check_all", "-CRLfile", &crls]);
    }
    args.push(cert);
    openssl(&args)
}

fn verify_osi(cert: &str, host: Option<&str>) -> (bool, String) {
    let tmp = scratch();
    let crls = cat(
        tmp.path(),
        "crls.pem",
        &[
            "osi/root.crl.pem",
            "osi/ac-serveur.crl.pem",
            "osi/ac-services-applicatifs.crl.pem",
        ],
    );
    let intermediates = cat(
        tmp.path(),
        "inter.pem",
        &["osi/ac-serveur.pem", "osi/ac-services-applicatifs.pem"],
    );
    let mut args = vec![
        "verify",
        "-CAfile",
        "osi/root.pem",
        "-untrusted",
        &intermediates,
        "-crl_check_all",
        "-CRLfile",
        &crls,
    ];
    if let Some(h) = host {
        args.extend(["-verify_hostname", h]);
    }
    args.push(cert);
    openssl(&args)
}

#[test]
fn igc_sante_good_chains_verify_with_crls() {
    for cert in [
        "org/auth_cli.pem",
        "org/sign.pem",
        "org2/auth_cli.pem",
        "org2/sign.pem",
        "negative/auth_cli-expiring.pem",
    ] {
        let (ok, out) = verify_igc(cert, true);
        assert!(ok, "{cert} should verify: {out}");
    }
}

#[test]
fn igc_sante_negative_fixtures_fail_for_their_reason() {
    let cases = [
        (
            "negative/sign-expired.pem",
            false,
            "certificate has expired",
        ),
        ("negative/sign-revoked.pem", true, "certificate revoked"),
        (
            "negative/sign-foreign.pem",
            false,
            "unable to get local issuer certificate",
        ),
        (
            "negative/auth_cli-foreign.pem",
            false,
            "unable to get local issuer certificate",
        ),
    ];
    for (cert, crl, reason) in cases {
        let (ok, out) = verify_igc(cert, crl);
        assert!(!ok, "{cert} must not verify");
        assert!(out.contains(reason), "{cert}: expected {reason:?} in {out}");
    }
    // Without the CRL the revoked certificate chains fine: the CRL is what refuses it.
    assert!(verify_igc("negative/sign-revoked.pem", false).0);
}

#[test]
fn igc_sante_names_follow_the_real_layout() {
    let (ok, out) = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        "igc-sante/aci-el-org.pem",
    ]);
    assert!(ok);
    assert!(
        out.contains("CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR"),
        "{out}"
    );
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", "igc-sante/aci-el-org.pem"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Public-Key: (4096 bit)"), "{text}");

    let (_, auth) = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-nameopt",
        "RFC2253",
        "-in",
        "org/auth_cli.pem",
    ]);
    assert!(
        auth.contains("CN=Client_ROC_Annuaire_AMC,OU=1990000012,O=CH TEST ROCGW"),
        "{auth}"
    );
    assert!(auth.contains("TLS Web Client Authentication"), "{auth}");
    assert!(auth.contains("Public-Key: (2048 bit)"));
    let (_, sign) = openssl(&[
        "x509",
        "-noout",
        "-text",
        "-nameopt",
        "RFC2253",
        "-in",
        "org/sign.pem",
    ]);
    assert!(sign.contains("CN=Client_ROC_WebServices_AMC"), "{sign}");
    assert!(
        sign.contains("Digital Signature, Non Repudiation"),
        "{sign}"
    );
    // 3-year validity: valid for more than 3 years minus two days, and not longer than 3 years.
    let almost = ((3 * 365 - 2) * 86_400).to_string();
    let over = ((3 * 365 + 1) * 86_400).to_string();
    assert!(
        openssl(&[
            "x509",
            "-noout",
            "-checkend",
            &almost,
            "-in",
            "org/sign.pem"
        ])
        .0
    );
    assert!(!openssl(&["x509", "-noout", "-checkend", &over, "-in", "org/sign.pem"]).0);
}

#[test]
fn osi_servers_verify_and_negative_servers_fail() {
    for cert in ["osi/annuaire.pem", "osi/amc-a.pem", "osi/amc-b.pem"] {
        let (ok, out) = verify_osi(cert, Some("localhost"));
        assert!(ok, "{cert}: {out}");
    }
    let (ok, out) = verify_osi("osi/amc-sign.pem", None);
    assert!(ok, "amc-sign: {out}");
    let cases = [
        ("negative/server-expired.pem", "certificate has expired"),
        ("negative/server-revoked.pem", "certificate revoked"),
        (
            "negative/server-unknown-ca.pem",
            "unable to get local issuer certificate",
        ),
        ("negative/server-wrong-host.pem", "hostname mismatch"),
    ];
    for (cert, reason) in cases {
        let (ok, out) = verify_osi(cert, Some("localhost"));
        assert!(!ok, "{cert} must not verify");
        assert!(out.contains(reason), "{cert}: expected {reason:?} in {out}");
    }
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", "osi/amc-a.pem"]);
    assert!(
        text.contains("DNS:localhost") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
}

#[test]
fn every_p12_opens_with_the_password_and_holds_the_delivered_chain() {
    let pass = format!("pass:{}", p12_password());
    let cases = [
        ("org/auth_cli.p12", false, "AES-256-CBC", 3),
        (
            "org/auth_cli.3des.p12",
            false,
            "pbeWithSHA1And3-KeyTripleDES-CBC",
            3,
        ),
        (
            "org/auth_cli.rc2-40.p12",
            true,
            "pbeWithSHA1And40BitRC2-CBC",
            3,
        ),
        ("org/sign.p12", false, "AES-256-CBC", 3),
        (
            "org/sign.3des.p12",
            false,
            "pbeWithSHA1And3-KeyTripleDES-CBC",
            3,
        ),
        ("org/sign.rc2-40.p12", true, "pbeWithSHA1And40BitRC2-CBC", 3),
        ("negative/auth_cli-no-aci.p12", false, "AES-256-CBC", 2),
    ];
    for (file, legacy, scheme, certs) in cases {
        let mut args = vec!["pkcs12", "-info", "-noout", "-in", file, "-passin", &pass];
        if legacy {
            args.push("-legacy");
        }
        let (ok, out) = openssl(&args);
        assert!(ok, "{file}: {out}");
        assert!(out.contains(scheme), "{file}: expected {scheme}: {out}");
        assert!(out.contains("Shrouded Keybag"), "{file}: no key: {out}");
        assert_eq!(
            out.matches("Certificate bag").count(),
            certs,
            "{file}: {out}"
        );
        // A wrong password is refused.
        let mut bad = args.clone();
        let i = bad.iter().position(|a| *a == pass.as_str()).unwrap();
        bad[i] = "pass:wrong-password";
        assert!(!openssl(&bad).0, "{file} opened with a wrong password");
    }
    // The RC2-40 file really is legacy: OpenSSL 3 refuses it without -legacy.
    let (ok, _) = openssl(&[
        "pkcs12",
        "-info",
        "-noout",
        "-in",
        "org/sign.rc2-40.p12",
        "-passin",
        &pass,
    ]);
    assert!(!ok);
    // The no-ACI bundle lacks exactly the intermediate.
    let (_, certs) = openssl(&[
        "pkcs12",
        "-nokeys",
        "-in",
        "negative/auth_cli-no-aci.p12",
        "-passin",
        &pass,
    ]);
    let subjects: Vec<&str> = certs
        .lines()
        .filter(|l| l.starts_with("subject="))
        .collect();
    assert_eq!(subjects.len(), 2, "{certs}");
    assert!(
        subjects
            .iter()
            .any(|l| l.ends_with("CN = TEST AC RACINE IGC-SANTE ELEMENTAIRE")),
        "{certs}"
    );
    assert!(
        !subjects
            .iter()
            .any(|l| l.ends_with("CN = TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS")),
        "{certs}"
    );
}

#[test]
fn mismatched_key_fixture_really_mismatches() {
    let modulus = |args: &[&str]| openssl(args).1;
    let cert = modulus(&[
        "x509",
        "-noout",
        "-modulus",
        "-in",
        "negative/sign-key-mismatch.pem",
    ]);
    let key = modulus(&[
        "rsa",
        "-noout",
        "-modulus",
        "-in",
        "negative/sign-key-mismatch.key",
    ]);
    assert!(cert.starts_with("Modulus=") && key.starts_with("Modulus="));
    assert_ne!(cert, key);
    let good_cert = modulus(&["x509", "-noout", "-modulus", "-in", "org/sign.pem"]);
    let good_key = modulus(&["rsa", "-noout", "-modulus", "-in", "org/sign.key"]);
    assert_eq!(good_cert, good_key);
}

#[test]
fn manifest_names_every_file_with_role_and_password_source() {
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(pki_path("manifest.json")).unwrap()).unwrap();
    let files = m["files"].as_array().unwrap();
    let mut on_disk = Vec::new();
    for dir in ["igc-sante", "org", "org2", "osi", "negative", "secrets"] {
        for e in fs::read_dir(pki_path(dir)).unwrap() {
            on_disk.push(format!(
                "{dir}/{}",
                e.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    let listed: Vec<String> = files
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    for f in &on_disk {
        assert!(listed.contains(f), "{f} is not in the manifest");
    }
    for f in files {
        assert!(!f["role"].as_str().unwrap().is_empty());
        if f["kind"] == "p12" {
            assert_eq!(f["password_file"], "secrets/p12-password", "{f}");
        }
    }
    for defect in [
        "expired",
        "revoked",
        "unknown-ca",
        "wrong-host",
        "expiring",
        "missing-aci",
        "key-mismatch",
    ] {
        assert!(
            files.iter().any(|f| f["defect"] == defect),
            "no fixture for {defect}"
        );
    }
    // Keys and P12 files are private to their owner.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for rel in ["org/sign.key", "org/sign.p12", "secrets/p12-password"] {
            let mode = fs::metadata(pki_path(rel)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{rel}");
        }
    }
}

#[test]
fn pki_init_refuses_a_non_empty_folder_without_force() {
    let tmp = scratch();
    fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let dir = tmp.path().to_str().unwrap();
    let out = run(&["pki", "init", "--dir", dir], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(!tmp.path().join("manifest.json").exists());
}

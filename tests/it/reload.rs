//! A reload rebuilds only what changed: a reload that finds the same SIGN certificate keeps the
//! signer and the assertions it signed for reuse; a new SIGN certificate replaces both at once;
//! one a restart would refuse (another structure's) is not put in force.

use std::fs;
use std::time::Duration;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};

fn serial_of(p12_pem: &str) -> String {
    let der = rocgw::identity::read_pem_certs(&pki_path(p12_pem)).unwrap();
    rocgw::identity::CertInfo::parse(&der[0]).unwrap().serial
}

/// A gateway signing with a copy of `org/sign.p12` (its path returned, to be replaced), `trust`
/// lines added to `[trust]`, an audit file, AMC 10000001 at `amc`, and `extra` TOML.
fn gateway(
    amc: &TlsServer,
    tmp: &tempfile::TempDir,
    trust: &str,
    extra: &str,
) -> (Proc, std::path::PathBuf, std::path::PathBuf) {
    let sign = tmp.path().join("sign.p12");
    fs::copy(pki_path("org/sign.p12"), &sign).unwrap();
    let audit = audit_file(tmp.path());
    let text = config_text(
        "",
        &format!(
            "[routes.\"10000001\"]\nidb = \"{}\"\n\n[assertion]\nreuse_s = 120\n\n[audit]\nfile = \"{}\"\n{extra}\n",
            amc.url("/idb"),
            audit.display()
        ),
    )
    .replace(
        pki_path("org/sign.p12").to_str().unwrap(),
        sign.to_str().unwrap(),
    )
    .replace("[trust]\n", &format!("[trust]\n{trust}\n"));
    (
        Proc::with_config(&write_config(tmp.path(), &text)),
        sign,
        audit,
    )
}

/// One signed call to AMC 10000001, answered 200.
fn call(p: &Proc) {
    let r = post(
        p.gateway,
        "/amc/10000001/idb",
        CT12,
        &envelope12("<r:q xmlns:r=\"urn:t\"/>"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Waits for the `n`th reload with `outcome`; the last "reload failed" log line.
fn reloaded(p: &Proc, outcome: &str, n: f64) -> String {
    wait_for("the reload", Duration::from_secs(10), || {
        metric(
            &scrape(p.admin),
            "rocgw_reloads_total",
            &[("outcome", outcome)],
        ) >= n
    });
    let failed = |lines: Vec<String>| lines.into_iter().rfind(|l| l.contains("reload failed"));
    if outcome != "failed" {
        return failed(p.stderr_lines()).unwrap_or_default();
    }
    // Its log line may reach the test's stderr reader after the count: wait for it.
    let mut line = None;
    wait_for(
        "the failed reload's log line",
        Duration::from_secs(10),
        || {
            line = failed(p.stderr_lines()).or(line.take());
            line.is_some()
        },
    );
    line.unwrap_or_default()
}

#[test]
fn a_reload_keeps_the_signer_and_its_reused_assertions_unless_sign_changed() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let (p, sign, audit) = gateway(&amc, &tmp, "", "");
    let call = || call(&p);
    let reloads = |n: f64| {
        reloaded(&p, "ok", n);
    };

    call();
    call();
    let a = audit_records(&audit, 2);
    assert_eq!(
        (a[0]["reused"].as_bool(), a[1]["reused"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(a[0]["assertion_id"], a[1]["assertion_id"]);

    // Nothing changed: the signer and the reused assertion survive the reload.
    p.signal("HUP");
    reloads(1.0);
    call();
    let a = audit_records(&audit, 3);
    assert_eq!(a[2]["reused"].as_bool(), Some(true), "{:?}", a[2]);
    assert_eq!(a[2]["assertion_id"], a[0]["assertion_id"]);
    assert_eq!(a[2]["signer_serial"], serial_of("org/sign.pem").as_str());

    // Another structure's SIGN certificate (1990000020 for 1990000012): what a restart would
    // refuse, so the reload keeps the certificate in force, its signer and its assertion.
    replace_file(&pki_path("org2/sign.p12"), &sign);
    p.signal("HUP");
    let refused = reloaded(&p, "failed", 1.0);
    call();
    let a = audit_records(&audit, 4);
    assert_eq!(a[3]["reused"].as_bool(), Some(true), "{:?}", a[3]);
    assert_eq!(a[3]["signer_serial"], serial_of("org/sign.pem").as_str());
    assert!(
        refused.contains("structure 1990000020, not of structure 1990000012"),
        "{refused}"
    );

    // The structure's SIGN certificate renewed: a new signer, and nothing signed by the old key
    // is reused.
    replace_file(&pki_path("org/sign-renewed.p12"), &sign);
    p.signal("HUP");
    reloads(2.0);
    call();
    let a = audit_records(&audit, 5);
    assert_eq!(a[4]["reused"].as_bool(), Some(false), "{:?}", a[4]);
    assert_ne!(a[4]["assertion_id"], a[0]["assertion_id"]);
    assert_eq!(
        a[4]["signer_serial"],
        serial_of("org/sign-renewed.pem").as_str()
    );
    assert_ne!(serial_of("org/sign-renewed.pem"), serial_of("org/sign.pem"));
}

/// A SIGN certificate the IGC-Santé CRLs (`[trust] identity_crls`) revoke is refused by a
/// reload, as by start-up; the certificate in force goes on signing.
#[test]
fn a_reload_refuses_a_revoked_sign_certificate() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let crls = format!(
        "identity_crls = [\"{}\", \"{}\"]",
        pki_path("igc-sante/aci-el-org.crl.pem").display(),
        pki_path("igc-sante/acr.crl.pem").display()
    );
    let (p, sign, audit) = gateway(&amc, &tmp, &crls, "");
    // With the CRLs configured, a reload of certificates they do not list succeeds.
    p.signal("HUP");
    assert_eq!(reloaded(&p, "ok", 1.0), "", "no reload failed");
    let revoked = format!(
        "serial {} is in the IGC-Santé CRL",
        serial_of("negative/sign-revoked.pem")
    );
    refused_and_old_sign_kept(&p, &sign, &audit, "negative/sign-revoked.p12", &revoked);
}

/// A SIGN certificate of the right structure but from another CA than IGC-Santé (a complete
/// chain to a foreign root) is refused by a reload, as by start-up.
#[test]
fn a_reload_refuses_a_certificate_from_another_ca() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let (p, sign, audit) = gateway(&amc, &tmp, "", "");
    let foreign = "not at an IGC-Santé root";
    refused_and_old_sign_kept(&p, &sign, &audit, "negative/sign-foreign.p12", foreign);
}

/// SIGN replaced by the test PKI's `p12` and a SIGHUP: the reload fails saying `why`, and the
/// next call is still signed with `org/sign` (the first audit record).
fn refused_and_old_sign_kept(
    p: &Proc,
    sign: &std::path::Path,
    audit: &std::path::Path,
    p12: &str,
    why: &str,
) {
    replace_file(&pki_path(p12), sign);
    p.signal("HUP");
    let refused = reloaded(p, "failed", 1.0);
    assert!(refused.contains(why), "{refused}");
    call(p);
    let a = audit_records(audit, 1);
    assert_eq!(a[0]["signer_serial"], serial_of("org/sign.pem").as_str());
}

/// A new IGC-Santé CRL that lists the SIGN certificate in force is seen by the file check: the
/// reload fails and says the certificate in force is revoked (a restart would refuse it).
#[test]
fn a_new_identity_crl_listing_the_certificate_in_force_fails_the_reload() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    // The ACR's CRL only at first: it does not list the leaf `negative/sign-revoked`.
    let crl = tmp.path().join("igc-sante.crl.pem");
    fs::copy(pki_path("igc-sante/acr.crl.pem"), &crl).unwrap();
    let crls = format!("identity_crls = [\"{}\"]", crl.display());
    let (p, sign, _audit) = gateway(&amc, &tmp, &crls, "[reload]\ncheck_interval_s = 1");
    replace_file(&pki_path("negative/sign-revoked.p12"), &sign);
    assert_eq!(reloaded(&p, "ok", 1.0), "", "no reload failed");
    // ACI-EL-ORG's CRL, which lists it, replaces the file: no signal, the file check.
    replace_file(&pki_path("igc-sante/aci-el-org.crl.pem"), &crl);
    let refused = reloaded(&p, "failed", 1.0);
    assert!(
        refused.contains(&format!(
            "the certificate in force: serial {} is in the IGC-Santé CRL",
            serial_of("negative/sign-revoked.pem")
        )),
        "{refused}"
    );
}

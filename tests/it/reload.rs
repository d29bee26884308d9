//! A reload rebuilds only what changed: a reload that finds the same SIGN certificate keeps the
//! signer and the assertions it signed for reuse; a new SIGN certificate replaces both at once.

use std::fs;
use std::time::Duration;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};

fn serial_of(p12_pem: &str) -> String {
    let der = rocgw::identity::read_pem_certs(&pki_path(p12_pem)).unwrap();
    rocgw::identity::CertInfo::parse(&der[0]).unwrap().serial
}

#[test]
fn a_reload_keeps_the_signer_and_its_reused_assertions_unless_sign_changed() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let sign = tmp.path().join("sign.p12");
    fs::copy(pki_path("org/sign.p12"), &sign).unwrap();
    let audit = audit_file(tmp.path());
    let text = config_text(
        "",
        &format!(
            "[routes.\"10000001\"]\nidb = \"{}\"\n\n[assertion]\nreuse_s = 120\n\n[audit]\nfile = \"{}\"\n",
            amc.url("/idb"),
            audit.display()
        ),
    )
    .replace(
        pki_path("org/sign.p12").to_str().unwrap(),
        sign.to_str().unwrap(),
    );
    let p = Proc::with_config(&write_config(tmp.path(), &text));
    let call = || {
        let r = post(
            p.gateway,
            "/amc/10000001/idb",
            CT12,
            &envelope12("<r:q xmlns:r=\"urn:t\"/>"),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let reloads = |n: f64| {
        wait_for("the reload", Duration::from_secs(10), || {
            metric(
                &scrape(p.admin),
                "rocgw_reloads_total",
                &[("outcome", "ok")],
            ) >= n
        })
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

    // A new SIGN certificate: a new signer, and nothing signed by the old key is reused.
    replace_file(&pki_path("org2/sign.p12"), &sign);
    p.signal("HUP");
    reloads(2.0);
    call();
    let a = audit_records(&audit, 4);
    assert_eq!(a[3]["reused"].as_bool(), Some(false), "{:?}", a[3]);
    assert_ne!(a[3]["assertion_id"], a[0]["assertion_id"]);
    assert_eq!(a[3]["signer_serial"], serial_of("org2/sign.pem").as_str());
    assert_ne!(serial_of("org2/sign.pem"), serial_of("org/sign.pem"));
}

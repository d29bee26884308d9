//! The request target as the SIH sent it. A path below `/annuaire` that the annuaire (or a server
//! in front of it) could read as another path is refused before anything is forwarded, so the
//! hospital's AUTH_CLI is never presented for it; the service of `/amc/{numero}/{service}` has
//! one spelling, lower case, in the metrics and in the audit log.

use crate::support::*;
use crate::tls_server::{pki_serial, Behavior, TlsServer};
use crate::upstream::IGC_ROOTS;

/// Paths that could mean another path, each with the words of the fault detail that says why.
const HOSTILE: [(&str, &str); 13] = [
    ("/annuaire/../../amc/x", "dot segment"),
    ("/annuaire/..", "dot segment"),
    ("/annuaire/./search", "dot segment"),
    ("/annuaire/..;/amc/x", "dot segment"),
    ("/annuaire/%2e%2e/%2e%2e/amc/x", "encoded dot"),
    ("/annuaire/%2E%2E/amc/x", "encoded dot"),
    ("/annuaire/x%2f..%2fy", "encoded dot, slash"),
    ("/annuaire/x%5C..%5Cy", "encoded dot, slash, backslash"),
    ("/annuaire/%252e%252e/amc/x", "percent sign"),
    ("/annuaire//amc/x", "empty segment"),
    ("/annuaire/search//", "empty segment"),
    ("/annuaire\\..\\amc\\x", "backslash"),
    ("/amc/..;/idb", "dot segment"),
];

fn post12(gw: &Proc, path: &str) -> Resp {
    let body = envelope12("<ann:search xmlns:ann=\"urn:rocgw:annuaire-amc:1\"/>");
    post(gw.gateway, path, CT12, &body)
}

#[test]
fn a_path_below_annuaire_that_could_mean_another_path_never_reaches_the_annuaire() {
    let annuaire = TlsServer::fixture("osi/annuaire", Some(IGC_ROOTS), Behavior::Echo);
    let (gw, _t) = crate::routing::gateway_on(&annuaire);
    for (path, why) in HOSTILE {
        let r = post12(&gw, path);
        // A sender fault: HTTP 400 under the SOAP 1.2 binding.
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let f = parse_fault(&r.body);
        assert_eq!(
            (f.code.as_str(), f.side.as_str()),
            ("not-found", "Sender"),
            "{path}"
        );
        assert!(r.body.contains(why), "{path}: {}", r.body);
    }
    // Not a request, not even a handshake: the AUTH_CLI certificate was never presented.
    assert_eq!(
        annuaire.connections(),
        0,
        "the annuaire received {:?}",
        annuaire.paths()
    );
    // An ordinary pass-through still goes, with its path and query as sent, under AUTH_CLI.
    let r = post12(&gw, "/annuaire/v1/search.do?lang=fr");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(annuaire.paths(), ["/annuaire/v1/search.do?lang=fr"]);
    assert_eq!(annuaire.serials(), [pki_serial("org/auth_cli.pem")]);
    let r = post12(&gw, "/annuaire");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(annuaire.paths()[1], "/annuaire");
}

#[test]
fn the_audit_log_and_the_metrics_spell_a_service_one_way_whatever_the_sih_typed() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let audit = audit_file(tmp.path());
    let extra = format!(
        "[routes.\"10000001\"]\nidb = \"{}\"\n\n[audit]\nfile = \"{}\"\n",
        amc.url("/idb"),
        audit.display()
    );
    let gw = Proc::with_config(&write_config(tmp.path(), &config_text("", &extra)));
    for typed in ["IDB", "Idb", "idb"] {
        let r = post12(&gw, &format!("/amc/10000001/{typed}"));
        assert_eq!(r.status, 200, "{typed}: {}", r.body);
    }
    assert_eq!(amc.requests(), 3);
    let services: Vec<String> = audit_records(&audit, 3)
        .iter()
        .map(|r| r["service"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(services, ["idb", "idb", "idb"]);
    let samples = scrape(gw.admin);
    let requests = |service: &str| {
        metric(
            &samples,
            "rocgw_requests_total",
            &[("route", "amc"), ("amc", "10000001"), ("service", service)],
        )
    };
    assert_eq!(requests("idb"), 3.0);
    assert_eq!(requests("IDB") + requests("Idb"), 0.0);
}

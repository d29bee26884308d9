//! The SIH names an AMC and a service; rocgw finds the endpoint through the simulator's annuaire
//! (mutual TLS with AUTH_CLI), caches it, and forwards the stamped request there. Static routes
//! win; explicit endpoints are opt-in; only https endpoints on allowed hosts are used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rocgw::annuaire::{search_response, Answer, Entry};
use rocgw::sim::{DirectoryEntry, Faults};

use crate::sim::SimFixture;
use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};
use crate::upstream::IGC_ROOTS;

/// A gateway resolving through the simulator's annuaire; `amc` and `annuaire` are appended to
/// those sections, `tail` at the end.
pub fn gateway(s: &SimFixture, amc: &str, annuaire: &str, tail: &str) -> (Proc, tempfile::TempDir) {
    s.gateway(amc, annuaire, tail, 3_000)
}

pub fn call(gw: &Proc, amc: &str, service: &str, headers: &[(&str, &str)]) -> Resp {
    let body = envelope12("<r:req xmlns:r=\"urn:test\"><r:nir>1</r:nir></r:req>");
    let mut h = vec![("Content-Type", CT12)];
    h.extend_from_slice(headers);
    http(
        gw.gateway,
        "POST",
        &format!("/amc/{amc}/{service}"),
        &h,
        body.as_bytes(),
    )
}

/// Lookups the simulated annuaire answered, by result.
fn annuaire_calls(s: &SimFixture, result: &str) -> f64 {
    metric(
        &parse_metrics(&s.sim.render_metrics()),
        "rocgw_sim_annuaire_requests_total",
        &[("result", result)],
    )
}

fn lookups(gw: &Proc, result: &str) -> f64 {
    metric(
        &scrape(gw.admin),
        "rocgw_annuaire_lookups_total",
        &[("result", result)],
    )
}

#[test]
fn resolution_cache_negative_cache_and_the_errors_the_sih_sees() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway(&s, "", "negative_ttl_s = 600", "");

    // Resolution, then cache hits: one annuaire call for three requests.
    for _ in 0..3 {
        let r = call(&gw, "99999991", "idb", &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("Droits ouverts"), "{}", r.body);
    }
    assert_eq!(annuaire_calls(&s, "found"), 1.0);
    assert_eq!(lookups(&gw, "fetched"), 1.0);
    assert_eq!(lookups(&gw, "hit"), 2.0);
    // Another service of the same AMC is its own lookup (the cache key has the service).
    assert_eq!(call(&gw, "99999991", "clc", &[]).status, 200);
    assert_eq!(annuaire_calls(&s, "found"), 2.0);

    // Unknown AMC, remembered: one annuaire call for two requests.
    for _ in 0..2 {
        let r = call(&gw, "12345678", "idb", &[]);
        assert_eq!(r.header("x-rocgw-error"), Some("unknown-amc"), "{}", r.body);
    }
    assert_eq!(annuaire_calls(&s, "unknown-amc"), 1.0);
    assert_eq!(lookups(&gw, "negative"), 1.0);

    // A service the AMC does not offer; a service rocgw does not know.
    let r = call(&gw, "99999992", "simulation", &[]);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("unknown-service"),
        "{}",
        r.body
    );
    let r = call(&gw, "99999992", "teleportation", &[]);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("unknown-service"),
        "{}",
        r.body
    );

    // The AMC's own troubles, through a resolved endpoint.
    s.set_faults(
        "99999992",
        &Faults {
            latency_ms: 4_000,
            ..Faults::default()
        },
    );
    let r = call(&gw, "99999992", "idb", &[]);
    assert_eq!(r.header("x-rocgw-error"), Some("amc-timeout"), "{}", r.body);
    s.set_faults(
        "99999992",
        &Faults {
            http_503_rate: 1.0,
            ..Faults::default()
        },
    );
    let r = call(&gw, "99999992", "idb", &[]);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("amc-unavailable"),
        "{}",
        r.body
    );

    // The annuaire down with nothing cached for this key.
    s.set_faults(
        "annuaire",
        &Faults {
            http_503_rate: 1.0,
            ..Faults::default()
        },
    );
    let r = call(&gw, "99999992", "clc", &[]);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("annuaire-unavailable"),
        "{}",
        r.body
    );
    assert!(r.body.contains("HTTP 503"), "{}", r.body);
    // ...while cached answers still serve.
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);

    // A malformed routing key is the SIH's mistake, said before any lookup.
    let r = call(&gw, "99999991", "idb", &[("X-Rocgw-Csr", "a b<c>")]);
    assert_eq!(r.header("x-rocgw-error"), Some("not-found"), "{}", r.body);
    assert!(r.body.contains("x-rocgw-csr"), "{}", r.body);
}

#[test]
fn stale_answers_serve_while_the_annuaire_is_down_and_a_cold_amc_costs_one_call() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway(&s, "", "cache_ttl_s = 1\nstale_s = 300", "");
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    assert_eq!(annuaire_calls(&s, "found"), 1.0);

    s.set_faults(
        "annuaire",
        &Faults {
            http_503_rate: 1.0,
            ..Faults::default()
        },
    );
    // Past the TTL: the last good answer serves, and a refresh is tried in the background.
    let until = Instant::now() + Duration::from_millis(1_200);
    wait_for("the TTL to pass", Duration::from_secs(5), || {
        Instant::now() > until
    });
    let r = call(&gw, "99999991", "idb", &[]);
    assert_eq!(r.status, 200, "stale-while-revalidate: {}", r.body);
    wait_for("a background refresh", Duration::from_secs(10), || {
        annuaire_calls(&s, "injected-http-503") >= 1.0
    });
    assert!(lookups(&gw, "stale") >= 1.0);
    let r = http(s.sim.admin, "DELETE", "/faults/annuaire", &[], b"");
    assert_eq!(r.status, 200);

    // Single flight: 100 concurrent calls for a cold AMC make one annuaire call (the annuaire
    // takes its time, so they all arrive while the first lookup is in flight).
    s.set_faults(
        "annuaire",
        &Faults {
            latency_ms: 500,
            ..Faults::default()
        },
    );
    let before = annuaire_calls(&s, "found");
    let gw = Arc::new(gw);
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let gw = gw.clone();
            std::thread::spawn(move || call(&gw, "99999992", "clc", &[]).status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(annuaire_calls(&s, "found"), before + 1.0);
}

#[test]
fn static_routes_win_explicit_endpoints_are_opt_in_and_bad_addresses_are_refused() {
    let unknown_ca = TlsServer::fixture("negative/server-unknown-ca", None, Behavior::Echo);
    let elsewhere = TlsServer::fixture("osi/amc-b", None, Behavior::Echo);
    let s = SimFixture::start(|cfg| {
        let entry = |numero: &str, url: String| DirectoryEntry {
            numero: numero.into(),
            libelle: String::new(),
            services: [("idb".to_string(), url)].into(),
        };
        cfg.annuaire.entries = vec![
            entry("77777771", "http://localhost:1/idb".into()),
            entry("77777772", unknown_ca.url("/idb")),
            entry("77777773", "https://elsewhere.test/idb".into()),
            entry("77777774", "not a url".into()),
        ];
    });
    let static_route = format!(
        "\n[routes.\"99999991\"]\nidb = \"{}\"\n",
        elsewhere.url("/static")
    );
    let (gw, _t) = gateway(&s, "explicit_endpoints = true", "", &static_route);

    // The static route wins: the fixture answers, the annuaire is not asked.
    let r = call(&gw, "99999991", "idb", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(elsewhere.requests(), 1);
    assert_eq!(annuaire_calls(&s, "found"), 0.0);
    // Other services of that AMC still resolve through the annuaire.
    assert_eq!(call(&gw, "99999991", "clc", &[]).status, 200);
    assert_eq!(annuaire_calls(&s, "found"), 1.0);

    for (amc, code, needle) in [
        ("77777771", "amc-unavailable", "only https"),
        ("77777772", "upstream-cert-unknown-ca", ""),
        ("77777773", "amc-unavailable", "endpoint_hosts"),
        ("77777774", "amc-unavailable", "not a valid URL"),
    ] {
        let r = call(&gw, amc, "idb", &[]);
        assert_eq!(r.header("x-rocgw-error"), Some(code), "{amc}: {}", r.body);
        assert!(r.body.contains(needle), "{amc}: {}", r.body);
    }
    assert_eq!(
        unknown_ca.requests(),
        0,
        "nothing was sent to the non-OSI host"
    );

    // Explicit endpoint: used when allowed, refused when http or off the allowed hosts.
    let url = s.endpoint("99999992", "idb");
    let r = call(&gw, "99999992", "idb", &[("X-Rocgw-Endpoint", &url)]);
    assert_eq!(r.status, 200, "{}", r.body);
    for bad in ["http://localhost:1/idb", "https://elsewhere.test/idb"] {
        let r = call(&gw, "99999992", "idb", &[("X-Rocgw-Endpoint", bad)]);
        assert_eq!(
            r.header("x-rocgw-error"),
            Some("not-found"),
            "{bad}: {}",
            r.body
        );
    }
    let (off, _t2) = gateway(&s, "", "", "");
    let r = call(&off, "99999992", "idb", &[("X-Rocgw-Endpoint", &url)]);
    assert_eq!(r.header("x-rocgw-error"), Some("not-found"), "{}", r.body);
    assert!(r.body.contains("explicit_endpoints"), "{}", r.body);
}

/// A gateway whose annuaire is `annuaire`, a real TLS server of the test PKI.
pub(crate) fn gateway_on(annuaire: &TlsServer) -> (Proc, tempfile::TempDir) {
    let p = |r: &str| pki_path(r).display().to_string();
    let mut t = base_config(&p("org/auth_cli.p12"), &p("secrets/p12-password"), "", "");
    t.push_str(&format!(
        "\n[annuaire]\nurl = \"{}\"\n",
        annuaire.url("/annuaire")
    ));
    let tmp = scratch();
    let gw = Proc::with_config(&write_config(tmp.path(), &t));
    (gw, tmp)
}

#[test]
fn an_annuaire_answer_that_is_not_a_lookup_answer_is_a_clear_error() {
    // A real TLS server with the annuaire's certificate that answers something else.
    let odd = TlsServer::fixture("osi/annuaire", Some(IGC_ROOTS), Behavior::Echo);
    let (gw, _t) = gateway_on(&odd);
    let r = call(&gw, "99999991", "idb", &[]);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("annuaire-unavailable"),
        "{}",
        r.body
    );
    assert!(r.body.contains("unexpected answer"), "{}", r.body);
    assert_eq!(odd.requests(), 1);
    assert!(odd.bodies()[0].contains("<ann:numero_amc>99999991</ann:numero_amc>"));
    assert!(odd.bodies()[0].contains("<ann:code_service>idb</ann:code_service>"));
    assert!(odd.bodies()[0].contains("<ann:logiciel>rocgw</ann:logiciel>"));
}

/// The annuaire's answer listing `entries` (numero, the address of its `idb`), as one
/// `searchResponse` with one `amc` block per entry.
fn found(entries: &[(&str, String)]) -> Arc<str> {
    let one = |(numero, url): &(&str, String)| {
        search_response(&Answer::Found(Entry {
            numero_amc: numero.to_string(),
            libelle: "MUTUELLE".into(),
            services: vec![("idb".into(), url.clone())],
        }))
    };
    let mut body = one(&entries[0]);
    for e in &entries[1..] {
        let other = one(e);
        let block =
            &other[other.find("<ann:amc>").unwrap()..other.find("</ann:searchResponse>").unwrap()];
        body = body.replace(
            "</ann:searchResponse>",
            &format!("{block}</ann:searchResponse>"),
        );
    }
    body.into()
}

#[test]
fn an_annuaire_answer_about_another_amc_or_several_is_refused_and_not_cached() {
    // The AMC the answers point at: reachable, so using a wrong answer would succeed.
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let cases = [
        (
            found(&[("99999999", amc.url("/idb"))]),
            "the answer is about AMC 99999999, not the AMC asked (30000002)",
        ),
        (
            found(&[
                ("30000002", amc.url("/idb")),
                ("99999999", amc.url("/other")),
            ]),
            "2 amc blocks (30000002, 99999999)",
        ),
    ];
    for (answer, why) in cases {
        let ann = TlsServer::fixture(
            "osi/annuaire",
            Some(IGC_ROOTS),
            Behavior::Answer(200, answer),
        );
        let (gw, _t) = gateway_on(&ann);
        // Twice: nothing was cached, so the annuaire is asked again.
        for n in 1..=2 {
            let r = call(&gw, "30000002", "idb", &[]);
            assert_eq!(
                r.header("x-rocgw-error"),
                Some("annuaire-unavailable"),
                "{why}: {}",
                r.body
            );
            assert!(r.body.contains(why), "{}", r.body);
            assert_eq!(ann.requests(), n, "{why}");
        }
        assert_eq!(amc.requests(), 0, "{why}: a wrong answer was used");
        assert_eq!(lookups(&gw, "error"), 2.0);
        assert_eq!(lookups(&gw, "hit") + lookups(&gw, "stale"), 0.0);
        let logs = gw.logs_until(Duration::from_secs(10), |l| l.contains(why));
        let line = logs.iter().find(|l| l.contains(why)).unwrap();
        assert!(line.contains("WARN") && line.contains("30000002"), "{line}");
    }
}

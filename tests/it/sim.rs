//! The AMC simulator: what the gateway sends passes; what a real AMC would refuse is refused
//! with its reason, whoever sends it (here `curl`, straight to the simulator's TLS port); each
//! injected fault reaches the SIH, through the gateway, as the right error. The assertion rules
//! checked on `xmlsec1`-made assertions are in `sim_rules`.

use std::fs;
use std::path::Path;

use rocgw::clock::now_unix;
use rocgw::config::{IdentitySource, Profile};
use rocgw::identity::{Identity, Role};
use rocgw::sim::{CertMode, Faults, Sim, SimConfig};
use rocgw::wssec::{self, Signer};

use crate::support::*;

/// An in-process simulator on free ports over the run's test PKI.
pub struct SimFixture {
    pub sim: Sim,
    _rt: tokio::runtime::Runtime,
}

impl SimFixture {
    pub fn start(edit: impl FnOnce(&mut SimConfig)) -> SimFixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut cfg = SimConfig::sandbox(pki(), true);
        edit(&mut cfg);
        let sim = rt.block_on(Sim::start(cfg)).unwrap();
        SimFixture { sim, _rt: rt }
    }

    pub fn endpoint(&self, amc: &str, service: &str) -> String {
        self.sim.endpoint(amc, service).unwrap()
    }

    pub fn counter(&self, outcome: &str, reason: &str) -> f64 {
        let samples = parse_metrics(&self.sim.render_metrics());
        metric(
            &samples,
            "rocgw_sim_requests_total",
            &[("outcome", outcome), ("reason", reason)],
        )
    }

    /// A gateway process over this simulator (its annuaire, the run's test PKI, hard
    /// revocation, endpoints on localhost); `amc` and `annuaire` are appended to those
    /// sections, `tail` at the end.
    pub fn gateway(
        &self,
        amc: &str,
        annuaire: &str,
        tail: &str,
        first_byte_ms: u64,
    ) -> (Proc, tempfile::TempDir) {
        let tmp = scratch();
        let cfg = write_config(
            tmp.path(),
            &self.config_text("", amc, annuaire, tail, first_byte_ms),
        );
        (Proc::with_config(&cfg), tmp)
    }

    /// The configuration of `gateway`, with `server` added to its `[server]` section.
    pub fn config_text(
        &self,
        server: &str,
        amc: &str,
        annuaire: &str,
        tail: &str,
        first_byte_ms: u64,
    ) -> String {
        let p = |r: &str| pki_path(r).display().to_string();
        let mut t = base_config(
            &p("org/auth_cli.p12"),
            &p("secrets/p12-password"),
            server,
            &format!(
                "crls = [\"{}\", \"{}\", \"{}\"]",
                p("osi/root.crl.pem"),
                p("osi/ac-serveur.crl.pem"),
                p("osi/ac-services-applicatifs.crl.pem")
            ),
        );
        t.push_str(&format!(
            "\n[amc]\nrevocation = \"hard\"\nendpoint_hosts = [\"localhost\"]\n{amc}\n\n\
             [upstream]\nfirst_byte_timeout_ms = {first_byte_ms}\n\n\
             [annuaire]\nurl = \"{}\"\n{annuaire}\n{tail}\n",
            self.sim.annuaire_url()
        ));
        t
    }

    pub fn set_faults(&self, amc: &str, faults: &Faults) {
        let r = http(
            self.sim.admin,
            "PUT",
            &format!("/faults/{amc}"),
            &[("Content-Type", "application/json")],
            serde_json::to_string(faults).unwrap().as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

/// POSTs `body` straight to a simulator URL with `curl`, trusting the IGC OSI test root.
pub fn curl_post(url: &str, body: &str) -> Resp {
    let root = pki_path("osi/root.pem");
    let cacert = ["--cacert", root.to_str().unwrap()];
    // As the envelope's SOAP binding says: SOAP 1.1 with its SOAPAction.
    if body.contains(SOAP12_NS) {
        curl(url, &cacert, CT12, body)
    } else {
        curl(
            url,
            &[&cacert[..], &["-H", "SOAPAction: \"\""]].concat(),
            CT11,
            body,
        )
    }
    .unwrap()
}

/// A signer from a test P12, loaded as if today were `at` (so expired certificates load).
fn signer_from(p12: &str, at: i64) -> Signer {
    let src = IdentitySource::P12 {
        field: "identity.sign".into(),
        path: pki_path(p12),
        password: zeroize::Zeroizing::new(p12_password()),
        password_file: None,
    };
    Signer::new(&Identity::load(&src, Role::Sign, at).unwrap()).unwrap()
}

/// A SOAP 1.1 IDB request stamped by rocgw's own code with `signer`, for `audience`, at `now`.
fn stamped(signer: &Signer, audience: &str, now: i64) -> String {
    let env = envelope11("<idb:identificationDroits xmlns:idb=\"urn:test\"><idb:nir>2990199999999</idb:nir></idb:identificationDroits>");
    let profile = Profile::default();
    let plan = wssec::plan(env.as_bytes(), &profile).unwrap();
    let a = wssec::build_assertion(&profile, signer, audience, now);
    String::from_utf8(wssec::stamp(env.as_bytes(), &plan, &a.xml, false)).unwrap()
}

fn not_after_of(pem: &str) -> i64 {
    let der = rocgw::identity::read_pem_certs(&pki_path(pem)).unwrap();
    rocgw::identity::CertInfo::parse(&der[0]).unwrap().not_after
}

#[test]
fn the_simulator_refuses_what_a_real_amc_would_refuse_each_with_its_reason() {
    let s = SimFixture::start(|_| {});
    let url = s.endpoint("99999991", "idb");
    let now = now_unix();
    let good = signer_from("org/sign.p12", now);
    let valid = stamped(&good, &url, now);

    let accepted = curl_post(&url, &valid);
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert!(
        accepted.body.contains("Droits ouverts"),
        "{}",
        accepted.body
    );

    let tampered = valid.replacen("DIRECTE", "INDIRECTE", 1);
    assert_ne!(tampered, valid);
    let expired_at = not_after_of("negative/sign-expired.pem") - 86_400;
    let wrapped = {
        let a = valid.find("<saml2:Assertion").unwrap();
        let b = valid.find("</saml2:Assertion>").unwrap() + "</saml2:Assertion>".len();
        let genuine = &valid[a..b];
        let forged = format!(
            "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_forged\" IssueInstant=\"2026-01-01T00:00:00Z\" Version=\"2.0\"><saml2:Issuer>CN=attacker</saml2:Issuer>{genuine}</saml2:Assertion>"
        );
        format!("{}{forged}{}", &valid[..a], &valid[b..])
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("unsigned", envelope11("<idb/>"), "no-security-header"),
        ("tampered", tampered, "bad-signature"),
        (
            "expired SIGN certificate",
            stamped(
                &signer_from("negative/sign-expired.p12", expired_at),
                &url,
                now,
            ),
            "signer-expired",
        ),
        (
            "certificate of another CA",
            stamped(&signer_from("negative/sign-foreign.p12", now), &url, now),
            "signer-untrusted",
        ),
        (
            "revoked SIGN certificate",
            stamped(&signer_from("negative/sign-revoked.p12", now), &url, now),
            "signer-revoked",
        ),
        (
            "outside its window",
            stamped(&good, &url, now - 3_600),
            "outside-validity-window",
        ),
        (
            "another AMC's audience",
            stamped(&good, &s.endpoint("99999992", "idb"), now),
            "wrong-audience",
        ),
        ("wrapped in a forged assertion", wrapped, "bad-signature"),
        ("replayed", valid.clone(), "replayed-assertion"),
    ];
    for (name, body, reason) in &cases {
        let r = curl_post(&url, body);
        assert_eq!(r.status, 500, "{name}: SOAP 1.1 fault status; {}", r.body);
        assert_eq!(
            r.header("x-rocsim-reason"),
            Some(*reason),
            "{name}: {}",
            r.body
        );
        let f = parse_fault(&r.body);
        assert_eq!(f.side, "Client", "{name}");
        assert!(
            r.body.contains(&format!("<r:code>{reason}</r:code>")),
            "{name}: {}",
            r.body
        );
    }
    // A valid request sent as the other SOAP version's binding says, or without its SOAPAction:
    // refused before its assertion is read, so it is not spent.
    let fresh = stamped(&good, &url, now);
    let root = pki_path("osi/root.pem");
    let cacert = ["--cacert", root.to_str().unwrap()];
    let action = [&cacert[..], &["-H", "SOAPAction: \"\""]].concat();
    for (args, ct, says) in [
        (
            &action,
            CT12,
            "SOAP 1.1 envelope is sent as text/xml, not as application/soap+xml",
        ),
        (&cacert.to_vec(), CT11, "SOAPAction"),
    ] {
        let r = curl(&url, args, ct, &fresh).unwrap();
        assert_eq!(
            r.header("x-rocsim-reason"),
            Some("wrong-content-type"),
            "{}",
            r.body
        );
        assert!(r.body.contains(says), "{ct}: {}", r.body);
    }
    assert_eq!(curl_post(&url, &fresh).status, 200);
    assert_eq!(s.counter("accepted", ""), 2.0);
    assert_eq!(s.counter("refused", "wrong-content-type"), 2.0);
    for (name, _, reason) in &cases {
        assert!(s.counter("refused", reason) >= 1.0, "{name}: counter");
    }
}

/// A gateway whose routes are the simulator's endpoints.
fn gateway_for(s: &SimFixture, first_byte_ms: u64) -> (Proc, tempfile::TempDir) {
    let mut routes = String::new();
    let mut current = String::new();
    for (amc, service, url) in s.sim.endpoints() {
        if amc != current {
            routes.push_str(&format!("\n[routes.\"{amc}\"]\n"));
            current = amc.clone();
        }
        routes.push_str(&format!("{service} = \"{url}\"\n"));
    }
    s.gateway("", "", &routes, first_byte_ms)
}

fn idb(gw: std::net::SocketAddr, amc: &str) -> Resp {
    post(
        gw,
        &format!("/amc/{amc}/idb"),
        CT12,
        &envelope12("<idb:identificationDroits xmlns:idb=\"urn:test\"><idb:nir>1</idb:nir></idb:identificationDroits>"),
    )
}

/// Faults injected at run time, with the status, `X-Rocgw-Error` and body text the SIH gets.
/// Statuses follow the SOAP 1.2 binding (the gateway's default): every one of these is a 500.
fn injected_faults() -> [(Faults, u16, Option<&'static str>, &'static str); 5] {
    [
        (
            Faults {
                http_500_rate: 1.0,
                ..Faults::default()
            },
            500,
            Some("amc-unavailable"),
            "HTTP 500",
        ),
        (
            Faults {
                soap_fault_rate: 1.0,
                ..Faults::default()
            },
            500,
            None,
            "injected-fault",
        ),
        (
            Faults {
                http_503_rate: 1.0,
                ..Faults::default()
            },
            500,
            Some("amc-unavailable"),
            "HTTP 503",
        ),
        (
            Faults {
                reset_rate: 1.0,
                ..Faults::default()
            },
            500,
            Some("amc-unavailable"),
            "",
        ),
        (
            Faults {
                latency_ms: 3_000,
                ..Faults::default()
            },
            500,
            Some("amc-timeout"),
            "",
        ),
    ]
}

/// SIHs in ISO-8859-1, declared or by their HTTP charset alone, and UTF-8 SIHs whose charset is
/// wrong: stamped by the gateway (at `gw`), verified by the simulator, which has accepted two
/// requests so far.
fn latin1_and_mislabelled_sihs_reach_the_simulator(gw: std::net::SocketAddr, s: &SimFixture) {
    // An ISO-8859-1 SIH (`é` as one byte).
    let latin1: Vec<u8> = envelope11("<nom>Hôpital Sainte-Cécile</nom>")
        .replace(r#"encoding="UTF-8""#, r#"encoding="ISO-8859-1""#)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let start = latin1.iter().position(|&b| b == b'>').unwrap() + 1;
    let no_label = [&b"<?xml version=\"1.0\"?>"[..], &latin1[start..]].concat();
    let undeclared = |s: &str| envelope11(s)[envelope11(s).find("?>").unwrap() + 2..].to_string();
    let (quote, name) = (
        undeclared("<nom>« Hôpital »”</nom>"),
        undeclared("<é>Hôpital</é>"),
    );
    let cases: [(&[u8], &str); 5] = [
        (&latin1, "ISO-8859-1"),
        // The same SIH without a declaration (or one that names no encoding): its HTTP charset
        // is the document's encoding (XML 1.0 appendix F.2), for the gateway and for the AMC.
        (&latin1[start..], "ISO-8859-1"),
        (&no_label, "ISO-8859-1"),
        // UTF-8 SIHs whose charset is wrong, read in UTF-8 by the gateway and the simulator
        // alike: windows-1252 leaves `”`'s 0x9D undefined; ISO-8859-1 reads `é` in a name as
        // `Ã©`, and `©` is no name character.
        (quote.as_bytes(), "windows-1252"),
        (name.as_bytes(), "ISO-8859-1"),
    ];
    for (doc, charset) in cases {
        let ct = format!("text/xml; charset={charset}");
        let headers = [("Content-Type", ct.as_str()), ("SOAPAction", "\"\"")];
        let r = http(gw, "POST", "/amc/99999991/idb", &headers, doc);
        assert_eq!(r.status, 200, "{charset}: {}", r.body);
        assert!(r.body.contains("Droits ouverts"), "{}", r.body);
    }
    assert_eq!(s.counter("accepted", ""), 7.0);
}

#[test]
fn gateway_requests_pass_and_each_injected_fault_reaches_the_sih_as_the_right_error() {
    // One AMC per server certificate: a certificate is presented at the handshake, and the
    // gateway keeps its connections.
    let extra_amcs = [
        ("88888881", CertMode::Expired),
        ("88888882", CertMode::Revoked),
        ("88888883", CertMode::UnknownCa),
        ("88888884", CertMode::WrongHost),
    ];
    let s = SimFixture::start(|cfg| {
        let template = cfg.amcs[0].clone();
        for (numero, mode) in extra_amcs {
            let mut a = template.clone();
            a.numero = numero.into();
            a.faults.certificate = mode;
            cfg.amcs.push(a);
        }
    });
    let (gw, _t) = gateway_for(&s, 1_500);

    let r = idb(gw.gateway, "99999991");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Droits ouverts"), "{}", r.body);
    let unknown = post(
        gw.gateway,
        "/amc/99999991/idb",
        CT12,
        &envelope12("<nir>INCONNU</nir>"),
    );
    assert!(
        unknown.body.contains("Bénéficiaire inconnu"),
        "{}",
        unknown.body
    );
    latin1_and_mislabelled_sihs_reach_the_simulator(gw.gateway, &s);

    // Run-time injection through the admin API, then back to normal. Statuses follow the
    // SOAP 1.2 binding (the gateway's default): every one of these faults is a 500.
    let cases = injected_faults();
    for (faults, status, code, needle) in cases {
        s.set_faults("99999991", &faults);
        let r = idb(gw.gateway, "99999991");
        assert_eq!(r.status, status, "{faults:?}: {}", r.body);
        assert_eq!(r.header("x-rocgw-error"), code, "{faults:?}: {}", r.body);
        assert!(r.body.contains(needle), "{faults:?}: {}", r.body);
    }
    let r = http(s.sim.admin, "DELETE", "/faults/99999991", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(idb(gw.gateway, "99999991").status, 200);

    for (numero, code) in [
        ("88888881", "upstream-cert-expired"),
        ("88888882", "upstream-cert-revoked"),
        ("88888883", "upstream-cert-unknown-ca"),
        ("88888884", "upstream-tls"),
    ] {
        let r = idb(gw.gateway, numero);
        assert_eq!(
            r.header("x-rocgw-error"),
            Some(code),
            "{numero}: {}",
            r.body
        );
    }
    // A certificate switched at run time, before any connection to that AMC.
    s.set_faults(
        "99999992",
        &Faults {
            certificate: CertMode::Expired,
            ..Faults::default()
        },
    );
    let r = idb(gw.gateway, "99999992");
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("upstream-cert-expired"),
        "{}",
        r.body
    );

    let bad = http(
        s.sim.admin,
        "PUT",
        "/faults/99999991",
        &[],
        br#"{"reset_rate": 2}"#,
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(
        http(s.sim.admin, "PUT", "/faults/nope", &[], b"{}").status,
        404
    );
}

#[test]
fn rocgw_sim_runs_the_documented_example_config() {
    let example = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/sim.example.toml"
    ))
    .unwrap();
    let tmp = scratch();
    // The example's paths are relative to its folder, next to a test PKI in `pki/`.
    std::os::unix::fs::symlink(pki(), tmp.path().join("pki")).unwrap();
    let mut text = example.clone();
    for port in ["9581", "8582", "8581", "8583"] {
        text = text.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:0");
    }
    assert_ne!(text, example);
    let cfg = tmp.path().join("sim.toml");
    fs::write(&cfg, text).unwrap();
    let p = SimProc::start(&cfg);
    let faults: serde_json::Value =
        serde_json::from_str(&http(p.admin, "GET", "/faults", &[], b"").body).unwrap();
    assert_eq!(faults["99999992"]["latency_distribution"], "exponential");
    assert_eq!(faults["99999991"]["certificate"], "valid");
    // An unsigned request reaches the AMC and is refused with its reason.
    let r = curl_post(&p.endpoints["99999991/idb"], &envelope11("<idb/>"));
    assert_eq!(r.header("x-rocsim-reason"), Some("no-security-header"));

    // A bad file is one clear line naming the field.
    let bad = tmp.path().join("bad.toml");
    fs::write(
        &bad,
        "admin_listen = \"127.0.0.1:0\"\nclock_skew_s = \"soon\"\n",
    )
    .unwrap();
    let out = run(&["sim", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("clock_skew_s"),
        "{err}"
    );
}

/// A `rocgw sim` process and what it printed.
struct SimProc {
    child: std::process::Child,
    admin: std::net::SocketAddr,
    endpoints: std::collections::HashMap<String, String>,
}

impl SimProc {
    fn start(cfg: &Path) -> SimProc {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rocgw"))
            .args(["sim", "--config", cfg.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut admin, mut endpoints) = (None, std::collections::HashMap::new());
        for line in out.lines() {
            let line = line.unwrap();
            if let Some(a) = line.strip_prefix("rocgw sim: admin listening on http://") {
                admin = Some(a.parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("rocgw sim: AMC ") {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                endpoints.insert(format!("{}/{}", parts[0], parts[1]), parts[2].to_string());
                if endpoints.len() == 6 {
                    break;
                }
            }
        }
        SimProc {
            child,
            admin: admin.expect("admin line"),
            endpoints,
        }
    }
}

impl Drop for SimProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_simulated_annuaire_wants_an_auth_cli_certificate_and_answers_lookups() {
    use rocgw::annuaire::{self, Answer, Lookup};
    use rocgw::config::Requester;
    let s = SimFixture::start(|cfg| {
        cfg.annuaire.entries.push(rocgw::sim::DirectoryEntry {
            numero: "77777771".into(),
            libelle: "ailleurs".into(),
            services: [(
                "idb".to_string(),
                "http://elsewhere.invalid/idb".to_string(),
            )]
            .into(),
        })
    });
    let (gw, _t) = gateway_for(&s, 5_000);
    let lookup = |numero: &str, service: &str| {
        let asked = Lookup {
            numero_amc: numero.into(),
            code_service: service.into(),
            ..Lookup::default()
        };
        let req = annuaire::search_request(&Requester::default(), &asked, now_unix());
        let r = post(gw.gateway, "/annuaire", CT11, &req);
        assert_eq!(r.status, 200, "{}", r.body);
        annuaire::parse_search_response(r.body.as_bytes(), &asked).unwrap()
    };
    // Through the gateway, which presents the ORG AUTH_CLI certificate.
    match lookup("99999991", "") {
        Answer::Found(e) => {
            assert_eq!(e.services.len(), 4);
            assert!(e
                .services
                .contains(&("idb".to_string(), s.endpoint("99999991", "idb"))));
        }
        other => panic!("{other:?}"),
    }
    match lookup("99999992", "clc") {
        Answer::Found(e) => assert_eq!(
            e.services,
            vec![("clc".to_string(), s.endpoint("99999992", "clc"))]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(lookup("12345678", ""), Answer::UnknownAmc);
    match lookup("77777771", "idb") {
        Answer::Found(e) => assert_eq!(e.services[0].1, "http://elsewhere.invalid/idb"),
        other => panic!("{other:?}"),
    }

    // Straight from curl: no client certificate, a SIGN certificate (no clientAuth usage), or
    // an AUTH_CLI of another CA are refused during the handshake.
    let url = s.sim.annuaire_url();
    let attempt = |cert: Option<&str>| {
        let mut args = vec![
            "-sS".to_string(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
            "--cacert".into(),
            pki_path("osi/root.pem").display().to_string(),
            "--data-binary".into(),
            "<x/>".into(),
        ];
        if let Some(c) = cert {
            args.push("--cert".into());
            args.push(pki_path(&format!("{c}.chain.pem")).display().to_string());
            args.push("--key".into());
            args.push(pki_path(&format!("{c}.key")).display().to_string());
        }
        args.push(url.clone());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = tool("curl", &a, Path::new("."));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(
        attempt(Some("org/auth_cli")),
        "500",
        "a bad lookup body, but TLS passed"
    );
    for refused in [None, Some("org/sign"), Some("negative/auth_cli-foreign")] {
        assert_eq!(
            attempt(refused),
            "000",
            "{refused:?} must fail the handshake"
        );
    }
}

//! Hospital groups: several structures (EJ, EGs) in one gateway. Each signs and authenticates
//! as itself (the annuaire sees its AUTH_CLI, the AMC its assertion, checked by `xmlsec1`), and
//! a caller signs only as the structures it was given.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};
use crate::upstream::IGC_ROOTS;

const FIRST: &str = "1990000012";
const SECOND: &str = "1990000020";
const DPI_TOKEN: &str = "it-secret-dpi-token-0123456789";
const GAP_TOKEN: &str = "it-secret-gap-token-0123456789";

/// A gateway serving the test group's two structures (FIRST the default) with the AMC route
/// 10000001 → `amc`, the annuaire `ann`, `sign2` as SECOND's SIGN P12, and `access` appended
/// to `[access]` (two named callers, `dpi` and `gap`, exist).
struct Group {
    dir: tempfile::TempDir,
    sign2: PathBuf,
    audit: PathBuf,
}

impl Group {
    fn new() -> Group {
        let dir = scratch();
        let sign2 = dir.path().join("sign2.p12");
        fs::copy(pki_path("org2/sign.p12"), &sign2).unwrap();
        for (f, t) in [("dpi.token", DPI_TOKEN), ("gap.token", GAP_TOKEN)] {
            fs::write(dir.path().join(f), format!("{t}\n")).unwrap();
        }
        let audit = audit_file(dir.path());
        Group { dir, sign2, audit }
    }

    fn config(&self, ann: &str, amc: &str, server: &str, access: &str) -> PathBuf {
        // Plain `[access]` keys go before its tables.
        let (top, access) = access.split_at(access.find("[[").unwrap_or(access.len()));
        let p = |r: &str| pki_path(r).display().to_string();
        let pw = p("secrets/p12-password");
        let d = self.dir.path().display();
        let text = format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server}

[structures."{FIRST}"]
default = true
auth_cli = {{ p12 = "{a1}", password_file = "{pw}" }}
sign = {{ p12 = "{s1}", password_file = "{pw}" }}

[structures."{SECOND}"]
auth_cli = {{ p12 = "{a2}", password_file = "{pw}" }}
sign = {{ p12 = "{s2}", password_file = "{pw}" }}
attributes = [{{ name = "Secteur_Activite", values = ["SA07"] }}]

[trust]
amc_anchors = ["{anchors}"]

[annuaire]
url = "{ann}"

[routes."10000001"]
idb = "{amc}"

[access]
{top}
[[access.callers]]
name = "dpi"
token_file = "{d}/dpi.token"
[[access.callers]]
name = "gap"
token_file = "{d}/gap.token"
{access}

[audit]
file = "{audit}"

[reload]
check_interval_s = 0
"#,
            a1 = p("org/auth_cli.p12"),
            s1 = p("org/sign.p12"),
            a2 = p("org2/auth_cli.p12"),
            s2 = self.sign2.display(),
            anchors = p("osi/anchors.pem"),
            audit = self.audit.display(),
        );
        write_config(self.dir.path(), &text)
    }
}

/// A POST to the gateway with optional token and structure.
fn send(
    gw: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    structure: Option<&str>,
) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("Content-Type", CT12)];
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_str()));
    }
    if let Some(s) = structure {
        h.push(("X-Rocgw-Structure", s));
    }
    let body = envelope12("<r:q xmlns:r=\"urn:t\"><r:nir>1</r:nir></r:q>");
    http(gw, "POST", path, &h, body.as_bytes())
}

/// `/metrics`, with the token the admin listener asks for too.
fn metrics(admin: std::net::SocketAddr) -> Vec<Sample> {
    let auth = format!("Bearer {DPI_TOKEN}");
    parse_metrics(&http(admin, "GET", "/metrics", &[("Authorization", &auth)], b"").body)
}

fn serial(rel: &str) -> String {
    let der = rocgw::identity::read_pem_certs(&pki_path(rel)).unwrap();
    rocgw::identity::CertInfo::parse(&der[0]).unwrap().serial
}

/// The text of the first element named `local` (any prefix) after `from` in `xml`.
fn text_of<'a>(xml: &'a str, local: &str, from: usize) -> &'a str {
    let at = xml[from..].find(&format!(":{local}")).expect(local) + from;
    let start = xml[at..].find('>').unwrap() + at + 1;
    let end = xml[start..].find('<').unwrap() + start;
    &xml[start..end]
}

/// An annuaire and an AMC that echo, and a group's files.
fn group() -> (TlsServer, TlsServer, Group) {
    let ann = TlsServer::fixture("osi/annuaire", Some(IGC_ROOTS), Behavior::Echo);
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    (ann, amc, Group::new())
}

/// An annuaire and an AMC that echo, and a gateway whose caller `dpi` has both structures.
fn granted_both() -> (TlsServer, TlsServer, Group, Proc) {
    let (ann, amc, g) = group();
    let grant = format!(
        "[[access.grants]]\ncaller = \"token:dpi\"\nstructures = [\"{FIRST}\", \"{SECOND}\"]\n"
    );
    let p = Proc::with_config(&g.config(&ann.url("/annuaire"), &amc.url("/idb"), "", &grant));
    (ann, amc, g, p)
}

#[test]
fn each_structure_authenticates_and_signs_as_itself() {
    let (ann, amc, g, p) = granted_both();

    // The annuaire pass-through presents each structure's own AUTH_CLI.
    for (structure, cert) in [
        (None, "org/auth_cli.pem"),
        (Some(SECOND), "org2/auth_cli.pem"),
        (Some(FIRST), "org/auth_cli.pem"),
    ] {
        let r = send(p.gateway, "/annuaire", Some(DPI_TOKEN), structure);
        assert_eq!(r.status, 200, "{structure:?}: {}", r.body);
        assert_eq!(ann.serials().last(), Some(&serial(cert)), "{structure:?}");
    }
    assert_ne!(serial("org/auth_cli.pem"), serial("org2/auth_cli.pem"));

    // The AMC receives an assertion of the structure asked for: xmlsec1 verifies it, and its
    // NameID and Identifiant_Structure name that structure.
    for (structure, sign) in [(SECOND, "org2/sign.pem"), (FIRST, "org/sign.pem")] {
        let r = send(
            p.gateway,
            "/amc/10000001/idb",
            Some(DPI_TOKEN),
            Some(structure),
        );
        assert_eq!(r.status, 200, "{structure}: {}", r.body);
        let body = amc.seen.bodies.lock().unwrap().last().cloned().unwrap();
        let (ok, out) = crate::wssec::xmlsec_verify(body.as_bytes());
        assert!(ok, "{structure}: xmlsec1 refused: {out}");
        assert_eq!(text_of(&body, "NameID", 0), structure);
        let attr = body.find("Name=\"Identifiant_Structure\"").unwrap();
        assert_eq!(text_of(&body, "AttributeValue", attr), structure);
        assert_eq!(
            body.contains("Secteur_Activite"),
            structure == SECOND,
            "per-structure attributes"
        );
        let cert_b64 = text_of(&body, "X509Certificate", 0);
        let pem = fs::read_to_string(pki_path(sign)).unwrap();
        let pem_b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(
            cert_b64, pem_b64,
            "{structure} signed with its own SIGN certificate"
        );
    }
    // The audit log names the structure of every signed call.
    let records = audit_records(&g.audit, 2);
    let structures: Vec<&str> = records
        .iter()
        .map(|r| r["structure"].as_str().unwrap())
        .collect();
    assert_eq!(structures, [SECOND, FIRST]);
    assert_eq!(
        records[0]["signer_serial"],
        serial("org2/sign.pem").as_str()
    );
    // Per-structure metrics and expiry gauges.
    let m = metrics(p.admin);
    assert_eq!(
        metric(
            &m,
            "rocgw_requests_total",
            &[("structure", SECOND), ("route", "amc")]
        ),
        1.0
    );
    assert!(
        metric(
            &m,
            "rocgw_certificate_not_after_timestamp_seconds",
            &[("structure", SECOND), ("name", "sign")]
        ) > rocgw::clock::now_unix() as f64
    );
    let bearer = format!("Bearer {DPI_TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let status: serde_json::Value =
        serde_json::from_str(&http(p.admin, "GET", "/status", &auth, b"").body).unwrap();
    assert_eq!(
        status["identities"].as_array().unwrap().len(),
        4,
        "{status}"
    );
}

#[test]
fn a_caller_signs_only_as_the_structures_it_was_given() {
    let (ann, amc, g) = group();
    // dpi: both, default SECOND; gap: SECOND only. Tokens are optional, so anonymous loopback
    // callers are served too (default structure only).
    let access = format!(
        "require_token = false\n\
         [[access.grants]]\ncaller = \"token:dpi\"\nstructures = [\"{FIRST}\", \"{SECOND}\"]\ndefault = \"{SECOND}\"\n\
         [[access.grants]]\ncaller = \"token:gap\"\nstructures = [\"{SECOND}\"]\n"
    );
    let p = Proc::with_config(&g.config(&ann.url("/annuaire"), &amc.url("/idb"), "", &access));
    let signed_as = |token: Option<&str>, structure: Option<&str>| {
        let r = send(p.gateway, "/amc/10000001/idb", token, structure);
        if r.status != 200 {
            return Err(r.header("x-rocgw-error").unwrap_or("?").to_string());
        }
        let body = amc.seen.bodies.lock().unwrap().last().cloned().unwrap();
        Ok(text_of(&body, "NameID", 0).to_string())
    };
    let err = |code: &str| Err(code.to_string());
    // The header, then the caller's default, then the gateway's.
    assert_eq!(signed_as(Some(DPI_TOKEN), Some(FIRST)), Ok(FIRST.into()));
    assert_eq!(signed_as(Some(DPI_TOKEN), None), Ok(SECOND.into()));
    assert_eq!(signed_as(None, None), Ok(FIRST.into()));
    // gap's list lacks the gateway default: the fallback never escapes the list.
    assert_eq!(signed_as(Some(GAP_TOKEN), Some(SECOND)), Ok(SECOND.into()));
    assert_eq!(signed_as(Some(GAP_TOKEN), None), err("unauthorized"));
    assert_eq!(signed_as(Some(GAP_TOKEN), Some(FIRST)), err("unauthorized"));
    // Anonymous loopback with the header for a non-default structure.
    assert_eq!(signed_as(None, Some(SECOND)), err("unauthorized"));
    // An identifier no structure has, before any list.
    assert_eq!(
        signed_as(Some(DPI_TOKEN), Some("1990000099")),
        err("unknown-structure")
    );
    let r = send(p.gateway, "/amc/10000001/idb", None, Some("1990000099"));
    let f = parse_fault(&r.body);
    assert_eq!(
        (r.status, f.code.as_str(), f.side.as_str()),
        (400, "unknown-structure", "Sender")
    );
    assert_eq!(
        amc.seen.requests.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "refused calls are not forwarded"
    );
}

#[test]
fn a_certificate_and_a_token_must_both_allow_the_structure() {
    let (ann, amc, g) = group();
    let p = |r: &str| pki_path(r).display().to_string();
    let server = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = [\"{}\"]\n",
        p("local/gateway.chain.pem"),
        p("local/gateway.key"),
        p("local/ca.pem")
    );
    let access = format!(
        "[[access.grants]]\ncaller = \"cert:SIH TEST DPI\"\nstructures = [\"{FIRST}\"]\n\
         [[access.grants]]\ncaller = \"token:dpi\"\nstructures = [\"{FIRST}\", \"{SECOND}\"]\n"
    );
    let gw =
        Proc::with_config(&g.config(&ann.url("/annuaire"), &amc.url("/idb"), &server, &access));
    let url = format!("https://localhost:{}/amc/10000001/idb", gw.gateway.port());
    let auth = format!("Authorization: Bearer {DPI_TOKEN}");
    let (ca, cert, key) = (
        p("local/ca.pem"),
        p("local/client.pem"),
        p("local/client.key"),
    );
    let ask = |structure: &str| {
        let h = format!("X-Rocgw-Structure: {structure}");
        let args = [
            "--cacert", &ca, "--cert", &cert, "--key", &key, "-H", &auth, "-H", &h,
        ];
        curl(&url, &args, CT12, &envelope12("<q/>")).unwrap()
    };
    assert_eq!(ask(FIRST).status, 200);
    // The token allows SECOND, the certificate does not: refused.
    let r = ask(SECOND);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("unauthorized"),
        "{}",
        r.body
    );
    assert!(r.body.contains("cert:SIH TEST DPI"), "{}", r.body);
}

#[test]
fn a_bad_file_for_one_structure_keeps_both_serving() {
    let (_ann, _amc, g, p) = granted_both();
    let both_sign = || {
        for s in [FIRST, SECOND] {
            let r = send(p.gateway, "/amc/10000001/idb", Some(DPI_TOKEN), Some(s));
            assert_eq!(r.status, 200, "{s}: {}", r.body);
        }
    };
    both_sign();
    fs::write(g.dir.path().join("broken"), b"not a pkcs12 file").unwrap();
    replace_file(&g.dir.path().join("broken"), &g.sign2);
    p.signal("HUP");
    wait_for("the failed reload", Duration::from_secs(10), || {
        metric(
            &metrics(p.admin),
            "rocgw_reloads_total",
            &[("outcome", "failed")],
        ) >= 1.0
    });
    both_sign();
    let records = audit_records(&g.audit, 4);
    assert_eq!(
        records[3]["signer_serial"],
        serial("org2/sign.pem").as_str(),
        "SECOND kept its key"
    );
    assert!(p
        .stderr_lines()
        .iter()
        .any(|l| l.contains("structures.1990000020.sign")));
}

#[test]
fn each_structure_key_must_be_the_structure_its_certificates_name() {
    let g = Group::new();
    // SECOND's SIGN file holds FIRST's certificate.
    fs::copy(pki_path("org/sign.p12"), &g.sign2).unwrap();
    let out = run(
        &[
            "serve",
            "--config",
            g.config("https://localhost:9/a", "https://localhost:9/i", "", "")
                .to_str()
                .unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("structures.1990000020.sign") && err.contains(FIRST),
        "{err}"
    );
}

#[test]
fn cert_doctor_checks_each_structure() {
    let g = Group::new();
    let doctor = |cfg: &std::path::Path| {
        let out = run(
            &[
                "cert",
                "doctor",
                "--config",
                cfg.to_str().unwrap(),
                "--allow-test-pki",
            ],
            &[],
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let cfg = g.config("https://localhost:9/a", "https://localhost:9/i", "", "");
    let (_, out) = doctor(&cfg);
    for id in [FIRST, SECOND] {
        let line = format!("OK   structures.{id}: structure: both identities are structure {id}");
        assert!(out.contains(&line), "{out}");
    }
    assert!(out.contains("structures.1990000020.sign: "), "{out}");
    // SECOND's SIGN file holds FIRST's certificate: doctor says which structure is wrong.
    fs::copy(pki_path("org/sign.p12"), &g.sign2).unwrap();
    let (code, out) = doctor(&cfg);
    assert_eq!(code, Some(2), "{out}");
    let fail = format!("FAIL structures.{SECOND}: structure: configured as {SECOND}; AUTH_CLI is structure {SECOND}, SIGN is structure {FIRST}");
    assert!(out.contains(&fail), "{out}");
    assert!(
        !out.contains(&format!("FAIL structures.{FIRST}: structure")),
        "{out}"
    );
}

#[test]
fn a_candidate_certificate_is_checked_against_the_structure_it_renews() {
    let g = Group::new();
    let cfg = g.config("https://localhost:9/a", "https://localhost:9/i", "", "");
    let candidate = |file: &str, structure: &str| {
        let out = run(
            &[
                "cert",
                "doctor",
                "--config",
                cfg.to_str().unwrap(),
                "--allow-test-pki",
                "--candidate",
                pki_path(file).to_str().unwrap(),
                "--role",
                "sign",
                "--structure",
                structure,
            ],
            &[],
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    // The second structure's SIGN renews the second structure...
    let (code, out) = candidate("org2/sign.p12", SECOND);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "OK   candidate: structure: renews structure {SECOND}"
        )),
        "{out}"
    );
    // ...not the first.
    let (code, out) = candidate("org2/sign.p12", FIRST);
    assert_eq!(code, Some(2), "{out}");
    let fail = format!("FAIL candidate: structure: the candidate is structure {SECOND}; structures.{FIRST} is structure {FIRST}");
    assert!(out.contains(&fail), "{out}");
    // An AUTH_CLI file offered as SIGN fails the role check.
    let (code, out) = candidate("org/auth_cli.p12", FIRST);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("FAIL candidate: role"), "{out}");
}

/// Two structures share the annuaire's per-host connection cap, each with its own pool (its
/// own AUTH_CLI): one structure's idle connections do not keep the other from the annuaire.
#[test]
fn one_structures_idle_connections_do_not_starve_the_other() {
    let (ann, amc, g) = group();
    let grant = format!(
        "[[access.grants]]\ncaller = \"token:dpi\"\nstructures = [\"{FIRST}\", \"{SECOND}\"]\n"
    );
    let upstream = "\n[upstream]\nmax_connections_per_host = 1\npool_idle_timeout_ms = 60000\n\
                    first_byte_timeout_ms = 3000";
    let p = Proc::with_config(&g.config(&ann.url("/annuaire"), &amc.url("/idb"), upstream, &grant));
    let r = send(p.gateway, "/annuaire", Some(DPI_TOKEN), Some(FIRST));
    assert_eq!(r.status, 200, "{}", r.body);
    // FIRST's connection is idle in its pool and holds the one permit.
    assert_eq!(ann.open(), 1);
    let t = std::time::Instant::now();
    let r = send(p.gateway, "/annuaire", Some(DPI_TOKEN), Some(SECOND));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(ann.serials().last(), Some(&serial("org2/auth_cli.pem")));
    assert_eq!(ann.connections(), 2);
    // And back: SECOND's idle connection gives way to FIRST.
    let r = send(p.gateway, "/annuaire", Some(DPI_TOKEN), Some(FIRST));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ann.connections(), 3);
}

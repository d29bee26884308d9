//! Several CRLs of one authority (issue 17): the newest of one scope wins whatever the order of
//! `[trust] crls`, with a warning naming the others; an issuing distribution point's scope is
//! applied (a root's ARL says nothing of end-entity certificates); delta, indirect, partial
//! (onlySomeReasons) CRLs and unknown critical extensions stop the start-up.
//!
//! The hierarchy here is made by `openssl` (its own root, an AC-SERVEUR under it, servers under
//! both), so that its CRLs can say what each test needs; the gateway is a real process, the
//! AMCs real TLS servers on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};
use crate::upstream::amc;

/// Where the root's and AC-SERVEUR's CRLs are published, as the certificates say.
const ROOT_CDP: &str = "http://crl.test.invalid/root.crl";
const SERVEUR_CDP: &str = "http://crl.test.invalid/ac-serveur.crl";

/// Serials, fixed so that the CRLs can list them.
const SERVEUR_SERIAL: &str = "1001";
const GOOD_SERIAL: &str = "2001";
const REVOKED_SERIAL: &str = "2002";
const DIRECT_SERIAL: &str = "3001";

/// A small hierarchy of our own, with its CA keys: `root` (self-signed), `ac-serveur` (a CA
/// under it), servers `good` and `revoked` under AC-SERVEUR, and `direct`, an end-entity server
/// certificate issued by the root itself. Every certificate names its issuer's CRL in its CRL
/// distribution points.
struct Osi {
    dir: tempfile::TempDir,
}

impl Osi {
    fn new() -> Osi {
        let osi = Osi { dir: scratch() };
        osi.write(
            "ext.cnf",
            &format!(
                "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
                 subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
                 crlDistributionPoints = URI:{ROOT_CDP}\n\
                 [leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n\
                 subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
                 crlDistributionPoints = URI:{SERVEUR_CDP}\n\
                 [direct]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
                 extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost\n\
                 subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n\
                 crlDistributionPoints = URI:{ROOT_CDP}\n"
            ),
        );
        osi.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "30",
            "-subj",
            "/O=TEST ROCGW/CN=TEST CRL ROOT",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        osi.issue(
            "ac-serveur",
            "TEST CRL AC-SERVEUR",
            "root",
            SERVEUR_SERIAL,
            "ca",
        );
        osi.issue("good", "localhost", "ac-serveur", GOOD_SERIAL, "leaf");
        osi.issue("revoked", "localhost", "ac-serveur", REVOKED_SERIAL, "leaf");
        osi.issue("direct", "localhost", "root", DIRECT_SERIAL, "direct");
        let anchors = [osi.read("root.pem"), osi.read("ac-serveur.pem")].concat();
        osi.write("anchors.pem", &anchors);
        for leaf in ["good", "revoked"] {
            let chain = [osi.read(&format!("{leaf}.pem")), osi.read("ac-serveur.pem")].concat();
            osi.write(&format!("{leaf}.chain.pem"), &chain);
        }
        let direct = osi.read("direct.pem");
        osi.write("direct.chain.pem", &direct);
        osi
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    fn openssl(&self, args: &[&str]) {
        let out = tool("openssl", args, self.dir.path());
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `<name>.pem` and `<name>.key`: `cn`, issued by `issuer` with `serial` (hex) and the
    /// `ext.cnf` section `ext`.
    fn issue(&self, name: &str, cn: &str, issuer: &str, serial: &str, ext: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/O=TEST ROCGW/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{issuer}.pem"),
            "-CAkey",
            &format!("{issuer}.key"),
            "-set_serial",
            &format!("0x{serial}"),
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-extensions",
            ext,
            "-out",
            &pem,
        ]);
    }

    /// A CRL `<name>.crl` (PEM) of `ca` revoking `serials`, with cRLNumber `number` (none when
    /// `None`), thisUpdate and nextUpdate `hours` from now, and `extensions` (openssl config
    /// lines, e.g. an issuing distribution point).
    fn crl(
        &self,
        name: &str,
        ca: &str,
        serials: &[&str],
        number: Option<u32>,
        hours: (i64, i64),
        extensions: &str,
    ) -> PathBuf {
        let index: String = serials
            .iter()
            .map(|s| format!("R\t350101000000Z\t250101000000Z\t{s}\tunknown\t/CN=revoked {s}\n"))
            .collect();
        self.write(&format!("{name}.index"), &index);
        let number_line = match number {
            Some(n) => {
                self.write(&format!("{name}.number"), &format!("{n:02X}\n"));
                format!("crlnumber = {name}.number\n")
            }
            None => String::new(),
        };
        self.write(
            &format!("{name}.cnf"),
            &format!(
                "[ca]\ndefault_ca = c\n[c]\ndatabase = {name}.index\n{number_line}default_md = sha256\n\
                 [exts]\n{extensions}\n"
            ),
        );
        let out = format!("{name}.crl");
        let (this_update, next_update) = (asn1_time(hours.0), asn1_time(hours.1));
        let cnf = format!("{name}.cnf");
        let (cert, key) = (format!("{ca}.pem"), format!("{ca}.key"));
        let mut args = vec![
            "ca",
            "-config",
            &cnf,
            "-gencrl",
            "-keyfile",
            &key,
            "-cert",
            &cert,
            "-out",
            &out,
            "-crl_lastupdate",
            &this_update,
            "-crl_nextupdate",
            &next_update,
        ];
        if !extensions.is_empty() {
            args.extend(["-crlexts", "exts"]);
        }
        self.openssl(&args);
        self.path(&out)
    }

    /// An AMC server with the certificate `name` (`good`, `revoked`, `direct`).
    fn server(&self, name: &str) -> TlsServer {
        TlsServer::start(
            self.path(&format!("{name}.chain.pem")).to_str().unwrap(),
            self.path(&format!("{name}.key")).to_str().unwrap(),
            None,
            Behavior::Echo,
        )
    }

    /// A gateway configuration trusting this hierarchy (the root and AC-SERVEUR as anchors and
    /// server-role authorities) with these CRLs, revocation policy and AMC routes.
    /// A gateway process on `config`'s configuration, and its folder.
    fn gateway(
        &self,
        crls: &[&Path],
        revocation: &str,
        routes: &[(&str, String)],
    ) -> (Proc, tempfile::TempDir) {
        let tmp = scratch();
        let cfg = write_config(tmp.path(), &self.config(crls, revocation, routes));
        (Proc::with_config(&cfg), tmp)
    }

    fn config(&self, crls: &[&Path], revocation: &str, routes: &[(&str, String)]) -> String {
        let quoted = |paths: &[&Path]| {
            paths
                .iter()
                .map(|p| format!("\"{}\"", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!(
            r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[identity.auth_cli]
p12 = "{auth}"
password_file = "{password}"

[identity.sign]
p12 = "{sign}"
password_file = "{password}"

[trust]
amc_anchors = ["{anchors}"]
server_authorities = [{authorities}]
crls = [{crls}]

[amc]
revocation = "{revocation}"

[upstream]
connect_timeout_ms = 2000
tls_timeout_ms = 2000
first_byte_timeout_ms = 5000
total_timeout_ms = 8000
"#,
            auth = pki_path("org/auth_cli.p12").display(),
            sign = pki_path("org/sign.p12").display(),
            password = pki_path("secrets/p12-password").display(),
            anchors = self.path("anchors.pem").display(),
            authorities = quoted(&[&self.path("root.pem"), &self.path("ac-serveur.pem")]),
            crls = quoted(crls),
        );
        for (amc, url) in routes {
            text.push_str(&format!("\n[routes.\"{amc}\"]\nidb = \"{url}\"\n"));
        }
        text
    }
}

/// An ASN.1 time `hours` from now, as `openssl ca` takes it.
fn asn1_time(hours: i64) -> String {
    let t = ::time::OffsetDateTime::now_utc() + ::time::Duration::hours(hours);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An IDB call to AMC `number` through `gw`, refused as the AMC's certificate is revoked
/// (`context` in the failure message); its answer.
fn assert_revoked(gw: std::net::SocketAddr, number: &str, context: &str) -> Resp {
    let r = amc(gw, number);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("upstream-cert-revoked"),
        "{context}: {}",
        r.body
    );
    r
}

/// The root's ARL: an issuing distribution point with onlyContainsCACerts at the root's CRL
/// distribution point.
fn arl_extensions() -> String {
    format!("issuingDistributionPoint = critical, @idp\n[idp]\nfullname = URI:{ROOT_CDP}\nonlyCA = TRUE")
}

#[test]
fn the_newest_crl_of_a_ca_wins_in_either_order_and_the_other_is_named_in_a_warning() {
    let osi = Osi::new();
    let root = osi.crl("root", "root", &[], Some(1), (-1, 24 * 7), "");
    // A fresh CRL that revokes, and an older empty one, past its next update.
    let fresh = osi.crl(
        "ac-serveur-fresh",
        "ac-serveur",
        &[REVOKED_SERIAL],
        Some(2),
        (-1, 24 * 7),
        "",
    );
    let old = osi.crl(
        "ac-serveur-old",
        "ac-serveur",
        &[],
        Some(1),
        (-24 * 8, -24),
        "",
    );
    let (good, revoked) = (osi.server("good"), osi.server("revoked"));
    let routes = [
        ("10000001", good.url("/idb")),
        ("10000002", revoked.url("/idb")),
    ];
    for order in [[&root, &fresh, &old], [&root, &old, &fresh]] {
        let tmp = scratch();
        let crls: Vec<&Path> = order.iter().map(|p| p.as_path()).collect();
        let cfg = write_config(tmp.path(), &osi.config(&crls, "hard", &routes));
        let p = Proc::with_config(&cfg);

        let r = assert_revoked(p.gateway, "10000002", &format!("order {crls:?}"));
        assert_eq!(parse_fault(&r.body).code, "upstream-cert-revoked");
        // The fresh CRL is the one in force: not the stale one, which hard would refuse...
        let r = amc(p.gateway, "10000001");
        assert_eq!(r.status, 200, "order {crls:?}: {}", r.body);
        // ...nor count against readiness.
        let r = http(p.admin, "GET", "/readyz", &[], b"");
        assert_eq!(r.status, 200, "order {crls:?}: {}", r.body);

        let old_name = old.display().to_string();
        let logs = p.logs_until(Duration::from_secs(5), |l| {
            l.contains("superseded") && l.contains(&old_name)
        });
        let warning = logs
            .iter()
            .find(|l| l.contains("superseded") && l.contains(&old_name))
            .unwrap();
        assert!(warning.contains("WARN"), "{warning}");
        assert!(
            warning.contains(&fresh.display().to_string()),
            "the warning names the CRL in force: {warning}"
        );

        // cert doctor says the same, as a WARN line.
        let out = run(&["cert", "doctor", "--config", cfg.to_str().unwrap()], &[]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.lines().any(|l| l.starts_with("WARN trust.crls: ")
                && l.contains(&old_name)
                && l.contains("superseded")),
            "{stdout}"
        );
    }
}

#[test]
fn a_root_arl_revokes_the_ca_it_lists_and_says_nothing_of_end_entity_certificates() {
    let osi = Osi::new();
    // The ARL lists AC-SERVEUR and, wrongly, the end-entity certificate `direct`: an ARL
    // only answers for CA certificates.
    let arl = osi.crl(
        "root-arl",
        "root",
        &[SERVEUR_SERIAL, DIRECT_SERIAL],
        Some(1),
        (-1, 24 * 7),
        &arl_extensions(),
    );
    let serveur = osi.crl("ac-serveur", "ac-serveur", &[], Some(1), (-1, 24 * 7), "");
    let (good, direct) = (osi.server("good"), osi.server("direct"));
    let routes = [
        ("10000001", good.url("/idb")),
        ("10000003", direct.url("/idb")),
    ];
    let (p, _tmp) = osi.gateway(&[&arl, &serveur], "soft", &routes);

    // AC-SERVEUR is revoked by the ARL: every server under it is refused.
    assert_revoked(p.gateway, "10000001", "");
    // The ARL does not cover `direct`: its status is unknown, which soft allows and counts.
    let r = amc(p.gateway, "10000003");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        metric(
            &scrape(p.admin),
            "rocgw_revocation_unknown_total",
            &[("upstream", "amc"), ("reason", "no-crl")]
        ),
        1.0
    );
}

#[test]
fn a_root_crl_for_end_entities_and_its_arl_are_both_in_force_in_either_order() {
    let osi = Osi::new();
    let arl = osi.crl(
        "root-arl",
        "root",
        &[SERVEUR_SERIAL],
        Some(1),
        (-1, 24 * 7),
        &arl_extensions(),
    );
    // The root's CRL for end entities: newer, empty.
    let users = osi.crl(
        "root-users",
        "root",
        &[],
        Some(7),
        (-1, 24 * 7),
        &format!(
            "issuingDistributionPoint = critical, @idp\n[idp]\nfullname = URI:{ROOT_CDP}\nonlyuser = TRUE"
        ),
    );
    let serveur = osi.crl("ac-serveur", "ac-serveur", &[], Some(1), (-1, 24 * 7), "");
    let (good, direct) = (osi.server("good"), osi.server("direct"));
    let routes = [
        ("10000001", good.url("/idb")),
        ("10000003", direct.url("/idb")),
    ];
    for order in [[&arl, &users, &serveur], [&users, &arl, &serveur]] {
        let crls: Vec<&Path> = order.iter().map(|p| p.as_path()).collect();
        let (p, _tmp) = osi.gateway(&crls, "hard", &routes);
        // The ARL answers for AC-SERVEUR...
        assert_revoked(p.gateway, "10000001", &format!("order {crls:?}"));
        // ...the CRL for end entities for `direct`: known, not revoked, so hard lets it through.
        let r = amc(p.gateway, "10000003");
        assert_eq!(r.status, 200, "order {crls:?}: {}", r.body);
        // Two scopes: neither CRL supersedes the other.
        let logs = p.stderr_lines().join("\n");
        assert!(!logs.contains("superseded"), "{logs}");
    }
}

/// `serve` with this one CRL: exit code 2 and one line naming the file and saying `why`.
fn refused(osi: &Osi, crl: &Path, why: &str) {
    let tmp = scratch();
    let cfg = write_config(tmp.path(), &osi.config(&[crl], "hard", &[]));
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {err}", crl.display());
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one clear line: {err}");
    let line = lines[0];
    assert!(
        line.starts_with(&format!("rocgw: error: trust.crls[0]: {}: ", crl.display())),
        "{line}"
    );
    assert!(line.contains(why), "expected {why:?}: {line}");
}

#[test]
fn delta_indirect_partial_and_unknown_critical_crls_stop_the_start_up() {
    let osi = Osi::new();
    let fresh = (-1, 24 * 7);
    let cases = [
        ("delta", "deltaCRL = critical, ASN1:INTEGER:2", "delta CRL"),
        (
            "indirect",
            "issuingDistributionPoint = critical, @idp\n[idp]\nindirectCRL = TRUE",
            "indirect CRL",
        ),
        (
            "partial",
            "issuingDistributionPoint = critical, @idp\n[idp]\nonlysomereasons = keyCompromise",
            "onlySomeReasons",
        ),
        (
            "unknown",
            "1.3.6.1.4.1.55555.17 = critical, ASN1:UTF8String:must understand",
            "unknown critical extension 1.3.6.1.4.1.55555.17",
        ),
    ];
    for (name, extensions, why) in cases {
        let crl = osi.crl(name, "ac-serveur", &[], Some(3), fresh, extensions);
        refused(&osi, &crl, why);
    }
}

/// The README's "root alone is enough" trust section: the root as the only anchor, the role
/// authorities listed apart. Their own CRLs (signed by AC-SERVEUR, by AC-SERVICES-APPLICATIFS)
/// load, and a server they revoke is refused.
#[test]
fn role_authorities_listed_apart_from_a_root_only_anchor_sign_their_own_crls() {
    let good = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let revoked = TlsServer::fixture("negative/server-revoked", None, Behavior::Echo);
    let p = |r: &str| pki_path(r).display().to_string();
    // AC-SERVEUR's CRL as the CAs publish it: DER, `.crl`.
    let dir = scratch();
    let der = dir.path().join("ac-serveur.crl");
    let pem = p("osi/ac-serveur.crl.pem");
    let args = [
        "crl",
        "-in",
        &pem,
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ];
    let out = tool("openssl", &args, dir.path());
    assert!(out.status.success(), "openssl crl");
    assert_eq!(std::fs::read(&der).unwrap()[0], 0x30, "DER");
    let trust = format!(
        "server_authorities = [\"{}\"]\nsignature_authorities = [\"{}\"]\n\
         crls = [\"{}\", \"{}\", \"{}\"]",
        p("osi/ac-serveur.pem"),
        p("osi/ac-services-applicatifs.pem"),
        p("osi/root.crl.pem"),
        der.display(),
        p("osi/ac-services-applicatifs.crl.pem"),
    );
    let text = base_config(
        &p("org/auth_cli.p12"),
        &p("secrets/p12-password"),
        "",
        &trust,
    )
    .replace(&p("osi/anchors.pem"), &p("osi/root.pem"));
    let text = format!(
        "{text}\n[amc]\nrevocation = \"hard\"\n\n[routes.\"10000001\"]\nidb = \"{}\"\n\n\
         [routes.\"10000003\"]\nidb = \"{}\"\n",
        good.url("/idb"),
        revoked.url("/idb")
    );
    let gw = Proc::with_config(&write_config(dir.path(), &text));
    assert_eq!(amc(gw.gateway, "10000001").status, 200);
    assert_revoked(gw.gateway, "10000003", "");
}

//! rocgw's upstream TLS against peers built on OpenSSL rather than rustls: Python's `ssl`
//! module as a TLS 1.2-only annuaire that verifies the AUTH_CLI chain, and `openssl s_server`
//! as AMC servers with no TLS version or cipher suite in common with rocgw.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::*;

/// A server process, killed when dropped, the port it listens on, and the line that said so.
pub struct Peer {
    child: Child,
    port: u16,
    pub line: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts `cmd` and reads its port from the first line of its output that `port_of` reads.
    pub fn start(cmd: &mut Command, port_of: impl Fn(&str) -> Option<u16>) -> Peer {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?} is needed by this test ({e}): run `bash .ci/run`"));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (port, line) = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| Some((port_of(&l)?, l)))
            .expect("the peer's port");
        // Keep its output drained (s_server writes a line per connection).
        std::thread::spawn(move || lines.for_each(drop));
        Peer { child, port, line }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

/// `openssl s_server` with the AMC test certificate, restricted by `args`.
fn s_server(args: &[&str]) -> Peer {
    let p = |r: &str| pki_path(r).display().to_string();
    let mut cmd = Command::new("openssl");
    cmd.args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert"])
        .args([p("osi/amc-a.pem"), "-key".into(), p("osi/amc-a.key")])
        .args(["-cert_chain".into(), p("osi/amc-a.chain.pem")])
        .args(args);
    Peer::start(&mut cmd, |l| {
        l.strip_prefix("ACCEPT 127.0.0.1:")?.trim().parse().ok()
    })
}

/// An HTTPS annuaire on Python's `ssl` (OpenSSL): TLS 1.2 at most, one ECDHE suite, a client
/// certificate required and verified against the IGC-Santé root. Its SOAP 1.1 answer names the
/// client certificate's CN, the TLS version and the cipher suite.
const PY_ANNUAIRE: &str = r#"
import http.server, ssl, sys
chain, key, ca = sys.argv[1:4]
class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        subject = self.connection.getpeercert()["subject"]
        cn = [v for rdn in subject for (k, v) in rdn if k == "commonName"][0]
        body = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
                '<peer cn="%s" version="%s" cipher="%s"/></s:Body></s:Envelope>'
                % (cn, self.connection.version(), self.connection.cipher()[0])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
ctx.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384")
ctx.load_cert_chain(chain, key)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.load_verify_locations(ca)
server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("port", server.server_address[1], flush=True)
server.serve_forever()
"#;

fn python_annuaire(dir: &Path) -> Peer {
    let script = dir.join("annuaire.py");
    std::fs::write(&script, PY_ANNUAIRE).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args([
        pki_path("osi/annuaire.chain.pem"),
        pki_path("osi/annuaire.key"),
        pki_path("igc-sante/acr.pem"),
    ]);
    Peer::start(&mut cmd, |l| l.strip_prefix("port ")?.trim().parse().ok())
}

pub fn gateway(dir: &Path, annuaire: &str, routes: &[(&str, String)]) -> Proc {
    let mut text = config_text("", &format!("[annuaire]\nurl = \"{annuaire}\"\n"));
    for (amc, url) in routes {
        text.push_str(&format!("\n[routes.\"{amc}\"]\nidb = \"{url}\"\n"));
    }
    Proc::with_config(&write_config(dir, &text))
}

#[test]
fn an_openssl_tls12_annuaire_verifies_the_auth_cli_chain_and_answers() {
    let dir = scratch();
    let annuaire = python_annuaire(dir.path());
    let gw = gateway(dir.path(), &annuaire.url("/annuaire"), &[]);
    for _ in 0..2 {
        let r = post(gw.gateway, "/annuaire", CT11, &envelope11("<search/>"));
        assert_eq!(r.status, 200, "{}", r.body);
        // OpenSSL verified the chain rocgw sent (AUTH_CLI and its ACI) up to the ACR.
        assert!(
            r.body.contains(r#"cn="Client_ROC_Annuaire_AMC""#),
            "{}",
            r.body
        );
        assert!(
            r.body
                .contains(r#"version="TLSv1.2" cipher="ECDHE-RSA-AES256-GCM-SHA384""#),
            "{}",
            r.body
        );
    }
    let m = scrape(gw.admin);
    let opened = metric(&m, "rocgw_upstream_connections_opened_total", &[]);
    assert_eq!(opened, 1.0, "the second call reused the TLS 1.2 connection");
}

#[test]
fn servers_without_a_tls_version_or_cipher_suite_in_common_are_named() {
    let dir = scratch();
    // TLS 1.2 with RSA key exchange and CBC only; TLS 1.1 at most.
    let cbc = s_server(&["-tls1_2", "-cipher", "AES256-SHA"]);
    let old = s_server(&["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]);
    let gw = gateway(
        dir.path(),
        "https://localhost:9/annuaire",
        &[("10000001", cbc.url("/idb")), ("10000002", old.url("/idb"))],
    );
    for (amc, says, reason) in [
        (
            "10000001",
            "refused the handshake (received fatal alert: HandshakeFailure): often no cipher suite",
            "handshake-failure",
        ),
        (
            "10000002",
            "found no TLS version or cipher suite in common",
            "no-common-parameters",
        ),
    ] {
        let r = crate::upstream::amc(gw.gateway, amc);
        assert_eq!(
            parse_fault(&r.body).code,
            "upstream-tls",
            "{amc}: {}",
            r.body
        );
        assert!(r.body.contains(says), "{amc}: {}", r.body);
        assert!(
            r.body.contains("rocgw offers TLS 1.3 and TLS 1.2"),
            "{amc}: {}",
            r.body
        );
        let labels = [("upstream", "amc"), ("reason", reason)];
        let failures = metric(
            &scrape(gw.admin),
            "rocgw_upstream_tls_failures_total",
            &labels,
        );
        assert_eq!(failures, 1.0, "{reason}");
    }
}

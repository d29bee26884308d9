//! Upstream TLS against real TLS servers on 127.0.0.1 with the test PKI: mutual TLS to the
//! annuaire with AUTH_CLI, IGC OSI chain / date / host / revocation checks towards AMCs, each
//! failure as its own fault with a log line and a counter, pooling and limits, the CONNECT proxy,
//! and certificate rotation without a failed request.

use std::fs;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::tls_server::{pki_serial, Behavior, TlsServer, FAULT};

pub const IGC_ROOTS: &[&str] = &["igc-sante/acr.pem"];

/// A gateway configuration on the test PKI with the given annuaire, AMC routes and extra TOML.
struct Gw<'a> {
    annuaire: Option<String>,
    annuaire_revocation: &'a str,
    amc_revocation: &'a str,
    crls: bool,
    routes: Vec<(String, String)>,
    auth_cli_p12: String,
    password_file: String,
    extra: String,
    check_interval_s: u64,
}

impl Default for Gw<'_> {
    fn default() -> Self {
        Gw {
            annuaire: None,
            annuaire_revocation: "soft",
            amc_revocation: "soft",
            crls: true,
            routes: Vec::new(),
            auth_cli_p12: pki_path("org/auth_cli.p12").display().to_string(),
            password_file: pki_path("secrets/p12-password").display().to_string(),
            extra: String::new(),
            check_interval_s: 0,
        }
    }
}

impl Gw<'_> {
    fn text(&self) -> String {
        let p = |r: &str| pki_path(r).display().to_string();
        let crls = if self.crls {
            format!(
                "crls = [\"{}\", \"{}\", \"{}\"]",
                p("osi/root.crl.pem"),
                p("osi/ac-serveur.crl.pem"),
                p("osi/ac-services-applicatifs.crl.pem")
            )
        } else {
            String::new()
        };
        let mut t = base_config(&self.auth_cli_p12, &self.password_file, "", &crls);
        t.push_str(&format!(
            r#"
[amc]
revocation = "{amc_rev}"

[reload]
check_interval_s = {interval}

[upstream]
connect_timeout_ms = 2000
tls_timeout_ms = 2000
first_byte_timeout_ms = 5000
total_timeout_ms = 8000
{extra}
"#,
            amc_rev = self.amc_revocation,
            interval = self.check_interval_s,
            extra = self.extra,
        ));
        if let Some(a) = &self.annuaire {
            t.push_str(&format!(
                "\n[annuaire]\nurl = \"{a}\"\nrevocation = \"{}\"\n",
                self.annuaire_revocation
            ));
        }
        for (amc, url) in &self.routes {
            t.push_str(&format!("\n[routes.\"{amc}\"]\nidb = \"{url}\"\n"));
        }
        t
    }

    fn start(&self) -> (Proc, tempfile::TempDir) {
        let tmp = scratch();
        let cfg = write_config(tmp.path(), &self.text());
        (Proc::with_config(&cfg), tmp)
    }
}

/// An IDB call to AMC `number` through the gateway.
pub fn amc(gw: std::net::SocketAddr, number: &str) -> Resp {
    post(
        gw,
        &format!("/amc/{number}/idb"),
        CT11,
        &envelope11("<idb/>"),
    )
}

fn annuaire(gw: std::net::SocketAddr) -> Resp {
    post(gw, "/annuaire", CT11, &envelope11("<search/>"))
}

#[test]
fn annuaire_gets_mutual_tls_with_auth_cli_and_amc_answers_pass_through() {
    let ann = TlsServer::fixture("osi/annuaire", Some(IGC_ROOTS), Behavior::Echo);
    let good = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let faulty = TlsServer::fixture("osi/amc-b", None, Behavior::Fault(500));
    let (p, _t) = Gw {
        annuaire: Some(ann.url("/annuaire")),
        annuaire_revocation: "hard",
        amc_revocation: "hard",
        routes: vec![
            ("10000001".into(), good.url("/amc/idb")),
            ("10000002".into(), faulty.url("/amc/idb")),
        ],
        ..Gw::default()
    }
    .start();

    let r = http(
        p.gateway,
        "POST",
        "/annuaire/search?v=1",
        &[
            ("Content-Type", CT11),
            ("SOAPAction", "\"search\""),
            ("Authorization", "Bearer local-only-token"),
            ("Accept", "text/xml"),
            ("Accept", "application/soap+xml"),
            // Second values of single fields: not what rocgw read, not passed on.
            ("Content-Type", "application/json"),
            ("SOAPAction", "\"other\""),
            ("X-Rocgw-Deadline-Ms", "20000"),
            ("Accept-Encoding", "gzip"),
        ],
        envelope11("<search/>").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let head = ann.seen.heads.lock().unwrap()[0].clone();
    let all = |name: &str| -> Vec<&str> {
        head.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(all("content-type"), [CT11]);
    assert_eq!(all("soapaction"), ["\"search\""]);
    assert_eq!(all("accept"), ["text/xml", "application/soap+xml"]);
    assert_eq!(all("user-agent").len(), 1);
    // rocgw reads the answer: no content coding, whatever the SIH accepts.
    assert_eq!(all("accept-encoding"), ["identity"]);
    for kept_here in ["authorization", "x-rocgw-deadline-ms"] {
        assert!(all(kept_here).is_empty(), "{kept_here} passed on: {head:?}");
    }
    assert_eq!(r.header("x-rocgw-error"), None);
    assert!(
        r.body.contains(&format!(
            "client-serial=\"{}\"",
            pki_serial("org/auth_cli.pem")
        )),
        "{}",
        r.body
    );
    assert_eq!(ann.serials(), vec![pki_serial("org/auth_cli.pem")]);
    assert_eq!(
        ann.seen.bodies.lock().unwrap()[0],
        envelope11("<search/>"),
        "body forwarded byte for byte"
    );
    assert_eq!(
        r.header("x-upstream-secret"),
        None,
        "only whitelisted headers come back"
    );

    let r = amc(p.gateway, "10000001");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    assert_eq!(
        good.serials(),
        vec![String::new()],
        "no client certificate to AMCs by default"
    );

    // The AMC's own SOAP fault passes through untouched, with its status.
    let r = amc(p.gateway, "10000002");
    assert_eq!(r.status, 500);
    assert_eq!(r.header("x-rocgw-error"), None);
    assert_eq!(r.body, FAULT);
}

#[test]
fn each_upstream_tls_failure_is_its_own_fault_log_and_counter_without_hurting_good_requests() {
    let good = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let expired = TlsServer::fixture("negative/server-expired", None, Behavior::Echo);
    let revoked = TlsServer::fixture("negative/server-revoked", None, Behavior::Echo);
    let unknown = TlsServer::fixture("negative/server-unknown-ca", None, Behavior::Echo);
    let wrong_host = TlsServer::fixture("negative/server-wrong-host", None, Behavior::Echo);
    let closer = TlsServer::fixture("osi/amc-b", None, Behavior::CloseMidHandshake);
    // The annuaire only trusts a foreign CA for its clients: our AUTH_CLI is rejected.
    let picky = TlsServer::fixture(
        "osi/annuaire",
        Some(&["negative/foreign-ca.pem"]),
        Behavior::Echo,
    );
    let (p, _t) = Gw {
        annuaire: Some(picky.url("/annuaire")),
        amc_revocation: "hard",
        routes: vec![
            ("10000001".into(), good.url("/idb")),
            ("10000002".into(), expired.url("/idb")),
            ("10000003".into(), revoked.url("/idb")),
            ("10000004".into(), unknown.url("/idb")),
            ("10000005".into(), wrong_host.url("/idb")),
            ("10000006".into(), closer.url("/idb")),
        ],
        ..Gw::default()
    }
    .start();

    // Good requests flow the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flow = {
        let (stop, ok, bad, gw) = (stop.clone(), ok.clone(), bad.clone(), p.gateway);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = amc(gw, "10000001");
                if r.status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst)
                } else {
                    bad.fetch_add(1, Ordering::SeqCst)
                };
            }
        })
    };

    let cases = [
        ("10000002", "upstream-cert-expired", "cert-expired"),
        ("10000003", "upstream-cert-revoked", "cert-revoked"),
        ("10000004", "upstream-cert-unknown-ca", "unknown-ca"),
        ("10000005", "upstream-tls", "wrong-host"),
        ("10000006", "upstream-tls", "closed-during-handshake"),
    ];
    for (number, code, _) in cases {
        let r = amc(p.gateway, number);
        assert_eq!(
            r.header("x-rocgw-error"),
            Some(code),
            "{number}: {}",
            r.body
        );
        assert_eq!(r.status, 500, "SOAP 1.1 binding");
        assert_eq!(parse_fault(&r.body).code, code);
    }
    let r = annuaire(p.gateway);
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("upstream-tls"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("rejected our client certificate"),
        "{}",
        r.body
    );

    wait_for("a good request through", Duration::from_secs(20), || {
        ok.load(Ordering::SeqCst) > 0
    });
    stop.store(true, Ordering::SeqCst);
    flow.join().unwrap();
    assert_eq!(
        bad.load(Ordering::SeqCst),
        0,
        "a good request failed while others were refused"
    );

    let m = scrape(p.admin);
    for (_, _, reason) in cases {
        assert_eq!(
            metric(
                &m,
                "rocgw_upstream_tls_failures_total",
                &[("upstream", "amc"), ("reason", reason)]
            ),
            1.0,
            "{reason}"
        );
    }
    assert_eq!(
        metric(
            &m,
            "rocgw_upstream_tls_failures_total",
            &[
                ("upstream", "annuaire"),
                ("reason", "peer-rejected-client-cert")
            ]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "rocgw_upstream_requests_total",
            &[("upstream", "amc"), ("outcome", "ok")]
        ),
        ok.load(Ordering::SeqCst) as f64
    );
    let logs = p.stderr_lines().join("\n");
    for (_, _, reason) in cases {
        assert!(
            logs.contains(&format!("reason=\"{reason}\""))
                || logs.contains(&format!("reason={reason}")),
            "no log line for {reason}: {logs}"
        );
    }
}

#[test]
fn revocation_policies_soft_and_hard_without_crls() {
    let revoked = TlsServer::fixture("negative/server-revoked", None, Behavior::Echo);
    let gateway = |policy: &str, crls: bool| {
        Gw {
            crls,
            amc_revocation: policy,
            routes: vec![("10000003".into(), revoked.url("/idb"))],
            ..Gw::default()
        }
        .start()
    };
    // Soft, no CRL: the handshake is allowed, counted as unknown status.
    let (p, _t) = gateway("soft", false);
    assert_eq!(amc(p.gateway, "10000003").status, 200);
    let m = scrape(p.admin);
    assert!(
        metric(
            &m,
            "rocgw_revocation_unknown_total",
            &[("upstream", "amc"), ("reason", "no-crl")]
        ) >= 1.0
    );
    drop(p);
    // Hard, no CRL: refused.
    let (p, _t) = gateway("hard", false);
    let r = amc(p.gateway, "10000003");
    assert_eq!(r.header("x-rocgw-error"), Some("upstream-tls"));
    assert!(r.body.contains("revocation status"), "{}", r.body);
    drop(p);
    // Off, with CRLs: not checked.
    let (p, _t) = gateway("off", true);
    assert_eq!(amc(p.gateway, "10000003").status, 200);
    drop(p);
    // Soft, with CRLs: a revoked certificate is still refused.
    let (p, _t) = gateway("soft", true);
    assert_eq!(
        amc(p.gateway, "10000003").header("x-rocgw-error"),
        Some("upstream-cert-revoked")
    );
}

#[test]
fn connections_are_pooled_and_capped_per_host() {
    let srv = TlsServer::fixture(
        "osi/amc-a",
        None,
        Behavior::Delay(Duration::from_millis(200)),
    );
    let (p, _t) = Gw {
        routes: vec![("10000001".into(), srv.url("/idb"))],
        extra: "max_connections_per_host = 2".into(),
        ..Gw::default()
    }
    .start();
    for _ in 0..5 {
        assert_eq!(amc(p.gateway, "10000001").status, 200);
    }
    assert_eq!(
        srv.connections(),
        1,
        "sequential requests reuse one connection"
    );
    // Eight at once: never more than two connections, every request answered.
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let gw = p.gateway;
            std::thread::spawn(move || amc(gw, "10000001").status)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert!(
        srv.seen.max_open.load(Ordering::SeqCst) <= 2,
        "max open {}",
        srv.seen.max_open.load(Ordering::SeqCst)
    );
    let m = scrape(p.admin);
    let opened = metric(
        &m,
        "rocgw_upstream_connections_opened_total",
        &[("upstream", "amc")],
    );
    let requests = metric(
        &m,
        "rocgw_upstream_requests_total",
        &[("upstream", "amc"), ("outcome", "ok")],
    );
    assert_eq!(requests, 13.0);
    assert!(opened <= 2.0, "opened {opened} connections for 13 requests");
}

/// rocgw's own pool: a pooled connection the server has since closed is never used for a
/// request (no fault, no retry counted), and rocgw closes its idle connections after
/// `pool_idle_timeout_ms` by itself.
#[test]
fn the_pool_skips_connections_the_server_closed_and_closes_its_own_idle_ones() {
    let hangs_up = TlsServer::fixture(
        "osi/amc-a",
        None,
        Behavior::HangUpAfter(Duration::from_millis(300)),
    );
    let patient = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let (p, _t) = Gw {
        routes: vec![
            ("10000001".into(), hangs_up.url("/idb")),
            ("10000002".into(), patient.url("/idb")),
        ],
        extra: "pool_idle_timeout_ms = 1500".into(),
        ..Gw::default()
    }
    .start();
    assert_eq!(amc(p.gateway, "10000001").status, 200);
    wait_for("the server to hang up", Duration::from_secs(5), || {
        hangs_up.open() == 0
    });
    let r = amc(p.gateway, "10000001");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(hangs_up.connections(), 2, "a new connection, once");
    // A patient server: the connection is reused while fresh, then closed by rocgw.
    for _ in 0..3 {
        assert_eq!(amc(p.gateway, "10000002").status, 200);
    }
    assert_eq!(patient.connections(), 1);
    assert_eq!(patient.open(), 1);
    wait_for(
        "rocgw to close its idle connection",
        Duration::from_secs(8),
        || patient.open() == 0,
    );
    let m = scrape(p.admin);
    let ok = metric(
        &m,
        "rocgw_upstream_requests_total",
        &[("upstream", "amc"), ("outcome", "ok")],
    );
    assert_eq!(ok, 5.0);
    let retries = metric(&m, "rocgw_upstream_retries_total", &[("upstream", "amc")]);
    assert_eq!(retries, 0.0);
    let still_open = metric(
        &m,
        "rocgw_upstream_connections_open",
        &[("upstream", "amc")],
    );
    assert_eq!(still_open, 0.0, "the pool's gauge follows its sockets");
}

#[test]
fn slow_upstream_gets_amc_timeout_within_the_deadline() {
    let srv = TlsServer::fixture("osi/amc-a", None, Behavior::Delay(Duration::from_secs(5)));
    let tmp_extra = "first_byte_timeout_ms = 600\ntotal_timeout_ms = 1000".to_string();
    let gw = Gw {
        routes: vec![("10000001".into(), srv.url("/idb"))],
        ..Gw::default()
    };
    let text = gw.text().replace(
        "first_byte_timeout_ms = 5000\ntotal_timeout_ms = 8000",
        &tmp_extra,
    );
    let tmp = scratch();
    let p = Proc::with_config(&write_config(tmp.path(), &text));
    let t0 = Instant::now();
    let r = amc(p.gateway, "10000001");
    assert_eq!(r.header("x-rocgw-error"), Some("amc-timeout"), "{}", r.body);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    // Nothing listening: amc-unavailable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = Gw {
        routes: vec![("10000009".into(), format!("https://localhost:{closed}/idb"))],
        ..Gw::default()
    };
    let (p, _t) = gw.start();
    assert_eq!(
        amc(p.gateway, "10000009").header("x-rocgw-error"),
        Some("amc-unavailable")
    );
}

/// A tinyproxy process on 127.0.0.1; killed when dropped.
struct Tinyproxy {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start(extra: &str) -> Tinyproxy {
        let dir = scratch();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        fs::write(&conf, format!("Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogFile \"{}\"\nLogLevel Connect\nMaxClients 100\n{extra}\n", log.display())).unwrap();
        let child = std::process::Command::new("tinyproxy")
            .args(["-d", "-c", conf.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("tinyproxy is needed by this test ({e}): run `bash .ci/run` or `apt-get install -y tinyproxy`"));
        wait_for("tinyproxy", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn amc_calls_go_through_a_connect_proxy_with_tls_end_to_end() {
    let srv = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let proxy = Tinyproxy::start("BasicAuth rocgw it-secret-proxy-pass");
    let tmp = scratch();
    let creds = tmp.path().join("proxy-creds");
    fs::write(&creds, "rocgw:it-secret-proxy-pass\n").unwrap();
    let gw = |creds_line: &str, no_proxy: &str| Gw {
        routes: vec![("10000001".into(), srv.url("/idb"))],
        extra: format!(
            "\n[proxy]\nurl = \"http://127.0.0.1:{}\"\n{creds_line}\nno_proxy = [{no_proxy}]\n",
            proxy.port
        ),
        ..Gw::default()
    };
    let (p, _t) = gw(&format!("credentials_file = \"{}\"", creds.display()), "").start();
    let r = amc(p.gateway, "10000001");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(
        "the proxy's CONNECT log line",
        Duration::from_secs(5),
        || {
            proxy
                .log()
                .contains(&format!("localhost:{}", srv.addr.port()))
        },
    );
    assert!(proxy.log().contains("CONNECT"), "{}", proxy.log());
    let logs = p.stderr_lines().join("\n");
    assert!(!logs.contains("it-secret-proxy-pass"));
    drop(p);

    // Without credentials the proxy answers 407: the SIH hears amc-unavailable, saying why.
    let (p, _t) = gw("", "").start();
    let r = amc(p.gateway, "10000001");
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("amc-unavailable"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("proxy refused CONNECT") && r.body.contains("407"),
        "{}",
        r.body
    );
    drop(p);

    // no_proxy: reached directly, even without credentials.
    let before = proxy.log().matches("CONNECT").count();
    let (p, _t) = gw("", "\"localhost\"").start();
    assert_eq!(amc(p.gateway, "10000001").status, 200);
    assert_eq!(proxy.log().matches("CONNECT").count(), before);
}

#[test]
fn a_proxy_that_refuses_the_port_is_a_clear_fault() {
    let srv = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let proxy = Tinyproxy::start("ConnectPort 443");
    let (p, _t) = Gw {
        routes: vec![("10000001".into(), srv.url("/idb"))],
        extra: format!("\n[proxy]\nurl = \"http://127.0.0.1:{}\"\n", proxy.port),
        ..Gw::default()
    }
    .start();
    let r = amc(p.gateway, "10000001");
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("amc-unavailable"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("proxy refused CONNECT: HTTP/1.0 403")
            || r.body.contains("proxy refused CONNECT: HTTP/1.1 403"),
        "{}",
        r.body
    );
}

/// Replaces `dst` atomically with the content of `src`.
fn rotation(trigger_by_signal: bool) {
    let ann = TlsServer::fixture("osi/annuaire", Some(IGC_ROOTS), Behavior::Echo);
    let tmp = scratch();
    let p12 = tmp.path().join("auth_cli.p12");
    fs::copy(pki_path("org/auth_cli.p12"), &p12).unwrap();
    let (p, _t) = Gw {
        annuaire: Some(ann.url("/annuaire")),
        auth_cli_p12: p12.display().to_string(),
        check_interval_s: if trigger_by_signal { 0 } else { 1 },
        ..Gw::default()
    }
    .start();
    let old = pki_serial("org/auth_cli.pem");
    let new = pki_serial("org/auth_cli-renewed.pem");

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (stop, failures, sent, gw) =
                (stop.clone(), failures.clone(), sent.clone(), p.gateway);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let r = annuaire(gw);
                    sent.fetch_add(1, Ordering::SeqCst);
                    if r.status != 200 {
                        failures.lock().unwrap().push(format!(
                            "{} {:?}",
                            r.status,
                            r.header("x-rocgw-error")
                        ));
                    }
                }
            })
        })
        .collect();
    wait_for(
        "traffic with the old certificate",
        Duration::from_secs(20),
        || ann.serials().iter().filter(|s| **s == old).count() >= 10,
    );

    // A broken file first: the reload fails and the old certificate keeps serving.
    fs::write(tmp.path().join("broken.p12"), b"not a pkcs12 file").unwrap();
    replace_file(&tmp.path().join("broken.p12"), &p12);
    if trigger_by_signal {
        p.signal("HUP");
    }
    wait_for("a failed reload", Duration::from_secs(10), || {
        metric(
            &scrape(p.admin),
            "rocgw_reloads_total",
            &[("outcome", "failed")],
        ) >= 1.0
    });
    let n = ann.serials().len();
    wait_for(
        "more traffic after the failed reload",
        Duration::from_secs(10),
        || ann.serials().len() >= n + 10,
    );
    assert!(ann.serials()[n..].iter().all(|s| *s == old));

    // The structure's AUTH_CLI renewed: after the reload, the server sees its serial.
    replace_file(&pki_path("org/auth_cli-renewed.p12"), &p12);
    if trigger_by_signal {
        p.signal("HUP");
    }
    wait_for(
        "the new certificate upstream",
        Duration::from_secs(20),
        || ann.serials().contains(&new),
    );
    let seen_new_at = ann.serials().iter().position(|s| *s == new).unwrap();
    wait_for(
        "more traffic after the reload",
        Duration::from_secs(20),
        || ann.serials().len() >= seen_new_at + 20,
    );
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        failures.lock().unwrap().is_empty(),
        "failed requests: {:?}",
        failures.lock().unwrap()
    );
    let serials = ann.serials();
    // After the first new handshake, only in-flight requests may still finish on old connections.
    let stragglers = serials[seen_new_at..].iter().filter(|s| **s == old).count();
    assert!(
        stragglers <= 3,
        "{stragglers} requests used the old certificate after the reload"
    );
    assert!(serials[serials.len() - 10..].iter().all(|s| *s == new));
    let m = scrape(p.admin);
    assert!(metric(&m, "rocgw_reloads_total", &[("outcome", "ok")]) >= 1.0);
    assert!(sent.load(Ordering::SeqCst) >= 40);
}

#[test]
fn auth_cli_rotation_on_sighup_loses_no_request() {
    rotation(true);
}

#[test]
fn auth_cli_rotation_by_file_watch_loses_no_request() {
    rotation(false);
}

/// An AMC answering with exactly these bytes, in these pieces.
fn raw_amc(pieces: &[&str], close: bool) -> TlsServer {
    let pieces = pieces.iter().map(|p| p.as_bytes().to_vec()).collect();
    TlsServer::fixture(
        "osi/amc-a",
        None,
        Behavior::Raw {
            pieces: Arc::new(pieces),
            close,
        },
    )
}

#[test]
fn answers_are_read_by_their_framing_however_the_amc_sends_them() {
    let soap = envelope11("<r>ok</r>");
    let (head, tail) = soap.split_at(soap.len() / 2);
    // Chunked, cut inside a size line and a chunk, with an extension and a trailer.
    let chunked = raw_amc(
        &[
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n",
            &format!("{:x}", head.len()),
            &format!(";ext=1\r\n{head}\r\n{:X}\r\n{}", tail.len(), &tail[..3]),
            &format!("{}\r\n0\r\nX-Checksum: 1\r\n\r\n", &tail[3..]),
        ],
        false,
    );
    // An interim 100 Continue, then the answer with its length, head and body apart.
    let interim = raw_amc(
        &[
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n",
            &format!("Content-Length: {}\r\n\r\n", soap.len()),
            head,
            tail,
        ],
        false,
    );
    // No length: the body ends with the connection.
    let until_close = raw_amc(
        &[
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n",
            head,
            tail,
        ],
        true,
    );
    let conflicting = raw_amc(
        &["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef"],
        false,
    );
    let truncated = raw_amc(
        &["HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<short/>"],
        true,
    );
    let bad_chunk = raw_amc(
        &["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
        false,
    );
    // A gzip answer nobody asked for (rocgw sends Accept-Encoding: identity); its head is
    // refused, whatever its body holds.
    let coded = raw_amc(
        &[
            "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: gzip\r\n\
           Content-Length: 4\r\n\r\nGZIP",
        ],
        false,
    );
    let servers = [
        &chunked,
        &interim,
        &until_close,
        &conflicting,
        &truncated,
        &bad_chunk,
        &coded,
    ];
    let (p, _t) = Gw {
        routes: servers
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("1000000{}", i + 1), s.url("/amc/idb")))
            .collect(),
        ..Gw::default()
    }
    .start();

    for (number, server) in [("10000001", &chunked), ("10000002", &interim)] {
        for _ in 0..2 {
            let r = amc(p.gateway, number);
            assert_eq!(r.status, 200, "{number}: {}", r.body);
            assert_eq!(r.body, soap, "{number}");
            assert_eq!(r.header("content-type"), Some("text/xml"));
        }
        assert_eq!(server.connections(), 1, "{number}: the connection is kept");
        // Each (stamped) request arrived whole, by its Content-Length.
        let bodies = server.bodies();
        assert_eq!(bodies.len(), 2);
        assert!(bodies
            .iter()
            .all(|b| b.ends_with("<idb/></soapenv:Body></soapenv:Envelope>")));
    }
    for _ in 0..2 {
        let r = amc(p.gateway, "10000003");
        assert_eq!((r.status, r.body.as_str()), (200, soap.as_str()));
    }
    assert_eq!(until_close.connections(), 2, "an answer ended by the close");

    for (number, detail) in [
        (
            "10000004",
            "invalid HTTP message: conflicting Content-Length",
        ),
        (
            "10000005",
            "the connection closed before the message was complete",
        ),
        ("10000006", "invalid HTTP message: bad chunk size"),
        ("10000007", "a Content-Encoding rocgw did not accept"),
    ] {
        let r = amc(p.gateway, number);
        let f = parse_fault(&r.body);
        assert_eq!(f.code, "amc-unavailable", "{number}: {}", r.body);
        assert!(r.body.contains(detail), "{number}: {}", r.body);
    }
    // And the good ones still answer.
    assert_eq!(amc(p.gateway, "10000001").status, 200);
}

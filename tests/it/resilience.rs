//! Resilience: load shedding with a global and a per-AMC limit, graceful shutdown under load.

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use rocgw::sim::Faults;

use crate::routing::{call, gateway};
use crate::sim::SimFixture;
use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};

fn slow(s: &SimFixture, amc: &str, ms: u64) {
    s.set_faults(
        amc,
        &Faults {
            latency_ms: ms,
            ..Faults::default()
        },
    );
}

/// A gateway like `routing::gateway`, with `server` added to its `[server]` section.
fn gateway_with_server(s: &SimFixture, server: &str) -> (Proc, tempfile::TempDir) {
    let dir = scratch();
    let path = write_config(dir.path(), &s.config_text(server, "", "", "", 3_000));
    (Proc::with_config(&path), dir)
}

/// One answer: status, X-Rocgw-Error, Retry-After, seconds it took.
type Answer = (u16, Option<String>, Option<String>, f64);

/// One IDB call to `amc` with `body`, timed.
fn timed_call(addr: std::net::SocketAddr, amc: &str, body: &str) -> Answer {
    let t = Instant::now();
    let r = http(
        addr,
        "POST",
        &format!("/amc/{amc}/idb"),
        &[("Content-Type", CT12)],
        body.as_bytes(),
    );
    (
        r.status,
        r.header("x-rocgw-error").map(str::to_string),
        r.header("retry-after").map(str::to_string),
        t.elapsed().as_secs_f64(),
    )
}

/// Sends `n` requests with `body` to `amc` at once.
fn burst_of(
    gw: &Proc,
    amc: &str,
    n: usize,
    body: &std::sync::Arc<String>,
) -> Vec<std::thread::JoinHandle<Answer>> {
    let addr = gw.gateway;
    (0..n)
        .map(|_| {
            let (amc, body) = (amc.to_string(), body.clone());
            std::thread::spawn(move || timed_call(addr, &amc, &body))
        })
        .collect()
}

/// Sends `n` small requests to `amc` at once.
fn burst(gw: &Proc, amc: &str, n: usize) -> Vec<std::thread::JoinHandle<Answer>> {
    let body = std::sync::Arc::new(envelope12("<r:req xmlns:r=\"urn:test\"/>"));
    burst_of(gw, amc, n, &body)
}

#[test]
fn over_capacity_requests_get_a_fast_overloaded_fault_and_a_slow_amc_cannot_starve_the_others() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway(&s, "max_concurrent_per_amc = 2", "", "");
    // Warm the annuaire cache for both AMCs.
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    assert_eq!(call(&gw, "99999992", "idb", &[]).status, 200);
    slow(&s, "99999991", 1_500);
    let slow_calls = burst(&gw, "99999991", 5);
    wait_for("two calls in flight", Duration::from_secs(10), || {
        metric(&scrape(gw.admin), "rocgw_in_flight_requests", &[]) >= 2.0
    });
    // The other AMC is served meanwhile.
    for _ in 0..3 {
        assert_eq!(call(&gw, "99999992", "idb", &[]).status, 200);
    }
    let results = joined(slow_calls);
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let shed: Vec<_> = results
        .iter()
        .filter(|r| r.1.as_deref() == Some("overloaded"))
        .collect();
    assert_eq!((ok, shed.len()), (2, 3), "{results:?}");
    for r in shed {
        assert_eq!(r.2.as_deref(), Some("1"), "Retry-After");
        assert!(r.3 < 1.0, "shed at once, not queued: {r:?}");
    }

    // The global limit.
    drop(gw);
    let (gw, _t) = gateway_with_server(&s, "max_concurrent_requests = 3");
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    let results = joined(burst(&gw, "99999991", 7));
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let shed = results
        .iter()
        .filter(|r| r.1.as_deref() == Some("overloaded"))
        .count();
    assert_eq!(ok + shed, 7, "every request gets an answer: {results:?}");
    assert_eq!(ok, 3, "{results:?}");
    let m = scrape(gw.admin);
    assert_eq!(
        metric(&m, "rocgw_faults_total", &[("code", "overloaded")]),
        shed as f64
    );
}

#[test]
fn sigterm_finishes_every_request_in_flight_and_exits_zero() {
    let s = SimFixture::start(|_| {});
    let (mut gw, _t) = gateway(&s, "", "", "");
    // Warm the annuaire cache, then make the AMC slow so requests are in flight at SIGTERM.
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    s.set_faults(
        "99999991",
        &rocgw::sim::Faults {
            latency_ms: 1_500,
            ..Default::default()
        },
    );
    let addr = gw.gateway;
    let inflight: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
                http(
                    addr,
                    "POST",
                    "/amc/99999991/idb",
                    &[("Content-Type", CT12)],
                    body.as_bytes(),
                )
                .status
            })
        })
        .collect();
    wait_for(
        "requests in flight",
        std::time::Duration::from_secs(10),
        || metric(&scrape(gw.admin), "rocgw_in_flight_requests", &[]) >= 8.0,
    );
    gw.signal("TERM");
    // Readiness goes false at once, while the admin port still answers.
    wait_for("readiness off", std::time::Duration::from_secs(5), || {
        http(gw.admin, "GET", "/readyz", &[], b"").status == 503
    });
    // No new connection is accepted.
    wait_for(
        "the listener closed",
        std::time::Duration::from_secs(5),
        || std::net::TcpStream::connect(addr).is_err(),
    );
    for t in inflight {
        assert_eq!(t.join().unwrap(), 200, "an in-flight request was cut");
    }
    assert_eq!(gw.exit_code(std::time::Duration::from_secs(20)), Some(0));
}

#[test]
fn a_readable_key_file_is_a_start_up_warning() {
    let tmp = scratch();
    let p12 = tmp.path().join("auth_cli.p12");
    std::fs::copy(pki_path("org/auth_cli.p12"), &p12).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&p12, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = base_config(
        p12.to_str().unwrap(),
        pki_path("secrets/p12-password").to_str().unwrap(),
        "",
        "",
    );
    let gw = Proc::with_config(&write_config(tmp.path(), &text));
    let logs = gw.logs_until(Duration::from_secs(10), |l| {
        l.contains("readable by its group")
    });
    let line = logs
        .iter()
        .find(|l| l.contains("readable by its group"))
        .unwrap_or_else(|| panic!("no warning: {logs:?}"));
    assert!(
        line.contains("auth_cli.p12") && line.contains("644"),
        "{line}"
    );
    // The password itself never appears.
    assert!(!logs.iter().any(|l| l.contains(&p12_password())));
}

#[test]
fn a_dead_amc_opens_its_circuit_and_fails_fast_without_slowing_the_others() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway(&s, "breaker_failures = 3\nbreaker_open_s = 1", "", "");
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    s.set_faults(
        "99999991",
        &Faults {
            reset_rate: 1.0,
            ..Faults::default()
        },
    );
    for _ in 0..3 {
        let r = call(&gw, "99999991", "idb", &[]);
        assert_eq!(
            r.header("x-rocgw-error"),
            Some("amc-unavailable"),
            "{}",
            r.body
        );
    }
    let t = Instant::now();
    let r = call(&gw, "99999991", "idb", &[]);
    assert!(t.elapsed() < Duration::from_millis(500), "fails fast");
    assert_eq!(r.header("x-rocgw-error"), Some("amc-unavailable"));
    assert!(r.body.contains("circuit open"), "{}", r.body);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        s.counter("injected", "reset"),
        3.0,
        "the open circuit sent nothing"
    );
    assert_eq!(metric(&scrape(gw.admin), "rocgw_circuits_open", &[]), 1.0);
    // Another AMC is not affected.
    assert_eq!(call(&gw, "99999992", "idb", &[]).status, 200);
    // The AMC recovers: after the open period, a probe goes through and closes the circuit.
    let r = http(s.sim.admin, "DELETE", "/faults/99999991", &[], b"");
    assert_eq!(r.status, 200);
    wait_for("the circuit to close", Duration::from_secs(10), || {
        call(&gw, "99999991", "idb", &[]).status == 200
    });
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    assert_eq!(metric(&scrape(gw.admin), "rocgw_circuits_open", &[]), 0.0);
}

#[test]
fn the_end_to_end_deadline_holds_and_the_sih_may_only_shorten_it() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway_with_server(&s, "request_deadline_ms = 1500");
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
    slow(&s, "99999991", 3_000);
    let timed = |headers: &[(&str, &str)]| {
        let t = Instant::now();
        let r = call(&gw, "99999991", "idb", headers);
        (r, t.elapsed())
    };
    let (r, took) = timed(&[("X-Rocgw-Deadline-Ms", "300")]);
    assert_eq!(r.header("x-rocgw-error"), Some("amc-timeout"), "{}", r.body);
    assert!(r.body.contains("deadline of 300 ms"), "{}", r.body);
    assert!(took < Duration::from_millis(1_200), "{took:?}");
    // A longer header cannot extend the configured deadline.
    let (r, took) = timed(&[("X-Rocgw-Deadline-Ms", "60000")]);
    assert!(r.body.contains("deadline of 1500 ms"), "{}", r.body);
    assert!(took < Duration::from_millis(2_800), "{took:?}");
    let (r, _) = timed(&[("X-Rocgw-Deadline-Ms", "soon")]);
    assert_eq!(r.header("x-rocgw-error"), Some("not-found"));
    // A fast AMC meets its deadline meanwhile.
    assert_eq!(
        call(&gw, "99999992", "idb", &[("X-Rocgw-Deadline-Ms", "5000")]).status,
        200
    );
}

/// A free local port with nothing listening on it: connections are refused.
fn entry(numero: &str, url: String) -> rocgw::sim::DirectoryEntry {
    rocgw::sim::DirectoryEntry {
        numero: numero.into(),
        libelle: String::new(),
        services: [("idb".to_string(), url)].into(),
    }
}

#[test]
fn down_hanging_and_resetting_amcs_each_get_their_fault_in_time_while_a_healthy_one_succeeds() {
    let hanging = TlsServer::fixture("osi/amc-b", None, Behavior::Delay(Duration::from_secs(60)));
    let down = free_port();
    let s = SimFixture::start(|cfg| {
        cfg.annuaire.entries = vec![
            entry("88888881", format!("https://localhost:{down}/idb")),
            entry("88888882", hanging.url("/idb")),
        ];
    });
    s.set_faults(
        "99999992",
        &Faults {
            reset_rate: 1.0,
            ..Faults::default()
        },
    );
    let (gw, _t) = gateway_with_server(&s, "request_deadline_ms = 2000");
    let gw = std::sync::Arc::new(gw);
    let deadline = Duration::from_millis(2000);
    // Three calls to each failing AMC, all at once, while the healthy AMC is called in a loop.
    let failing: Vec<_> = [
        ("88888881", "amc-unavailable"),
        ("88888882", "amc-timeout"),
        ("99999992", "amc-unavailable"),
    ]
    .into_iter()
    .flat_map(|(amc, code)| std::iter::repeat_n((amc, code), 3))
    .map(|(amc, code)| {
        let gw = gw.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = call(&gw, amc, "idb", &[]);
            (amc, code, r, t.elapsed())
        })
    })
    .collect();
    let healthy = {
        let gw = gw.clone();
        std::thread::spawn(move || {
            (0..20)
                .map(|_| {
                    let t = Instant::now();
                    let r = call(&gw, "99999991", "idb", &[]);
                    (r.status, t.elapsed())
                })
                .collect::<Vec<_>>()
        })
    };
    for h in failing {
        let (amc, code, r, took) = h.join().unwrap();
        assert_eq!(r.header("x-rocgw-error"), Some(code), "{amc}: {}", r.body);
        assert!(
            took < deadline + Duration::from_millis(500),
            "{amc}: {took:?}"
        );
        if code == "amc-unavailable" {
            assert!(took < Duration::from_secs(1), "{amc} fails fast: {took:?}");
        }
    }
    for (status, took) in healthy.join().unwrap() {
        assert_eq!(status, 200);
        assert!(took < deadline, "{took:?}");
    }
    // The refused connections were retried (nothing had been sent), twice each; the resets,
    // which came after the request was sent, were not.
    let samples = scrape(gw.admin);
    assert_eq!(
        metric(
            &samples,
            "rocgw_upstream_retries_total",
            &[("upstream", "amc")]
        ),
        6.0
    );
    assert_eq!(s.counter("injected", "reset"), 3.0);
}

/// An AMC behaving as `behavior` behind a gateway (with `upstream`, lines of its `[upstream]`
/// table), and an SIH that hung up on a call to it once the call reached it. The simulator and
/// the gateway's temporary folder live as long as the returned values.
fn sih_hangs_up_on(
    behavior: Behavior,
    upstream: &str,
) -> (TlsServer, Proc, SimFixture, tempfile::TempDir) {
    let amc = TlsServer::fixture("osi/amc-b", None, behavior);
    let s = SimFixture::start(|cfg| {
        cfg.annuaire.entries = vec![entry("88888882", amc.url("/idb"))];
    });
    let t = scratch();
    let text = s
        .config_text("", "", "", "", 3_000)
        .replace("[upstream]\n", &format!("[upstream]\n{upstream}\n"));
    let gw = Proc::with_config(&write_config(t.path(), &text));
    let sih = post_unread(gw.gateway, "/amc/88888882/idb");
    wait_for("the request upstream", Duration::from_secs(5), || {
        amc.requests() == 1
    });
    assert_eq!(amc.open(), 1);
    drop(sih);
    (amc, gw, s, t)
}

fn client_gone(samples: &[Sample]) -> f64 {
    metric(
        samples,
        "rocgw_requests_total",
        &[("outcome", "client-gone")],
    )
}

#[test]
fn an_sih_that_hangs_up_cancels_its_upstream_call() {
    let (hanging, gw, _s, _t) = sih_hangs_up_on(Behavior::Delay(Duration::from_secs(60)), "");
    // The gateway drops the call; its connection, whose answer does not come in the second it
    // is given to be kept, closes: nothing stays in flight.
    wait_for(
        "the upstream connection to close",
        Duration::from_secs(5),
        || hanging.open() == 0,
    );
    let samples = scrape(gw.admin);
    assert_eq!(metric(&samples, "rocgw_in_flight_requests", &[]), 0.0);
    assert_eq!(client_gone(&samples), 1.0);
    // And the gateway still serves.
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
}

#[test]
fn a_call_cut_by_its_sih_leaves_its_upstream_connection_for_the_next_call() {
    // The AMC answers 300 ms after each request; the SIH hung up before.
    let (slow, gw, _s, _t) = sih_hangs_up_on(Behavior::Delay(Duration::from_millis(300)), "");
    // The answer is read and dropped; the connection stays open, back in the pool.
    wait_for("the connection kept", Duration::from_secs(5), || {
        let kept = &[("upstream", "amc")];
        metric(
            &scrape(gw.admin),
            "rocgw_upstream_connections_kept_total",
            kept,
        ) == 1.0
    });
    assert_eq!(slow.open(), 1);
    assert_eq!(client_gone(&scrape(gw.admin)), 1.0);
    // The next call goes out on it: no second connection, no second handshake.
    assert_eq!(call(&gw, "88888882", "idb", &[]).status, 200);
    assert_eq!((slow.requests(), slow.connections()), (2, 1));
}

#[test]
fn a_call_waiting_for_the_hosts_only_connection_gets_it_when_a_cut_call_puts_it_back() {
    // One connection to the AMC at most; it answers 300 ms after each request; the SIH hung
    // up before. The next call comes while the cut call's connection still reads its answer:
    // it holds the host's only connection permit, so the call waits for one.
    let (slow, gw, _s, _t) = sih_hangs_up_on(
        Behavior::Delay(Duration::from_millis(300)),
        "max_connections_per_host = 1",
    );
    let t = Instant::now();
    let r = call(&gw, "88888882", "idb", &[]);
    // The connection, back in the pool, is the call's: it is not left idle holding the permit
    // (the call would wait for its deadline), nor closed for a new one (a second handshake).
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let kept = &[("upstream", "amc")];
    assert_eq!(
        metric(
            &scrape(gw.admin),
            "rocgw_upstream_connections_kept_total",
            kept
        ),
        1.0
    );
    assert_eq!((slow.requests(), slow.connections()), (2, 1));
}

/// Reads what the server sends until it closes (or `limit` passes): the bytes, and whether it
/// closed.
fn read_until_closed(s: &mut std::net::TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    use std::io::Read as _;
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn hostile_inputs_are_refused_without_harm_to_other_callers() {
    use std::io::Write as _;
    let s = SimFixture::start(|_| {});
    let (mut gw, _t) = gateway_with_server(&s, "header_read_timeout_ms = 800");
    let addr = gw.gateway;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A well-behaved SIH keeps calling through it all.
    let others = {
        let stop = stop.clone();
        let gw_addr = gw.gateway;
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                answers.push(timed_call(gw_addr, "99999991", &body));
            }
            answers
        })
    };

    // Slowloris: 50 connections dribbling header bytes are cut after the header read timeout.
    let loris: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                let t = Instant::now();
                let _ = c.write_all(b"POST /amc/99999991/idb HTTP/1.1\r\nHost: x\r\n");
                for i in 0..40 {
                    if c.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                        .is_err()
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let (_, closed) = read_until_closed(&mut c, Duration::from_secs(5));
                (closed, t.elapsed())
            })
        })
        .collect();

    // XXE and entity expansion: refused, nothing expanded.
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
        envelope11("<a>&x;</a>").split_once("?>").unwrap().1
    );
    let bomb = format!(
        "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
         <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>{}",
        envelope12("<l>&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;</l>")
    );
    // 20,000 levels: a 64 KB body that never closes them, and one that does.
    let deep = format!("{}{}", "<a>".repeat(20_000), "x".repeat(6_000));
    let open = envelope12(&deep).replace("</s:Body>", "");
    let nested = envelope12(&format!(
        "{}{}",
        "<a>".repeat(20_000),
        "</a>".repeat(20_000)
    ));
    assert!(open.len() >= 64 * 1024, "{}", open.len());
    for (what, body, code) in [
        ("xxe", xxe.as_str(), "dtd-forbidden"),
        ("entity expansion", bomb.as_str(), "dtd-forbidden"),
        ("20,000 open elements", open.as_str(), "xml-limit-exceeded"),
        (
            "20,000 nested elements",
            nested.as_str(),
            "xml-limit-exceeded",
        ),
    ] {
        let r = post(addr, "/amc/99999991/idb", CT12, body);
        assert_eq!(r.header("x-rocgw-error"), Some(code), "{what}: {}", r.body);
        assert!(
            !r.body.contains("root:") && !r.body.contains("aaaa"),
            "{what}"
        );
    }

    // Too many headers, too large a header: 431 before any handler runs.
    let many: Vec<(String, String)> = (0..100).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(http(addr, "GET", "/", &many, b"").status, 431);
    let huge = "v".repeat(40 * 1024);
    assert_eq!(
        http(addr, "GET", "/", &[("X-Huge", &huge)], b"").status,
        431
    );

    // Chunked bodies: a bad chunk size is a fault; a body cut short (the client stops writing
    // and waits) ends with the request deadline or the connection, never with a signed call.
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /amc/99999991/idb HTTP/1.1\r\nHost: x\r\nContent-Type: {CT12}\r\n\
         Transfer-Encoding: chunked\r\n\r\n10\r\n<s:Envelope xmln\r\nzz\r\n"
    )
    .unwrap();
    let (answer, _) = read_until_closed(&mut c, Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.contains("x-rocgw-error: not-soap"),
        "{answer}"
    );
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    write!(
        c,
        "POST /amc/99999991/idb HTTP/1.1\r\nHost: x\r\nContent-Type: {CT12}\r\n\
         Transfer-Encoding: chunked\r\n\r\n400\r\n<s:Envelope"
    )
    .unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(5));
    assert!(closed);
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    for l in loris {
        let (closed, took) = l.join().unwrap();
        assert!(closed, "a slow client is cut");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answers = others.join().unwrap();
    assert!(answers.len() >= 5, "{}", answers.len());
    for (status, _, _, took) in answers {
        assert_eq!(status, 200);
        assert!(took < 2.0, "{took}");
    }
    assert!(gw.alive());
}

fn joined(burst: Vec<std::thread::JoinHandle<Answer>>) -> Vec<Answer> {
    burst.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Answers that succeeded, answers shed as `overloaded`; panics on any other answer.
fn ok_and_shed(results: &[Answer]) -> (usize, usize) {
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let shed: Vec<_> = results
        .iter()
        .filter(|r| r.1.as_deref() == Some("overloaded"))
        .collect();
    assert_eq!(ok + shed.len(), results.len(), "{results:?}");
    for r in &shed {
        assert!(r.3 < 2.0, "shed at once: {r:?}");
    }
    (ok, shed.len())
}

#[test]
fn three_times_the_concurrency_with_bodies_at_the_limit_sheds_fast_and_stays_under_256_mib() {
    const LIMIT: usize = 64;
    let s = SimFixture::start(|_| {});
    // The simulator shares this test's two cores: give it time to check 64 signed megabytes.
    let start = |server: &str| {
        let dir = scratch();
        let text = s.config_text(server, "", "", "", 20_000);
        let gw = Proc::with_config(&write_config(dir.path(), &text));
        assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
        (gw, dir)
    };
    let (gw, _t) = start(&format!("max_concurrent_requests = {LIMIT}"));
    slow(&s, "99999991", 500);
    // Exactly the default 1 MiB body limit.
    let with = |filler: &str| {
        envelope12(&format!(
            "<r:req xmlns:r=\"urn:test\"><r:data>{filler}</r:data></r:req>"
        ))
    };
    let body = std::sync::Arc::new(with(&"A".repeat(1024 * 1024 - with("").len())));
    assert_eq!(body.len(), 1024 * 1024);
    // Every request is answered: admitted ones succeed, the excess is shed at once.
    let (ok, shed) = ok_and_shed(&joined(burst_of(&gw, "99999991", 3 * LIMIT, &body)));
    assert!(ok >= LIMIT && shed >= LIMIT, "ok {ok}, shed {shed}");
    let peak = gw.peak_rss();
    eprintln!(
        "overload x3 (limit {LIMIT}, 1 MiB bodies): {ok} ok, {shed} shed, peak RSS {:.1} MiB",
        peak as f64 / 1048576.0
    );
    assert!(peak <= 256 * 1024 * 1024, "peak RSS {peak}");

    // Whatever the request limit, the memory for bodies is bounded too: at most 8 bodies of
    // 1 MiB fit in 8 MiB. Bodies reserve as their bytes arrive (a declared length reserves
    // nothing), so racing bodies may refuse each other midway: fewer than 8 may complete, every
    // request is answered (`ok_and_shed`).
    drop(gw);
    let (gw, _t) = start("max_buffered_bytes = 8388608");
    let (ok, shed) = ok_and_shed(&joined(burst_of(&gw, "99999991", 24, &body)));
    assert!((4..=8).contains(&ok) && shed >= 16, "ok {ok}, shed {shed}");
}

#[test]
fn a_connection_flood_is_capped_and_the_gateway_serves_again_once_it_ends() {
    let s = SimFixture::start(|_| {});
    let (gw, _t) = gateway_with_server(&s, "max_connections = 8");
    // Eight idle connections take every slot (nothing else is connected: no earlier call whose
    // connection could still be closing).
    let idle: Vec<_> = (0..8)
        .map(|_| std::net::TcpStream::connect(gw.gateway).unwrap())
        .collect();
    let mut extra = std::net::TcpStream::connect(gw.gateway).unwrap();
    let (_, closed) = read_until_closed(&mut extra, Duration::from_secs(5));
    assert!(closed, "the ninth connection is closed at once");
    assert!(metric(&scrape(gw.admin), "rocgw_connections_refused_total", &[]) >= 1.0);
    drop(idle);
    // Served again once the flood ends (a try may still land before a slot is freed).
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    wait_for("a free connection slot", Duration::from_secs(10), || {
        use std::io::Write as _;
        let mut c = std::net::TcpStream::connect(gw.gateway).unwrap();
        let _ = write!(
            c,
            "POST /amc/99999991/idb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: {CT12}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        read_until_closed(&mut c, Duration::from_secs(5))
            .0
            .starts_with(b"HTTP/1.1 200")
    });
}

#[test]
fn an_answer_larger_than_the_memory_budget_is_refused_and_the_budget_comes_back() {
    let huge = TlsServer::fixture("osi/amc-b", None, Behavior::Large(2 * 1024 * 1024));
    let big = TlsServer::fixture("osi/amc-b", None, Behavior::Large(300 * 1024));
    let s = SimFixture::start(|cfg| {
        cfg.annuaire.entries = vec![
            entry("88888883", huge.url("/idb")),
            entry("88888884", big.url("/idb")),
        ];
    });
    let (gw, _t) = gateway_with_server(&s, "max_body_bytes = 65536\nmax_buffered_bytes = 1048576");
    let r = call(&gw, "88888883", "idb", &[]);
    assert_eq!(r.header("x-rocgw-error"), Some("overloaded"), "{}", r.body);
    assert!(
        r.body.contains("max_buffered_bytes") && r.body.contains("may have been processed"),
        "{}",
        r.body
    );
    assert_eq!(
        r.header("retry-after"),
        None,
        "not to be sent again blindly"
    );
    // Within the budget, and once the refused answer has given its share back: served.
    for _ in 0..3 {
        let r = call(&gw, "88888884", "idb", &[]);
        assert_eq!(r.status, 200, "{}", r.header("x-rocgw-error").unwrap_or(""));
        assert!(r.body.len() > 300 * 1024);
    }
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
}

#[test]
fn a_client_that_stops_reading_its_answer_is_cut() {
    use std::io::Write as _;
    const ANSWER: usize = 24 * 1024 * 1024;
    let huge = TlsServer::fixture("osi/amc-b", None, Behavior::Large(ANSWER));
    let s = SimFixture::start(|cfg| {
        cfg.annuaire.entries = vec![entry("88888885", huge.url("/idb"))];
    });
    let dir = scratch();
    let text = s
        .config_text("write_timeout_ms = 1000", "", "", "", 20_000)
        .replace(
            "[upstream]\n",
            "[upstream]\nmax_response_bytes = 33554432\n",
        );
    let gw = Proc::with_config(&write_config(dir.path(), &text));
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    let mut sih = std::net::TcpStream::connect(gw.gateway).unwrap();
    write!(
        sih,
        "POST /amc/88888885/idb HTTP/1.1\r\nHost: x\r\nContent-Type: {CT12}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    wait_for("the answer upstream", Duration::from_secs(20), || {
        huge.requests() == 1
    });
    // The SIH reads nothing until the gateway gives up on it, then reads what is left: a cut
    // answer, then the end of the connection.
    wait_for("the write timeout", Duration::from_secs(20), || {
        metric(&scrape(gw.admin), "rocgw_write_timeouts_total", &[]) >= 1.0
    });
    let (got, closed) = read_until_closed(&mut sih, Duration::from_secs(10));
    assert!(closed, "the connection was cut");
    assert!(
        !got.is_empty() && got.len() < ANSWER,
        "{} bytes of a {ANSWER}-byte answer",
        got.len()
    );
    assert_eq!(call(&gw, "99999991", "idb", &[]).status, 200);
}

/// `logrotate`'s SIGUSR1 and a reload's SIGHUP may come while the gateway starts (reading its
/// keys takes a while): neither ends it. The start is held, deterministically, where it reads
/// its configuration: the file is a FIFO the test writes only after it has seen the handlers
/// (`SigCgt` in `/proc`) and sent both signals. Handlers installed later than that (after the
/// configuration and keys are read) are never seen while the start waits.
#[test]
fn signals_during_start_up_do_not_end_the_gateway() {
    use std::io::BufRead as _;
    let tmp = scratch();
    let fifo = tmp.path().join("rocgw.toml");
    let made = Command::new("mkfifo")
        .args(["-m", "600", fifo.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(made.success());
    let args = [
        "serve",
        "--config",
        fifo.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    // Killed and reaped however the test ends (a start held on the FIFO would wait forever).
    struct Reaped(std::process::Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Reaped(spawn(&args, &[]));
    let pid = child.0.id().to_string();
    let caught = || {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        let (hup, usr1) = (1u64 << (1 - 1), 1u64 << (10 - 1));
        mask & (hup | usr1) == hup | usr1
    };
    wait_for(
        "SIGHUP and SIGUSR1 caught while the start waits for its configuration",
        Duration::from_secs(20),
        caught,
    );
    for sig in ["-USR1", "-HUP"] {
        let st = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(st.success(), "{sig}: the gateway is gone");
    }
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::write(fifo, config_text("", "")))
    };
    let lines = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let (mut said, mut admin, mut listening) = (Vec::new(), None, false);
    for line in lines.map_while(Result::ok) {
        listening |= line.starts_with("rocgw: gateway listening");
        if let Some(url) = line.strip_prefix("rocgw: admin listening on http://") {
            admin = url.parse::<std::net::SocketAddr>().ok();
        }
        said.push(line);
        if listening && admin.is_some() {
            break;
        }
    }
    if admin.is_none() {
        // Ended, perhaps before reading the FIFO: open it (without waiting for a writer,
        // O_NONBLOCK) to release the writer.
        use std::os::unix::fs::OpenOptionsExt as _;
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags(0o4000)
            .open(&fifo);
    }
    // (Its result: an error only once the start failed, which the assertion below says.)
    let _ = writer.join().unwrap();
    let health = admin.map(|a| http(a, "GET", "/healthz", &[], b"").status);
    let _ = child.0.kill();
    let mut err = String::new();
    let _ = std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err);
    assert_eq!(
        health,
        Some(200),
        "the gateway ended during its start: {said:?}\n{err}"
    );
}

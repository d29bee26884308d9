//! The admission queue: beyond `max_concurrent_requests`, a request waits a short while
//! (`queue_ms`) among at most `max_queued_requests` others before it is shed; the wait counts
//! against its deadline; every request is answered and the queue empties.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sim::SimFixture;
use crate::support::*;

/// One IDB call with `headers`: status, error code, seconds.
/// One IDB call, its head and body written at once (as one segment: the gateway's gate sees
/// the whole request in its first read, whatever the timing): status, error code, seconds.
fn call(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> (u16, Option<String>, f64) {
    use std::io::Write as _;
    let t = Instant::now();
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    let mut req = format!(
        "POST /amc/99999991/idb HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: {CT12}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let r = read_response(&mut s);
    let code = r.header("x-rocgw-error").map(str::to_string);
    (r.status, code, t.elapsed().as_secs_f64())
}

fn slow_sim(ms: u64) -> SimFixture {
    let s = SimFixture::start(|_| {});
    s.set_faults(
        "99999991",
        &rocgw::sim::Faults {
            latency_ms: ms,
            ..rocgw::sim::Faults::default()
        },
    );
    s
}

/// The call holding the slot: its status, error code and seconds once joined.
type Busy = std::thread::JoinHandle<(u16, Option<String>, f64)>;

/// A gateway with `server` settings before an AMC that answers in `sim_ms`, its one request
/// slot taken by a call in progress (joined for its answer).
fn one_slot_taken(sim_ms: u64, server: &str) -> (SimFixture, tempfile::TempDir, Proc, Busy) {
    let s = slow_sim(sim_ms);
    let dir = scratch();
    let text = s.config_text(server, "", "", "", 5_000);
    let gw = Proc::with_config(&write_config(dir.path(), &text));
    let addr = gw.gateway;
    let busy = std::thread::spawn(move || call(addr, &[]));
    wait_for("the slot taken", Duration::from_secs(5), || {
        metric(&scrape(gw.admin), "rocgw_in_flight_requests", &[]) >= 1.0
    });
    (s, dir, gw, busy)
}

#[test]
fn a_burst_beyond_the_slots_waits_briefly_in_a_bounded_queue_and_every_request_is_answered() {
    let s = slow_sim(300);
    let dir = scratch();
    let server = "max_concurrent_requests = 4\nqueue_ms = 2000\nmax_queued_requests = 4";
    let text = s.config_text(server, "", "", "", 5_000);
    let gw = Arc::new(Proc::with_config(&write_config(dir.path(), &text)));
    // Twelve at once: four served, four wait for their slots and are served, four shed.
    let burst: Vec<_> = (0..12)
        .map(|_| {
            let addr = gw.gateway;
            std::thread::spawn(move || call(addr, &[]))
        })
        .collect();
    let answers: Vec<_> = burst.into_iter().map(|h| h.join().unwrap()).collect();
    let served: Vec<_> = answers.iter().filter(|a| a.0 == 200).collect();
    let shed: Vec<_> = answers
        .iter()
        .filter(|a| a.1.as_deref() == Some("overloaded"))
        .collect();
    assert_eq!((served.len(), shed.len()), (8, 4), "{answers:?}");
    // The shed ones were told at once, not after the queue's wait.
    assert!(shed.iter().all(|a| a.2 < 0.25), "{shed:?}");
    // Four waited one AMC call's time (about 300 ms) for their slots.
    let waited = served.iter().filter(|a| a.2 >= 0.55).count();
    assert_eq!(waited, 4, "{served:?}");
    let samples = scrape(gw.admin);
    assert_eq!(metric(&samples, "rocgw_queued_requests", &[]), 0.0);
    assert_eq!(metric(&samples, "rocgw_in_flight_requests", &[]), 0.0);
}

#[test]
fn the_queue_wait_is_bounded_and_counts_against_the_deadline() {
    let (_s, _dir, gw, busy) = one_slot_taken(
        1_000,
        "max_concurrent_requests = 1\nqueue_ms = 200\nmax_queued_requests = 8",
    );
    let addr = gw.gateway;
    // Waits its 200 ms, then is shed.
    let (status, code, took) = call(addr, &[]);
    assert_eq!(code.as_deref(), Some("overloaded"), "{status}");
    assert!((0.19..0.9).contains(&took), "{took}");
    // A deadline shorter than the queue's wait ends the wait first.
    let (_, code, took) = call(addr, &[("X-Rocgw-Deadline-Ms", "100")]);
    assert_eq!(code.as_deref(), Some("amc-timeout"));
    assert!(took < 0.19, "{took}");
    assert_eq!(busy.join().unwrap().0, 200);
}

/// A flood of overload refusals is counted one by one, but logged once a second with how many
/// the line stands for: the log cannot be flooded by an SIH that retries at once.
#[test]
fn overload_refusals_are_counted_each_but_logged_once_a_second() {
    let (_s, _dir, gw, busy) = one_slot_taken(1_500, "max_concurrent_requests = 1\nqueue_ms = 0");
    let addr = gw.gateway;
    let started = Instant::now();
    let mut shed = 0;
    while started.elapsed() < Duration::from_millis(400) {
        let (_, code, _) = call(addr, &[]);
        assert_eq!(code.as_deref(), Some("overloaded"));
        shed += 1;
    }
    assert_eq!(busy.join().unwrap().0, 200);
    let counted = metric(
        &scrape(gw.admin),
        "rocgw_faults_total",
        &[("code", "overloaded")],
    );
    assert_eq!(counted, f64::from(shed));
    let lines: Vec<String> = gw
        .stderr_lines()
        .into_iter()
        .filter(|l| l.contains("request refused") && l.contains("overloaded"))
        .collect();
    assert!(shed >= 10, "only {shed} refusals in 400 ms");
    // 400 ms of refusals span at most two clock seconds.
    assert!(
        (1..=2).contains(&lines.len()),
        "{shed} refusals, {} lines: {lines:?}",
        lines.len()
    );
    let also: u64 = lines
        .iter()
        .filter_map(|l| l.split("also_refused=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(also <= shed as u64 - lines.len() as u64, "{lines:?}");
}

/// Beyond the slots, a request waits at the listener's gate as the bytes of its head: it is
/// queued but not in progress (its head not parsed, no handler state) until a slot is free.
#[test]
fn a_queued_request_waits_before_its_head_is_parsed() {
    // The call in progress lasts long enough for the counts to be read while it runs (its
    // slot given back, it is still counted in flight for a moment).
    let (_s, _dir, gw, busy) = one_slot_taken(
        2_000,
        "max_concurrent_requests = 1\nqueue_ms = 4000\nmax_queued_requests = 8",
    );
    let addr = gw.gateway;
    let queued = std::thread::spawn(move || call(addr, &[]));
    wait_for("the second request queued", Duration::from_secs(5), || {
        metric(&scrape(gw.admin), "rocgw_queued_requests", &[]) == 1.0
    });
    let samples = scrape(gw.admin);
    assert_eq!(metric(&samples, "rocgw_in_flight_requests", &[]), 1.0);
    assert_eq!(busy.join().unwrap().0, 200);
    let (status, code, _) = queued.join().unwrap();
    assert_eq!(
        (status, code),
        (200, None),
        "served once the slot came back"
    );
}

/// A request whose body is still coming gives back the slot its head got at the gate: with one
/// slot, another SIH is served while that body dribbles, and the slow one is served after.
#[test]
fn a_body_still_coming_holds_no_slot() {
    use std::io::{Read as _, Write as _};
    let s = slow_sim(0);
    let dir = scratch();
    let text = s.config_text(
        "max_concurrent_requests = 1\nqueue_ms = 50",
        "",
        "",
        "",
        5_000,
    );
    let gw = Proc::with_config(&write_config(dir.path(), &text));
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    let mut slow = std::net::TcpStream::connect(gw.gateway).unwrap();
    let head = format!(
        "POST /amc/99999991/idb HTTP/1.1\r\nHost: x\r\nContent-Type: {CT12}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body.as_bytes()[..10]).unwrap();
    wait_for("the slow body in progress", Duration::from_secs(5), || {
        metric(&scrape(gw.admin), "rocgw_in_flight_requests", &[]) == 1.0
    });
    for _ in 0..3 {
        assert_eq!(call(gw.gateway, &[]).0, 200, "served while the body comes");
    }
    slow.write_all(&body.as_bytes()[10..]).unwrap();
    let mut got = [0u8; 12];
    slow.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 200");
}

//! Slow and lying request bodies cannot starve other SIHs: a body reserves memory as its bytes
//! arrive (not from its declared length), it is read before a request slot is taken, and one
//! that comes slower than the configured pace ends with `body-timeout`. Per-caller caps, when
//! configured, keep one caller from taking every slot. Real gateway processes, real sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::sim::SimFixture;
use crate::support::*;

/// A gateway over the simulator with `server` added to `[server]` and `tail` at the end.
fn gateway(s: &SimFixture, server: &str, tail: &str) -> (Proc, tempfile::TempDir) {
    let dir = scratch();
    let text = s.config_text(server, "", "", tail, 5_000);
    (Proc::with_config(&write_config(dir.path(), &text)), dir)
}

/// Opens a request declaring `declared` body bytes and sends `first` of them.
async fn open_request(addr: SocketAddr, declared: usize, first: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /amc/99999991/idb HTTP/1.1\r\nHost: x\r\nContent-Type: {CT12}\r\n\
         Content-Length: {declared}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(first).await.unwrap();
    c
}

/// Reads what the gateway answers until it closes or `limit` passes; the `X-Rocgw-Error`
/// value, or the status line when there is none.
async fn outcome(c: TcpStream, limit: Duration) -> String {
    outcome_after(c, limit, Vec::new()).await
}

/// [`outcome`], the answer's first bytes already read.
async fn outcome_after(mut c: TcpStream, limit: Duration, mut got: Vec<u8>) -> String {
    let _ = tokio::time::timeout(limit, c.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    text.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-rocgw-error: ")
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.lines().next().unwrap_or("(nothing)").to_string())
}

/// While `attack` runs, a well-behaved SIH calls `n` times (from another thread): its answers.
fn calls_meanwhile(gw: &Proc, n: usize) -> Vec<(u16, Option<String>)> {
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    (0..n)
        .map(|_| {
            let r = http(
                gw.gateway,
                "POST",
                "/amc/99999991/idb",
                &[("Content-Type", CT12)],
                body.as_bytes(),
            );
            (r.status, r.header("x-rocgw-error").map(str::to_string))
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn sixty_six_bodies_declaring_a_mebibyte_and_sending_six_bytes_starve_nobody() {
    let s = SimFixture::start(|_| {});
    // The default budget: 64 MiB for bodies in progress, 1 MiB per body.
    let (gw, _t) = gateway(&s, "body_timeout_ms = 4000", "");
    let rt = runtime();
    let flood: Vec<TcpStream> = rt.block_on(async {
        let mut opened = Vec::new();
        for _ in 0..66 {
            opened.push(open_request(gw.gateway, 1024 * 1024, b"<soap:").await);
        }
        opened
    });
    // Before: 64 of them reserved the whole budget (and held 64 request slots).
    wait_for("the flood in progress", Duration::from_secs(10), || {
        metric(&scrape(gw.admin), "rocgw_in_flight_requests", &[]) >= 64.0
    });
    let t = Instant::now();
    let answers = calls_meanwhile(&gw, 20);
    assert!(t.elapsed() < Duration::from_secs(3), "during the flood");
    for a in &answers {
        assert_eq!(a, &(200, None), "another SIH is served during the flood");
    }
    // The flood ends with body-timeout, once its pace is missed.
    let ends: Vec<String> = rt.block_on(async {
        let waits: Vec<_> = flood
            .into_iter()
            .map(|c| tokio::spawn(outcome(c, Duration::from_secs(15))))
            .collect();
        let mut v = Vec::new();
        for w in waits {
            v.push(w.await.unwrap());
        }
        v
    });
    assert!(ends.iter().all(|e| e == "body-timeout"), "{ends:?}");
    let samples = scrape(gw.admin);
    let timed_out = metric(&samples, "rocgw_faults_total", &[("code", "body-timeout")]);
    assert_eq!(timed_out, 66.0);
}

/// Sends `body` (after headers declaring its length) `chunk` bytes every `every`, never faster
/// (a late tick does not bunch up); stops writing as soon as the gateway answers. The outcome.
async fn dribble(addr: SocketAddr, body: Vec<u8>, chunk: usize, every: Duration) -> String {
    let mut c = open_request(addr, body.len(), &[]).await;
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut parts = body.chunks(chunk);
    let (mut r, mut w) = c.split();
    let mut first = [0u8; 1];
    let mut got = Vec::new();
    let mut sent = 0;
    let stopped = loop {
        tokio::select! {
            _ = tick.tick() => match parts.next() {
                Some(p) => match w.write_all(p).await {
                    Ok(()) => sent += 1,
                    Err(e) => break format!("write failed ({:?})", e.kind()),
                },
                None => break "all sent".to_string(),
            },
            // The gateway answered (or closed): stop sending.
            n = r.read(&mut first) => match n {
                Ok(n) => {
                    got.extend_from_slice(&first[..n]);
                    break if n == 0 { "closed" } else { "answered" }.to_string();
                }
                Err(e) => break format!("read failed ({:?})", e.kind()),
            }
        }
    };
    let end = outcome_after(c, Duration::from_secs(30), got).await;
    if end == "(nothing)" {
        // How it ended, for a failure's message.
        let t = started.elapsed().as_secs_f64();
        format!("(nothing): {stopped} after {sent} writes, {t:.1} s")
    } else {
        end
    }
}

#[test]
fn six_hundred_bodies_dribbled_just_under_the_minimum_rate_are_cut_while_others_are_served() {
    let s = SimFixture::start(|_| {});
    // 512 request slots (the default): before, 600 dribblers took them all.
    // The deadline is far: every dribbler ends on the pace, not on the request deadline.
    let server = "body_timeout_ms = 2000\nmin_body_rate = 1000\nrequest_deadline_ms = 60000";
    let (gw, _t) = gateway(&s, server, "");
    let rt = runtime();
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    let pad = |n: usize| format!("{body}{}", " ".repeat(n - body.len())).into_bytes();
    // 80 bytes every 100 ms: 800 B/s, under 1000 B/s; 20,000 bytes would take 25 s.
    let every = Duration::from_millis(100);
    let dribblers: Vec<_> = (0..600)
        .map(|_| rt.spawn(dribble(gw.gateway, pad(20_000), 80, every)))
        .collect();
    // One SIH on a slow link, but above the rate (1,500 B/s), is served.
    let slow_but_fine = rt.spawn(dribble(gw.gateway, pad(3_000), 150, every));
    let metrics = |name: &str, labels: &[(&str, &str)]| metric(&scrape(gw.admin), name, labels);
    // More bodies in progress than there are request slots (512)...
    wait_for("the dribblers in progress", Duration::from_secs(30), || {
        metrics("rocgw_in_flight_requests", &[]) >= 540.0
    });
    // ... and another SIH still gets a slot each time.
    let answers = calls_meanwhile(&gw, 20);
    for a in &answers {
        assert_eq!(a, &(200, None), "another SIH is served meanwhile");
    }
    let timeouts = [("code", "body-timeout")];
    let ends: Vec<String> = rt.block_on(async {
        let mut v = Vec::new();
        for d in dribblers {
            v.push(d.await.unwrap());
        }
        v
    });
    // Each is cut by the gateway (its fault, or a reset when the fault raced the client's
    // next write); none is served.
    assert!(
        ends.iter().all(|e| !e.starts_with("HTTP/1.1 200")),
        "{ends:?}"
    );
    // Kinds of ends; for those that got nothing, each one's story.
    let mut kinds: Vec<&str> = ends
        .iter()
        .map(|e| e.lines().next().unwrap_or(""))
        .collect();
    kinds.sort();
    kinds.dedup();
    // When short: what else the gateway said (its distinct log messages, counted).
    let mut said = std::collections::BTreeMap::<String, usize>::new();
    for l in gw.stderr_lines() {
        let msg = l
            .split("msg=")
            .nth(1)
            .or_else(|| l.split("  ").last())
            .unwrap_or(&l);
        *said.entry(msg.chars().take(90).collect()).or_default() += 1;
    }
    assert_eq!(
        metrics("rocgw_faults_total", &timeouts),
        600.0,
        "how the dribblers ended: {kinds:?}; the gateway's log: {said:?}"
    );
    let fine = rt.block_on(slow_but_fine).unwrap();
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
}

#[test]
fn per_caller_caps_keep_one_caller_from_taking_every_slot() {
    let s = SimFixture::start(|_| {});
    s.set_faults(
        "99999991",
        &rocgw::sim::Faults {
            latency_ms: 800,
            ..rocgw::sim::Faults::default()
        },
    );
    let tokens = scratch();
    let (a, b) = (tokens.path().join("a"), tokens.path().join("b"));
    std::fs::write(&a, "it-secret-busy-caller-0001\n").unwrap();
    std::fs::write(&b, "it-secret-calm-caller-0002\n").unwrap();
    let access = format!(
        "[access]\n[[access.callers]]\nname = \"busy\"\ntoken_file = \"{}\"\n\n\
         [[access.callers]]\nname = \"calm\"\ntoken_file = \"{}\"\n",
        a.display(),
        b.display()
    );
    // Six slots in all: without the cap, the busy caller's eight requests would take them.
    let (gw, _t) = gateway(
        &s,
        "max_concurrent_requests = 6\nmax_requests_per_caller = 4",
        &access,
    );
    let admin = gw.admin;
    let body = std::sync::Arc::new(envelope12("<r:req xmlns:r=\"urn:test\"/>"));
    let call = move |token: &'static str| {
        let body = body.clone();
        let addr = gw.gateway;
        std::thread::spawn(move || {
            let auth = format!("Bearer {token}");
            let h = [("Content-Type", CT12), ("Authorization", auth.as_str())];
            let r = http(addr, "POST", "/amc/99999991/idb", &h, body.as_bytes());
            (
                r.status,
                r.header("x-rocgw-error").map(str::to_string),
                r.body,
            )
        })
    };
    let busy: Vec<_> = (0..8).map(|_| call("it-secret-busy-caller-0001")).collect();
    let in_flight = move || {
        let auth = [("Authorization", "Bearer it-secret-calm-caller-0002")];
        let r = http(admin, "GET", "/metrics", &auth, b"");
        metric(&parse_metrics(&r.body), "rocgw_in_flight_requests", &[])
    };
    wait_for("the busy caller's requests", Duration::from_secs(5), || {
        in_flight() >= 4.0
    });
    let calm = call("it-secret-calm-caller-0002").join().unwrap();
    assert_eq!(calm.0, 200, "another caller keeps its share: {}", calm.2);
    let busy: Vec<_> = busy.into_iter().map(|h| h.join().unwrap()).collect();
    let served = busy.iter().filter(|r| r.0 == 200).count();
    let shed: Vec<_> = busy
        .iter()
        .filter(|r| r.1.as_deref() == Some("overloaded"))
        .collect();
    assert_eq!((served, shed.len()), (4, 4), "{busy:?}");
    assert!(
        shed[0].2.contains("max_requests_per_caller"),
        "{}",
        shed[0].2
    );
}

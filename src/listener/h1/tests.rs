use super::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::slots::{Gated, Slots};

use tokio::io::{AsyncReadExt as _, DuplexStream};

fn settings() -> Settings {
    Settings {
        header_read_timeout: Duration::from_secs(5),
        max_headers: 32,
        max_header_bytes: 4096,
    }
}

/// An answer as the client read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every answer in `bytes` (each framed by its Content-Length; `head_only` answers have none).
fn answers(mut bytes: &[u8], head_only: bool) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut h = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut h);
        let n = match r.parse(bytes).expect("a valid answer head") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("cut answer: {:?}", String::from_utf8_lossy(bytes)),
        };
        let fields: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|h| {
                let v = String::from_utf8_lossy(h.value).to_string();
                (h.name.to_ascii_lowercase(), v)
            })
            .collect();
        let status = r.code.unwrap();
        let len: usize = match (head_only, status) {
            (true, _) | (_, 100..=199 | 204 | 304) => 0,
            _ => fields
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap()),
        };
        out.push(Answer {
            status,
            fields,
            body: bytes[n..n + len].to_vec(),
        });
        bytes = &bytes[n + len..];
    }
    out
}

/// A handler that echoes the method, path and body it read.
async fn echo(req: Request<Body>) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let body = body.collect(1 << 20).await.unwrap_or_default();
    let mut text = format!("{} {} ", parts.method, parts.uri.path()).into_bytes();
    text.extend_from_slice(&body);
    Response::new(Bytes::from(text))
}

use http::{HeaderValue, Response};

/// Serves one connection in the background; the client's end back.
type Started = (
    DuplexStream,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

fn start<H, F>(handle: H) -> Started
where
    H: FnMut(Request<Body>) -> F + Send + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    start_with(1 << 16, handle)
}

/// [`start`] over a pipe that holds `capacity` bytes each way.
fn start_with<H, F>(capacity: usize, handle: H) -> Started
where
    H: FnMut(Request<Body>) -> F + Send + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    start_gated(capacity, None, handle)
}

/// [`start_with`] behind `gate`.
fn start_gated<H, F>(capacity: usize, gate: Option<Gate>, handle: H) -> Started
where
    H: FnMut(Request<Body>) -> F + Send + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let (client, server) = tokio::io::duplex(capacity);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(serve(Box::new(server), settings(), handle, rx, gate));
    (client, tx, task)
}

/// Serves one connection to which `wire` is written at once: the answers that came back
/// until the close.
async fn session<H, F>(handle: H, wire: &[u8]) -> Vec<Answer>
where
    H: FnMut(Request<Body>) -> F + Send + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    answers(&session_bytes(handle, wire).await, false)
}

/// [`session`], the bytes as they came.
async fn session_bytes<H, F>(handle: H, wire: &[u8]) -> Vec<u8>
where
    H: FnMut(Request<Body>) -> F + Send + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let (mut c, _stop, task) = start(handle);
    c.write_all(wire).await.unwrap();
    let out = read_to_close(&mut c).await;
    task.await.unwrap();
    out
}

async fn read_to_close(c: &mut DuplexStream) -> Vec<u8> {
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    out
}

/// Random requests, each with a body by length, chunked (random chunks, extensions, a
/// trailer now and then) or none, written back to back in random pieces: each is answered, in
/// order, with the body it carried, on one connection.
#[tokio::test]
async fn pipelined_requests_in_random_pieces_are_each_answered_in_order() {
    let mut rng = fastrand::Rng::with_seed(18);
    for round in 0..60 {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for i in 0..rng.usize(1..5) {
            let body: Vec<u8> = (0..rng.usize(0..300))
                .map(|_| *rng.choice(b"ab\r\n0;<>x").unwrap())
                .collect();
            let path = format!("/r{round}/{i}");
            match rng.u8(0..3) {
                0 => {
                    let head = format!(
                        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    wire.extend_from_slice(head.as_bytes());
                    wire.extend_from_slice(&body);
                }
                1 => {
                    wire.extend_from_slice(
                        format!(
                            "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    let mut rest = &body[..];
                    while !rest.is_empty() {
                        let n = rng.usize(1..=rest.len());
                        let ext = if rng.bool() { ";e=1" } else { "" };
                        wire.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
                        wire.extend_from_slice(&rest[..n]);
                        wire.extend_from_slice(b"\r\n");
                        rest = &rest[n..];
                    }
                    wire.extend_from_slice(if rng.bool() {
                        b"0\r\nX-T: 1\r\n\r\n"
                    } else {
                        b"0\r\n\r\n"
                    });
                }
                _ => {
                    wire.extend_from_slice(
                        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
                    );
                    expected.push(format!("GET {path} ").into_bytes());
                    continue;
                }
            }
            let mut e = format!("POST {path} ").into_bytes();
            e.extend_from_slice(&body);
            expected.push(e);
        }
        wire.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        expected.push(b"GET /last ".to_vec());

        let (mut c, _stop, task) = start(echo);
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = rng.usize(1..=rest.len().min(64));
            c.write_all(&rest[..n]).await.unwrap();
            rest = &rest[n..];
            if rng.bool() {
                tokio::task::yield_now().await;
            }
        }
        let got = answers(&read_to_close(&mut c).await, false);
        let bodies: Vec<Vec<u8>> = got.iter().map(|a| a.body.clone()).collect();
        assert_eq!(
            bodies,
            expected,
            "round {round}: {:?}",
            String::from_utf8_lossy(&wire)
        );
        assert!(got
            .iter()
            .all(|a| a.status == 200 && a.field("date").is_some()));
        assert_eq!(got.last().unwrap().field("connection"), Some("close"));
        assert!(got[..got.len() - 1]
            .iter()
            .all(|a| a.field("connection").is_none()));
        task.await.unwrap();
    }
}

#[tokio::test]
async fn http10_closes_unless_asked_to_keep_alive() {
    let got = session(
        echo,
        b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
    )
    .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].field("connection"), Some("keep-alive"));
    assert_eq!(got[1].field("connection"), Some("close"));
    assert_eq!(got[1].body, b"GET /b ");
}

#[tokio::test]
async fn heads_it_cannot_take_are_refused_with_their_status() {
    let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
    let huge = format!("X-Big: {}\r\n", "v".repeat(5000));
    for (head, status) in [
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n"), 431),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n{huge}\r\n"), 431),
        ("GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n".to_string(), 400),
        ("PRI * HTTP/2.0\r\n\r\n".to_string(), 505),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_string(),
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_string(),
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".to_string(),
            501,
        ),
        ("GET / HTTP/1.1\r\n\r\n".to_string(), 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_string(), 400),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_string(),
            501,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_string(),
            501,
        ),
    ] {
        let called = Arc::new(AtomicBool::new(false));
        let seen = called.clone();
        let got = session(move |req| {
            seen.store(true, Ordering::SeqCst);
            echo(req)
        }, head.as_bytes()).await;
        assert_eq!(got.len(), 1, "{head:.40}");
        assert_eq!(got[0].status, status, "{head:.40}");
        assert_eq!(got[0].field("connection"), Some("close"));
        assert!(!called.load(Ordering::SeqCst), "{head:.40}");
    }
}

/// The head of a request that asks to be told to continue before it sends its 2 bytes.
const EXPECTING: &[u8] =
    b"POST /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";

#[tokio::test]
async fn no_interim_answer_goes_out_for_a_body_left_unread() {
    // The answer comes alone, and the connection closes after it.
    let got = session(
        |_req| async { Response::new(Bytes::from_static(b"no")) },
        EXPECTING,
    )
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].status, got[0].field("connection")),
        (200, Some("close"))
    );
}

#[tokio::test]
async fn a_body_left_unread_closes_the_connection_unless_discarded_whole() {
    // Dropped: the answer says close, and the rest is not read.
    let got = session(
        |req: Request<Body>| async move {
            drop(req);
            Response::new(Bytes::from_static(b"refused"))
        },
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234",
    )
    .await;
    assert_eq!(got[0].field("connection"), Some("close"));

    // Discarded: the client, still sending after the answer, can send all of it.
    let (mut c, _stop, task) = start(|req: Request<Body>| async move {
        req.into_body().discard(1 << 20, Duration::from_secs(5));
        Response::new(Bytes::from_static(b"refused"))
    });
    let big = vec![b'x'; 200_000];
    c.write_all(
        format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (mut r, mut w) = tokio::io::split(c);
    let sending = tokio::spawn(async move { w.write_all(&big).await.is_ok() });
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    assert!(sending.await.unwrap(), "the body was not read to its end");
    let got = answers(&out, false);
    assert_eq!(
        (got[0].status, got[0].field("connection")),
        (200, Some("close"))
    );
    task.await.unwrap();
}

#[tokio::test]
async fn a_client_that_hangs_up_drops_the_handler_s_work() {
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = dropped.clone();
    let (mut c, _stop, task) = start(move |req: Request<Body>| {
        let guard = Dropped(flag.clone());
        async move {
            drop(req);
            let _guard = guard;
            std::future::pending::<()>().await;
            unreachable!()
        }
    });
    c.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::task::yield_now().await;
    assert!(!dropped.load(Ordering::SeqCst));
    drop(c);
    task.await.unwrap();
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_stop_closes_an_idle_connection_and_a_busy_one_after_its_answer() {
    let (mut idle, stop, task) = start(echo);
    idle.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert_eq!(answers(&buf[..n], false)[0].status, 200);
    stop.send(true).unwrap();
    assert!(read_to_close(&mut idle).await.is_empty());
    task.await.unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let (go, wait) = tokio::sync::watch::channel(false);
    let counted = calls.clone();
    let (mut busy, stop, task) = start(move |_req| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut wait = wait.clone();
        async move {
            let _ = wait.wait_for(|g| *g).await;
            Response::new(Bytes::from_static(b"done"))
        }
    });
    busy.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    stop.send(true).unwrap();
    go.send(true).unwrap();
    let got = answers(&read_to_close(&mut busy).await, false);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].body.as_slice(), got[0].field("connection")),
        (&b"done"[..], Some("close"))
    );
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_head_that_does_not_come_in_time_closes_the_connection() {
    // The first answer takes 3 s: the next wait starts then, not when the connection opened.
    let (mut c, _stop, task) = start(|req: Request<Body>| async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        echo(req).await
    });
    let opened = Instant::now();
    c.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(answers(&buf[..n], false)[0].status, 200);
    // 4 s idle, then part of a head: the 5 s end 8 s after the opening (a timer counted from
    // the opening, or never moved from the first wait, would have closed it at 5 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    c.write_all(b"GET /b HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(read_to_close(&mut c).await.is_empty());
    let closed = opened.elapsed();
    assert!(
        closed >= Duration::from_secs(8) && closed < Duration::from_millis(8100),
        "{closed:?}"
    );
    task.await.unwrap();
}

#[tokio::test]
async fn answers_carry_their_length_and_head_answers_none_of_their_body() {
    let out = session_bytes(|req: Request<Body>| async move {
        let status = if req.uri().path() == "/none" {
            204
        } else {
            200
        };
        let mut r = Response::new(Bytes::from_static(b"twelve bytes"));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        r
    }, b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert_eq!(text.matches("content-length").count(), 1, "{text}");
    assert!(text.contains("content-length: 12\r\n"), "{text}");
    assert!(!text.contains("twelve"), "{text}");
    assert!(text.contains("HTTP/1.1 204 No Content\r\n"), "{text}");
}

#[tokio::test]
async fn an_empty_body_left_unread_keeps_the_connection() {
    let got = session(|_req| async { Response::new(Bytes::from_static(b"ok")) }, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].field("connection"), None);
}

#[tokio::test]
async fn a_broken_chunked_body_ends_the_connection_after_its_answer() {
    let got = session(echo, b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // The handler saw an unreadable body; nothing after it is taken for a request.
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].field("connection"), Some("close"));
}

#[tokio::test]
async fn after_an_interim_answer_the_connection_serves_the_next_request() {
    let (mut c, _stop, task) = start(echo);
    c.write_all(EXPECTING).await.unwrap();
    let mut first = [0u8; CONTINUE.len()];
    c.read_exact(&mut first).await.unwrap();
    assert_eq!(&first[..], CONTINUE);
    c.write_all(b"hiGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let got = answers(&read_to_close(&mut c).await, false);
    let bodies: Vec<&[u8]> = got.iter().map(|a| a.body.as_slice()).collect();
    assert_eq!(bodies, [&b"POST /a hi"[..], b"GET /b "]);
    task.await.unwrap();
}

#[tokio::test]
async fn an_interim_answer_cut_midway_is_finished_before_the_final_one() {
    // A pipe of 10 bytes and a client that does not read: the interim answer stops after 10
    // of its 25 bytes; the handler gives up on the body and answers.
    let (mut c, _stop, task) = start_with(10, |req: Request<Body>| async move {
        let mut body = req.into_body();
        let waited = tokio::time::timeout(Duration::from_millis(50), body.next_chunk()).await;
        assert!(waited.is_err(), "the body came");
        Response::new(Bytes::from_static(b"gave up"))
    });
    c.write_all(EXPECTING).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let out = read_to_close(&mut c).await;
    let got = answers(&out, false);
    assert_eq!(got.len(), 2, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!((got[0].status, got[1].status), (100, 200));
    assert_eq!(got[1].body, b"gave up");
    task.await.unwrap();
}

#[tokio::test]
async fn a_discarded_body_is_read_up_to_its_limit_only() {
    let (c, _stop, task) = start(|req: Request<Body>| async move {
        req.into_body().discard(1000, Duration::from_secs(5));
        Response::new(Bytes::from_static(b"refused"))
    });
    let big = vec![b'x'; 1 << 20];
    let (mut r, mut w) = tokio::io::split(c);
    let head = format!(
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        big.len()
    );
    w.write_all(head.as_bytes()).await.unwrap();
    let sending = tokio::spawn(async move { w.write_all(&big).await.is_ok() });
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    assert_eq!(answers(&out, false)[0].status, 200);
    task.await.unwrap();
    // The server stopped reading past the limit and closed: the client could not send it all.
    assert!(!sending.await.unwrap());
}

/// A gate of one slot, with `wait`; requests may shorten it in `x-deadline-ms`.
fn gate_of_one(wait: Duration) -> Gate {
    Gate {
        slots: Arc::new(Slots::new(1, wait, 8)),
        deadline_field: b"x-deadline-ms",
        deadline: |v| {
            let ms = std::str::from_utf8(v).ok()?.parse().ok()?;
            Some(Duration::from_millis(ms))
        },
    }
}

/// What a gated handler saw: whether it had a slot, and how long after the head it ran. While
/// it runs, the slot it holds is not free (`slots`, of one).
fn gated_handler(
    seen: Arc<Mutex<Vec<(bool, Duration)>>>,
    slots: Arc<Slots>,
) -> impl FnMut(Request<Body>) -> Pin<Box<dyn Future<Output = HttpResponse> + Send>> {
    move |req: Request<Body>| {
        let (_, mut body) = req.into_parts();
        let arrived = body.arrived().expect("a gated request says when it came");
        let gated = body.gated();
        let slot = matches!(gated, Gated::Slot(_));
        assert!(matches!(body.gated(), Gated::Open), "taken once");
        seen.lock().unwrap().push((slot, arrived.elapsed()));
        let slots = slots.clone();
        Box::pin(async move {
            if slot {
                let free = slots.take_within(Some(Duration::ZERO)).await;
                assert!(free.is_none(), "the slot is held while the request runs");
            }
            drop(gated);
            assert_eq!(body.collect(16).await.as_deref(), Some(&b"hi"[..]));
            Response::new(Bytes::from_static(b"ok"))
        })
    }
}

const GATED: &[u8] = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi";

/// With the slots taken, a request whose head has come is not handed over (not parsed) until
/// one is given back, and its handler gets that slot; without one within the wait, it is
/// handed over marked shed, at the end of the wait or of its own shorter deadline.
#[tokio::test(start_paused = true)]
async fn a_gated_request_waits_for_a_slot_before_it_is_handed_over() {
    let gate = gate_of_one(Duration::from_millis(500));
    let held = gate.slots.take().await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handle = gated_handler(seen.clone(), gate.slots.clone());
    let (mut c, _stop, task) = start_gated(1 << 16, Some(gate.clone()), handle);
    c.write_all(GATED).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "handed over while the slots are taken"
    );
    drop(held);
    let mut got = [0u8; 1024];
    let n = c.read(&mut got).await.unwrap();
    assert_eq!(answers(&got[..n], false)[0].status, 200);
    let first = seen.lock().unwrap()[0];
    assert!(first.0, "the handler got the slot given back");
    assert_eq!(
        first.1,
        Duration::from_millis(200),
        "its wait counted from the head"
    );
    // Its slot given back, and taken now by someone else: the next request waits its whole
    // wait, then is handed over shed; one asking for 100 ms waits only that.
    let _kept = gate.slots.take().await.unwrap();
    c.write_all(GATED).await.unwrap();
    let with_deadline =
        b"POST / HTTP/1.1\r\nhost: x\r\nx-deadline-ms: 100\r\ncontent-length: 2\r\n\r\nhi";
    c.write_all(with_deadline).await.unwrap();
    c.shutdown().await.unwrap();
    let all = answers(&read_to_close(&mut c).await, false);
    assert_eq!(all.len(), 2);
    task.await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1], (false, Duration::from_millis(500)));
    assert_eq!(seen[2], (false, Duration::from_millis(100)));
}

/// A request whose body is not all there with its head is not gated (it queues after its body,
/// in the handler): a slow body waits for no slot, and holds none.
#[tokio::test]
async fn a_request_whose_body_is_still_coming_passes_the_gate() {
    let gate = gate_of_one(Duration::from_millis(500));
    let _held = gate.slots.take().await.unwrap();
    let handle = |req: Request<Body>| {
        let (_, mut body) = req.into_parts();
        assert!(body.arrived().is_none() && matches!(body.gated(), Gated::Open));
        async move {
            let got = body.collect(64).await.unwrap();
            Response::new(got)
        }
    };
    let (mut c, _stop, task) = start_gated(1 << 16, Some(gate), handle);
    c.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.write_all(b"cd").await.unwrap();
    let chunked =
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\nef\r\n0\r\n\r\n";
    c.write_all(chunked).await.unwrap();
    c.shutdown().await.unwrap();
    let all = answers(&read_to_close(&mut c).await, false);
    let bodies: Vec<&[u8]> = all.iter().map(|a| a.body.as_slice()).collect();
    assert_eq!(bodies, [&b"abcd"[..], &b"ef"[..]]);
    task.await.unwrap();
}

/// A body the handler asked to drop, already read with its head, is dropped from the buffer
/// and the connection stays open (a request refused unread, e.g. shed under load).
#[tokio::test]
async fn a_discarded_body_already_here_keeps_the_connection() {
    let handle = |req: Request<Body>| {
        let (_, body) = req.into_parts();
        body.discard(1024, Duration::from_secs(1));
        std::future::ready(Response::new(Bytes::from_static(b"no")))
    };
    let (mut c, _stop, task) = start(handle);
    c.write_all(&[GATED, GATED].concat()).await.unwrap();
    c.shutdown().await.unwrap();
    let all = answers(&read_to_close(&mut c).await, false);
    task.await.unwrap();
    assert_eq!(all.len(), 2, "both answered on one connection");
    assert!(all
        .iter()
        .all(|a| a.status == 200 && a.field("connection").is_none()));
}

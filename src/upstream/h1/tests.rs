use super::*;

fn req(uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Bytes> {
    let mut b = Request::post(uri);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(Bytes::from(body.to_string())).unwrap()
}

fn encoded(r: &Request<Bytes>) -> String {
    let mut out = Vec::new();
    encode(&mut out, r);
    String::from_utf8(out).unwrap()
}

fn parsed(head: &str) -> Parsed {
    parse_head(head.as_bytes()).unwrap().expect("a whole head")
}

fn invalid(head: &str) -> &'static str {
    match parse_head(head.as_bytes()) {
        Err(H1Error::Invalid(why)) => why,
        other => panic!("{head:?} accepted: {:?}", other.map(|p| p.map(|p| p.body))),
    }
}

#[test]
fn the_request_goes_out_in_origin_form_with_host_and_our_content_length() {
    let r = req(
        "https://user:pw@amc.example:8443/ws/idb?x=1",
        &[
            ("content-type", "application/soap+xml"),
            ("content-length", "999"),
            ("transfer-encoding", "chunked"),
            ("soapaction", "\"a\""),
        ],
        "<e/>",
    );
    assert_eq!(
        encoded(&r),
        "POST /ws/idb?x=1 HTTP/1.1\r\nhost: amc.example:8443\r\n\
         content-type: application/soap+xml\r\nsoapaction: \"a\"\r\n\
         accept-encoding: identity\r\ncontent-length: 4\r\n\r\n<e/>"
    );
    // No content coding is asked for, whatever the request said.
    let r = req("https://h/p", &[("accept-encoding", "gzip, br")], "");
    assert!(encoded(&r).contains("\r\naccept-encoding: identity\r\ncontent-length: 0\r\n\r\n"));
    assert!(!encoded(&r).contains("gzip"));
    // Port 443 is not written; a Host given is kept; no path is "/".
    let r = req("https://amc.example", &[("host", "front")], "");
    assert_eq!(
        encoded(&r),
        "POST / HTTP/1.1\r\nhost: front\r\naccept-encoding: identity\r\ncontent-length: 0\r\n\r\n"
    );
    let r = req("https://amc.example:443/x", &[], "");
    assert!(encoded(&r).starts_with("POST /x HTTP/1.1\r\nhost: amc.example\r\n"));
    let r = req("https://u@[::1]:9443/x", &[], "");
    assert!(encoded(&r).starts_with("POST /x HTTP/1.1\r\nhost: [::1]:9443\r\n"));
    let r = req("https://[::1]:443/x", &[], "");
    assert!(encoded(&r).starts_with("POST /x HTTP/1.1\r\nhost: [::1]\r\n"));
}

#[test]
fn a_large_body_is_written_after_its_head_not_copied() {
    let big = "x".repeat(COPY_BODY + 1);
    let text = encoded(&req("https://h/p", &[], &big));
    assert!(text.ends_with(&format!("content-length: {}\r\n\r\n", big.len())));
}

#[test]
fn heads_say_their_framing_and_whether_the_connection_stays_open() {
    let p = parsed(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nServer: amc\r\nContent-Length: 12\r\n\
         content-language: fr\r\n\r\nrest",
    );
    assert_eq!(
        (p.head.status.as_u16(), p.body, p.keep_alive),
        (200, Body::Length(12), true)
    );
    assert_eq!((p.len, p.head.length), (98, Some(12)));
    // Only the fields passed on to the SIH are kept.
    assert_eq!(p.head.headers.len(), 2);
    assert_eq!(p.head.headers["content-type"], "text/xml");
    assert_eq!(p.head.headers["content-language"], "fr");

    let p = parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n");
    assert_eq!((p.body, p.keep_alive), (Body::ChunkSize, true));
    // No other transfer coding, and no content coding: rocgw asked for neither.
    for coded in [
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: deflate",
    ] {
        let why = invalid(&format!("HTTP/1.1 200 OK\r\n{coded}\r\n\r\n"));
        assert!(
            why.contains("transfer coding other than chunked"),
            "{coded}"
        );
    }
    for coded in ["gzip", "identity, br", "X-GZIP", "zstd"] {
        let why = invalid(&format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {coded}\r\nContent-Length: 9\r\n\r\n"
        ));
        assert!(why.contains("Content-Encoding"), "{coded}");
        let why = invalid(&format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {coded}\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(why.contains("Content-Encoding"), "{coded}");
    }
    // Not codings: `identity`, and values some servers send by mistake on plain bodies.
    for plain in ["Identity", "UTF-8", "binary", "none"] {
        let p = parsed(&format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: {plain}\r\nContent-Length: 9\r\n\r\n"
        ));
        assert_eq!(p.body, Body::Length(9), "{plain}");
    }
    // Without a body, the fields are metadata: nothing to decode.
    for bodiless in [
        "HTTP/1.1 304 Not Modified\r\nContent-Encoding: gzip\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nContent-Encoding: gzip\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
    ] {
        parsed(bodiless);
    }
    // Neither: until the close.
    let p = parsed("HTTP/1.1 500 Oops\r\n\r\n");
    assert_eq!(p.body, Body::Close);
    // Both: chunked wins, and the connection is not kept.
    let p = parsed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!((p.body, p.keep_alive), (Body::ChunkSize, false));
    // The server's close, HTTP/1.0.
    assert!(
        !parsed("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
            .keep_alive
    );
    assert!(!parsed("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
    // The same length twice is one length.
    let p = parsed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
    assert_eq!(p.body, Body::Length(5));
    // Not all there yet.
    assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len")
        .unwrap()
        .is_none());
}

#[test]
fn heads_that_cannot_be_trusted_are_refused() {
    assert_eq!(
        invalid("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        "conflicting Content-Length"
    );
    assert_eq!(
        invalid("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        "bad Content-Length"
    );
    assert_eq!(
        invalid("HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n"),
        "bad Content-Length"
    );
    assert_eq!(
        invalid("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n"),
        "bad Content-Length"
    );
    assert_eq!(invalid("HTTP/1.1 20 OK\r\n\r\n"), "malformed head");
    assert_eq!(invalid("SOAP/1.1 200 OK\r\n\r\n"), "malformed head");
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    assert_eq!(
        invalid(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")),
        "too many header fields"
    );
}

/// `body` as chunks of random sizes, with an extension now and then and maybe a trailer.
fn chunked(rng: &mut fastrand::Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = rng.usize(1..=rest.len().min(700));
        let size = if rng.bool() {
            format!("{n:x}")
        } else {
            format!("{n:X}")
        };
        out.extend_from_slice(size.as_bytes());
        if rng.u8(..) < 40 {
            out.extend_from_slice(b";name=\"v\"");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    out.extend_from_slice(b"0\r\n");
    if rng.bool() {
        out.extend_from_slice(b"X-Trailer: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// An answer carrying `body`: by length or chunked, after an interim 100 now and then.
fn answer(rng: &mut fastrand::Rng, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.u8(..) < 50 {
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n");
    if rng.bool() {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        out.extend_from_slice(&chunked(rng, body));
    } else {
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// Reads one request (head, then its Content-Length body) from `io`, keeping what follows.
async fn read_request(io: &mut tokio::io::DuplexStream, buf: &mut Vec<u8>) -> Vec<u8> {
    use tokio::io::AsyncReadExt as _;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let n: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            if buf.len() >= end + n {
                let body = buf[end..end + n].to_vec();
                buf.drain(..end + n);
                return body;
            }
        }
        let mut chunk = [0u8; 4096];
        let n = io.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed mid-request");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Random bytes, CRLFs and digits included, so that no framing can be guessed from the body.
fn random_body(rng: &mut fastrand::Rng) -> Vec<u8> {
    let n = rng.usize(0..3000);
    (0..n)
        .map(|_| match rng.u8(..) {
            0..=9 => b'\r',
            10..=19 => b'\n',
            20..=39 => b'0' + rng.u8(0..10),
            x => x,
        })
        .collect()
}

#[tokio::test]
async fn answers_in_any_pieces_are_read_whole_and_leave_the_connection_in_step() {
    use tokio::io::AsyncWriteExt as _;
    let mut rng = fastrand::Rng::with_seed(18);
    for round in 0..200 {
        let (client, mut server) = tokio::io::duplex(256 * 1024);
        let mut link = Link::new(client);
        // Three exchanges on one connection: each proves the one before left nothing behind.
        let bodies: Vec<Vec<u8>> = (0..3).map(|_| random_body(&mut rng)).collect();
        let wires: Vec<Vec<u8>> = bodies.iter().map(|b| answer(&mut rng, b)).collect();
        let cuts: Vec<Vec<usize>> = wires
            .iter()
            .map(|w| {
                let mut c: Vec<usize> = (0..rng.usize(0..12))
                    .map(|_| rng.usize(0..=w.len()))
                    .collect();
                c.sort_unstable();
                c
            })
            .collect();
        let serving = tokio::spawn(async move {
            let mut buf = Vec::new();
            for (i, (wire, cuts)) in wires.iter().zip(&cuts).enumerate() {
                let asked = read_request(&mut server, &mut buf).await;
                assert_eq!(asked, format!("<call {i}/>").into_bytes());
                let mut at = 0;
                for &cut in cuts.iter().chain([&wire.len()]) {
                    server.write_all(&wire[at..cut]).await.unwrap();
                    at = cut;
                    tokio::task::yield_now().await;
                }
            }
            server
        });
        for (i, body) in bodies.iter().enumerate() {
            let req = req("https://amc.example/idb", &[], &format!("<call {i}/>"));
            let head = link
                .send(&req)
                .await
                .unwrap_or_else(|e| panic!("{round}/{i}: {e:?}"));
            assert_eq!(head.status, StatusCode::OK);
            let mut got = Vec::new();
            while let Some(chunk) = link.next_chunk().await {
                got.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("{round}/{i}: {e}")));
            }
            assert!(got == *body, "round {round}, answer {i}: body differs");
            assert!(link.reusable(), "round {round}, answer {i}");
        }
        let _server = serving.await.unwrap();
        assert!(link.still_open(), "round {round}: nothing more came");
    }
}

/// A link to an in-memory server that reads one request, writes `pieces` 20 ms apart, then
/// closes its side when `close`; the server's end comes back from the task.
fn answering(
    pieces: Vec<&'static [u8]>,
    close: bool,
) -> (
    Box<Link<tokio::io::DuplexStream>>,
    tokio::task::JoinHandle<tokio::io::DuplexStream>,
) {
    use tokio::io::AsyncWriteExt as _;
    let (client, mut server) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn(async move {
        let mut buf = Vec::new();
        read_request(&mut server, &mut buf).await;
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            server.write_all(piece).await.unwrap();
        }
        if close {
            server.shutdown().await.unwrap();
        }
        server
    });
    (Link::new(client), serving)
}

#[tokio::test]
async fn a_connection_with_bytes_after_the_answer_or_closed_by_it_is_not_reused() {
    for (wire, close) in [
        // Something the client never asked for follows the answer.
        (
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"[..],
            false,
        ),
        // No length: the body ends with the close.
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true),
        // The server said it closes.
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
    ] {
        let (mut link, serving) = answering(vec![wire], close);
        link.send(&req("https://h/x", &[], "<call 0/>"))
            .await
            .unwrap();
        while let Some(chunk) = link.next_chunk().await {
            chunk.unwrap();
        }
        let _server = serving.await.unwrap();
        assert!(!link.reusable(), "{}", String::from_utf8_lossy(wire));
        assert!(!link.still_open());
    }
}

#[tokio::test]
async fn an_exchange_cut_after_its_request_can_be_finished_and_its_connection_reused() {
    let (mut link, serving) = answering(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
            b"2\r\nde\r\n0\r\n\r\n",
        ],
        false,
    );
    assert!(!link.answer_pending(), "nothing sent yet");
    // The caller goes away with only part of the answer read.
    link.send(&req("https://h/x", &[], "<call 0/>"))
        .await
        .unwrap();
    assert_eq!(&link.next_chunk().await.unwrap().unwrap()[..], b"abc");
    assert!(link.answer_pending() && !link.reusable());
    link.finish(1024).await.unwrap();
    assert!(!link.answer_pending() && link.reusable());
    let _server = serving.await.unwrap();
    // A body over the limit is not finished.
    let (mut link, serving) = answering(
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"],
        false,
    );
    link.send(&req("https://h/x", &[], "<call 0/>"))
        .await
        .unwrap();
    assert!(link.finish(4).await.is_err());
    let _server = serving.await.unwrap();
}

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
         content-length: 4\r\n\r\n<e/>"
    );
    // Port 443 is not written; a Host given is kept; no path is "/".
    let r = req("https://amc.example", &[("host", "front")], "");
    assert_eq!(
        encoded(&r),
        "POST / HTTP/1.1\r\nhost: front\r\ncontent-length: 0\r\n\r\n"
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

    let p = parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
    assert_eq!((p.body, p.keep_alive), (Body::ChunkSize, true));
    // Another coding last: the close ends the body.
    let p = parsed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(p.body, Body::Close);
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

#[test]
fn chunk_sizes_are_hex_with_extensions_ignored() {
    assert_eq!(chunk_size(b"1a").unwrap(), 26);
    assert_eq!(chunk_size(b"FF;name=value").unwrap(), 255);
    assert_eq!(chunk_size(b"0").unwrap(), 0);
    for bad in [&b""[..], b"g", b"-1", b"1 2", b"10000000000000000"] {
        assert!(chunk_size(bad).is_err(), "{bad:?}");
    }
}

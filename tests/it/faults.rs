//! The fault model through the real gateway: each error is a SOAP fault in the request's SOAP
//! version, with the stable code in the body and in `X-Rocgw-Error`, French and English reasons,
//! and the HTTP status of the SOAP binding (or the precise one when configured).

use std::io::Write;
use std::net::TcpStream;

use crate::support::*;

/// A gateway with a 4 KiB body limit, in binding or precise status mode.
struct Gw {
    proc: Proc,
    _dir: tempfile::TempDir,
}

fn gateway(precise: bool) -> Gw {
    let tmp = scratch();
    let server = if precise {
        "http_status = \"precise\"\nmax_body_bytes = 4096"
    } else {
        "max_body_bytes = 4096"
    };
    let cfg = write_config(tmp.path(), &config_text(server, ""));
    Gw {
        proc: Proc::with_config(&cfg),
        _dir: tmp,
    }
}

fn check(r: &Resp, code: &str, status: u16, ns: &str, side: &str) -> ParsedFault {
    assert_eq!(r.status, status, "{code}: {}", r.body);
    assert_eq!(r.header("x-rocgw-error"), Some(code));
    let f = parse_fault(&r.body);
    assert_eq!(f.envelope_ns, ns, "{code}");
    assert_eq!(f.side, side, "{code}");
    assert_eq!(f.code, code);
    assert!(
        !f.reasons.get("fr").map(String::is_empty).unwrap_or(true),
        "{code}: no French reason"
    );
    assert!(
        !f.reasons.get("en").map(String::is_empty).unwrap_or(true),
        "{code}: no English reason"
    );
    let ct = r.header("content-type").unwrap();
    if ns == SOAP11_NS {
        assert!(ct.starts_with("text/xml"), "{ct}");
    } else {
        assert!(ct.starts_with("application/soap+xml"), "{ct}");
        assert_eq!(f.subcode.as_deref(), Some(code));
    }
    f
}

#[test]
fn soap11_faults_are_500_with_client_or_server_code() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    let r = post(gw, "/amc/22222222/idb", CT11, &envelope11("<a/>"));
    check(&r, "unknown-amc", 500, SOAP11_NS, "Client");
    let r = post(gw, "/amc/11111111/annulation", CT11, &envelope11("<a/>"));
    check(&r, "unknown-service", 500, SOAP11_NS, "Client");
    let r = post(gw, "/amc/11111111/teleportation", CT11, &envelope11("<a/>"));
    check(&r, "unknown-service", 500, SOAP11_NS, "Client");
    let r = post(gw, "/amc/11111111/idb", CT11, &envelope11("<a/>"));
    check(&r, "amc-unavailable", 500, SOAP11_NS, "Server");
    let r = post(gw, "/annuaire", CT11, &envelope11("<search/>"));
    check(&r, "annuaire-unavailable", 500, SOAP11_NS, "Server");
    // Refused for its encoding (a Latin-1 byte in a UTF-8 document), which is checked before
    // the root is read: in the envelope's version all the same.
    let doc = envelope11("<a>H@pital</a>");
    let (before, after) = doc.split_once('@').unwrap();
    let latin1 = [before.as_bytes(), &[0xF4], after.as_bytes()].concat();
    let ct = [("Content-Type", CT11), ("SOAPAction", "\"\"")];
    let r = http(gw, "POST", "/amc/11111111/idb", &ct, &latin1);
    check(&r, "not-soap", 500, SOAP11_NS, "Client");
    assert!(r.body.contains("invalid UTF-8"), "{}", r.body);
}

#[test]
fn soap12_faults_are_400_for_sender_and_500_for_receiver() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    let r = post(gw, "/amc/22222222/idb", CT12, &envelope12("<a/>"));
    check(&r, "unknown-amc", 400, SOAP12_NS, "Sender");
    let r = post(gw, "/amc/11111111/IDB", CT12, &envelope12("<a/>"));
    check(&r, "amc-unavailable", 500, SOAP12_NS, "Receiver");
}

#[test]
fn the_envelope_not_the_content_type_decides_the_version() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    // A SOAP 1.1 envelope sent with a SOAP 1.2 content type still gets a SOAP 1.1 fault.
    let r = post(gw, "/amc/22222222/idb", CT12, &envelope11("<a/>"));
    check(&r, "unknown-amc", 500, SOAP11_NS, "Client");
}

#[test]
fn non_soap_requests_get_soap12_faults() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    for body in [
        "hello",
        "",
        "<notsoap/>",
        "<Envelope xmlns=\"urn:x\"/>",
        "{\"json\": true}",
    ] {
        let r = post(gw, "/amc/11111111/idb", CT11, body);
        check(&r, "not-soap", 400, SOAP12_NS, "Sender");
    }
    let r = http(
        gw,
        "POST",
        "/amc/11111111/idb",
        &[("Content-Type", CT12)],
        b"\xff\xfe<x/>",
    );
    check(&r, "not-soap", 400, SOAP12_NS, "Sender");
}

#[test]
fn dtds_are_refused_without_expansion() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
        envelope11("<a>&x;</a>").split_once("?>").unwrap().1
    );
    let r = post(gw, "/amc/11111111/idb", CT11, &xxe);
    let f = check(&r, "dtd-forbidden", 500, SOAP11_NS, "Client");
    assert!(!r.body.contains("root:"), "entity expanded: {f:?}");
    let bomb = "<!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><l>&b;</l>";
    let r = post(gw, "/amc/11111111/idb", CT12, bomb);
    check(&r, "dtd-forbidden", 400, SOAP12_NS, "Sender");
}

#[test]
fn oversized_bodies_are_refused_declared_or_chunked() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    let big = envelope12(&"x".repeat(5000));
    let r = post(gw, "/amc/11111111/idb", CT12, &big);
    check(&r, "body-too-large", 400, SOAP12_NS, "Sender");

    // Chunked, with no declared length: refused when it crosses the limit.
    let mut s = TcpStream::connect(gw).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "POST /amc/11111111/idb HTTP/1.1\r\nHost: x\r\nContent-Type: {CT11}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for _ in 0..5 {
        let chunk = "y".repeat(1000);
        if write!(s, "{:x}\r\n{chunk}\r\n", chunk.len()).is_err() {
            break;
        }
    }
    let _ = write!(s, "0\r\n\r\n");
    let r = read_response(&mut s);
    // Refused before the envelope is read: the text/xml content type says SOAP 1.1.
    check(&r, "body-too-large", 500, SOAP11_NS, "Client");
}

#[test]
fn precise_mode_uses_precise_statuses() {
    let g = gateway(true);
    let gw = g.proc.gateway;
    let cases = [
        (
            "/amc/22222222/idb",
            envelope11("<a/>"),
            "unknown-amc",
            404,
            SOAP11_NS,
            "Client",
        ),
        (
            "/amc/11111111/idb",
            envelope12("<a/>"),
            "amc-unavailable",
            502,
            SOAP12_NS,
            "Receiver",
        ),
        (
            "/annuaire",
            envelope12("<a/>"),
            "annuaire-unavailable",
            503,
            SOAP12_NS,
            "Receiver",
        ),
        (
            "/amc/11111111/idb",
            "nope".to_string(),
            "not-soap",
            400,
            SOAP12_NS,
            "Sender",
        ),
        (
            "/amc/11111111/idb",
            envelope12(&"z".repeat(5000)),
            "body-too-large",
            413,
            SOAP12_NS,
            "Sender",
        ),
    ];
    for (path, body, code, status, ns, side) in cases {
        let r = post(gw, path, CT12, &body);
        check(&r, code, status, ns, side);
    }
}

#[test]
fn unknown_paths_and_methods_are_faults_too() {
    let g = gateway(false);
    let gw = g.proc.gateway;
    let r = http(gw, "GET", "/amc/11111111/idb", &[], b"");
    check(&r, "not-found", 400, SOAP12_NS, "Sender");
    let r = post(gw, "/metrics", CT11, &envelope11("<a/>"));
    check(&r, "not-found", 500, SOAP11_NS, "Client");
}

#[test]
fn a_bad_request_does_not_disturb_the_next_ones() {
    let mut g = gateway(false);
    let gw = g.proc.gateway;
    for _ in 0..3 {
        let mut s = TcpStream::connect(gw).unwrap();
        let _ = s.write_all(b"POST /amc/1/idb HTTP/1.1\r\nContent-Length: 99999\r\n\r\n<trunc");
        drop(s);
        let _ = TcpStream::connect(gw)
            .unwrap()
            .write_all(b"\x00\x01garbage\r\n\r\n");
    }
    let r = post(gw, "/amc/22222222/idb", CT12, &envelope12("<a/>"));
    check(&r, "unknown-amc", 400, SOAP12_NS, "Sender");
    assert!(g.proc.alive());
}

#[test]
fn compressed_bodies_are_refused_before_they_are_read() {
    // Neither parsed nor passed on: only the call's headers go upstream, so the AMC would get
    // compressed bytes without their Content-Encoding.
    let gzip = [&[0x1f, 0x8b, 8, 0][..], &[0x55; 64]].concat();
    let precise = gateway(true);
    for (path, ct, ns, side) in [
        ("/amc/11111111/idb", CT12, SOAP12_NS, "Sender"),
        ("/annuaire", CT11, SOAP11_NS, "Client"),
    ] {
        let headers = [("Content-Type", ct), ("Content-Encoding", "gzip")];
        let r = http(precise.proc.gateway, "POST", path, &headers, &gzip);
        check(&r, "unsupported-encoding", 415, ns, side);
        assert_eq!(r.header("accept-encoding"), Some("identity"), "{path}");
        assert!(
            r.body.contains("Content-Encoding: gzip"),
            "{path}: {}",
            r.body
        );
    }
    let binding = gateway(false);
    let body = envelope11("<a/>");
    let sent = |coding| {
        let headers = [("Content-Type", CT11), ("Content-Encoding", coding)];
        http(
            binding.proc.gateway,
            "POST",
            "/amc/11111111/idb",
            &headers,
            body.as_bytes(),
        )
    };
    check(
        &sent("identity, br"),
        "unsupported-encoding",
        500,
        SOAP11_NS,
        "Client",
    );
    // `identity` is no coding at all: read and sent on (to an AMC that is down here).
    let r = sent("identity");
    check(&r, "amc-unavailable", 500, SOAP11_NS, "Server");
}

#[test]
fn an_mtom_request_is_refused_saying_so() {
    // What a SOAP stack with MTOM on sends (CXF, Axis2, WCF): the envelope as one MIME part.
    let g = gateway(false);
    let part = envelope12("<a/>");
    let body = format!(
        "--b1\r\nContent-Type: application/xop+xml; charset=UTF-8; \
         type=\"application/soap+xml\"\r\nContent-ID: <root>\r\n\r\n{part}\r\n--b1--\r\n"
    );
    let ct = r#"multipart/related; boundary=b1; type="application/xop+xml"; start="<root>""#;
    for path in ["/amc/11111111/idb", "/annuaire"] {
        let r = http(
            g.proc.gateway,
            "POST",
            path,
            &[("Content-Type", ct)],
            body.as_bytes(),
        );
        check(&r, "not-soap", 400, SOAP12_NS, "Sender");
        assert!(
            r.body.contains("Content-Type: multipart/related (MTOM"),
            "{path}: {}",
            r.body
        );
    }
    // A SOAP 1.1 stack's MTOM (start-info text/xml) gets its fault in SOAP 1.1.
    let ct11 =
        r#"multipart/related; boundary=b1; type="application/xop+xml"; start-info="text/xml""#;
    let r = http(
        g.proc.gateway,
        "POST",
        "/amc/11111111/idb",
        &[("Content-Type", ct11), ("SOAPAction", "\"\"")],
        body.as_bytes(),
    );
    check(&r, "not-soap", 500, SOAP11_NS, "Client");
}

#[test]
fn a_utf16_envelope_is_refused_saying_so() {
    let g = gateway(false);
    let doc = envelope12("<a/>").replace("UTF-8", "UTF-16");
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(doc.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let headers = [("Content-Type", "application/soap+xml; charset=utf-16")];
    let r = http(
        g.proc.gateway,
        "POST",
        "/amc/11111111/idb",
        &headers,
        &utf16,
    );
    check(&r, "not-soap", 400, SOAP12_NS, "Sender");
    assert!(r.body.contains("a UTF-16 or UTF-32 document"), "{}", r.body);
}

//! A request head: parsed by `httparse` (its parts' places kept in [`Spans`]), then made an
//! `http::Request` whose header values share the head's bytes, with the framing and the
//! connection's fate it implies, or refused with the status that says why.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};

use super::Settings;
use crate::http1::{is_name, with_header_slots, Body as Framed, Framing};

/// Why a head was not taken: the answer to give before closing.
#[derive(Debug)]
pub(super) enum Refused {
    /// Closed, timed out or stopped: nothing to answer.
    Quiet,
    Status(StatusCode, &'static str),
}

/// A request head, parsed.
pub(super) struct Head {
    pub(super) request: Request<()>,
    pub(super) body: Framed,
    pub(super) keep_alive: bool,
    pub(super) http10: bool,
    pub(super) expect_continue: bool,
}

/// Where a head's parts are in its bytes (offset, length), found by `httparse`.
pub(super) struct Spans {
    method: (usize, usize),
    target: (usize, usize),
    http10: bool,
    /// Name and value of each field.
    fields: Vec<[usize; 4]>,
    /// The framing fields, `Expect: 100-continue` and the `Host` fields, scanned once with
    /// the parts: the gate and [`build_head`] both read them.
    framing: Result<Framing, ()>,
    expect: bool,
    hosts: usize,
}

impl Default for Spans {
    fn default() -> Spans {
        Spans {
            method: (0, 0),
            target: (0, 0),
            http10: false,
            fields: Vec::new(),
            framing: Ok(Framing::default()),
            expect: false,
            hosts: 0,
        }
    }
}

impl Spans {
    /// Whether the body of the head at the start of `buf` (its first `head` bytes) is all in
    /// `buf`: none, or a `Content-Length` already read; not a chunked one, nor one the client
    /// sends only once told to continue.
    pub(super) fn body_here(&self, buf: &[u8], head: usize) -> bool {
        match &self.framing {
            Ok(f) if f.chunked.is_none() && !self.expect => {
                f.length.unwrap_or(0) <= (buf.len() - head) as u64
            }
            _ => false,
        }
    }

    /// The value of the first field named `name` (lower case) in the head at the start of `buf`.
    pub(super) fn field<'b>(&self, buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
        self.fields
            .iter()
            .find(|&&[no, nl, ..]| is_name(&buf[no..no + nl], name))
            .map(|&[_, _, vo, vl]| &buf[vo..vo + vl])
    }
}

const TOO_MANY: &str = "too many header fields";

fn bad(why: &'static str) -> Refused {
    Refused::Status(StatusCode::BAD_REQUEST, why)
}

/// The length of the head at the start of `buf`, when it is all there, its parts in `spans`.
pub(super) fn parse_head(
    buf: &[u8],
    settings: &Settings,
    spans: &mut Spans,
) -> Result<Option<usize>, Refused> {
    let too_many = |e: &Refused| matches!(e, Refused::Status(_, TOO_MANY));
    with_header_slots(settings.max_headers, too_many, |slots| {
        spans_in(buf, slots, settings, spans)
    })
}

/// [`parse_head`] with room for `slots.len()` header fields.
fn spans_in<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
    settings: &Settings,
    spans: &mut Spans,
) -> Result<Option<usize>, Refused> {
    let mut req = httparse::Request::new(slots);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refused::Status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                TOO_MANY,
            ))
        }
        Err(httparse::Error::Version) => {
            return Err(Refused::Status(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "HTTP/1.1 only",
            ))
        }
        Err(_) => return Err(bad("malformed request head")),
    };
    if n > settings.max_header_bytes {
        return Err(Refused::Status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        ));
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    spans.method = span(req.method.unwrap_or_default().as_bytes());
    spans.target = span(req.path.unwrap_or_default().as_bytes());
    spans.http10 = req.version == Some(0);
    spans.fields.clear();
    let mut framing = Framing::default();
    let (mut ok, mut expect, mut hosts) = (true, false, 0);
    for h in req.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        let (n, v) = (span(name), span(value));
        spans.fields.push([n.0, n.1, v.0, v.1]);
        match framing.field(name, value) {
            Ok(true) => {}
            Ok(false) if is_name(name, b"expect") => {
                expect = value.eq_ignore_ascii_case(b"100-continue");
            }
            Ok(false) => hosts += usize::from(is_name(name, b"host")),
            Err(_) => ok = false,
        }
    }
    spans.framing = if ok { Ok(framing) } else { Err(()) };
    (spans.expect, spans.hosts) = (expect, hosts);
    Ok(Some(n))
}

/// The request `head` says, its parts where `spans` found them.
pub(super) fn build_head(head: Bytes, spans: &Spans) -> Result<Head, Refused> {
    let at = |(o, n): (usize, usize)| &head[o..o + n];
    let method = Method::from_bytes(at(spans.method)).map_err(|_| bad("bad method"))?;
    let (o, n) = spans.target;
    let uri =
        Uri::from_maybe_shared(head.slice(o..o + n)).map_err(|_| bad("bad request target"))?;
    let framing = spans
        .framing
        .as_ref()
        .map_err(|()| bad("bad framing fields"))?;
    let (expect, hosts) = (spans.expect, spans.hosts);
    let mut headers = HeaderMap::with_capacity(spans.fields.len());
    for &[no, nl, vo, vl] in &spans.fields {
        let name = &head[no..no + nl];
        let name = HeaderName::from_bytes(name).map_err(|_| bad("bad header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vo..vo + vl))
            .map_err(|_| bad("bad header value"))?;
        headers.append(name, value);
    }
    let http10 = spans.http10;
    // RFC 9112 §3.2: one Host in HTTP/1.1, at most one in HTTP/1.0.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(bad("one Host field required"));
    }
    let body = match (framing.chunked, framing.length) {
        (Some(_), _) if http10 => return Err(bad("Transfer-Encoding in HTTP/1.0")),
        (Some(_), Some(_)) => return Err(bad("both Content-Length and Transfer-Encoding")),
        (Some(true), None) if framing.codings == 1 => Framed::ChunkSize,
        (Some(_), None) => {
            return Err(Refused::Status(
                StatusCode::NOT_IMPLEMENTED,
                "no transfer coding but chunked",
            ))
        }
        (None, Some(0)) | (None, None) => Framed::Done,
        (None, Some(n)) => Framed::Length(n),
    };
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = headers;
    Ok(Head {
        request,
        keep_alive: !framing.close && (!http10 || framing.keep_alive),
        http10,
        expect_continue: expect && !http10 && body != Framed::Done,
        body,
    })
}

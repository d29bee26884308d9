//! rocgw's HTTP/1.1 client side of one upstream connection: the request written in one buffer
//! (head and body together, one TLS record, one system call, when the body is small), the
//! answer's head parsed with `httparse`, its body read by its framing (RFC 9112 §6.3:
//! `Content-Length`, chunked, or until the close). The connection is read and written by the
//! request that holds it: no connection task, channel or wake-up between them. rocgw's upstream
//! calls are one request and one whole answer each, so a general client's machinery (hyper's
//! dispatcher, request and response objects, body channels) was most of their cost
//! (`bench/README.md`, "Third round").
//!
//! Only the answer's fields rocgw passes on are kept ([`KEPT_HEADERS`]); the framing fields are
//! read and checked (one Content-Length, `chunked` as the only transfer coding, a length beside
//! it makes the connection unfit for reuse); an answer with a content coding is refused, as
//! rocgw asks for none (`Accept-Encoding: identity`); 1xx answers are skipped.

use std::io;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    TRANSFER_ENCODING,
};
use http::{HeaderMap, Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::connect::Conn;
pub use crate::http1::H1Error;
use crate::http1::{Body, Framing, Reader};

/// Header fields of an answer beyond this many make it invalid (hyper's client default).
const MAX_HEADERS: usize = 100;
/// An answer head larger than this is invalid.
const MAX_HEAD: usize = 64 * 1024;
/// Bodies up to this size are copied behind the head and written with it.
const COPY_BODY: usize = 16 * 1024;

/// How a request on a connection ended before its answer's head came.
#[derive(Debug)]
pub enum SendError {
    /// The request could not be written whole: the server cannot have acted on it, it may be
    /// sent again.
    NotSent(io::Error),
    /// The request may have reached the server.
    Failed(H1Error),
}

/// The answer's header fields rocgw keeps (the gateway passes them on to the SIH); the others
/// are read for the framing and left.
pub const KEPT_HEADERS: [HeaderName; 2] = [CONTENT_TYPE, CONTENT_LANGUAGE];

/// An answer's status, the header fields kept, and its declared length.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub length: Option<u64>,
}

/// One HTTP/1.1 connection to an upstream host (over TLS: [`Conn`]; any stream in tests).
pub struct Link<IO = Conn> {
    /// The connection, what was read of it, and the answer's body being read.
    reader: Reader<IO>,
    /// The request being written.
    out: Vec<u8>,
    /// The answer being read leaves the connection open for another request.
    keep_alive: bool,
    /// Taken from the pool (a request sent on it may find it closed by the server).
    pub reused: bool,
    /// Where the exchange stands: what [`Link::finish`] has left to do.
    phase: Phase,
}

/// Where an exchange on a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request, or its answer's head read (the body's state is the reader's).
    Idle,
    /// The request is being written: cut now, the connection carries half a request.
    Writing,
    /// The request is written; its answer's head (for a `HEAD` request or not) not yet read.
    Head { head_only: bool },
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Link<IO> {
    /// HTTP/1.1 over an established connection. Boxed: it changes hands (pool, request) once
    /// per request.
    pub fn new(conn: IO) -> Box<Link<IO>> {
        Box::new(Link {
            reader: Reader::new(conn),
            out: Vec::new(),
            keep_alive: false,
            reused: false,
            phase: Phase::Idle,
        })
    }

    /// Writes `req` and reads its answer's head; the body is read with [`Link::next_chunk`].
    pub async fn send(&mut self, req: &Request<Bytes>) -> Result<Head, SendError> {
        self.out.clear();
        encode(&mut self.out, req);
        self.phase = Phase::Writing;
        let body = req.body();
        let written = async {
            let conn = &mut self.reader.io;
            conn.write_all(&self.out).await?;
            if body.len() > COPY_BODY {
                conn.write_all(body).await?;
            }
            // TLS keeps what the socket did not take yet: push it out.
            conn.flush().await
        };
        written.await.map_err(SendError::NotSent)?;
        let head_only = req.method() == Method::HEAD;
        self.phase = Phase::Head { head_only };
        let head = self.read_head(head_only).await.map_err(SendError::Failed)?;
        self.phase = Phase::Idle;
        Ok(head)
    }

    /// The request was written whole and its answer not read whole: [`Link::finish`] can
    /// read the rest and leave the connection ready for another request.
    pub fn answer_pending(&self) -> bool {
        match self.phase {
            Phase::Writing => false,
            Phase::Head { .. } => true,
            Phase::Idle => self.reader.body != Body::Done,
        }
    }

    /// Reads and drops the rest of the answer in progress (its head if not read yet, then its
    /// body), at most `limit` bytes of body; `Ok` when the connection can be reused.
    pub async fn finish(&mut self, limit: usize) -> Result<(), H1Error> {
        match self.phase {
            Phase::Writing => return Err(H1Error::Invalid("half a request written")),
            Phase::Head { head_only } => {
                self.read_head(head_only).await?;
                self.phase = Phase::Idle;
            }
            Phase::Idle => {}
        }
        let mut seen = 0;
        while let Some(chunk) = self.next_chunk().await {
            seen += chunk?.len();
            if seen > limit {
                return Err(H1Error::Invalid("answer too large to finish"));
            }
        }
        Ok(())
    }

    /// Reads until a final answer's head (1xx answers are skipped).
    async fn read_head(&mut self, head_only: bool) -> Result<Head, H1Error> {
        loop {
            if let Some(parsed) = parse_head(&self.reader.buf)? {
                self.reader.consume(parsed.len);
                let code = parsed.head.status.as_u16();
                if (100..200).contains(&code) {
                    if code == 101 {
                        return Err(H1Error::Invalid("an upgrade nobody asked for"));
                    }
                    continue;
                }
                self.keep_alive = parsed.keep_alive;
                self.reader.body = if head_only || crate::http1::bodiless(parsed.head.status) {
                    Body::Done
                } else {
                    parsed.body
                };
                if self.reader.body == Body::Close {
                    self.keep_alive = false;
                }
                return Ok(parsed.head);
            }
            if self.reader.buf.len() >= MAX_HEAD {
                return Err(H1Error::Invalid("head too large"));
            }
            if self.reader.fill().await? == 0 {
                return Err(H1Error::ClosedEarly);
            }
        }
    }

    /// The next bytes of the answer's body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, H1Error>> {
        self.reader.next_chunk().await
    }

    /// Ready for another request: the last answer was read whole, nothing came after it, and
    /// neither side asked to close.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.reader.body == Body::Done && self.reader.buf.is_empty()
    }

    /// Still open after sitting idle: a read that does not wait finds neither the server's
    /// close nor anything unasked for.
    pub fn still_open(&mut self) -> bool {
        self.reusable() && crate::http1::nothing_to_read(&mut self.reader.io)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send> crate::budget::Chunks for Link<IO> {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, crate::budget::BoxError>> {
        Link::next_chunk(self).await.map(|r| r.map_err(Into::into))
    }
}

/// The request's head (origin form: path and query; `Host` from the URI unless set; the body's
/// `Content-Length`), then the body itself when it is small.
fn encode(out: &mut Vec<u8>, req: &Request<Bytes>) {
    let uri = req.uri();
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = req.headers();
    if !headers.contains_key(HOST) {
        // Host and port (when not 443) only: never the userinfo (`user:pw@`) a URL may carry.
        if let Some(a) = uri.authority() {
            let a = a.as_str();
            let host = a.rsplit_once('@').map_or(a, |(_, h)| h);
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(host.strip_suffix(":443").unwrap_or(host).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    for (name, value) in headers {
        // The framing and the codings are ours to say.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == ACCEPT_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // rocgw reads every answer (faults, signatures): no content coding (RFC 9110, 12.5.3).
    out.extend_from_slice(b"accept-encoding: identity\r\n");
    let body = req.body();
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if body.len() <= COPY_BODY {
        out.extend_from_slice(body);
    }
}

/// A parsed answer head: what it says, its length, how its body is framed.
struct Parsed {
    head: Head,
    len: usize,
    body: Body,
    keep_alive: bool,
}

/// The answer head at the start of `buf`, when it is all there.
fn parse_head(buf: &[u8]) -> Result<Option<Parsed>, H1Error> {
    let too_many = |e: &H1Error| matches!(e, H1Error::Invalid(TOO_MANY));
    crate::http1::with_header_slots(MAX_HEADERS, too_many, |slots| head_in(buf, slots))
}

const TOO_MANY: &str = "too many header fields";

/// [`parse_head`] with room for `slots.len()` header fields.
fn head_in<'b>(
    buf: &'b [u8],
    slots: &mut [httparse::Header<'b>],
) -> Result<Option<Parsed>, H1Error> {
    let mut resp = httparse::Response::new(slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(H1Error::Invalid(TOO_MANY)),
        Err(_) => return Err(H1Error::Invalid("malformed head")),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or(H1Error::Invalid("bad status code"))?;
    let mut framing = Framing::default();
    let mut headers = HeaderMap::new();
    let mut coded = false;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if framing.field(name, h.value)? {
            continue;
        }
        if crate::http1::is_name(name, b"content-encoding") {
            coded |= crate::http1::coded(h.value).is_some();
        }
        if let Some(kept) = KEPT_HEADERS
            .iter()
            .find(|k| crate::http1::is_name(name, k.as_str().as_bytes()))
        {
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| H1Error::Invalid("bad header value"))?;
            headers.append(kept.clone(), value);
        }
    }
    // A bodiless answer's coding fields are metadata (RFC 9110, 8.4; RFC 9112, 6.1).
    let bodiless = crate::http1::bodiless(status);
    // Asked for with `Accept-Encoding: identity`: a coded body would reach the SIH, or the
    // signature check, as bytes nobody can read.
    if coded && !bodiless && framing.length != Some(0) {
        return Err(H1Error::Invalid(
            "a Content-Encoding rocgw did not accept (it sends Accept-Encoding: identity)",
        ));
    }
    // rocgw sends no `TE`: `chunked` is the only transfer coding an answer may use (RFC 9110,
    // 10.1.4); another would pass on bytes nobody can read.
    if (framing.codings > 1 || framing.chunked == Some(false)) && !bodiless {
        return Err(H1Error::Invalid(
            "a transfer coding other than chunked (rocgw sends no TE)",
        ));
    }
    let body = match (framing.chunked, framing.length) {
        (Some(true), _) => Body::ChunkSize,
        (Some(false), _) | (None, None) => Body::Close,
        (None, Some(n)) => Body::Length(n),
    };
    Ok(Some(Parsed {
        head: Head {
            status,
            headers,
            length: framing.length,
        },
        len,
        body,
        keep_alive: resp.version == Some(1) && !framing.close && !framing.ambiguous(),
    }))
}

#[cfg(test)]
mod tests;

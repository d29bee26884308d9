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
//! read and checked (one Content-Length, chunked only as the last coding, a length beside a
//! coding makes the connection unfit for reuse); 1xx answers are skipped.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::{
    HeaderName, HeaderValue, CONTENT_LANGUAGE, CONTENT_LENGTH, CONTENT_TYPE, HOST,
    TRANSFER_ENCODING,
};
use hyper::{HeaderMap, Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connect::Conn;

/// Header fields of an answer beyond this many make it invalid (hyper's client default).
const MAX_HEADERS: usize = 100;
/// An answer head larger than this is invalid.
const MAX_HEAD: usize = 64 * 1024;
/// A chunk-size line, or a trailer line, longer than this is invalid.
const MAX_LINE: usize = 4 * 1024;
/// Trailers beyond this many bytes in all are invalid.
const MAX_TRAILERS: usize = 16 * 1024;
/// What a read asks the socket for at least.
const READ_SIZE: usize = 8 * 1024;
/// Bodies up to this size are copied behind the head and written with it.
const COPY_BODY: usize = 16 * 1024;

/// Why an exchange failed after the request was written.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("the connection closed before the answer was complete")]
    ClosedEarly,
    #[error("invalid HTTP answer: {0}")]
    Invalid(&'static str),
    #[error("{0}")]
    Io(#[from] io::Error),
}

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

/// Where the answer's body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// No answer is being read.
    Done,
    /// This many bytes still to come.
    Length(u64),
    /// Until the server closes.
    Close,
    /// At a chunk-size line.
    ChunkSize,
    /// Within a chunk: this many bytes still to come, then its CRLF.
    Chunk(u64),
    /// At the CRLF that ends a chunk.
    ChunkEnd,
    /// Past the last chunk: trailer lines (this many bytes so far) until an empty one.
    Trailers(usize),
}

/// One HTTP/1.1 connection to an upstream host (over TLS: [`Conn`]; any stream in tests).
pub struct Link<IO = Conn> {
    conn: IO,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
    /// The request being written.
    out: Vec<u8>,
    body: Body,
    /// The answer being read leaves the connection open for another request.
    keep_alive: bool,
    /// Taken from the pool (a request sent on it may find it closed by the server).
    pub reused: bool,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Link<IO> {
    /// HTTP/1.1 over an established connection. Boxed: it changes hands (pool, request) once
    /// per request.
    pub fn new(conn: IO) -> Box<Link<IO>> {
        Box::new(Link {
            conn,
            buf: BytesMut::new(),
            out: Vec::new(),
            body: Body::Done,
            keep_alive: false,
            reused: false,
        })
    }

    /// Writes `req` and reads its answer's head; the body is read with [`Link::next_chunk`].
    pub async fn send(&mut self, req: &Request<Bytes>) -> Result<Head, SendError> {
        self.out.clear();
        encode(&mut self.out, req);
        let body = req.body();
        let written = async {
            self.conn.write_all(&self.out).await?;
            if body.len() > COPY_BODY {
                self.conn.write_all(body).await?;
            }
            // TLS keeps what the socket did not take yet: push it out.
            self.conn.flush().await
        };
        written.await.map_err(SendError::NotSent)?;
        self.read_head(req.method() == Method::HEAD)
            .await
            .map_err(SendError::Failed)
    }

    /// Reads until a final answer's head (1xx answers are skipped).
    async fn read_head(&mut self, head_only: bool) -> Result<Head, H1Error> {
        loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                self.buf.advance(parsed.len);
                let code = parsed.head.status.as_u16();
                if (100..200).contains(&code) {
                    if code == 101 {
                        return Err(H1Error::Invalid("an upgrade nobody asked for"));
                    }
                    continue;
                }
                self.keep_alive = parsed.keep_alive;
                self.body = if head_only || code == 204 || code == 304 {
                    Body::Done
                } else {
                    parsed.body
                };
                if self.body == Body::Close {
                    self.keep_alive = false;
                }
                return Ok(parsed.head);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(H1Error::Invalid("head too large"));
            }
            if self.fill().await? == 0 {
                return Err(H1Error::ClosedEarly);
            }
        }
    }

    /// Reads more from the connection; 0 at its end.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        self.conn.read_buf(&mut self.buf).await
    }

    /// Reads until `buf` holds something, or fails with `ClosedEarly` at the connection's end.
    async fn fill_some(&mut self) -> Result<(), H1Error> {
        if self.buf.is_empty() && self.fill().await? == 0 {
            return Err(H1Error::ClosedEarly);
        }
        Ok(())
    }

    /// The next bytes of the answer's body; `None` at its end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, H1Error>> {
        self.chunk().await.transpose()
    }

    async fn chunk(&mut self) -> Result<Option<Bytes>, H1Error> {
        loop {
            match self.body {
                Body::Done | Body::Length(0) => {
                    self.body = Body::Done;
                    return Ok(None);
                }
                Body::Length(n) | Body::Chunk(n) => {
                    self.fill_some().await?;
                    let k = self.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let left = n - k as u64;
                    self.body = match self.body {
                        Body::Chunk(_) if left == 0 => Body::ChunkEnd,
                        Body::Chunk(_) => Body::Chunk(left),
                        _ => Body::Length(left),
                    };
                    return Ok(Some(self.buf.split_to(k).freeze()));
                }
                Body::Close => {
                    if self.buf.is_empty() && self.fill().await? == 0 {
                        self.body = Body::Done;
                        return Ok(None);
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                Body::ChunkSize => {
                    let line = self.line().await?;
                    let size = chunk_size(&line)?;
                    self.body = if size == 0 {
                        Body::Trailers(0)
                    } else {
                        Body::Chunk(size)
                    };
                }
                Body::ChunkEnd => {
                    if !self.line().await?.is_empty() {
                        return Err(H1Error::Invalid("chunk longer than its size"));
                    }
                    self.body = Body::ChunkSize;
                }
                Body::Trailers(seen) => {
                    let line = self.line().await?;
                    let seen = seen + line.len() + 2;
                    if seen > MAX_TRAILERS {
                        return Err(H1Error::Invalid("trailers too large"));
                    }
                    self.body = if line.is_empty() {
                        Body::Done
                    } else {
                        Body::Trailers(seen)
                    };
                }
            }
        }
    }

    /// The next line (without its CRLF).
    async fn line(&mut self) -> Result<Bytes, H1Error> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                if i == 0 || self.buf[i - 1] != b'\r' {
                    return Err(H1Error::Invalid("line not ended by CRLF"));
                }
                let line = self.buf.split_to(i + 1).freeze();
                return Ok(line.slice(..i - 1));
            }
            if self.buf.len() > MAX_LINE {
                return Err(H1Error::Invalid("chunk line too long"));
            }
            if self.fill().await? == 0 {
                return Err(H1Error::ClosedEarly);
            }
        }
    }

    /// Ready for another request: the last answer was read whole, nothing came after it, and
    /// neither side asked to close.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.body == Body::Done && self.buf.is_empty()
    }

    /// Still open after sitting idle: a read that does not wait finds neither the server's
    /// close nor anything unasked for.
    pub fn still_open(&mut self) -> bool {
        self.reusable() && super::connect::nothing_to_read(&mut self.conn)
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
        // The framing is ours to say.
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = req.body();
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if body.len() <= COPY_BODY {
        out.extend_from_slice(body);
    }
}

/// Header fields looked for first: answers seldom have more (up to [`MAX_HEADERS`] then).
const FEW_HEADERS: usize = 24;

/// A parsed answer head: what it says, its length, how its body is framed.
struct Parsed {
    head: Head,
    len: usize,
    body: Body,
    keep_alive: bool,
}

/// The answer head at the start of `buf`, when it is all there.
fn parse_head(buf: &[u8]) -> Result<Option<Parsed>, H1Error> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match head_in(buf, &mut few) {
        Err(H1Error::Invalid(TOO_MANY)) => head_in(buf, &mut [httparse::EMPTY_HEADER; MAX_HEADERS]),
        r => r,
    }
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
    let mut keep_alive = resp.version == Some(1);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut headers = HeaderMap::new();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(h.value)?;
            if length.is_some_and(|l| l != n) {
                return Err(H1Error::Invalid("conflicting Content-Length"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Chunked only when it is the last coding; any other leaves the close to end it.
            chunked = Some(last_token(h.value).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            keep_alive &= !has_token(h.value, b"close");
        } else if let Some(kept) = KEPT_HEADERS
            .iter()
            .find(|k| name.eq_ignore_ascii_case(k.as_str().as_bytes()))
        {
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| H1Error::Invalid("bad header value"))?;
            headers.append(kept.clone(), value);
        }
    }
    let body = match (chunked, length) {
        (Some(true), _) => Body::ChunkSize,
        (Some(false), _) | (None, None) => Body::Close,
        (None, Some(n)) => Body::Length(n),
    };
    Ok(Some(Parsed {
        head: Head {
            status,
            headers,
            length,
        },
        len,
        body,
        // A length and a coding together: the message's framing is suspect (RFC 9112 §6.1).
        keep_alive: keep_alive && !(chunked.is_some() && length.is_some()),
    }))
}

/// A `Content-Length` value: digits only.
fn content_length(v: &[u8]) -> Result<u64, H1Error> {
    let bad = H1Error::Invalid("bad Content-Length");
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad)
}

/// A chunk-size line's size (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let bad = H1Error::Invalid("bad chunk size");
    let end = memchr::memchr(b';', line).unwrap_or(line.len());
    let hex = line[..end].trim_ascii();
    if hex.is_empty() || hex.len() > 15 {
        return Err(bad);
    }
    let s = std::str::from_utf8(hex).map_err(|_| H1Error::Invalid("bad chunk size"))?;
    u64::from_str_radix(s, 16).map_err(|_| bad)
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests;

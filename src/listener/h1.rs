//! rocgw's HTTP/1.1 server side of one connection (RFC 9112): the request head parsed with
//! `httparse` into an `http::Request`, its body handed to the handler as a [`Body`] that reads
//! the connection itself (no connection task, channel or wake-up between them), the answer's
//! head and body written in one buffer. It replaced hyper's server, whose dispatcher and body
//! channel were most of a pass-through request's cost (`bench/README.md`, "Fourth round").
//!
//! What it keeps of a general server: keep-alive (HTTP/1.1 by default, HTTP/1.0 on request),
//! pipelined requests, bodies by `Content-Length` or chunked, `Expect: 100-continue` (answered
//! when the body is first read), `400` / `431` / `505` for heads it cannot take, a header read
//! timeout from the moment the connection waits for a head (idle keep-alive included, as
//! hyper's), and a graceful stop: an idle connection closes, a busy one after its answer.
//!
//! A request's body is read by the handler; what it leaves unread closes the connection after
//! the answer, unless the handler asked for it to be read and dropped ([`Body::discard`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};

use super::HttpResponse;
use crate::budget::{BoxError, Chunks};
use crate::http1::{is_name, Body as Framed, Framing, H1Error, Reader};

/// A connection the server can read and write.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

type Wire = Reader<Box<dyn Io>>;

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Header fields looked for first: requests seldom have more (up to the limit then).
const FEW_HEADERS: usize = 24;
/// Answer bodies up to this size are copied behind the head and written with it.
const COPY_BODY: usize = 16 * 1024;

/// The server's limits on one connection.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub header_read_timeout: Duration,
    pub max_headers: usize,
    pub max_header_bytes: usize,
}

impl From<&crate::config::Limits> for Settings {
    fn from(l: &crate::config::Limits) -> Settings {
        Settings {
            header_read_timeout: l.header_read_timeout,
            max_headers: l.max_headers,
            max_header_bytes: l.max_header_bytes,
        }
    }
}

/// A request's body: it reads the connection it came on. Dropped, it gives the connection back
/// to the server.
pub struct Body {
    wire: Option<Wire>,
    slot: Arc<Slot>,
    /// `Expect: 100-continue`: where the interim answer stands.
    interim: Interim,
    /// The rest to read and drop after the answer, and for how long at most.
    discard: Option<(usize, Duration)>,
}

/// Where a body leaves the connection for the server.
#[derive(Default)]
struct Slot(Mutex<Option<Returned>>);

impl Slot {
    fn take(&self) -> Option<Returned> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, r: Returned) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }
}

struct Returned {
    wire: Wire,
    interim: Interim,
    discard: Option<(usize, Duration)>,
}

/// The interim answer to `Expect: 100-continue`, written when the body is first read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interim {
    /// Not asked for, or written and flushed.
    Done,
    /// Asked for; this many of its bytes written.
    Writing(usize),
    /// Written, not yet flushed (TLS keeps what the socket did not take).
    Flushing,
}

impl Interim {
    /// What of it must still precede the final answer: none when it was never begun (the
    /// final answer replaces it; the client may then not send the body).
    fn rest(self) -> &'static [u8] {
        match self {
            Interim::Writing(n) if n > 0 => &CONTINUE[n..],
            _ => b"",
        }
    }
}

impl Body {
    /// Asks the server to read and drop what is left of this body after the answer, at most
    /// `limit` bytes for at most `within`, so that a client still sending reads the answer
    /// instead of a reset. The connection closes after it.
    pub fn discard(mut self, limit: usize, within: Duration) {
        self.discard = Some((limit, within));
    }

    /// The whole body, or `None` past `max` bytes or when it cannot be read.
    pub async fn collect(mut self, max: usize) -> Option<Bytes> {
        let mut all = bytes::BytesMut::new();
        while let Some(chunk) = self.next_chunk().await {
            let chunk = chunk.ok()?;
            if all.len() + chunk.len() > max {
                return None;
            }
            all.extend_from_slice(&chunk);
        }
        Some(all.freeze())
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, H1Error>> {
        let Some(wire) = self.wire.as_mut() else {
            return Poll::Ready(Ok(None));
        };
        if wire.body == Framed::Done {
            return Poll::Ready(Ok(None));
        }
        loop {
            match self.interim {
                Interim::Done => return wire.poll_chunk(cx),
                Interim::Writing(n) if n == CONTINUE.len() => self.interim = Interim::Flushing,
                Interim::Writing(n) => {
                    let w = ready!(Pin::new(&mut wire.io).poll_write(cx, &CONTINUE[n..]))?;
                    if w == 0 {
                        return Poll::Ready(Err(H1Error::ClosedEarly));
                    }
                    self.interim = Interim::Writing(n + w);
                }
                Interim::Flushing => {
                    // Flushed before the body is waited for.
                    ready!(Pin::new(&mut wire.io).poll_flush(cx))?;
                    self.interim = Interim::Done;
                }
            }
        }
    }
}

impl Chunks for Body {
    async fn next_chunk(&mut self) -> Option<Result<Bytes, BoxError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx))
            .await
            .map_err(Into::into)
            .transpose()
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(wire) = self.wire.take() {
            let returned = Returned {
                wire,
                interim: self.interim,
                discard: self.discard,
            };
            self.slot.put(returned);
        }
    }
}

/// Why a head was not taken: the answer to give before closing.
#[derive(Debug)]
enum Refused {
    /// Closed, timed out or stopped: nothing to answer.
    Quiet,
    Status(StatusCode, &'static str),
}

/// A request head, parsed.
struct Head {
    request: Request<()>,
    body: Framed,
    keep_alive: bool,
    http10: bool,
    expect_continue: bool,
}

/// What the answer says of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// HTTP/1.1's default: nothing to say.
    Open,
    /// An HTTP/1.0 client asked for it: `connection: keep-alive`.
    Open10,
    /// `connection: close`.
    Close,
}

/// Where a head's parts are in its bytes (offset, length), found by `httparse`.
#[derive(Default)]
struct Spans {
    method: (usize, usize),
    target: (usize, usize),
    http10: bool,
    /// Name and value of each field.
    fields: Vec<[usize; 4]>,
}

/// Serves HTTP/1.1 on `io` until the client closes, a request asks to, an error, or `stop`
/// (idle: at once; busy: after the answer). `handle` answers each request.
pub async fn serve<H, F>(
    io: Box<dyn Io>,
    settings: Settings,
    mut handle: H,
    stop: tokio::sync::watch::Receiver<bool>,
) where
    H: FnMut(Request<Body>) -> F,
    F: Future<Output = HttpResponse>,
{
    let slot = Arc::new(Slot::default());
    let mut wire = Reader::new(io);
    let mut out = Vec::new();
    let mut timer = HeadTimer::default();
    let mut spans = Spans::default();
    let mut stopping = {
        let mut stop = stop.clone();
        Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
    };
    loop {
        let head = read_head(
            &mut wire,
            &settings,
            &mut timer,
            &mut spans,
            stopping.as_mut(),
        )
        .await;
        let head = match head {
            Ok(h) => h,
            Err(Refused::Quiet) => return,
            Err(Refused::Status(status, why)) => {
                tracing::debug!(status = status.as_u16(), why, "request head refused");
                let resp = super::text(status, format!("{why}\n"));
                out.clear();
                let _ = write_answer(&mut wire, &mut out, resp, Keep::Close, false).await;
                let _ = wire.io.shutdown().await;
                return;
            }
        };
        wire.body = head.body;
        let head_only = head.request.method() == Method::HEAD;
        let (parts, ()) = head.request.into_parts();
        let body = Body {
            wire: Some(wire),
            slot: slot.clone(),
            interim: if head.expect_continue {
                Interim::Writing(0)
            } else {
                Interim::Done
            },
            discard: None,
        };
        let handling = handle(Request::from_parts(parts, body));
        let Some((resp, back)) =
            answer_unless_gone(handling, &slot, settings.max_header_bytes).await
        else {
            return;
        };
        wire = back.wire;
        let unread = wire.body != Framed::Done;
        let keep = head.keep_alive
            && !unread
            && !*stop.borrow()
            && !resp
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| crate::http1::has_token(v.as_bytes(), b"close"));
        let keep = match (keep, head.http10) {
            (false, _) => Keep::Close,
            (true, false) => Keep::Open,
            (true, true) => Keep::Open10,
        };
        // An interim answer cut midway is finished first: the final one cannot start inside it.
        out.clear();
        out.extend_from_slice(back.interim.rest());
        if write_answer(&mut wire, &mut out, resp, keep, head_only)
            .await
            .is_err()
        {
            return;
        }
        if keep != Keep::Close {
            continue;
        }
        let _ = wire.io.shutdown().await;
        // A client that was never told to continue may never send the body: nothing to wait for.
        let told = back.interim != Interim::Writing(0);
        if let (true, Some((limit, within)), true) = (unread, back.discard, told) {
            let _ = tokio::time::timeout(within, drop_body(&mut wire, limit)).await;
        }
        return;
    }
}

/// The handler's answer, and the connection back from the request's body; `None` when the
/// client hangs up first (the handler's future is dropped: its upstream call with it) or the
/// handler kept the body past its answer (the connection cannot be written).
///
/// Once the body is back, the connection is read while the handler works: its end is the
/// client gone; bytes (a pipelined request) are kept, up to `keep` of them.
async fn answer_unless_gone<F: Future<Output = HttpResponse>>(
    handling: F,
    slot: &Slot,
    keep: usize,
) -> Option<(HttpResponse, Returned)> {
    let mut handling = std::pin::pin!(handling);
    let mut back = None;
    let resp = std::future::poll_fn(|cx| {
        if let Poll::Ready(resp) = handling.as_mut().poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if back.is_none() {
            back = slot.take();
        }
        if let Some(b) = back.as_mut() {
            while b.wire.buf.len() <= keep {
                match b.wire.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(None),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Pending => break,
                }
            }
        }
        Poll::Pending
    })
    .await?;
    match back.or_else(|| slot.take()) {
        Some(b) => Some((resp, b)),
        None => {
            tracing::debug!("request body kept past its answer: connection closed");
            None
        }
    }
}

/// Reads and drops up to `limit` bytes of the body being read.
async fn drop_body(wire: &mut Wire, limit: usize) {
    let mut seen = 0;
    while let Some(Ok(chunk)) = wire.next_chunk().await {
        seen += chunk.len();
        if seen > limit {
            return;
        }
    }
}

/// The header read timeout: one timer per connection, moved only when it fires before the
/// head's own deadline (a request's wait sets the deadline, not the timer).
#[derive(Default)]
struct HeadTimer {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl HeadTimer {
    /// `Ready` once `deadline` has passed.
    fn poll(&mut self, cx: &mut Context<'_>, deadline: Instant) -> Poll<()> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            ready!(sleep.as_mut().poll(cx));
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

/// Waits for a whole request head within the header read timeout, unless `stopping` comes
/// first while nothing of it has come.
async fn read_head(
    wire: &mut Wire,
    settings: &Settings,
    timer: &mut HeadTimer,
    spans: &mut Spans,
    mut stopping: Pin<&mut (dyn Future<Output = ()> + Send)>,
) -> Result<Head, Refused> {
    let deadline = Instant::now() + settings.header_read_timeout;
    // Parsed again only when a line has ended since: a head sent byte by byte is not parsed
    // once per byte.
    let mut seen = 0;
    std::future::poll_fn(|cx| loop {
        if memchr::memchr(b'\n', &wire.buf[seen.min(wire.buf.len())..]).is_some() {
            seen = wire.buf.len();
            if let Some(n) = parse_head(&wire.buf, settings, spans)? {
                let head = build_head(wire.buf.split_to(n).freeze(), spans)?;
                return Poll::Ready(Ok(head));
            }
        }
        if wire.buf.len() > settings.max_header_bytes {
            return Poll::Ready(Err(Refused::Status(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request headers too large",
            )));
        }
        match wire.poll_fill(cx) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(Refused::Quiet)),
            Poll::Ready(Ok(_)) => continue,
            Poll::Pending => {}
        }
        if wire.buf.is_empty() && stopping.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(Refused::Quiet));
        }
        if timer.poll(cx, deadline).is_ready() {
            return Poll::Ready(Err(Refused::Quiet));
        }
        return Poll::Pending;
    })
    .await
}

const TOO_MANY: &str = "too many header fields";

fn bad(why: &'static str) -> Refused {
    Refused::Status(StatusCode::BAD_REQUEST, why)
}

/// The length of the head at the start of `buf`, when it is all there, its parts in `spans`.
fn parse_head(
    buf: &[u8],
    settings: &Settings,
    spans: &mut Spans,
) -> Result<Option<usize>, Refused> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let first = settings.max_headers.min(FEW_HEADERS);
    match spans_in(buf, &mut few[..first], settings, spans) {
        Err(Refused::Status(_, TOO_MANY)) if settings.max_headers > FEW_HEADERS => {
            let mut many = vec![httparse::EMPTY_HEADER; settings.max_headers];
            spans_in(buf, &mut many, settings, spans)
        }
        r => r,
    }
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
    for h in req.headers.iter() {
        let (name, value) = (span(h.name.as_bytes()), span(h.value));
        spans.fields.push([name.0, name.1, value.0, value.1]);
    }
    Ok(Some(n))
}

/// The request `head` says, its parts where `spans` found them.
fn build_head(head: Bytes, spans: &Spans) -> Result<Head, Refused> {
    let at = |(o, n): (usize, usize)| &head[o..o + n];
    let method = Method::from_bytes(at(spans.method)).map_err(|_| bad("bad method"))?;
    let (o, n) = spans.target;
    let uri =
        Uri::from_maybe_shared(head.slice(o..o + n)).map_err(|_| bad("bad request target"))?;
    let mut headers = HeaderMap::with_capacity(spans.fields.len());
    let mut framing = Framing::default();
    let (mut keep_alive_asked, mut expect, mut hosts) = (false, false, 0);
    for &[no, nl, vo, vl] in &spans.fields {
        let (name, value) = (&head[no..no + nl], &head[vo..vo + vl]);
        if framing
            .field(name, value)
            .map_err(|_| bad("bad framing fields"))?
        {
            keep_alive_asked |=
                is_name(name, b"connection") && crate::http1::has_token(value, b"keep-alive");
        } else if is_name(name, b"expect") {
            expect = value.eq_ignore_ascii_case(b"100-continue");
        } else if is_name(name, b"host") {
            hosts += 1;
        }
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
        keep_alive: !framing.close && (!http10 || keep_alive_asked),
        http10,
        expect_continue: expect && !http10 && body != Framed::Done,
        body,
    })
}

/// Writes what `out` holds, then `resp`: status line, its fields, `date`, the framing rocgw owns (`content-length`;
/// `connection` as `keep` says), then its body unless `head_only`.
async fn write_answer(
    wire: &mut Wire,
    out: &mut Vec<u8>,
    resp: HttpResponse,
    keep: Keep,
    head_only: bool,
) -> std::io::Result<()> {
    let (parts, body) = resp.into_parts();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == CONNECTION || name == http::header::TRANSFER_ENCODING {
            continue;
        }
        field(out, name, value.as_bytes());
    }
    if !parts.headers.contains_key(DATE) {
        DATE_NOW.with(|d| field(out, &DATE, d.borrow_mut().now()));
    }
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    if !bodiless {
        field(
            out,
            &CONTENT_LENGTH,
            itoa::Buffer::new().format(body.len()).as_bytes(),
        );
    }
    match keep {
        Keep::Open => {}
        Keep::Open10 => field(out, &CONNECTION, b"keep-alive"),
        Keep::Close => field(out, &CONNECTION, b"close"),
    }
    out.extend_from_slice(b"\r\n");
    let send = !(bodiless || head_only);
    if send && body.len() <= COPY_BODY {
        out.extend_from_slice(&body);
    }
    wire.io.write_all(out).await?;
    if send && body.len() > COPY_BODY {
        wire.io.write_all(&body).await?;
    }
    wire.io.flush().await
}

fn field(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    static DATE_NOW: std::cell::RefCell<CachedDate> = const {
        std::cell::RefCell::new(CachedDate { second: u64::MAX, text: [0; 29] })
    };
}

/// The `date` field's value (IMF-fixdate), made once a second per thread.
struct CachedDate {
    second: u64,
    text: [u8; 29],
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = std::time::SystemTime::now();
        let second = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == self.text.len() {
                self.text.copy_from_slice(text.as_bytes());
                self.second = second;
            }
        }
        &self.text
    }
}

#[cfg(test)]
mod tests;

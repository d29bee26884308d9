//! rocgw's HTTP/1.1 server side of one connection (RFC 9112): the request head parsed with
//! `httparse` into an `http::Request`, its body handed to the handler as a [`Body`] that reads
//! the connection itself (no connection task, channel or wake-up between them), the answer's
//! head and body written in one buffer. It replaced hyper's server, whose dispatcher and body
//! channel were most of a pass-through request's cost (`bench/README.md`, "Fourth round").
//!
//! What it keeps of a general server: keep-alive (HTTP/1.1 by default, HTTP/1.0 on request),
//! pipelined requests, bodies by `Content-Length` or chunked, `Expect: 100-continue` (answered
//! when the body is first read), `400` / `431` / `501` / `505` for heads it cannot take (one
//! `Host` required, no transfer coding but chunked: see `head`), a header read timeout from the
//! moment the connection waits for a head (idle keep-alive included, as hyper's), and a
//! graceful stop: an idle connection closes, a busy one after its answer.
//!
//! A request's body is read by the handler; what it leaves unread closes the connection after
//! the answer, unless the handler asked for it to be read and dropped ([`Body::discard`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE};
use http::{HeaderName, Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::time::Instant;

use super::HttpResponse;
use crate::budget::{BoxError, Chunks};
use crate::http1::{Body as Framed, H1Error, Reader};
use crate::slots::{Gated, Slots};
use head::{build_head, parse_head, Refused, Spans};

/// A connection the server can read and write.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

type Wire = Reader<Box<dyn Io>>;

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Answer bodies up to this size are copied behind the head and written with it.
const COPY_BODY: usize = 16 * 1024;

/// A listener's gate: the request slots a request whose head has come waits for before its
/// head is parsed, and the field in which a request may set its own deadline (which then
/// bounds that wait too), with how to read it.
#[derive(Clone)]
pub struct Gate {
    pub slots: Arc<Slots>,
    /// Lower case.
    pub deadline_field: &'static [u8],
    pub deadline: fn(&[u8]) -> Option<Duration>,
}

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
    /// With a gate: when the head had come, before the wait for a slot.
    arrived: Option<Instant>,
    /// With a gate: the request's slot, or that it was shed.
    gated: Gated,
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
    /// With a gate on the listener, when the request's head had come (before its wait for a
    /// slot, which counts against its deadline).
    pub fn arrived(&self) -> Option<Instant> {
        self.arrived
    }

    /// What the listener's gate said of this request; taken (`Open` afterwards).
    pub fn gated(&mut self) -> Gated {
        std::mem::take(&mut self.gated)
    }

    /// Asks the server to read and drop what is left of this body after the answer, at most
    /// `limit` bytes for at most `within`, so that a client still sending reads the answer
    /// instead of a reset. The connection closes after it, unless the rest was already read
    /// with the head: it is dropped at once and the connection stays open (an SIH shed under
    /// load keeps its connection).
    pub fn discard(mut self, limit: usize, within: Duration) {
        if let Some(wire) = self.wire.as_mut() {
            let here = match wire.body {
                Framed::Length(n) => usize::try_from(n).ok().filter(|&n| n <= wire.buf.len()),
                _ => None,
            };
            if let Some(n) = here {
                bytes::Buf::advance(&mut wire.buf, n);
                wire.body = Framed::Done;
                return;
            }
        }
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

/// Serves HTTP/1.1 on `io` until the client closes, a request asks to, an error, or `stop`
/// (idle: at once; busy: after the answer). `handle` answers each request.
///
/// With a `gate`, a request whose head has come waits for a slot there before its head is
/// parsed (or is marked shed), so that requests beyond the slots wait as bytes in their
/// connection's buffer rather than as parsed requests and their handlers' state.
pub async fn serve<H, F>(
    io: Box<dyn Io>,
    settings: Settings,
    mut handle: H,
    stop: tokio::sync::watch::Receiver<bool>,
    gate: Option<Gate>,
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
        // Gated: a request whose body is all here (or has none). One whose body is still to
        // come (chunked, `100-continue`, a length not yet read) queues after its body instead,
        // in the gateway: a slow body holds no slot, and no request waits twice.
        let (arrived, gated) = match (&head, &gate) {
            (Ok(n), Some(gate)) if spans.body_here(&wire.buf, *n) => {
                let arrived = Instant::now();
                let slot = match gate.slots.try_take() {
                    Some(slot) => Some(slot),
                    // Only a request that must wait looks for its own deadline.
                    None => {
                        let asked = spans.field(&wire.buf, gate.deadline_field);
                        gate.slots.take_within(asked.and_then(gate.deadline)).await
                    }
                };
                (Some(arrived), slot.map_or(Gated::Shed, Gated::Slot))
            }
            _ => (None, Gated::Open),
        };
        let head = head.and_then(|n| build_head(wire.buf.split_to(n).freeze(), &spans));
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
            arrived,
            gated,
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
/// first while nothing of it has come: its length, its parts in `spans`.
async fn read_head(
    wire: &mut Wire,
    settings: &Settings,
    timer: &mut HeadTimer,
    spans: &mut Spans,
    mut stopping: Pin<&mut (dyn Future<Output = ()> + Send)>,
) -> Result<usize, Refused> {
    let deadline = Instant::now() + settings.header_read_timeout;
    // Parsed again only when a line has ended since: a head sent byte by byte is not parsed
    // once per byte.
    let mut seen = 0;
    std::future::poll_fn(|cx| loop {
        if memchr::memchr(b'\n', &wire.buf[seen.min(wire.buf.len())..]).is_some() {
            seen = wire.buf.len();
            if let Some(n) = parse_head(&wire.buf, settings, spans)? {
                return Poll::Ready(Ok(n));
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
    let bodiless = crate::http1::bodiless(parts.status);
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

mod head;
#[cfg(test)]
mod tests;

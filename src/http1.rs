//! HTTP/1.1 message framing (RFC 9112), shared by rocgw's two ends: the SIH side's server
//! (`listener::h1`) and the AMC side's client (`upstream::h1`). A [`Reader`] holds a
//! connection's bytes read and not yet consumed, and reads a message body by its framing
//! (`Content-Length`, chunked with extensions and trailers, or until the close); [`Framing`]
//! scans a head's framing fields (one length, chunked only as the last coding,
//! `Connection: close`).
//!
//! The reader is poll-based, so a body can be read from a future (`next_chunk`) or from a
//! `poll` method (the server's request body implements `http_body::Body` with it).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf as _, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, ReadBuf};

/// A chunk-size line, or a trailer line, longer than this is invalid.
const MAX_LINE: usize = 4 * 1024;
/// Trailers beyond this many bytes in all are invalid.
const MAX_TRAILERS: usize = 16 * 1024;
/// What a read asks the socket for at least.
const READ_SIZE: usize = 8 * 1024;
/// Header fields looked for first: heads seldom have more ([`with_header_slots`]).
const FEW_HEADERS: usize = 24;

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("the connection closed before the message was complete")]
    ClosedEarly,
    #[error("invalid HTTP message: {0}")]
    Invalid(&'static str),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Where a message's body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body is being read.
    Done,
    /// This many bytes still to come.
    Length(u64),
    /// Until the peer closes.
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

thread_local! {
    /// Where a read into an empty buffer lands first ([`Reader::poll_fill`]).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_SIZE].into_boxed_slice());
}

/// One side of a connection being read: the stream, what was read of it and not consumed, and
/// the body being read.
pub struct Reader<IO> {
    pub io: IO,
    pub buf: BytesMut,
    pub body: Body,
}

impl<IO: AsyncRead + Unpin> Reader<IO> {
    pub fn new(io: IO) -> Reader<IO> {
        Reader {
            io,
            buf: BytesMut::new(),
            body: Body::Done,
        }
    }

    /// Reads more from the stream into `buf`; 0 at its end.
    ///
    /// Into an empty `buf`, the read lands in the thread's scratch buffer and only what came is
    /// kept, in a buffer of its size: a connection waiting for its next message holds no read
    /// buffer, and a message is read into memory the allocator just freed (in cache) rather
    /// than into the unread end of a buffer of its own. Measured with 1,536 connections: a
    /// fifth more requests served per second (`bench/README.md`, "Fifth round").
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.is_empty() {
            let io = &mut self.io;
            let read = SCRATCH.with(|s| {
                // Not taken while another reader on this thread holds it (none does today).
                let mut s = s.try_borrow_mut().ok()?;
                let mut rb = ReadBuf::new(&mut s[..]);
                Some(match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(BytesMut::from(rb.filled()))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                })
            });
            if let Some(read) = read {
                self.buf = ready!(read)?;
                return Poll::Ready(Ok(self.buf.len()));
            }
        }
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            self.buf.reserve(READ_SIZE);
        }
        let spare = self.buf.spare_capacity_mut();
        let mut rb = tokio::io::ReadBuf::uninit(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Poll::Ready(Ok(n))
    }

    /// [`Reader::poll_fill`] as a future.
    pub async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Reads until `buf` holds something; `ClosedEarly` at the stream's end.
    fn poll_some(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), H1Error>> {
        if self.buf.is_empty() && ready!(self.poll_fill(cx))? == 0 {
            return Poll::Ready(Err(H1Error::ClosedEarly));
        }
        Poll::Ready(Ok(()))
    }

    /// The body's next bytes; `None` at its end. After `Pending`, or an error, nothing read is
    /// lost: the state is all in `buf` and `body`.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, H1Error>> {
        loop {
            match self.body {
                Body::Done | Body::Length(0) => {
                    self.body = Body::Done;
                    return Poll::Ready(Ok(None));
                }
                Body::Length(n) | Body::Chunk(n) => {
                    ready!(self.poll_some(cx))?;
                    let k = self.buf.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let left = n - k as u64;
                    self.body = match self.body {
                        Body::Chunk(_) if left == 0 => Body::ChunkEnd,
                        Body::Chunk(_) => Body::Chunk(left),
                        _ => Body::Length(left),
                    };
                    return Poll::Ready(Ok(Some(self.buf.split_to(k).freeze())));
                }
                Body::Close => {
                    if self.buf.is_empty() && ready!(self.poll_fill(cx))? == 0 {
                        self.body = Body::Done;
                        return Poll::Ready(Ok(None));
                    }
                    return Poll::Ready(Ok(Some(self.buf.split().freeze())));
                }
                Body::ChunkSize => {
                    let line = ready!(self.poll_line(cx))?;
                    let size = chunk_size(&line)?;
                    self.body = if size == 0 {
                        Body::Trailers(0)
                    } else {
                        Body::Chunk(size)
                    };
                }
                Body::ChunkEnd => {
                    if !ready!(self.poll_line(cx))?.is_empty() {
                        return Poll::Ready(Err(H1Error::Invalid("chunk longer than its size")));
                    }
                    self.body = Body::ChunkSize;
                }
                Body::Trailers(seen) => {
                    let line = ready!(self.poll_line(cx))?;
                    let seen = seen + line.len() + 2;
                    if seen > MAX_TRAILERS {
                        return Poll::Ready(Err(H1Error::Invalid("trailers too large")));
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

    /// [`Reader::poll_chunk`] as a future.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, H1Error>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx))
            .await
            .transpose()
    }

    /// The next line (without its CRLF).
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<Result<Bytes, H1Error>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                if i == 0 || self.buf[i - 1] != b'\r' {
                    return Poll::Ready(Err(H1Error::Invalid("line not ended by CRLF")));
                }
                let line = self.buf.split_to(i + 1).freeze();
                return Poll::Ready(Ok(line.slice(..i - 1)));
            }
            if self.buf.len() > MAX_LINE {
                return Poll::Ready(Err(H1Error::Invalid("chunk line too long")));
            }
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(H1Error::ClosedEarly));
            }
        }
    }

    /// Drops the first `n` bytes of `buf` (a head just parsed).
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
    }
}

/// A head's framing fields, scanned one by one ([`Framing::field`]).
#[derive(Debug, Default)]
pub struct Framing {
    /// Its `Content-Length`, when it has one.
    pub length: Option<u64>,
    /// `Some(true)`: chunked as the last transfer coding; `Some(false)`: another coding last.
    pub chunked: Option<bool>,
    /// Transfer codings named, in all `Transfer-Encoding` fields.
    pub codings: usize,
    /// `Connection: close` seen.
    pub close: bool,
    /// `Connection: keep-alive` seen (what keeps an HTTP/1.0 connection).
    pub keep_alive: bool,
}

impl Framing {
    /// Takes in one header field; `Ok(true)` when it was a framing field.
    pub fn field(&mut self, name: &[u8], value: &[u8]) -> Result<bool, H1Error> {
        if is_name(name, b"content-length") {
            let n = content_length(value)?;
            if self.length.is_some_and(|l| l != n) {
                return Err(H1Error::Invalid("conflicting Content-Length"));
            }
            self.length = Some(n);
        } else if is_name(name, b"transfer-encoding") {
            self.chunked = Some(last_token(value).eq_ignore_ascii_case(b"chunked"));
            self.codings += value
                .split(|&b| b == b',')
                .filter(|t| !t.trim_ascii().is_empty())
                .count();
        } else if is_name(name, b"connection") {
            self.close |= has_token(value, b"close");
            self.keep_alive |= has_token(value, b"keep-alive");
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// A length and a coding together: the message's framing is suspect (RFC 9112 §6.1).
    pub fn ambiguous(&self) -> bool {
        self.chunked.is_some() && self.length.is_some()
    }
}

/// The codings of the HTTP Content Coding Registry that change the body (RFC 9110, 8.4.1).
const CODINGS: [&[u8]; 12] = [
    b"gzip",
    b"x-gzip",
    b"deflate",
    b"compress",
    b"x-compress",
    b"br",
    b"zstd",
    b"aes128gcm",
    b"dcb",
    b"dcz",
    b"exi",
    b"pack200-gzip",
];

/// The first content coding a `Content-Encoding` value lists (RFC 9110, 8.4): a body that would
/// have to be decoded before it is read. `identity`, and values that name no coding (`UTF-8`,
/// `binary`, `none`: sent by mistake on plain bodies), leave the body as it is.
pub fn coded(value: &[u8]) -> Option<&[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .find(|c| CODINGS.iter().any(|k| c.eq_ignore_ascii_case(k)))
}

/// `name`, a header field name as `httparse` took it (token characters only), is `lower` (ASCII
/// lower-case letters and `-`), case ignored: compared eight bytes at a time with bit 5 set.
/// Among token characters only a letter's two cases, and `-` itself, give a lower-case letter
/// or `-` with that bit set.
pub fn is_name(name: &[u8], lower: &[u8]) -> bool {
    const CASE: u64 = 0x2020_2020_2020_2020;
    if name.len() != lower.len() {
        return false;
    }
    let (a, b) = (name.chunks_exact(8), lower.chunks_exact(8));
    let tail = a
        .remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == *y);
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    tail && a.zip(b).all(|(x, y)| word(x) | CASE == word(y))
}

/// An answer with this status has no body, whatever its fields say (RFC 9112 §6.3).
pub fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// `parse` run with room for a few header fields, then, when the head has more (`too_many`
/// says so of its error), with room for `max`: most heads cost no allocation and only a few
/// slots' set-up.
pub fn with_header_slots<'b, T, E>(
    max: usize,
    too_many: impl Fn(&E) -> bool,
    mut parse: impl FnMut(&mut [httparse::Header<'b>]) -> Result<T, E>,
) -> Result<T, E> {
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    match parse(&mut few[..max.min(FEW_HEADERS)]) {
        Err(e) if max > FEW_HEADERS && too_many(&e) => {
            parse(&mut vec![httparse::EMPTY_HEADER; max])
        }
        r => r,
    }
}

/// A read of `io` that does not wait finds nothing: neither the peer's close nor bytes unasked
/// for. How a keep-alive connection that sat idle is known to be still usable.
pub fn nothing_to_read<R: AsyncRead + Unpin>(io: &mut R) -> bool {
    let mut byte = [0u8; 1];
    let mut rb = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(io).poll_read(&mut cx, &mut rb), Poll::Pending)
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

/// A chunk-size line's size: 1 to 15 hexadecimal digits, then nothing, or (after spaces or
/// tabs) extensions from a `;`, which are ignored but may hold no control character.
pub fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    let bad = H1Error::Invalid("bad chunk size");
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(bad);
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    let control = |&b: &u8| (b < b' ' && b != b'\t') || b == 0x7f;
    if !(rest.is_empty() || rest[0] == b';') || rest.iter().any(control) {
        return Err(bad);
    }
    let hex =
        std::str::from_utf8(&line[..digits]).map_err(|_| H1Error::Invalid("bad chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| bad)
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|&b| b == b',')
        .next()
        .unwrap_or_default()
        .trim_ascii()
}

/// `token` is one of the comma-separated tokens of `v` (ASCII case ignored).
pub fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_hex_with_extensions_ignored() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"FF;name=value").unwrap(), 255);
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        assert_eq!(chunk_size(b"a \t;e=\"x y\"").unwrap(), 10);
        for bad in [
            &b""[..],
            b"g",
            b"-1",
            b"+1",
            b" 1",
            b"1\r",
            b"1 2",
            b"1;e\rx",
            b"1;\x00",
            b"10000000000000000",
        ] {
            assert!(chunk_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn field_names_match_in_any_case_and_nothing_else() {
        let names: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"connection"];
        for lower in names {
            let upper = lower.to_ascii_uppercase();
            assert!(is_name(lower, lower) && is_name(&upper, lower));
            let mixed: Vec<u8> = lower
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if i % 3 == 0 {
                        b.to_ascii_uppercase()
                    } else {
                        *b
                    }
                })
                .collect();
            assert!(is_name(&mixed, lower));
            // Every other token character, in every position, is a different name.
            let token =
                b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
            for i in 0..lower.len() {
                for &c in token {
                    let mut other = lower.to_vec();
                    other[i] = c;
                    assert_eq!(
                        is_name(&other, lower),
                        c.eq_ignore_ascii_case(&lower[i]),
                        "{:?}",
                        String::from_utf8_lossy(&other)
                    );
                }
            }
            assert!(!is_name(&lower[1..], lower));
        }
    }

    #[test]
    fn framing_fields_are_read_and_checked() {
        let mut f = Framing::default();
        assert!(f.field(b"Content-Length", b" 12 ").unwrap());
        assert!(f.field(b"content-length", b"12").unwrap());
        assert!(f.field(b"CONTENT-LENGTH", b"13").is_err());
        assert!(!f.field(b"content-type", b"text/xml").unwrap());
        assert!(f.field(b"Connection", b"keep-alive, Close").unwrap());
        assert!(f.close && f.keep_alive && !f.ambiguous());
        assert!(f.field(b"Transfer-Encoding", b"gzip, chunked").unwrap());
        assert_eq!((f.chunked, f.codings), (Some(true), 2));
        assert!(f.ambiguous());
        let mut f = Framing::default();
        f.field(b"transfer-encoding", b"chunked, gzip").unwrap();
        assert_eq!(f.chunked, Some(false));
        assert!(Framing::default().field(b"content-length", b"+1").is_err());
    }

    /// A message read whole and consumed leaves no read buffer behind, and the next one is
    /// read as it comes, whatever was read before.
    #[tokio::test]
    async fn a_reader_between_messages_holds_no_buffer() {
        use tokio::io::AsyncWriteExt as _;
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut r = Reader::new(server);
        client.write_all(b"0123456789").await.unwrap();
        assert_eq!(r.fill().await.unwrap(), 10);
        assert_eq!(r.buf.capacity(), 10, "kept in a buffer of its size");
        r.body = Body::Length(10);
        let got = std::future::poll_fn(|cx| r.poll_chunk(cx)).await.unwrap();
        assert_eq!(got.as_deref(), Some(&b"0123456789"[..]));
        assert_eq!(r.buf.capacity(), 0, "nothing held between messages");
        // A message in several reads: the first lands in the scratch, the rest grows the buffer.
        client.write_all(b"ab").await.unwrap();
        assert_eq!(r.fill().await.unwrap(), 2);
        let big = vec![b'x'; 3 * READ_SIZE];
        client.write_all(&big).await.unwrap();
        while r.buf.len() < 2 + big.len() {
            assert!(r.fill().await.unwrap() > 0);
        }
        assert_eq!(&r.buf[..2], b"ab");
        assert!(r.buf[2..].iter().all(|&b| b == b'x'));
    }
}

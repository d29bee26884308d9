//! The load generator's own HTTP/1.1 exchange: one POST written in one buffer, the answer's
//! head parsed with `httparse`, its body skipped (Content-Length, chunked, or until the close).
//! A general client (hyper's) spends most of the generator's CPU on what a generator does not
//! need; this is the part of `rocgw load` that must cost less than the gateway it measures
//! (bench/README.md, "rocgw load against wrk").

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Headers of an answer beyond this many make it malformed for the generator.
const MAX_HEADERS: usize = 64;
/// An answer head larger than this is malformed for the generator.
const MAX_HEAD: usize = 64 * 1024;

/// What came back: the status, the gateway's `X-Rocgw-Error`, and whether the connection may
/// carry another request.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub error_code: Option<String>,
    pub keep_alive: bool,
}

/// How the answer's body ends.
enum Framing {
    Length(usize),
    Chunked,
    Close,
}

/// One connection: its stream, and what was read past the last answer.
pub struct Wire<IO> {
    io: IO,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    at: usize,
    out: Vec<u8>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Wire<IO> {
    pub fn new(io: IO) -> Wire<IO> {
        Wire {
            io,
            buf: Vec::with_capacity(8192),
            at: 0,
            out: Vec::with_capacity(2048),
        }
    }

    /// Still open after sitting idle: a read that does not wait finds neither the peer's close
    /// nor anything unasked for.
    pub fn still_open(&mut self) -> bool {
        self.at >= self.buf.len() && crate::http1::nothing_to_read(&mut self.io)
    }

    /// Writes `head` (ending before its blank line) and `body` as one POST, with the body's
    /// Content-Length, and reads the whole answer.
    pub async fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<Answer, &'static str> {
        self.out.clear();
        self.out.extend_from_slice(head);
        self.out.extend_from_slice(b"Content-Length: ");
        self.out
            .extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        self.out.extend_from_slice(b"\r\n\r\n");
        self.out.extend_from_slice(body);
        self.io.write_all(&self.out).await.map_err(|_| "io")?;
        // TLS buffers what the socket did not take yet: push it out.
        self.io.flush().await.map_err(|_| "io")?;
        loop {
            let (answer, framing) = self.read_head().await?;
            self.skip_body(framing).await?;
            // An interim answer (100 Continue) is followed by the real one.
            if !answer.status.is_informational() {
                return Ok(answer);
            }
        }
    }

    /// Reads more of the stream into `buf`; its end is an error (`io`): the answer is cut.
    async fn need_more(&mut self) -> Result<(), &'static str> {
        if self.fill().await? {
            Ok(())
        } else {
            Err("io")
        }
    }

    /// Reads more of the stream into `buf`; false at its end.
    async fn fill(&mut self) -> Result<bool, &'static str> {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > 0 && self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8192);
        }
        let n = self.io.read_buf(&mut self.buf).await.map_err(|_| "io")?;
        Ok(n > 0)
    }

    async fn read_head(&mut self) -> Result<(Answer, Framing), &'static str> {
        loop {
            if self.at < self.buf.len() {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.at..]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let parsed = read_answer(&resp)?;
                        self.at += n;
                        return Ok(parsed);
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() - self.at < MAX_HEAD => {}
                    _ => return Err("bad-response"),
                }
            }
            self.need_more().await?;
        }
    }

    async fn skip_body(&mut self, framing: Framing) -> Result<(), &'static str> {
        match framing {
            Framing::Length(n) => self.skip(n).await,
            Framing::Close => {
                self.at = self.buf.len();
                while self.fill().await? {
                    self.at = self.buf.len();
                }
                Ok(())
            }
            Framing::Chunked => self.skip_chunks().await,
        }
    }

    /// Skips `left` bytes of the stream.
    async fn skip(&mut self, mut left: usize) -> Result<(), &'static str> {
        while left > 0 {
            if self.at == self.buf.len() {
                self.need_more().await?;
            }
            let take = left.min(self.buf.len() - self.at);
            self.at += take;
            left -= take;
        }
        Ok(())
    }

    async fn skip_chunks(&mut self) -> Result<(), &'static str> {
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.at..]) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        self.at += n;
                        break usize::try_from(size).map_err(|_| "bad-response")?;
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() - self.at < 1024 => {
                        self.need_more().await?;
                    }
                    _ => return Err("bad-response"),
                }
            };
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    if let Some(end) = find_crlf(&self.buf[self.at..]) {
                        self.at += end + 2;
                        if end == 0 {
                            return Ok(());
                        }
                        continue;
                    }
                    if self.buf.len() - self.at > MAX_HEAD {
                        return Err("bad-response");
                    }
                    self.need_more().await?;
                }
            }
            // The chunk and its CRLF.
            self.skip(size.checked_add(2).ok_or("bad-response")?)
                .await?;
        }
    }
}

/// The status, the error code, keep-alive and the body's framing of a parsed head.
fn read_answer(resp: &httparse::Response<'_, '_>) -> Result<(Answer, Framing), &'static str> {
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("bad-response")?;
    let mut error_code = None;
    let mut length = None;
    // Transfer-Encoding, when sent: whether its last coding is chunked.
    let mut coded: Option<bool> = None;
    let mut keep_alive = resp.version == Some(1);
    for h in resp.headers.iter() {
        let name = h.name;
        let tokens = || {
            h.value
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|t| !t.is_empty())
        };
        if name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| "bad-response")?;
            length = Some(v.trim().parse::<usize>().map_err(|_| "bad-response")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            coded = Some(
                tokens()
                    .next_back()
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"chunked")),
            );
        } else if name.eq_ignore_ascii_case("connection") {
            if crate::http1::has_token(h.value, b"close") {
                keep_alive = false;
            } else if crate::http1::has_token(h.value, b"keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case(crate::fault::ERROR_HEADER) {
            error_code = std::str::from_utf8(h.value).ok().map(str::to_string);
        }
    }
    let bodiless = crate::http1::bodiless(status);
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3): chunked when it is the last
    // coding, else the body ends with the connection.
    let framing = match (bodiless, coded, length) {
        (true, ..) => Framing::Length(0),
        (false, Some(true), _) => Framing::Chunked,
        (false, None, Some(n)) => Framing::Length(n),
        (false, Some(false) | None, _) => {
            keep_alive = false;
            Framing::Close
        }
    };
    Ok((
        Answer {
            status,
            error_code,
            keep_alive,
        },
        framing,
    ))
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The generator's exchange against answers written byte for byte, as servers may frame
    /// them.
    /// `hang_up`: the server closes its end once it has answered.
    async fn answer_to(raw: &[u8], hang_up: bool) -> (Result<Answer, &'static str>, Vec<u8>, bool) {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut wire = Wire::new(client);
        let raw = raw.to_vec();
        let srv = tokio::spawn(async move {
            let mut got = vec![0u8; 4096];
            let mut n = 0;
            while !got[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                n += server.read(&mut got[n..]).await.unwrap();
            }
            // The body follows its head; 5 bytes here.
            while n < got[..n].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4 + 5 {
                n += server.read(&mut got[n..]).await.unwrap();
            }
            server.write_all(&raw).await.unwrap();
            got.truncate(n);
            (got, (!hang_up).then_some(server))
        });
        let r = wire
            .exchange(b"POST /x HTTP/1.1\r\nHost: h\r\n", b"hello")
            .await;
        let (sent, _server) = srv.await.unwrap();
        let open = wire.still_open();
        (r, sent, open)
    }

    #[tokio::test]
    async fn answers_are_read_whatever_their_framing() {
        let (r, sent, open) = answer_to(
            b"HTTP/1.1 503 Service Unavailable\r\nX-Rocgw-Error: overloaded\r\nContent-Length: 3\r\n\r\nabc",
            false,
        )
        .await;
        assert_eq!(
            String::from_utf8(sent).unwrap(),
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
        );
        let a = r.unwrap();
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.error_code.as_deref(), Some("overloaded"));
        assert!(a.keep_alive && open, "the whole answer was read: open");

        let (r, _, open) = answer_to(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\n",
            false,
        )
        .await;
        let a = r.unwrap();
        assert_eq!((a.status, a.keep_alive, open), (StatusCode::OK, true, true));

        let (r, _, _) = answer_to(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            false,
        )
        .await;
        assert!(!r.unwrap().keep_alive);

        let (r, _, _) = answer_to(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", true).await;
        assert!(!r.unwrap().keep_alive, "no length: read until the close");

        let (r, _, _) =
            answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true).await;
        assert_eq!(r.unwrap_err(), "io", "a body cut short is an error");

        let (r, _, _) = answer_to(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
            false,
        )
        .await;
        assert!(!r.unwrap().keep_alive, "close among the connection options");

        let (r, _, _) = answer_to(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 1\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            false,
        )
        .await;
        assert!(
            r.unwrap().keep_alive,
            "chunked last: chunked, whatever the length says"
        );

        let (r, _, _) = answer_to(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
            false,
        )
        .await;
        assert_eq!(
            r.unwrap_err(),
            "bad-response",
            "a chunk size that overflows"
        );

        let (r, _, _) = answer_to(b"SMTP ready\r\n\r\n", false).await;
        assert_eq!(r.unwrap_err(), "bad-response");

        let (r, _, _) = answer_to(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).await;
        assert_eq!(r.unwrap_err(), "bad-response");
    }
}

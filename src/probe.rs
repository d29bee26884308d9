//! `rocgw probe`: the health check of images that ship no HTTP client (the Dockerfile's
//! `HEALTHCHECK`). One `GET` to the admin listener (`/readyz` by default) with a deadline for the
//! whole exchange; a 2xx answer is healthy (exit 0), anything else — another status, a refused
//! connection, no answer in time — is not (exit 1, Docker's "unhealthy"; Docker reserves 2).
//! The probe paths are open on the admin listener: no token is sent.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// What the probe asks by default: the admin listener's default port, on loopback.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9580/readyz";

/// The most of an answer read: the status line and the probe's one-line reason fit.
const MAX_ANSWER: usize = 4096;

/// `rocgw probe` options.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The admin URL to ask (plain HTTP): `/readyz` (serving) or `/healthz` (running).
    #[arg(long, env = "ROCGW_PROBE_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Deadline for the whole exchange (connect, request, answer), in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// An answer: its status and the first line of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub reason: String,
}

/// `http://host[:port]/path` → the addresses to try, the `Host` header and the path.
fn target(url: &str) -> Result<(Vec<SocketAddr>, String, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "{url}: the admin listener speaks plain http:// only"
        ));
    }
    let host = uri.host().ok_or_else(|| format!("{url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let addrs: Vec<SocketAddr> = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .collect();
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    Ok((addrs, authority.to_string(), path.to_string()))
}

/// Asks `url` and reads its answer, all within `timeout`.
pub fn probe(url: &str, timeout: Duration) -> Result<Answer, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {} ms", timeout.as_millis()))
    };
    let (addrs, host, path) = target(url)?;
    let mut last = format!("{url}: no address");
    let mut stream = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    let mut s = stream.ok_or(last)?;
    s.set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: rocgw-probe\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while answer.len() < MAX_ANSWER {
        s.set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer within {} ms", timeout.as_millis()))
            }
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    parse(&answer)
}

/// The status line and the body's first line of an HTTP/1.x answer.
fn parse(answer: &[u8]) -> Result<Answer, String> {
    let text = String::from_utf8_lossy(answer);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP answer".to_string())?;
    let reason = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.lines().next().unwrap_or_default())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    Ok(Answer { status, reason })
}

/// `rocgw probe`: prints one line; exit 0 on a 2xx answer, 1 otherwise.
pub fn run(a: &ProbeArgs) -> ExitCode {
    match probe(&a.url, Duration::from_millis(a.timeout_ms)) {
        Ok(r) => {
            println!("rocgw probe: {}: {} {}", a.url, r.status, r.reason);
            if (200..300).contains(&r.status) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            println!("rocgw probe: {}: {e}", a.url);
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_reason_come_from_the_answer() {
        let a = parse(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\n\r\nnot ready: stale\nmore",
        )
        .unwrap();
        assert_eq!(
            a,
            Answer {
                status: 503,
                reason: "not ready: stale".into()
            }
        );
        assert_eq!(parse(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().status, 200);
        assert!(parse(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn only_plain_http_urls_are_probed() {
        assert!(target("https://127.0.0.1:9580/readyz")
            .unwrap_err()
            .contains("plain http"));
        let (addrs, host, path) = target("http://[::1]:9581/healthz?x=1").unwrap();
        assert_eq!(addrs, vec!["[::1]:9581".parse().unwrap()]);
        assert_eq!(
            (host.as_str(), path.as_str()),
            ("[::1]:9581", "/healthz?x=1")
        );
        let (addrs, host, path) = target("http://127.0.0.1").unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:80".parse().unwrap()]);
        assert_eq!((host.as_str(), path.as_str()), ("127.0.0.1", "/"));
    }
}

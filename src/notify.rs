//! systemd's readiness protocol (`sd_notify`, `Type=notify`): `READY=1` once the listeners are
//! bound and serving, `STOPPING=1` when a stop signal starts the drain, `WATCHDOG=1` every half
//! `WatchdogSec=` while the runtime runs. Each message is one datagram to the Unix socket named
//! by `$NOTIFY_SOCKET`: a path, or `@name` for an abstract socket. Without the variable (not
//! under systemd) nothing is sent. A message that cannot be sent is a warning, never a failure:
//! the service manager decides what a missing `READY=1` means.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// The variable naming systemd's notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to `socket`: a filesystem path, or
/// `@name` for a Linux abstract socket.
pub fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let name = socket.as_bytes();
    match name.first() {
        Some(b'/') => sock.send_to(state.as_bytes(), Path::new(socket)).map(drop),
        Some(b'@') => send_abstract(&sock, &name[1..], state),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
        )),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sock: &UnixDatagram, name: &[u8], state: &str) -> io::Result<()> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt as _;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(state.as_bytes(), &addr).map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist on Linux only",
    ))
}

/// Sends `state` to `$NOTIFY_SOCKET` when it is set; `Ok(false)` when it is not.
pub fn notify(state: &str) -> io::Result<bool> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(s) if !s.is_empty() => send_to(&s, state).map(|()| true),
        _ => Ok(false),
    }
}

fn notify_or_warn(state: &str) {
    if let Err(e) = notify(state) {
        let first = state.lines().next().unwrap_or_default();
        tracing::warn!(error = %e, "cannot tell the service manager {first}");
    }
}

/// The listeners are bound and serving (`status` is what `systemctl status` shows); starts the
/// watchdog pings when the service manager asks for them.
pub fn ready(status: &str) {
    notify_or_warn(&format!("READY=1\nSTATUS={}", one_line(status)));
    if let (Some(every), Ok(rt)) = (
        watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        ),
        tokio::runtime::Handle::try_current(),
    ) {
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify_or_warn("WATCHDOG=1");
            }
        });
    }
}

/// A stop signal came: the drain starts.
pub fn stopping() {
    notify_or_warn("STOPPING=1\nSTATUS=stopping: no new requests, finishing the ones in flight");
}

/// Half the watchdog period systemd set (`WATCHDOG_USEC`), when it is meant for this process
/// (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// A `STATUS=` value is one line.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_path_socket_gets_the_datagram() {
        let dir = std::env::temp_dir().join(format!("rocgw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(receive(&sock), "READY=1\nSTATUS=serving");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_gets_the_datagram() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("rocgw-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(receive(&sock), "STOPPING=1");
    }

    #[test]
    fn a_relative_name_is_refused() {
        let e = send_to(OsStr::new("notify.sock"), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_watchdog_pings_at_half_the_period_for_this_process_only() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(Some("30000000"), None),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some(&me)),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("1")), None);
        assert_eq!(watchdog_interval(None, None), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(Some("soon"), None), None);
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}

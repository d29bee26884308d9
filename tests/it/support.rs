//! Shared test support: the test PKI (generated once per test run, by the real binary), a
//! running `rocgw` process, a tiny HTTP/1.1 client and SOAP fault parsing.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rocgw");

/// How long a process gets to print its listening line (debug builds, 2 cores, parallel tests).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The test PKI of this run, generated once by `rocgw pki init`. Under nextest every test is its
/// own process, so the folder is keyed by the run id and guarded by a file lock.
pub fn pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(&base).unwrap();
        let run =
            std::env::var("NEXTEST_RUN_ID").unwrap_or_else(|_| std::process::id().to_string());
        let dir = base.join(format!("it-pki-{run}"));
        let lock = File::create(base.join(format!("it-pki-{run}.lock"))).unwrap();
        lock.lock().unwrap();
        if !dir.join("manifest.json").exists() {
            remove_stale(&base);
            let out = Command::new(BIN)
                .args(["pki", "init", "--force", "--dir"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "pki init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        lock.unlock().unwrap();
        dir
    })
}

/// Test PKIs of earlier runs (older than an hour) are removed.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.starts_with("it-pki-") {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(3600))
            .unwrap_or(false);
        if old {
            let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
        }
    }
}

pub fn pki_path(rel: &str) -> PathBuf {
    pki().join(rel)
}

pub fn p12_password() -> String {
    fs::read_to_string(pki_path("secrets/p12-password"))
        .unwrap()
        .trim()
        .to_string()
}

/// A sandbox data folder in `dir` that reuses the run's test PKI (no generation): `dir/pki`.
pub fn sandbox_data(dir: &Path) {
    let st = std::process::Command::new("cp")
        .args([
            "-a",
            pki().to_str().unwrap(),
            dir.join("pki").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
}

/// `rocgw [global…] serve` of the sandbox whose data folder is `dir`, on ephemeral ports.
pub fn sandbox_args<'a>(global: &[&'a str], dir: &'a Path) -> Vec<&'a str> {
    let serve = ["serve", "--data-dir", dir.to_str().unwrap()];
    let ports = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    [global, &serve[..], &ports[..]].concat()
}

/// An SOAP 1.2 POST to `path` written on a new connection that is returned unread: a caller
/// that waits, or hangs up (dropping it), while its call is in progress.
pub fn post_unread(gw: SocketAddr, path: &str) -> TcpStream {
    let body = envelope12("<r:req xmlns:r=\"urn:test\"/>");
    let mut sih = TcpStream::connect(gw).unwrap();
    write!(
        sih,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {CT12}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    sih
}

/// A local port the OS had free a moment ago, with nothing listening on it (a stopped AMC, a
/// dead target).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A file or folder of the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The admin address of the simulator a sandbox process runs, from its start-up lines.
pub fn sim_admin(p: &Proc) -> SocketAddr {
    p.stdout
        .lines()
        .find_map(|l| l.strip_prefix("rocgw: simulator admin listening on http://"))
        .unwrap_or_else(|| panic!("no simulator line: {}", p.stdout))
        .parse()
        .unwrap()
}

pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("rocgw-it-")
        .tempdir()
        .unwrap()
}

/// The `[server]` (ports picked by the OS), identities and `[trust]` sections of a test
/// configuration, with this AUTH_CLI P12 and password file; `extra_server` and `extra_trust`
/// are appended to their sections.
pub fn base_config(
    auth_p12: &str,
    password_file: &str,
    extra_server: &str,
    extra_trust: &str,
) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{extra_server}

[identity.auth_cli]
p12 = "{auth_p12}"
password_file = "{password_file}"

[identity.sign]
p12 = "{sign}"
password_file = "{password_file}"

[trust]
amc_anchors = ["{anchors}"]
{extra_trust}
"#,
        sign = pki_path("org/sign.p12").display(),
        anchors = pki_path("osi/anchors.pem").display(),
    )
}

/// A valid configuration on the test PKI, with ports picked by the OS, plus `extra` TOML.
pub fn config_text(extra_server: &str, extra: &str) -> String {
    let base = base_config(
        pki_path("org/auth_cli.p12").to_str().unwrap(),
        pki_path("secrets/p12-password").to_str().unwrap(),
        extra_server,
        "",
    );
    format!(
        "{base}\n[routes.\"11111111\"]\nidb = \"https://localhost:9/amc/idb\"\nclc = \"https://localhost:9/amc/clc\"\n{extra}\n"
    )
}

/// `config_text` with the `sign` (or `auth_cli`) P12 replaced by another file of the test PKI.
pub fn with_identity(slot: &str, p12: &str) -> String {
    let original = pki_path(&format!("org/{slot}.p12")).display().to_string();
    config_text("", "").replace(&original, pki_path(p12).to_str().unwrap())
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("rocgw.toml");
    fs::write(&path, text).unwrap();
    path
}

/// Spawns `rocgw args…` with piped output, without any ROCGW_CONFIG inherited from the caller.
/// Starts `rocgw args…`; an `env` pair (`TASKSET`, cpus) runs it pinned to those CPUs
/// (`taskset -c`) instead of setting a variable.
/// The `env` key that pins a process's CPUs (see `spawn`).
pub const TASKSET: &str = "TASKSET";

pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = match env.iter().find(|(k, _)| *k == TASKSET) {
        Some((_, cpus)) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(args)
        .env_remove("ROCGW_CONFIG")
        .env("RUST_LOG", "info");
    for (k, v) in env.iter().filter(|(k, _)| *k != TASKSET) {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Where tests keep what rocgw printed and wrote (logs, audit files) when `ROCGW_TEST_OUTPUT`
/// names a folder: `.ci/run` scans it for secrets after the suite.
fn output_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("ROCGW_TEST_OUTPUT")?);
    fs::create_dir_all(&dir).unwrap();
    Some(dir)
}

/// A file name unique in this run: `<stem>-<test process>-<n>.<ext>`.
fn unique_name(stem: &str, ext: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{stem}-{}-{n}.{ext}", std::process::id())
}

/// The audit file of a test gateway: kept in `ROCGW_TEST_OUTPUT` when set, else in `dir`.
pub fn audit_file(dir: &Path) -> PathBuf {
    match output_dir() {
        Some(out) => out.join(unique_name("audit", "jsonl")),
        None => dir.join("audit.jsonl"),
    }
}

/// A log file for one stream of one process, when `ROCGW_TEST_OUTPUT` is set.
fn log_file(stream: &str, pid: u32) -> Option<File> {
    let out = output_dir()?;
    Some(File::create(out.join(unique_name(&format!("rocgw-{pid}-{stream}"), "log"))).unwrap())
}

/// Forwards each line read from `r` to a channel, from a thread (and to `log`).
pub fn lines(r: impl Read + Send + 'static, log: Option<File>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    forward(r, log, tx, None);
    rx
}

/// Forwards each line read from `r` to `tx`, from a thread (and to `log`). In JSON mode serve
/// prints nothing on stdout: its `… listening` log events (with their `url`) are also sent to
/// `listening` as the line it prints in text mode, so that [`Proc::start`] finds its ports.
fn forward(
    r: impl Read + Send + 'static,
    mut log: Option<File>,
    tx: mpsc::Sender<String>,
    listening: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if let Some(f) = &mut log {
                let _ = writeln!(f, "{line}");
            }
            if let (Some(l), true) = (&listening, line.starts_with('{')) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if let (Some(m), Some(url)) = (v["message"].as_str(), v["url"].as_str()) {
                    if m.ends_with(" listening") {
                        let _ = l.send(format!("rocgw: {m} on {url}"));
                    }
                }
            }
            let _ = tx.send(line);
        }
    });
}

/// Runs `rocgw args…` to completion (for start-up failures), with a deadline.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = spawn(args, env);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            let pid = child.id();
            let out = child.wait_with_output().unwrap();
            for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
                if let Some(mut f) = log_file(stream, pid) {
                    f.write_all(bytes).unwrap();
                }
            }
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rocgw {args:?} did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `rocgw` process; killed when dropped.
pub struct Proc {
    child: Child,
    pub gateway: SocketAddr,
    pub admin: SocketAddr,
    /// Everything printed on stdout up to the gateway's listening line (in JSON mode: the
    /// listening lines made from the log events, see `forward`).
    pub stdout: String,
    stderr: Mutex<mpsc::Receiver<String>>,
}

impl Proc {
    /// Starts `rocgw args…` and waits for both listening lines.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut child = spawn(args, env);
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        forward(
            child.stdout.take().unwrap(),
            log_file("stdout", pid),
            tx.clone(),
            None,
        );
        let (etx, erx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        forward(stderr, log_file("stderr", pid), etx, Some(tx));
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut gateway, mut admin, mut stdout) = (None, None, String::new());
        while gateway.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    stdout.push_str(&line);
                    stdout.push('\n');
                    if let Some(a) = line
                        .strip_prefix("rocgw: gateway listening on http://")
                        .or_else(|| line.strip_prefix("rocgw: gateway listening on https://"))
                    {
                        gateway = Some(a.parse().unwrap());
                    }
                    if let Some(a) = line.strip_prefix("rocgw: admin listening on http://") {
                        admin = Some(a.parse().unwrap());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let err: Vec<String> = erx.try_iter().collect();
                    panic!(
                        "rocgw did not start: stdout:\n{stdout}\nstderr:\n{}",
                        err.join("\n")
                    );
                }
            }
        }
        // The sandbox prints its curl example right after the listening line.
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            stdout.push_str(&line);
            stdout.push('\n');
            while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
                stdout.push_str(&l);
                stdout.push('\n');
            }
        }
        Proc {
            child,
            gateway: gateway.unwrap(),
            admin: admin.unwrap(),
            stdout,
            stderr: Mutex::new(erx),
        }
    }

    /// Starts `rocgw serve --config <path>` with both ports picked by the OS from the command
    /// line, whatever the file says.
    pub fn with_config_and_free_ports(path: &Path, env: &[(&str, &str)]) -> Proc {
        let args = [
            "serve",
            "--config",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ];
        Proc::start(&args, env)
    }

    /// Collects log lines until one satisfies `done`; panics after `timeout`.
    pub fn logs_until(&self, timeout: Duration, done: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        wait_for("a log line", timeout, || {
            lines.extend(self.stderr_lines());
            lines.iter().any(|l| done(l))
        });
        lines
    }

    /// Starts `rocgw serve --config <path>`.
    pub fn with_config(path: &Path) -> Proc {
        Proc::start(&["serve", "--config", path.to_str().unwrap()], &[])
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap();
        kb * 1024
    }

    /// Log lines printed so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().try_iter().collect()
    }

    /// The process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit on its own (panics after `timeout`); its exit code.
    pub fn exit_code(&mut self, timeout: Duration) -> Option<i32> {
        let mut status = None;
        wait_for("the process to exit", timeout, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.and_then(|s| s.code())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as the client saw it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Sends one HTTP/1.1 request on a new connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
    {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s)
}

/// Reads a response with a Content-Length body (what rocgw writes).
pub fn read_response(s: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

/// POSTs a SOAP body with the given content type.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> Resp {
    http(
        addr,
        "POST",
        path,
        &[("Content-Type", content_type)],
        body.as_bytes(),
    )
}

pub const CT11: &str = "text/xml; charset=utf-8";
pub const CT12: &str = "application/soap+xml; charset=utf-8";

pub fn envelope11(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Header/><soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"#
    )
}

pub fn envelope12(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body>{body}</env:Body></env:Envelope>"#
    )
}

/// A SOAP fault as a SOAP stack would read it.
#[derive(Debug, Default)]
pub struct ParsedFault {
    /// Namespace of the Envelope element.
    pub envelope_ns: String,
    /// SOAP 1.1 faultcode or SOAP 1.2 Code/Value, local part (`Client`, `Sender`, …).
    pub side: String,
    /// SOAP 1.2 Subcode/Value local part, if any.
    pub subcode: Option<String>,
    /// `rocgw:code` from the detail.
    pub code: String,
    /// Reasons by language (`fr`, `en`): faultstring or Reason/Text.
    pub reasons: HashMap<String, String>,
}

/// Parses a fault with a namespace-aware reader; panics if it is not a well-formed SOAP fault.
pub fn parse_fault(xml: &str) -> ParsedFault {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut r = quick_xml::NsReader::from_str(xml);
    let mut f = ParsedFault::default();
    let mut path: Vec<String> = Vec::new();
    let mut lang = String::new();
    loop {
        match r.read_resolved_event().expect("well-formed fault XML") {
            (ns, Event::Start(e)) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).to_string();
                if path.is_empty() {
                    assert_eq!(local, "Envelope");
                    if let ResolveResult::Bound(n) = ns {
                        f.envelope_ns = String::from_utf8_lossy(n.as_ref()).to_string();
                    }
                }
                lang = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.as_ref() == b"xml:lang")
                    .map(|a| String::from_utf8_lossy(&a.value).to_string())
                    .unwrap_or_default();
                path.push(local);
            }
            (_, Event::End(_)) => {
                path.pop();
            }
            (_, Event::Text(t)) => {
                let text = t.decode().unwrap().to_string();
                let text = quick_xml::escape::unescape(&text).unwrap().to_string();
                let p = path.join("/");
                let local_of = |v: &str| v.rsplit(':').next().unwrap().to_string();
                if p.ends_with("Fault/faultcode") || p.ends_with("Fault/Code/Value") {
                    f.side = local_of(&text);
                } else if p.ends_with("Code/Subcode/Value") {
                    f.subcode = Some(local_of(&text));
                } else if p.ends_with("Fault/faultstring") || p.ends_with("Reason/Text") {
                    f.reasons.insert(lang.clone(), text);
                } else if p.ends_with("error/code") {
                    f.code = text;
                } else if p.ends_with("error/message") && !f.reasons.contains_key(&lang) {
                    f.reasons.insert(lang.clone(), text);
                }
            }
            (_, Event::Eof) => break,
            _ => {}
        }
    }
    f
}

pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// Runs an external tool; panics with an install hint when it is missing.
/// POSTs `body` with `curl` (an independent client), `args` first: the response, or curl's
/// exit code and error when it got none.
pub fn curl(url: &str, args: &[&str], content_type: &str, body: &str) -> Result<Resp, String> {
    let tmp = scratch();
    let f = tmp.path().join("req.xml");
    fs::write(&f, body).unwrap();
    let data = format!("@{}", f.display());
    let ct = format!("Content-Type: {content_type}");
    let mut all = vec!["-sS", "-i", "-H", &ct, "--data-binary", &data];
    all.extend_from_slice(args);
    all.push(url);
    let out = tool("curl", &all, Path::new("."));
    if !out.status.success() {
        return Err(format!(
            "curl exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap();
    Ok(Resp {
        status: status.parse().unwrap(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
        body: body.to_string(),
    })
}

pub fn tool(name: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(name)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{name}` is needed by this test ({e}): run `bash .ci/run` or `apt-get install -y {name}`")
        })
}

/// One sample of the Prometheus text exposition format.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: f64,
}

/// Scrapes `/metrics` and parses every sample line (`name{a="b",…} value`).
pub fn scrape(admin: SocketAddr) -> Vec<Sample> {
    let r = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    parse_metrics(&r.body)
}

/// Parses every sample line of a Prometheus text exposition.
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = std::collections::BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label pair");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value: value.parse().expect("numeric value"),
        });
    }
    out
}

/// The value of the sample with this name and these labels (0 when absent).
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

impl Proc {
    /// Sends a signal to the process (`HUP`, `TERM`).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Polls `f` every 50 ms until it holds; panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// Puts a copy of `src` in place of `dst` in one rename, as an operator's deployment would.
pub fn replace_file(src: &Path, dst: &Path) {
    let tmp = dst.with_extension("new");
    fs::copy(src, &tmp).unwrap();
    fs::rename(&tmp, dst).unwrap();
}

/// The audit records once there are `n`.
pub fn audit_records(file: &Path, n: usize) -> Vec<serde_json::Value> {
    let read = || -> Vec<serde_json::Value> {
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    wait_for("the audit records", Duration::from_secs(5), || {
        read().len() >= n
    });
    read()
}

/// A CA of our own (`ca.pem` in `d`) and its CRL whose nextUpdate has passed (`stale.crl`),
/// both made by openssl.
pub fn stale_crl(d: &Path) {
    let ossl = |args: &[&str]| {
        let out = tool("openssl", args, d);
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=TEST STALE CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("crlnumber"), "01\n").unwrap();
    std::fs::write(d.join("c.cnf"), "[ca]\ndefault_ca = c\n[c]\ndatabase = index.txt\ncrlnumber = crlnumber\ndefault_md = sha256\n").unwrap();
    ossl(&[
        "ca",
        "-config",
        "c.cnf",
        "-gencrl",
        "-keyfile",
        "ca.key",
        "-cert",
        "ca.pem",
        "-out",
        "stale.crl",
        "-crl_lastupdate",
        "20260101000000Z",
        "-crl_nextupdate",
        "20260102000000Z",
    ]);
}

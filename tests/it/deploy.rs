//! The deployment files checked by the tools that will run them: the systemd unit by
//! `systemd-analyze verify|security` and by a real `NOTIFY_SOCKET` conversation with `rocgw
//! serve`; the Prometheus scrape of the Kubernetes deployment by `promtool check config` and by
//! a real scrape of `/metrics` with the token read from a file, as Prometheus reads it; the
//! logrotate file by `logrotate` rotating a running gateway's audit log.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next datagram on `sock`, as text (panics after the socket's read timeout).
fn datagram(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn systemd_hears_ready_once_the_listeners_accept_and_stopping_on_sigterm() {
    let tmp = scratch();
    let socket = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    let cfg = write_config(tmp.path(), &config_text("", ""));
    let mut child = Killed(
        Command::new(BIN)
            .args(["serve", "--config", cfg.to_str().unwrap()])
            .env_remove("ROCGW_CONFIG")
            .env("NOTIFY_SOCKET", &socket)
            // WatchdogSec=200ms: a ping every 100 ms.
            .env("WATCHDOG_USEC", "200000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(child.0.stdout.take().unwrap());

    // The first message is READY=1, and the gateway it names accepts at once.
    let ready = datagram(&sock);
    let mut lines = ready.lines();
    assert_eq!(lines.next(), Some("READY=1"), "{ready}");
    let status = lines.next().unwrap_or_default();
    let gateway: std::net::SocketAddr = status
        .strip_prefix("STATUS=serving on http://")
        .unwrap_or_else(|| panic!("{ready}"))
        .parse()
        .unwrap();
    let answer = http(gateway, "GET", "/", &[], b"");
    assert!(
        answer.status >= 400,
        "an answer from the gateway: {answer:?}"
    );
    // The admin listener was announced before READY=1, and is ready.
    let admin: std::net::SocketAddr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("rocgw: admin listening on http://")
                .map(|a| a.parse().unwrap())
        })
        .expect("the admin listening line");
    let readyz = http(admin, "GET", "/readyz", &[], b"");
    assert_eq!(readyz.status, 200, "{}", readyz.body);

    // Watchdog pings, then STOPPING=1 on SIGTERM, and a clean exit.
    assert_eq!(datagram(&sock), "WATCHDOG=1");
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut seen = Vec::new();
    loop {
        let d = datagram(&sock);
        if d.starts_with("STOPPING=1") {
            break;
        }
        assert_eq!(d, "WATCHDOG=1", "after {seen:?}");
        seen.push(d);
    }
    let mut code = None;
    wait_for("rocgw to exit", Duration::from_secs(60), || {
        code = child.0.try_wait().unwrap();
        code.is_some()
    });
    assert_eq!(code.and_then(|c| c.code()), Some(0));
}

/// A root for `systemd-analyze --root`: `unit` as rocgw.service, the rocgw binary at the
/// unit's ExecStart path, `kill` for ExecReload, and the host's unit library (targets).
fn systemd_root(unit: &str) -> tempfile::TempDir {
    let bin = Path::new(BIN);
    // Next to the binary: a hard link instead of a copy of a debug build.
    let root = tempfile::Builder::new()
        .prefix("rocgw-systemd-root-")
        .tempdir_in(bin.parent().unwrap())
        .unwrap();
    let r = root.path();
    for d in [
        "usr/local/bin",
        "usr/bin",
        "usr/lib/systemd",
        "etc/systemd/system",
    ] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).unwrap();
    std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
    if fs::hard_link(bin, r.join("usr/local/bin/rocgw")).is_err() {
        fs::copy(bin, r.join("usr/local/bin/rocgw")).unwrap();
    }
    let kill = ["/usr/bin/kill", "/bin/kill"]
        .into_iter()
        .find(|k| Path::new(k).exists())
        .expect("kill (procps)");
    fs::copy(kill, r.join("usr/bin/kill")).unwrap();
    let units = tool(
        "cp",
        &[
            "-a",
            "/usr/lib/systemd/system",
            r.join("usr/lib/systemd/").to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(units.status.success(), "{units:?}");
    fs::write(r.join("etc/systemd/system/rocgw.service"), unit).unwrap();
    root
}

fn systemd_analyze(args: &[&str], root: &Path) -> (bool, String) {
    let root = format!("--root={}", root.display());
    let mut all = args.to_vec();
    all.insert(1, &root);
    let out = tool("systemd-analyze", &all, Path::new("."));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_systemd_unit_verifies_and_keeps_a_low_exposure() {
    let unit = fs::read_to_string(repo("deploy/rocgw.service")).unwrap();
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nWatchdogSec="));
    let root = systemd_root(&unit);
    let (ok, text) = systemd_analyze(&["verify", "rocgw.service"], root.path());
    assert!(ok && text.trim().is_empty(), "verify: {text}");
    // verify does look: a unit whose binary is missing fails.
    let missing = systemd_root(&unit.replace(
        "ExecStart=/usr/local/bin/rocgw ",
        "ExecStart=/usr/local/bin/rocgw-missing ",
    ));
    let (ok, text) = systemd_analyze(&["verify", "rocgw.service"], missing.path());
    assert!(!ok && text.contains("rocgw-missing"), "{text}");

    // `security` scores 0 (best) to 10; --threshold is that score × 10.
    let security = |root: &Path, threshold: &str| {
        systemd_analyze(
            &[
                "security",
                "--offline=true",
                &format!("--threshold={threshold}"),
                "rocgw.service",
            ],
            root,
        )
    };
    let (ok, text) = security(root.path(), "20");
    let score: f64 = text
        .split("Overall exposure level for rocgw.service: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(ok && score <= 2.0, "exposure {score}: {text}");
    // The threshold bites: without the sandboxing lines the unit is over it.
    let weak: String = unit
        .lines()
        .filter(|l| {
            !["Protect", "Restrict", "SystemCall", "Capability", "Private"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let weak = systemd_root(&weak);
    let (ok, text) = security(weak.path(), "20");
    assert!(!ok, "a unit without sandboxing passed: {text}");
}

/// The `rocgw.toml` of the manifest's ConfigMap.
pub fn configmap_toml(manifest: &str) -> String {
    manifest
        .split("rocgw.toml: |\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect()
}

/// The files the manifest's Secrets hold, under `dir` instead of /etc/rocgw: certificates from
/// the test PKI, the SIH's token, Prometheus's token (with the newline `kubectl create secret
/// --from-file` keeps). Returns the configuration file.
pub fn materialize_kubernetes_config(manifest: &str, dir: &Path, metrics_token: &str) -> PathBuf {
    let certs = dir.join("certs");
    fs::create_dir_all(&certs).unwrap();
    for (name, from) in [
        ("auth_cli.p12", "org/auth_cli.p12"),
        ("sign.p12", "org/sign.p12"),
        ("auth_cli.pass", "secrets/p12-password"),
        ("sign.pass", "secrets/p12-password"),
        ("igc-osi-root.pem", "osi/root.pem"),
        ("ac-serveur.pem", "osi/ac-serveur.pem"),
        (
            "ac-services-applicatifs.pem",
            "osi/ac-services-applicatifs.pem",
        ),
    ] {
        fs::copy(pki_path(from), certs.join(name)).unwrap();
    }
    fs::write(certs.join("gateway.token"), "it-secret-bearer-token-0123").unwrap();
    fs::create_dir_all(dir.join("metrics")).unwrap();
    fs::write(dir.join("metrics/token"), format!("{metrics_token}\n")).unwrap();
    let cfg = dir.join("rocgw.toml");
    fs::write(
        &cfg,
        configmap_toml(manifest).replace("/etc/rocgw/", &format!("{}/", dir.display())),
    )
    .unwrap();
    cfg
}

/// The value of `key: value` on the first line that has it.
fn yaml_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key}"))
        .trim()
}

/// `curl` GET with extra arguments: (status, body).
fn curl_get(url: &str, args: &[&str]) -> (String, String) {
    let tmp = scratch();
    let body = tmp.path().join("body");
    let mut all = vec!["-sS", "-o", body.to_str().unwrap(), "-w", "%{http_code}"];
    all.extend_from_slice(args);
    all.push(url);
    let out = tool("curl", &all, Path::new("."));
    assert!(out.status.success(), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        fs::read_to_string(body).unwrap_or_default(),
    )
}

#[test]
fn prometheus_scrapes_the_kubernetes_pods_with_its_token_file() {
    let manifest = fs::read_to_string(repo("deploy/kubernetes/rocgw.yaml")).unwrap();
    let scrape_path = repo("deploy/prometheus/rocgw-scrape.yml");
    let scrape = fs::read_to_string(&scrape_path).unwrap();
    let monitor = fs::read_to_string(repo("deploy/prometheus/servicemonitor.yaml")).unwrap();

    // The annotation-driven scrape (no token, so 401) is not advertised.
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("prometheus.io/")),
        "{manifest}"
    );
    // The scrape config, as shipped: valid syntax (its credentials file exists in Prometheus's
    // pod only).
    let out = tool(
        "promtool",
        &[
            "check",
            "config",
            "--syntax-only",
            scrape_path.to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(out.status.success(), "{out:?}");

    // The pieces fit: DNS name → headless Service on the admin port; Secret → the rocgw pod's
    // mount → the ConfigMap's token_file; the ServiceMonitor's Secret and port.
    assert!(scrape.contains("names: [rocgw-admin.rocgw.svc.cluster.local]"));
    let headless = manifest
        .split("---")
        .find(|d| d.contains("name: rocgw-admin"))
        .expect("the rocgw-admin Service");
    assert!(
        headless.contains("clusterIP: None") && headless.contains("publishNotReadyAddresses: true")
    );
    assert_eq!(yaml_value(&scrape, "port"), "9580");
    assert!(manifest.contains("- name: admin\n              containerPort: 9580"));
    assert!(manifest.contains("admin_listen = \"0.0.0.0:9580\""));
    assert!(manifest.contains(
        "secretName: rocgw-metrics-token\n            defaultMode: 0400\n            items:\n              - key: token\n                path: token"
    ));
    assert!(manifest.contains("- name: metrics-token\n              mountPath: /etc/rocgw/metrics"));
    assert!(
        manifest.contains("name = \"prometheus\"\n    token_file = \"/etc/rocgw/metrics/token\"")
    );
    assert!(
        monitor.contains("credentials:\n          name: rocgw-metrics-token\n          key: token")
    );
    assert!(monitor.contains("- port: admin") && headless.contains("- name: admin"));
    assert!(monitor.contains("app.kubernetes.io/component: admin"));
    assert!(headless.contains("app.kubernetes.io/component: admin"));

    // rocgw with the ConfigMap's configuration (the test's scraper is on loopback, the pods'
    // network is 10.0.0.0/8).
    let tmp = scratch();
    let token = "it-secret-prometheus-token-4567";
    let cfg = materialize_kubernetes_config(&manifest, tmp.path(), token);
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("[\"10.0.0.0/8\"]", "[\"10.0.0.0/8\", \"127.0.0.0/8\"]");
    fs::write(&cfg, text).unwrap();
    let gw = Proc::with_config_and_free_ports(&cfg, &[]);
    let url = format!("http://{}/metrics", gw.admin);

    // Prometheus's side: the Secret mounted where credentials_file points (here, under tmp).
    let credentials_file = yaml_value(&scrape, "credentials_file");
    let mounted = tmp.path().join(credentials_file.trim_start_matches('/'));
    fs::create_dir_all(mounted.parent().unwrap()).unwrap();
    fs::copy(tmp.path().join("metrics/token"), &mounted).unwrap();
    let local = tmp.path().join("scrape.yml");
    fs::write(
        &local,
        scrape.replace(credentials_file, mounted.to_str().unwrap()),
    )
    .unwrap();
    let out = tool(
        "promtool",
        &["check", "config", local.to_str().unwrap()],
        Path::new("."),
    );
    assert!(out.status.success(), "{out:?}");
    // promtool does check the file: a missing one fails.
    fs::write(
        &local,
        scrape.replace(credentials_file, "/nonexistent/rocgw-token"),
    )
    .unwrap();
    let out = tool(
        "promtool",
        &["check", "config", local.to_str().unwrap()],
        Path::new("."),
    );
    assert!(!out.status.success(), "{out:?}");

    // The scrape as Prometheus sends it: `Authorization: <type> <file content, trimmed>`.
    assert_eq!(yaml_value(&scrape, "type"), "Bearer");
    assert_eq!(yaml_value(&scrape, "metrics_path"), "/metrics");
    let header = tmp.path().join("authorization.header");
    fs::write(
        &header,
        format!(
            "Authorization: Bearer {}\n",
            fs::read_to_string(&mounted).unwrap().trim()
        ),
    )
    .unwrap();
    let with = format!("@{}", header.display());
    let (status, body) = curl_get(&url, &["-H", &with]);
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("# TYPE rocgw_"), "{body}");
    let (status, _) = curl_get(&url, &[]);
    assert_eq!(status, "401", "without the token");
    let (status, _) = curl_get(
        &url,
        &["-H", "Authorization: Bearer not-the-prometheus-token"],
    );
    assert_eq!(status, "401", "with another token");
    // The token is admin_only: it calls no AMC, even from an allowed address.
    let token = fs::read_to_string(&mounted).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    let r = http(
        gw.gateway,
        "POST",
        "/annuaire",
        &[("Authorization", &bearer), ("Content-Type", "text/xml")],
        envelope11("<x/>").as_bytes(),
    );
    assert_eq!(r.header("x-rocgw-error"), Some("unauthorized"), "{r:?}");
    assert!(r.body.contains("admin listener only"), "{}", r.body);
}

/// `deploy/logrotate/rocgw`, run by `logrotate` itself against a gateway writing its audit log
/// (the file's path and its `postrotate` command pointed at this test's gateway): the record
/// written before the rotation stays in the rotated file, the next one starts a new file at the
/// path (0640 at most), and the SIGUSR1 of `postrotate` reloads no credentials.
#[test]
fn the_logrotate_file_rotates_a_running_gateways_audit_log() {
    let s = crate::sim::SimFixture::start(|_| {});
    let dir = scratch();
    let file = dir.path().join("audit.jsonl");
    let audit = format!("[audit]\nfile = \"{}\"\n", file.display());
    let (gw, _t) = crate::routing::gateway(&s, "", "", &audit);
    assert_eq!(
        crate::routing::call(&gw, "99999991", "idb", &[]).status,
        200
    );

    let shipped = fs::read_to_string(repo("deploy/logrotate/rocgw")).unwrap();
    // The unit's main process as systemd names it: here, this test's gateway.
    let main_pid = "systemctl show --property=MainPID --value rocgw.service";
    assert!(shipped.contains("/var/log/rocgw/audit.jsonl {") && shipped.contains(main_pid));
    let conf = dir.path().join("logrotate.conf");
    let text = shipped
        .replace("/var/log/rocgw/audit.jsonl", file.to_str().unwrap())
        .replace(main_pid, &format!("echo {}", gw.pid()));
    fs::write(&conf, text).unwrap();
    let state = dir.path().join("logrotate.state");
    // In /usr/sbin, which a user's PATH may lack.
    let logrotate = ["/usr/sbin/logrotate", "/sbin/logrotate"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("logrotate");
    let out = Command::new(logrotate)
        .args([
            "-v",
            "-f",
            "-s",
            state.to_str().unwrap(),
            conf.to_str().unwrap(),
        ])
        .output()
        .expect("logrotate (.ci/run installs it)");
    let rotation = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{rotation}");
    assert!(!file.exists(), "moved away: {rotation}");
    // The signal reached this gateway (through the MainPID line), and reloaded nothing.
    gw.logs_until(Duration::from_secs(10), |l| {
        l.contains("SIGUSR1: the audit file is looked at again")
    });

    assert_eq!(
        crate::routing::call(&gw, "99999991", "clc", &[]).status,
        200
    );
    let samples = scrape(gw.admin);
    assert!(samples.iter().any(|s| s.name == "rocgw_reloads_total"));
    for outcome in ["ok", "failed"] {
        let reloads = metric(&samples, "rocgw_reloads_total", &[("outcome", outcome)]);
        assert_eq!(reloads, 0.0, "{outcome}");
    }
    let new = audit_records(&file, 1);
    assert_eq!(new[0]["service"], "clc");
    let rotated: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("audit.jsonl-")
        })
        .collect();
    assert_eq!(rotated.len(), 1, "{rotated:?}; {rotation}");
    let old = audit_records(&rotated[0], 1);
    assert_eq!((old.len(), old[0]["service"].as_str()), (1, Some("idb")));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o137, 0, "at most 0640: {mode:o}");
}

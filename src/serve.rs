//! `rocgw serve`: finds the configuration (or falls back to the sandbox), loads and checks the
//! credentials, binds the listeners and runs until stopped.
//!
//! Start-up problems are one clear line and exit code 2 (`StartError`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admin::Admin;
use crate::config::{Config, LogFormat, Overrides, ServerConfig, DEFAULT_CONFIG_PATH};
use crate::gateway::Gateway;
use crate::runtime::Runtime;
use crate::{listener, logging, sandbox};

/// Options of `rocgw serve`.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
    pub data_dir: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub log_level: Option<String>,
}

/// A start-up failure: printed as one line, exit code 2.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `cert doctor`'s checks on the configuration in force: whatever doctor FAILs, serve refuses
/// (the first failure is the start-up line). Its warnings are the runtime's own to log.
fn preflight(cfg: &crate::config::Config) -> Result<(), StartError> {
    use crate::cert::doctor::{check, Expect, Level};
    let failed: Vec<_> = check(cfg, Expect::of(cfg.environment, false))
        .into_iter()
        .filter(|c| c.level == Level::Fail)
        .collect();
    let Some(first) = failed.first() else {
        return Ok(());
    };
    let more = match failed.len() {
        1 => String::new(),
        n => format!(" ({} more: `rocgw cert doctor` lists them)", n - 1),
    };
    Err(StartError(format!(
        "{}: {}{}{more}",
        first.what,
        first.detail,
        first
            .fix
            .as_deref()
            .map(|f| format!(" — fix: {f}"))
            .unwrap_or_default()
    )))
}

/// Where the configuration comes from.
enum Source {
    File(PathBuf),
    Sandbox,
}

fn find_config(explicit: Option<&Path>) -> Source {
    match explicit {
        // `--config` or ROCGW_CONFIG: must exist, never falls back to the sandbox.
        Some(p) => Source::File(p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            Source::File(PathBuf::from(DEFAULT_CONFIG_PATH))
        }
        None => Source::Sandbox,
    }
}

/// A line for humans on stdout (none in JSON mode: the same facts are logged).
fn say(line: &str) {
    if logging::json() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs `rocgw serve`. Returns only on a start-up failure.
pub async fn run(opts: ServeOptions) -> Result<(), StartError> {
    // Before anything slow (keys, the sandbox's PKI): SIGHUP or SIGUSR1 must never end it.
    let signals = crate::runtime::Signals::listen();
    let start = match find_config(opts.config.as_deref()) {
        Source::File(path) => production(&opts, &path).await?,
        Source::Sandbox => sandbox(&opts).await?,
    };
    serve(start, signals).await
}

/// What both start-ups hand to the one serving sequence.
struct Start {
    /// Credentials loaded and checked: a wrong certificate stops the start before anything
    /// listens or logs.
    runtime: Arc<Runtime>,
    admin: Arc<Admin>,
    admin_listener: AdminListener,
    sandbox: bool,
    /// The configuration file, logged once the listeners are bound.
    config_path: Option<PathBuf>,
    /// Printed once the gateway listens, with its address (the sandbox's sample curl).
    hello: Option<Box<dyn FnOnce(SocketAddr) -> String + Send>>,
}

/// The admin listener: bound and served with the gateway (production), or already serving
/// (the sandbox answers its health probe while the test PKI is generated).
enum AdminListener {
    Bound(tokio::net::TcpListener),
    Serving(tokio::task::JoinHandle<()>),
}

/// The configuration file loaded and its credentials checked, as `serve` and `check` do.
fn load(opts: &ServeOptions, path: &Path) -> Result<Arc<Runtime>, StartError> {
    let cfg = Config::load(path, &opts.overrides).map_err(|e| StartError(e.to_string()))?;
    logging::init(
        opts.log_format.unwrap_or(cfg.log_format),
        opts.log_level.as_deref().or(cfg.log_level.as_deref()),
    );
    let runtime = Runtime::start(cfg).map_err(StartError)?;
    preflight(runtime.config())?;
    runtime.report();
    Ok(runtime)
}

/// `rocgw check`: what `serve` does with its configuration file, without the listeners; returns
/// the file checked. No file anywhere is an error (the sandbox has nothing to check).
pub fn check(opts: &ServeOptions) -> Result<PathBuf, StartError> {
    match find_config(opts.config.as_deref()) {
        Source::File(path) => {
            // The gateway too: it opens `[audit] file` as serving would.
            Gateway::new(load(opts, &path)?, false).map_err(StartError)?;
            Ok(path)
        }
        Source::Sandbox => Err(StartError(format!(
            "no configuration to check: give --config FILE (or ROCGW_CONFIG); {DEFAULT_CONFIG_PATH} does not exist"
        ))),
    }
}

/// Production: the configuration file, its credentials, the admin listener.
async fn production(opts: &ServeOptions, path: &Path) -> Result<Start, StartError> {
    let runtime = load(opts, path)?;
    let admin_addr = runtime.config().server.admin_listen;
    let admin_l = listener::bind("server.admin_listen", admin_addr)
        .await
        .map_err(StartError)?;
    Ok(Start {
        runtime,
        admin: Admin::new(false),
        admin_listener: AdminListener::Bound(admin_l),
        sandbox: false,
        config_path: Some(path.to_path_buf()),
        hello: None,
    })
}

/// The sandbox: health first (the probe answers while the test PKI is generated), then the
/// test PKI, the in-process simulator, and a configuration written for them.
async fn sandbox(opts: &ServeOptions) -> Result<Start, StartError> {
    logging::init(
        opts.log_format.unwrap_or_default(),
        opts.log_level.as_deref(),
    );
    let dir = sandbox::data_dir(opts.data_dir.as_deref());
    say(&sandbox::banner(&dir));
    tracing::warn!("SANDBOX — TEST CERTIFICATES, NOT FOR PATIENTS");
    let admin = Admin::new(true);
    let admin_addr = opts
        .overrides
        .admin_listen
        .unwrap_or_else(|| crate::config::DEFAULT_ADMIN_LISTEN.parse().expect("valid"));
    if !admin_addr.ip().is_loopback() {
        return Err(StartError(format!(
            "--admin-listen: the sandbox listens on loopback only (got {admin_addr})"
        )));
    }
    let admin_l = listener::bind("server.admin_listen", admin_addr)
        .await
        .map_err(|e| StartError(sandbox::port_taken(e)))?;
    let admin_task = spawn_admin(admin.clone(), admin_l);
    sandbox::check_overrides(&opts.overrides).map_err(StartError)?;
    let (_, regenerated) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || sandbox::prepare_pki(&dir))
            .await
            .map_err(|e| StartError(format!("sandbox preparation failed: {e}")))?
            .map_err(StartError)?
    };
    if regenerated {
        tracing::info!(dir = %dir.join("pki").display(), "generated a new test PKI");
    }
    // The simulator's ports are free ones when the gateway's is (tests run in parallel).
    let ephemeral = opts.overrides.listen.is_some_and(|a| a.port() == 0);
    let sim = sandbox::start_sim(&dir.join("pki"), ephemeral)
        .await
        .map_err(StartError)?;
    announce("simulator admin", &format!("http://{}", sim.admin));
    let prep = sandbox::prepare(&dir, &opts.overrides, &sim.annuaire_url(), &sim.endpoints())
        .map_err(StartError)?;
    let (sample, header) = (prep.sample_request, prep.caller_header);
    Ok(Start {
        runtime: {
            let rt = Runtime::start(prep.config).map_err(StartError)?;
            preflight(rt.config())?;
            rt.report();
            rt
        },
        admin,
        admin_listener: AdminListener::Serving(admin_task),
        sandbox: true,
        config_path: None,
        hello: Some(Box::new(move |addr| {
            let mut t = format!(
                "Try it (sample IDB request for {}, signed as each structure of the test group):",
                crate::sim::SANDBOX_AMCS[0].1
            );
            for (id, _) in sandbox::SANDBOX_STRUCTURES {
                t.push_str("\n  ");
                t.push_str(&sandbox::curl_example(addr, &sample, &header, id));
            }
            t
        })),
    })
}

/// The one serving sequence: listeners bound, reload triggers started, the gateway served
/// until a stop signal and its drain.
async fn serve(start: Start, signals: crate::runtime::Signals) -> Result<(), StartError> {
    let Start {
        runtime,
        admin,
        admin_listener,
        sandbox,
        config_path,
        hello,
    } = start;
    let _ = admin
        .access
        .set(crate::access::Access::new(&runtime.config().access));
    let listeners = gateway_listeners(&runtime).await.map_err(|e| {
        StartError(if sandbox {
            sandbox::port_taken(e.0)
        } else {
            e.0
        })
    })?;
    if let Some(path) = &config_path {
        tracing::info!(config = %path.display(), "configuration loaded");
    }
    let admin_task = match admin_listener {
        AdminListener::Bound(l) => spawn_admin(admin.clone(), l),
        AdminListener::Serving(task) => task,
    };
    for l in &listeners {
        announce("gateway", &l.url());
    }
    let urls: Vec<String> = listeners.iter().map(listener::Bound::url).collect();
    if let (Some(hello), Some(addr)) = (hello, listeners.first().and_then(|l| l.addr())) {
        let hello = hello(addr);
        say(&hello);
        if logging::json() {
            tracing::info!("{hello}");
        }
    }
    runtime.spawn_watchers(signals);
    let gw = Gateway::new(runtime.clone(), sandbox).map_err(StartError)?;
    admin.attach(runtime.clone(), gw.directories());
    let gw_task = spawn_gateway(listeners, gw, admin.clone(), &runtime.config().server);
    admin.set_ready(true);
    crate::notify::ready(&format!("serving on {}", urls.join(", ")));
    // The gateway task ends after a stop signal and its drain; the admin listener (and its
    // failing readiness) lives until then.
    let _ = gw_task.await;
    admin_task.abort();
    Ok(())
}

fn local(l: &tokio::net::TcpListener) -> SocketAddr {
    l.local_addr().expect("bound listener has an address")
}

fn announce(what: &str, url: &str) {
    say(&format!("rocgw: {what} listening on {url}"));
    tracing::info!(url, "{what} listening");
}

/// The gateway's listeners: `listen` (plain, or mutual TLS with `[server.tls]`), and the Unix
/// socket when configured.
async fn gateway_listeners(runtime: &Runtime) -> Result<Vec<listener::Bound>, StartError> {
    let server = &runtime.config().server;
    let tcp = listener::bind("server.listen", server.listen)
        .await
        .map_err(StartError)?;
    let mut out = vec![match runtime.local_tls() {
        None => listener::Bound::Tcp(tcp),
        Some(tls) => listener::Bound::Tls(tcp, tls),
    }];
    if let Some((path, mode)) = &server.unix_socket {
        out.push(listener::bind_unix("server.unix_socket", path, *mode).map_err(StartError)?);
    }
    Ok(out)
}

fn spawn_admin(admin: Arc<Admin>, l: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    announce("admin", &format!("http://{}", local(&l)));
    tokio::spawn(listener::serve(
        l,
        Arc::new(move |req, peer| admin.clone().handle(req, peer)),
    ))
}

/// Serves the gateway on `listeners` until SIGTERM or SIGINT; then readiness goes false at once,
/// new connections are refused, and in-flight requests finish within the drain timeout.
fn spawn_gateway(
    listeners: Vec<listener::Bound>,
    gw: Gateway,
    admin: Arc<Admin>,
    server: &ServerConfig,
) -> tokio::task::JoinHandle<()> {
    let (drain, limits) = (server.drain_timeout, server.limits);
    let gw = Arc::new(gw);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        admin.set_ready(false);
        crate::notify::stopping();
        tracing::info!(
            drain_s = drain.as_secs_f64(),
            "stopping: no new requests, finishing the ones in flight"
        );
        let _ = tx.send(true);
    });
    // Boxed at once: the request's future (a few KiB of state) is then moved as a pointer
    // through the listener instead of copied at each hand-over. Written into a box made
    // first, so that it is built there rather than built and then copied (a third less
    // `memcpy` per request by callgrind).
    // The gateway's request slots, also the listeners' gate: a request beyond them waits as
    // the bytes of its head, before it is parsed.
    let gate = gw.gate();
    let handler = Arc::new(move |req, peer| {
        Box::into_pin(Box::write(Box::new_uninit(), gw.clone().handle(req, peer)))
    });
    let serving: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            tokio::spawn(listener::serve_until(
                l,
                limits,
                handler.clone(),
                rx.clone(),
                drain,
                gate.clone(),
            ))
        })
        .collect();
    tokio::spawn(async move {
        for s in serving {
            let _ = s.await;
        }
        tracing::info!("stopped");
    })
}

/// SIGTERM (service managers, Kubernetes) or SIGINT (Ctrl-C).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

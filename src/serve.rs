//! `rocgw serve`: finds the configuration (or falls back to the sandbox), loads and checks the
//! credentials, binds the listeners and runs until stopped.
//!
//! Start-up problems are one clear line and exit code 2 (`StartError`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::admin::Admin;
use crate::config::{Config, LogFormat, Overrides, DEFAULT_CONFIG_PATH};
use crate::identity::{fmt_time, now_unix, Identity, Role, EXPIRY_WARNING_DAYS};
use crate::proxy::Gateway;
use crate::trust::Anchors;
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

/// Loaded credentials, checked.
pub struct Credentials {
    pub auth_cli: Identity,
    pub sign: Identity,
    pub amc_anchors: Anchors,
    pub annuaire_anchors: Anchors,
}

/// Loads and checks identities and anchors named by the configuration.
pub fn load_credentials(cfg: &Config) -> Result<Credentials, String> {
    let now = now_unix();
    let auth_cli = Identity::load(&cfg.identities.auth_cli, Role::AuthCli, now).map_err(|e| e.0)?;
    let sign = Identity::load(&cfg.identities.sign, Role::Sign, now).map_err(|e| e.0)?;
    let amc_anchors = Anchors::load("trust.amc_anchors", &cfg.trust.amc_anchors, now)?;
    let annuaire_anchors =
        Anchors::load("trust.annuaire_anchors", &cfg.trust.annuaire_anchors, now)?;
    Ok(Credentials {
        auth_cli,
        sign,
        amc_anchors,
        annuaire_anchors,
    })
}

fn report_credentials(c: &Credentials) {
    let now = now_unix();
    for id in [&c.auth_cli, &c.sign] {
        let days = id.days_left(now);
        tracing::info!(
            identity = id.role.as_str(),
            subject = %id.info.subject,
            serial = %id.info.serial,
            not_after = %fmt_time(id.info.not_after),
            days_left = days,
            "identity loaded"
        );
        if days < EXPIRY_WARNING_DAYS {
            tracing::warn!(
                identity = id.role.as_str(),
                days_left = days,
                "certificate expires in less than {EXPIRY_WARNING_DAYS} days: order its renewal"
            );
        }
        if id.info.common_name.as_deref() != Some(id.role.recommended_cn()) {
            tracing::warn!(
                identity = id.role.as_str(),
                cn = id.info.common_name.as_deref().unwrap_or(""),
                recommended = id.role.recommended_cn(),
                "certificate CN differs from the recommended service name"
            );
        }
    }
    if c.auth_cli.info.structure_id != c.sign.info.structure_id {
        tracing::warn!(
            auth_cli = c.auth_cli.info.structure_id.as_deref().unwrap_or("?"),
            sign = c.sign.info.structure_id.as_deref().unwrap_or("?"),
            "AUTH_CLI and SIGN certificates name different structures"
        );
    }
    tracing::info!(
        amc = c.amc_anchors.len(),
        annuaire = c.annuaire_anchors.len(),
        "trust anchors loaded"
    );
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs `rocgw serve`. Returns only on a start-up failure.
pub async fn run(opts: ServeOptions) -> Result<(), StartError> {
    match find_config(opts.config.as_deref()) {
        Source::File(path) => {
            let cfg =
                Config::load(&path, &opts.overrides).map_err(|e| StartError(e.to_string()))?;
            logging::init(
                opts.log_format.unwrap_or(cfg.log_format),
                opts.log_level.as_deref().or(cfg.log_level.as_deref()),
            );
            let creds = load_credentials(&cfg).map_err(StartError)?;
            report_credentials(&creds);
            let admin = Admin::new(false);
            let admin_l = listener::bind("server.admin_listen", cfg.server.admin_listen)
                .await
                .map_err(StartError)?;
            let gw_l = listener::bind("server.listen", cfg.server.listen)
                .await
                .map_err(StartError)?;
            tracing::info!(config = %path.display(), "configuration loaded");
            let admin_task = spawn_admin(admin.clone(), admin_l);
            announce("gateway", local(&gw_l));
            let gw_task = spawn_gateway(gw_l, Gateway::new(&cfg, false));
            admin.set_ready(true);
            let _ = tokio::join!(admin_task, gw_task);
        }
        Source::Sandbox => {
            logging::init(
                opts.log_format.unwrap_or_default(),
                opts.log_level.as_deref(),
            );
            let dir = sandbox::data_dir(opts.data_dir.as_deref());
            say(&sandbox::banner(&dir));
            tracing::warn!("SANDBOX — TEST CERTIFICATES, NOT FOR PATIENTS");
            // Health first: the probe answers while the test PKI is being generated.
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
                .map_err(StartError)?;
            let admin_task = spawn_admin(admin.clone(), admin_l);
            let prep = {
                let dir = dir.clone();
                let ov = opts.overrides.clone();
                tokio::task::spawn_blocking(move || sandbox::prepare(&dir, &ov))
                    .await
                    .map_err(|e| StartError(format!("sandbox preparation failed: {e}")))?
                    .map_err(StartError)?
            };
            if prep.regenerated {
                tracing::info!(dir = %dir.join("pki").display(), "generated a new test PKI");
            }
            let creds = load_credentials(&prep.config).map_err(StartError)?;
            report_credentials(&creds);
            let gw_l = listener::bind("server.listen", prep.config.server.listen)
                .await
                .map_err(StartError)?;
            let gw_addr = local(&gw_l);
            announce("gateway", gw_addr);
            say(&format!(
                "Try it (sample IDB request for {}):\n  {}",
                sandbox::AMCS[0].1,
                sandbox::curl_example(gw_addr, &prep.sample_request)
            ));
            let gw_task = spawn_gateway(gw_l, Gateway::new(&prep.config, true));
            admin.set_ready(true);
            let _ = tokio::join!(admin_task, gw_task);
        }
    }
    Ok(())
}

fn local(l: &tokio::net::TcpListener) -> SocketAddr {
    l.local_addr().expect("bound listener has an address")
}

fn announce(what: &str, addr: SocketAddr) {
    say(&format!("rocgw: {what} listening on http://{addr}"));
    tracing::info!(%addr, "{what} listening");
}

fn spawn_admin(admin: Arc<Admin>, l: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    announce("admin", local(&l));
    tokio::spawn(listener::serve(
        l,
        Arc::new(move |req, peer| admin.clone().handle(req, peer)),
    ))
}

fn spawn_gateway(l: tokio::net::TcpListener, gw: Gateway) -> tokio::task::JoinHandle<()> {
    let gw = Arc::new(gw);
    tokio::spawn(listener::serve(
        l,
        Arc::new(move |req, peer| gw.clone().handle(req, peer)),
    ))
}

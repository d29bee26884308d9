//! `rocgw load`: its options, read into [`crate::load::Options`], and its exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::block_on;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The gateway to load (its SIH listener).
    #[arg(long, default_value = "127.0.0.1:8580")]
    pub target: SocketAddr,
    /// Traffic mix: `AMC/service[=weight]` (or `annuaire/AMC[=weight]`: a lookup through the
    /// `/annuaire` pass-through), comma-separated [default: the sandbox's AMCs].
    #[arg(long)]
    pub mix: Option<String>,
    /// Read the mix from a file (one `AMC/service[=weight]` per line, `#` comments).
    #[arg(long, conflicts_with = "mix")]
    pub mix_file: Option<PathBuf>,
    /// Body template for a service, `SERVICE=FILE` (repeatable); placeholders {{nir}},
    /// {{birthdate}}, {{date}}, {{uuid}}, {{seq}}, {{amc}}, {{service}}, {{amount}}.
    #[arg(long = "template", value_name = "SERVICE=FILE")]
    pub templates: Vec<String>,
    /// Closed loop: this many requests in flight, each sent when the previous answer came.
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<usize>,
    /// Open loop: this many requests per second on a fixed schedule (latency measured from the
    /// intended send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to measure (e.g. 30s, 2m) [default: 10s unless --requests].
    #[arg(long)]
    pub duration: Option<String>,
    /// Stop after this many measured requests.
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Traffic sent before measuring starts (not in the figures).
    #[arg(long, default_value = "2s")]
    pub warmup: String,
    /// Connection cap [default: the concurrency, or 64 in open loop].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Open a new connection for every request (measures connection set-up too).
    #[arg(long)]
    pub new_connection_per_request: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// Write the report as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a one-page HTML report (latency over time and distribution plots).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Exit 1 when the error rate exceeds this fraction (e.g. 0.01).
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Exit 1 when the p99 latency exceeds this duration (e.g. 250ms).
    #[arg(long)]
    pub max_p99: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Reach the gateway through its Unix socket (`[server] unix_socket`) instead of TCP.
    #[arg(long, conflicts_with = "tls_ca")]
    pub unix_socket: Option<PathBuf>,
    /// HTTPS to the target (`[server.tls]`): the CA that issued the gateway's local certificate.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM chain) for `[server.tls]`; with --tls-key.
    #[arg(long, requires = "tls_ca", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the gateway's local certificate must carry.
    #[arg(long, default_value = "localhost")]
    pub tls_name: String,
    /// Bearer token (`[access]`) from this environment variable; never on the command line.
    #[arg(long, conflicts_with = "token_file")]
    pub token_env: Option<String>,
    /// Bearer token (`[access]`) from this file.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

fn load_options(a: LoadArgs) -> Result<crate::load::Options, String> {
    use crate::load::{parse_duration, parse_mix, Mode, Options, Stop};
    let mix = match (&a.mix, &a.mix_file) {
        (Some(m), _) => parse_mix(m).map_err(|e| format!("--mix: {e}"))?,
        (_, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("--mix-file {}: {e}", f.display()))?;
            parse_mix(&text).map_err(|e| format!("--mix-file {}: {e}", f.display()))?
        }
        _ => parse_mix(crate::load::DEFAULT_MIX)?,
    };
    let mut templates = std::collections::BTreeMap::new();
    for t in &a.templates {
        let (service, file) = t
            .split_once('=')
            .ok_or_else(|| format!("--template {t:?}: expected SERVICE=FILE"))?;
        let text = std::fs::read_to_string(file).map_err(|e| format!("--template {t:?}: {e}"))?;
        templates.insert(service.to_ascii_lowercase(), text);
    }
    let mode = match (a.concurrency, a.rate) {
        (_, Some(r)) if r > 0.0 && r.is_finite() => Mode::Open { rate: r },
        (_, Some(r)) => return Err(format!("--rate {r}: must be a positive number")),
        (Some(0), _) => return Err("--concurrency must be at least 1".into()),
        (Some(c), _) => Mode::Closed { concurrency: c },
        (None, None) => Mode::Closed { concurrency: 8 },
    };
    let stop = match (&a.duration, a.requests) {
        (_, Some(n)) => Stop::Requests(n),
        (Some(d), _) => Stop::After(parse_duration(d).map_err(|e| format!("--duration {e}"))?),
        (None, None) => Stop::After(std::time::Duration::from_secs(10)),
    };
    let connections = a.connections.unwrap_or(match mode {
        Mode::Closed { concurrency } => concurrency,
        Mode::Open { .. } => 64,
    });
    let transport = match (&a.unix_socket, &a.tls_ca) {
        (Some(path), _) => crate::load::Transport::Unix(path.clone()),
        (None, Some(ca)) => crate::load::tls_transport(
            ca,
            a.tls_cert.as_deref().zip(a.tls_key.as_deref()),
            &a.tls_name,
        )?,
        (None, None) => crate::load::Transport::Tcp,
    };
    let token = match (&a.token_env, &a.token_file) {
        (Some(var), _) => Some(zeroize::Zeroizing::new(
            std::env::var(var)
                .map_err(|_| format!("--token-env: {var} is not set"))?
                .trim()
                .to_string(),
        )),
        (None, Some(f)) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(f)
                .map_err(|e| format!("--token-file {}: {e}", f.display()))?
                .trim()
                .to_string(),
        )),
        (None, None) => None,
    };
    let authorization = token
        .map(|t| {
            let mut v = http::header::HeaderValue::from_str(&format!("Bearer {}", t.as_str()))
                .map_err(|_| "the token is not a valid header value".to_string())?;
            v.set_sensitive(true);
            Ok::<_, String>(v)
        })
        .transpose()?;
    Ok(Options {
        target: a.target,
        transport,
        authorization,
        mix,
        templates,
        mode,
        stop,
        warmup: parse_duration(&a.warmup).map_err(|e| format!("--warmup {e}"))?,
        connections,
        new_connection_per_request: a.new_connection_per_request,
        timeout: parse_duration(&a.timeout).map_err(|e| format!("--timeout {e}"))?,
        progress: !a.quiet,
        json: a.json,
        html: a.html,
        max_error_rate: a.max_error_rate,
        max_p99: a
            .max_p99
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| format!("--max-p99 {e}"))?,
    })
}

/// `rocgw load`: exit 0 when every threshold held, 1 when one was exceeded, 2 on an error.
pub(super) fn run_load(a: LoadArgs) -> ExitCode {
    let opts = match load_options(a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rocgw: load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut passed = true;
    let code = block_on(
        async {
            let report = crate::load::run(opts).await?;
            print!("{}", report.to_text());
            passed = report.passed();
            Ok(())
        },
        None,
    );
    if code == ExitCode::SUCCESS && !passed {
        return ExitCode::from(1);
    }
    code
}

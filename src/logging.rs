//! Logging: tracing to stderr, human-readable by default or JSON lines (`--log-format json`).
//! Request bodies are never logged; `RUST_LOG` or `--log-level` set the filter.
//!
//! In JSON mode every line rocgw writes while serving is one JSON object with `timestamp`,
//! `level`, `target` (`rocgw::audit` for the audit records logged without `[audit] file`) and
//! `message`, the fatal start-up line included ([`fatal`]); the human lines `serve` prints on
//! stdout are left out (the same facts are logged).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The format of the subscriber installed by [`init`].
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The audit records logged without `[audit] file` are a record, not chatter: a level that does
/// not name `rocgw::audit` keeps them (`warn` quiets everything else). `rocgw::audit=off` in
/// the level turns them off, knowingly.
fn with_audit(filter: EnvFilter, spec: &str) -> EnvFilter {
    if spec.contains("rocgw::audit") {
        return filter;
    }
    match "rocgw::audit=info".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    }
}

/// Installs the global subscriber once; later calls are ignored.
pub fn init(format: LogFormat, level: Option<&str>) {
    // The level given, else RUST_LOG, else `info` (an empty one counts as none).
    let spec = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "info".to_string());
    let filter = with_audit(
        EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info")),
        &spec,
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .with_target(true)
            .json()
            .flatten_event(true)
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FORMAT.set(format);
    }
}

/// True when the logs are JSON lines: `serve` then prints nothing for humans on stdout.
pub fn json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// The one line of a fatal error (exit code 2): an `ERROR` event in JSON mode, else
/// `rocgw: error: …` on stderr. `wanted` is the format asked on the command line, used when
/// the logs were not started yet (e.g. the configuration file could not be read).
pub fn fatal(message: &str, wanted: Option<LogFormat>) {
    if FORMAT.get().is_none() && wanted == Some(LogFormat::Json) {
        init(LogFormat::Json, Some("error"));
    }
    if json() {
        tracing::error!(target: "rocgw", exit_code = 2, "{message}");
    } else {
        eprintln!("rocgw: error: {message}");
    }
}

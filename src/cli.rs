//! The command line: `rocgw [serve|check|sim|pki|cert|load|completions|man]`. With no command,
//! `rocgw` serves (the sandbox when no configuration exists). Exit codes: 0 success, 2 start-up
//! or usage error (`load`: 1 when a threshold is exceeded or no request succeeded).
//!
//! One file per family: `cert` (certificate tooling), `load` (the load generator's options),
//! `docs` (shell completions and the man page).

mod cert;
mod docs;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};
use crate::serve::{self, ServeOptions};

pub use cert::{CertCommand, DoctorArgs, PasswordArgs};
pub use docs::{man_page, DocsArgs, ManArgs};
pub use load::LoadArgs;

/// What `rocgw` with no command does, in `--help`: fine on a laptop, surprising on a server.
const NO_COMMAND: &str = "Without a command, rocgw runs `rocgw serve`: the configuration file \
($ROCGW_CONFIG, else /etc/rocgw/rocgw.toml) when there is one, else the SANDBOX (a generated \
TEST PKI, test AMCs, loopback only). On a server, name the file: `rocgw serve --config FILE`, \
and check it first with `rocgw check --config FILE`.";

#[derive(Debug, Parser)]
#[command(
    name = "rocgw",
    version = crate::version::long(),
    about = "ROC gateway: SIH ⇄ Annuaire AMC and AMC web services",
    after_help = NO_COMMAND
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter (e.g. `info`, `rocgw=debug`); default from RUST_LOG, else `info`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the sandbox when no configuration file exists).
    Serve(ServeArgs),
    /// Check a configuration as `serve` loads it (files, certificates, chains, CRLs, the
    /// environment), without listening: exit 0 when `serve` would start, 2 with serve's own
    /// error line when not.
    Check(CheckArgs),
    /// Run the AMC and Annuaire simulator (the sandbox's test AMCs when no config is given).
    Sim(SimArgs),
    /// Test PKI tooling.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Certificate tooling: inspect, doctor, csr, bundle.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Load generator: ROC traffic at a gateway, live progress, latency report.
    Load(Box<LoadArgs>),
    /// Health probe for container HEALTHCHECKs: GET an admin URL; exit 0 on 2xx, else 1.
    Probe(crate::probe::ProbeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions(DocsArgs),
    /// Print the manual page (roff) on stdout: `rocgw man > rocgw.1; man ./rocgw.1`; with
    /// --dir, write the pages of every command.
    Man(ManArgs),
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Configuration file [default: $ROCGW_CONFIG, else /etc/rocgw/rocgw.toml, else sandbox].
    #[arg(long, env = "ROCGW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Gateway listen address (overrides server.listen; port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Admin listen address (overrides server.admin_listen; port 0 picks a free port).
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Sandbox data folder [default: $ROCGW_DATA_DIR, else ~/.local/share/rocgw/sandbox].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct CheckArgs {
    /// Configuration file [default: $ROCGW_CONFIG, else /etc/rocgw/rocgw.toml].
    #[arg(long, env = "ROCGW_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub struct SimArgs {
    /// Simulator configuration file (see config/sim.example.toml) [default: the sandbox's
    /// test AMCs over the sandbox test PKI].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Sandbox data folder, for the test PKI when no config is given [default: as `serve`].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Generate the complete test PKI (IGC-Santé TEST, IGC OSI TEST, CRLs, negative fixtures).
    Init {
        /// Target folder (created if missing; must be empty unless --force).
        #[arg(long)]
        dir: PathBuf,
        /// Replace a previous test PKI in this folder.
        #[arg(long)]
        force: bool,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    match cli.command {
        None => run_serve(ServeArgs::default_from_env(), format, cli.log_level),
        Some(Command::Serve(a)) => run_serve(a, format, cli.log_level),
        Some(Command::Check(a)) => run_check(a, format, cli.log_level),
        Some(Command::Pki(PkiCommand::Init { dir, force })) => {
            match crate::pki::init(&dir, force) {
                Ok(m) => {
                    println!(
                    "test PKI written to {} ({} files, see {}); TEST CERTIFICATES, NOT FOR PATIENTS",
                    dir.display(),
                    m.files.len(),
                    dir.join(crate::pki::MANIFEST).display()
                );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rocgw: pki init: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Command::Sim(a)) => {
            crate::logging::init(format.unwrap_or_default(), cli.log_level.as_deref());
            block_on(crate::sandbox::run_sim(a.config, a.data_dir), format)
        }
        Some(Command::Cert(c)) => cert::run_cert(c),
        Some(Command::Load(a)) => load::run_load(*a),
        Some(Command::Completions(a)) => docs::completions(&a),
        Some(Command::Man(a)) => docs::man(&a),
        Some(Command::Probe(a)) => crate::probe::run(&a),
    }
}

impl ServeArgs {
    /// `rocgw` with no command behaves like `rocgw serve`, including ROCGW_CONFIG.
    fn default_from_env() -> ServeArgs {
        ServeArgs {
            config: std::env::var_os("ROCGW_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            ..ServeArgs::default()
        }
    }
}

fn run_serve(a: ServeArgs, log_format: Option<LogFormat>, log_level: Option<String>) -> ExitCode {
    let opts = ServeOptions {
        config: a.config,
        overrides: Overrides {
            listen: a.listen,
            admin_listen: a.admin_listen,
        },
        data_dir: a.data_dir,
        log_format,
        log_level,
    };
    block_on(
        async { serve::run(opts).await.map_err(|e| e.to_string()) },
        log_format,
    )
}

/// `rocgw check`: serve's loading code, no listener; one line on stdout when the file is fine.
fn run_check(a: CheckArgs, log_format: Option<LogFormat>, log_level: Option<String>) -> ExitCode {
    let opts = ServeOptions {
        config: a.config,
        log_format,
        log_level,
        ..ServeOptions::default()
    };
    block_on(
        async {
            let path = serve::check(&opts).map_err(|e| e.to_string())?;
            if crate::logging::json() {
                tracing::info!(config = %path.display(), "configuration OK: serve would start");
            } else {
                println!(
                    "rocgw check: {}: configuration OK, serve would start",
                    path.display()
                );
            }
            Ok(())
        },
        log_format,
    )
}

/// Runs `f` on a multi-threaded runtime; an error is one line (JSON in JSON mode, see
/// [`crate::logging::fatal`]) and exit code 2.
fn block_on(
    f: impl std::future::Future<Output = Result<(), String>>,
    log_format: Option<LogFormat>,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::logging::fatal(&format!("cannot start the async runtime: {e}"), log_format);
            return ExitCode::from(2);
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::logging::fatal(&e, log_format);
            ExitCode::from(2)
        }
    }
}

//! The command line: `rocgw [serve|sim|pki|cert|load]`. With no command, `rocgw` serves (the
//! sandbox when no configuration exists). Exit codes: 0 success, 2 start-up or usage error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Overrides};
use crate::serve::{self, ServeOptions};

#[derive(Debug, Parser)]
#[command(
    name = "rocgw",
    version,
    about = "ROC gateway: SIH ⇄ Annuaire AMC and AMC web services"
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
    /// Run the AMC and Annuaire simulator (the sandbox's test AMCs when no config is given).
    Sim(SimArgs),
    /// Test PKI tooling.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Certificate tooling (inspect, doctor, csr, bundle).
    Cert,
    /// Load generator.
    Load,
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

fn not_yet(what: &str) -> ExitCode {
    eprintln!("rocgw: `{what}` is not yet available in this version");
    ExitCode::from(2)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => run_serve(ServeArgs::default_from_env(), cli.log_format, cli.log_level),
        Some(Command::Serve(a)) => run_serve(a, cli.log_format, cli.log_level),
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
            crate::logging::init(cli.log_format.unwrap_or_default(), cli.log_level.as_deref());
            block_on(crate::sim::run(a.config, a.data_dir))
        }
        Some(Command::Cert) => not_yet("cert"),
        Some(Command::Load) => not_yet("load"),
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
    block_on(async { serve::run(opts).await.map_err(|e| e.to_string()) })
}

/// Runs `f` on a multi-threaded runtime; an error is one line on stderr and exit code 2.
fn block_on(f: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rocgw: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rocgw: error: {e}");
            ExitCode::from(2)
        }
    }
}

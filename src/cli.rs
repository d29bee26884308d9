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
    /// Certificate tooling: inspect, doctor, csr, bundle.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Load generator: ROC traffic at a gateway, live progress, latency report.
    Load(Box<LoadArgs>),
    /// Health probe for container HEALTHCHECKs: GET an admin URL; exit 0 on 2xx, else 1.
    Probe(crate::probe::ProbeArgs),
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

/// A password given by the name of a variable or of a file (never on the command line).
#[derive(Debug, Args, Default)]
pub struct PasswordArgs {
    /// Environment variable holding the PKCS#12 password.
    #[arg(long)]
    pub password_env: Option<String>,
    /// File holding the PKCS#12 password (trailing newline ignored).
    #[arg(long, conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
}

impl PasswordArgs {
    fn get(&self) -> Result<Option<zeroize::Zeroizing<String>>, String> {
        if let Some(v) = &self.password_env {
            return std::env::var(v)
                .map(|p| Some(zeroize::Zeroizing::new(p)))
                .map_err(|_| format!("--password-env {v}: the variable is not set"));
        }
        if let Some(f) = &self.password_file {
            return std::fs::read_to_string(f)
                .map(|p| {
                    Some(zeroize::Zeroizing::new(
                        p.trim_end_matches(['\r', '\n']).to_string(),
                    ))
                })
                .map_err(|e| format!("--password-file {}: {e}", f.display()));
        }
        Ok(None)
    }
}

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Show what a certificate file holds (PKCS#12, PEM or DER) and the ROC role it fits.
    Inspect {
        file: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check everything rocgw needs before going live; exit 0 when ready (warnings allowed),
    /// 2 when not (--strict: warnings exit 1). With --candidate: a renewed certificate.
    Doctor(DoctorArgs),
    /// Make a new RSA key and a CSR with the ORG subject layout and the recommended CN.
    Csr {
        #[arg(long, value_parser = ["auth-cli", "sign"])]
        role: String,
        /// `1` + FINESS or `3` + SIRET (the certificate's OU).
        #[arg(long)]
        structure_id: String,
        /// Raison sociale (the certificate's O).
        #[arg(long)]
        org: String,
        /// Département (the certificate's ST), e.g. "Bouches-du-Rhône (13)".
        #[arg(long, default_value = "")]
        state: String,
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        #[arg(long)]
        key_out: PathBuf,
        #[arg(long)]
        csr_out: PathBuf,
    },
    /// Assemble the PKCS#12 rocgw loads from a key, its certificate and the CA chain.
    Bundle {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        cert: PathBuf,
        /// CA certificate files (ACI-EL-ORG, root); repeatable.
        #[arg(long)]
        chain: Vec<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

/// `rocgw cert doctor` options.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Configuration file [default: $ROCGW_CONFIG, else /etc/rocgw/rocgw.toml, else the
    /// sandbox's].
    #[arg(long, env = "ROCGW_CONFIG")]
    config: Option<PathBuf>,
    /// Expect TEST IGC-Santé certificates when the configuration sets no `environment`
    /// (integration platforms): no warning for them. A configured `environment` wins.
    #[arg(long)]
    allow_test_pki: bool,
    /// Sandbox data folder (when no configuration is given).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Warnings are fatal: exit 1 on a WARN line (default: 0 unless a line FAILs, exit 2).
    #[arg(long)]
    strict: bool,
    /// A renewed certificate to check before it is swapped in: a PKCS#12 file, or a PEM
    /// chain with --candidate-key. Checked like the identities, and for the same structure.
    #[arg(long, requires = "role")]
    candidate: Option<PathBuf>,
    /// The PEM private key of --candidate.
    #[arg(long, requires = "candidate")]
    candidate_key: Option<PathBuf>,
    /// What --candidate is.
    #[arg(long, value_parser = ["auth-cli", "sign"], requires = "candidate")]
    role: Option<String>,
    /// The structure --candidate renews [default: the gateway's default structure].
    #[arg(long, requires = "candidate")]
    structure: Option<String>,
    /// Password file of --candidate [default: the configured identity's password].
    #[arg(long, requires = "candidate")]
    password_file: Option<PathBuf>,
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
            block_on(crate::sandbox::run_sim(a.config, a.data_dir))
        }
        Some(Command::Cert(c)) => run_cert(c),
        Some(Command::Load(a)) => run_load(*a),
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
            let mut v = hyper::header::HeaderValue::from_str(&format!("Bearer {}", t.as_str()))
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
fn run_load(a: LoadArgs) -> ExitCode {
    let opts = match load_options(a) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rocgw: load: {e}");
            return ExitCode::from(2);
        }
    };
    let mut passed = true;
    let code = block_on(async {
        let report = crate::load::run(opts).await?;
        print!("{}", report.to_text());
        passed = report.passed();
        Ok(())
    });
    if code == ExitCode::SUCCESS && !passed {
        return ExitCode::from(1);
    }
    code
}

fn run_cert(c: CertCommand) -> ExitCode {
    let fail = |e: String| {
        eprintln!("rocgw: cert: {e}");
        ExitCode::from(2)
    };
    match c {
        CertCommand::Inspect {
            file,
            password,
            json,
        } => {
            let pw = match password.get() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            match crate::cert::inspect(&file, pw.as_deref().map(String::as_str)) {
                Ok(i) if json => {
                    println!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(i) => {
                    print!("{}", i.to_text());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        CertCommand::Doctor(args) => run_doctor(args),
        CertCommand::Csr {
            role,
            structure_id,
            org,
            state,
            bits,
            key_out,
            csr_out,
        } => {
            let role = if role == "sign" {
                crate::identity::Role::Sign
            } else {
                crate::identity::Role::AuthCli
            };
            match crate::cert::csr(role, &structure_id, &org, &state, bits, &key_out, &csr_out) {
                Ok(m) => {
                    println!("{m}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        CertCommand::Bundle {
            key,
            cert,
            chain,
            out,
            password,
        } => {
            let pw = match password.get() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return fail(
                        "give the new file's password with --password-env or --password-file"
                            .into(),
                    )
                }
                Err(e) => return fail(e),
            };
            match crate::cert::bundle(&key, &cert, &chain, &out, &pw) {
                Ok(m) => {
                    println!("{m}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

/// `rocgw cert doctor`: the configuration's checks, or a candidate's.
fn run_doctor(args: DoctorArgs) -> ExitCode {
    let DoctorArgs {
        config,
        allow_test_pki,
        data_dir,
        strict,
        candidate,
        candidate_key,
        role,
        structure,
        password_file,
    } = args;
    let (path, sandbox) = match config {
        Some(p) => (p, false),
        None if std::path::Path::new(crate::config::DEFAULT_CONFIG_PATH).exists() => {
            (PathBuf::from(crate::config::DEFAULT_CONFIG_PATH), false)
        }
        None => (
            crate::sandbox::data_dir(data_dir.as_deref()).join("rocgw-sandbox.toml"),
            true,
        ),
    };
    println!("rocgw cert doctor: {}", path.display());
    let test_pki = sandbox || allow_test_pki;
    let checks = match candidate {
        Some(p) => {
            let c = crate::cert::candidate::Candidate {
                path: p,
                key: candidate_key,
                role: match role.as_deref() {
                    Some("auth-cli") => crate::identity::Role::AuthCli,
                    _ => crate::identity::Role::Sign,
                },
                structure,
                password_file,
            };
            crate::cert::candidate::check(&path, &c, test_pki)
        }
        None => crate::cert::doctor::run(&path, test_pki),
    };
    for c in &checks {
        println!("{c}");
    }
    let code = crate::cert::doctor::exit_code(&checks, strict);
    let warned = checks
        .iter()
        .any(|c| c.level == crate::cert::doctor::Level::Warn);
    println!(
        "{}",
        match (code, warned) {
            (0, false) => "ready",
            (0, true) => "ready, with warnings",
            (1, _) => "ready, with warnings (fatal under --strict)",
            _ => "NOT ready: fix the FAIL lines",
        }
    );
    ExitCode::from(code)
}

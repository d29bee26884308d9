//! `rocgw cert …`: inspect, doctor, csr, bundle.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

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
        /// The file to read: PKCS#12 (.p12/.pfx), PEM (certificates, chain) or DER.
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
        /// The certificate asked for: `auth-cli` (mutual TLS with the annuaire) or `sign`
        /// (the assertions' signature).
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
        /// RSA key size in bits: 2048 or 4096.
        #[arg(long, default_value_t = 2048)]
        bits: u32,
        /// Where to write the new private key (PEM, mode 0600; an existing file is not replaced).
        #[arg(long)]
        key_out: PathBuf,
        /// Where to write the CSR (PEM) for the certification authority (not replaced either).
        #[arg(long)]
        csr_out: PathBuf,
    },
    /// Assemble the PKCS#12 rocgw loads from a key, its certificate and the CA chain.
    Bundle {
        /// The RSA private key (PEM, PKCS#8 or PKCS#1), e.g. made with `rocgw cert csr`.
        #[arg(long)]
        key: PathBuf,
        /// The certificate the authority issued for it (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// CA certificate files (ACI-EL-ORG, root); repeatable.
        #[arg(long)]
        chain: Vec<PathBuf>,
        /// The PKCS#12 file to write (its password from --password-env or --password-file).
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

pub(super) fn run_cert(c: CertCommand) -> ExitCode {
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

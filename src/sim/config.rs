//! The simulator's configuration (`rocgw sim --config FILE`) and the ready sandbox table of
//! test AMCs: kept apart from the running simulator so the file format reads on its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Faults;
use crate::config::{parse_toml, ConfigError};

/// A certificate chain (leaf first) and its key, as PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertKey {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The IGC-Santé authorities the simulator trusts for AUTH_CLI (annuaire) and SIGN (assertions).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgcSante {
    pub anchors: Vec<PathBuf>,
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    #[serde(default)]
    pub crls: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnuaireCfg {
    pub listen: SocketAddr,
    #[serde(flatten)]
    pub tls: CertKey,
    /// AMCs the annuaire knows besides the simulated ones, with any endpoints (an AMC served
    /// elsewhere, or a deliberately bad answer: an `http` or non-OSI address).
    #[serde(default)]
    pub entries: Vec<DirectoryEntry>,
}

/// One annuaire entry: AMC number, label, service → address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryEntry {
    pub numero: String,
    #[serde(default)]
    pub libelle: String,
    pub services: BTreeMap<String, String>,
}

/// The server certificates an AMC can present (fault injection picks one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificates {
    pub valid: CertKey,
    pub expired: Option<CertKey>,
    pub revoked: Option<CertKey>,
    pub unknown_ca: Option<CertKey>,
    pub wrong_host: Option<CertKey>,
}

/// One simulated AMC.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmcCfg {
    pub numero: String,
    #[serde(default)]
    pub libelle: String,
    pub listen: SocketAddr,
    #[serde(default = "default_services")]
    pub services: Vec<String>,
    /// Accepted audiences besides this AMC's own URL.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub faults: Faults,
}

fn default_services() -> Vec<String> {
    crate::config::DEFAULT_SERVICES
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// The simulator's configuration file (`rocgw sim --config FILE`); relative paths are relative
/// to the file's folder. `config/sim.example.toml` documents every field.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimConfig {
    pub admin_listen: SocketAddr,
    /// Host name written in the endpoints the annuaire returns (must match the certificates).
    #[serde(default = "default_host")]
    pub host: String,
    /// Tolerated clock difference with the signer, seconds.
    #[serde(default = "default_skew")]
    pub clock_skew_s: u64,
    /// Longest assertion validity accepted (`NotOnOrAfter − IssueInstant`), seconds.
    #[serde(default = "default_max_validity")]
    pub max_validity_s: u64,
    /// Refuse an assertion ID already accepted (turn off for a gateway that reuses assertions).
    #[serde(default = "yes")]
    pub replay_check: bool,
    /// A request body containing this text is about an unknown beneficiary.
    #[serde(default = "default_marker")]
    pub unknown_marker: String,
    pub igc_sante: IgcSante,
    pub annuaire: AnnuaireCfg,
    pub certificates: Certificates,
    #[serde(rename = "amc")]
    pub amcs: Vec<AmcCfg>,
    /// The AMC application's signing key and certificate (AC-SERVICES-APPLICATIFS): when set,
    /// every AMC answer is signed (`sign`), as `[amc.faults] signature` says.
    #[serde(default)]
    pub signing: Option<CertKey>,
}

fn default_host() -> String {
    "localhost".into()
}
fn default_skew() -> u64 {
    60
}
/// rocgw's own longest `[assertion] validity_s`: what it may send always passes.
fn default_max_validity() -> u64 {
    3_600
}
fn yes() -> bool {
    true
}
fn default_marker() -> String {
    "INCONNU".into()
}

impl SimConfig {
    /// Reads and checks a configuration file; errors name the file, field and line.
    pub fn load(path: &Path) -> Result<SimConfig, ConfigError> {
        let err = |field: &str, message: String| ConfigError {
            file: path.to_path_buf(),
            field: field.into(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read the simulator configuration: {e}")))?;
        let mut cfg: SimConfig = parse_toml(&text, path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        cfg.rebase(base);
        for (field, value) in [
            ("clock_skew_s", cfg.clock_skew_s),
            ("max_validity_s", cfg.max_validity_s),
        ] {
            if value > MAX_SECONDS {
                return Err(err(field, format!("must be between 0 and {MAX_SECONDS}")));
            }
        }
        for (i, a) in cfg.amcs.iter().enumerate() {
            if let Some(p) = a.faults.problem() {
                return Err(err(&format!("amc[{i}].faults"), p));
            }
            if a.numero.is_empty() || !a.numero.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(err(
                    &format!("amc[{i}].numero"),
                    "letters and digits only".into(),
                ));
            }
        }
        Ok(cfg)
    }

    fn rebase(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let fix_pair = |c: &mut CertKey| {
            fix(&mut c.cert);
            fix(&mut c.key);
        };
        self.igc_sante
            .anchors
            .iter_mut()
            .chain(self.igc_sante.intermediates.iter_mut())
            .chain(self.igc_sante.crls.iter_mut())
            .for_each(fix);
        fix_pair(&mut self.annuaire.tls);
        if let Some(s) = &mut self.signing {
            fix_pair(s);
        }
        let c = &mut self.certificates;
        fix_pair(&mut c.valid);
        for o in [
            &mut c.expired,
            &mut c.revoked,
            &mut c.unknown_ca,
            &mut c.wrong_host,
        ]
        .into_iter()
        .flatten()
        {
            fix_pair(o);
        }
    }

    /// The ready table of test AMCs over a test PKI (`rocgw pki init`): what the sandbox and a
    /// bare `rocgw sim` run. `ephemeral` puts every listener on port 0.
    pub fn sandbox(pki: &Path, ephemeral: bool) -> SimConfig {
        let p = |s: &str| pki.join(s);
        let pair = |name: &str| CertKey {
            cert: p(&format!("{name}.chain.pem")),
            key: p(&format!("{name}.key")),
        };
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], if ephemeral { 0 } else { port }));
        SimConfig {
            admin_listen: addr(SANDBOX_ADMIN_PORT),
            host: default_host(),
            clock_skew_s: default_skew(),
            max_validity_s: default_max_validity(),
            replay_check: true,
            unknown_marker: default_marker(),
            igc_sante: IgcSante {
                anchors: vec![p("igc-sante/acr.pem")],
                intermediates: vec![p("igc-sante/aci-el-org.pem")],
                crls: vec![
                    p("igc-sante/aci-el-org.crl.pem"),
                    p("igc-sante/acr.crl.pem"),
                ],
            },
            annuaire: AnnuaireCfg {
                listen: addr(8582),
                tls: pair("osi/annuaire"),
                entries: Vec::new(),
            },
            certificates: Certificates {
                valid: pair("osi/amc-a"),
                expired: Some(pair("negative/server-expired")),
                revoked: Some(pair("negative/server-revoked")),
                unknown_ca: Some(pair("negative/server-unknown-ca")),
                wrong_host: Some(pair("negative/server-wrong-host")),
            },
            amcs: SANDBOX_AMCS
                .iter()
                .map(|(numero, libelle, port, services)| AmcCfg {
                    numero: numero.to_string(),
                    libelle: libelle.to_string(),
                    listen: addr(*port),
                    services: services.iter().map(|s| s.to_string()).collect(),
                    audiences: Vec::new(),
                    faults: Faults::default(),
                })
                .collect(),
            signing: Some(pair("osi/amc-sign")),
        }
    }
}

/// Upper bound of the simulator's time settings (a year), so arithmetic on them cannot overflow.
const MAX_SECONDS: u64 = 366 * 86_400;

/// Admin port of the sandbox simulator.
pub const SANDBOX_ADMIN_PORT: u16 = 9581;

/// The sandbox's test AMCs: number, label, port, services.
pub const SANDBOX_AMCS: [(&str, &str, u16, &[&str]); 2] = [
    (
        "99999991",
        "MUTUELLE TEST UN (toutes prestations)",
        8581,
        &["idb", "simulation", "clc", "annulation"],
    ),
    (
        "99999992",
        "MUTUELLE TEST DEUX (IDB et CLC)",
        8583,
        &["idb", "clc"],
    ),
];

//! Configuration: one TOML file parsed once into typed structs. Nothing downstream reads raw TOML
//! or environment variables.
//!
//! Secrets (P12 passwords, tokens) never sit in the file: only the name of an environment
//! variable or of a file holding them. Relative paths are relative to the config file's folder.
//! Every error names the file and the field.
//!
//! Each section has its own file: its serde shape, its typed form and its validation. This file
//! holds the file as a whole and `Validator`, whose helpers (files, secrets, addresses, ranges)
//! give every section the same rules and the same messages. Other modules take their settings
//! types from here; this module depends on none of them, so configuration never loops back.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

mod access;
mod amc;
mod annuaire;
mod assertion;
mod identities;
mod ops;
mod proxy;
mod routes;
mod server;
#[cfg(test)]
mod tests;
mod trust;
mod upstream;

pub use access::{check_bind, AccessConfig, Grant};
pub use amc::{AmcConfig, ResponseSignature};
pub use annuaire::{AnnuaireConfig, DirectoryConfig, Requester};
pub use assertion::{AttributeSpec, ExistingSecurity, Profile};
pub use identities::{is_structure_id, Identities, IdentitySource, StructureConfig};
pub use ops::LogFormat;
pub use proxy::ProxyConfig;
pub use routes::{is_amc_number, DEFAULT_SERVICES};
pub use server::{
    Limits, ServerConfig, ServerTls, DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES,
    HEADER_READ_TIMEOUT,
};
pub use trust::{RevocationPolicy, TrustConfig};
pub use upstream::UpstreamConfig;

/// Where `rocgw serve` looks for its configuration when neither `--config` nor `ROCGW_CONFIG`
/// names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rocgw/rocgw.toml";

/// A configuration error: which file, which field, what is wrong. Displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file's shape (serde). Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    access: access::RawAccess,
    #[serde(default)]
    log: ops::RawLog,
    #[serde(default)]
    identity: identities::RawIdentities,
    #[serde(default)]
    structures: BTreeMap<String, identities::RawStructure>,
    #[serde(default)]
    trust: trust::RawTrust,
    #[serde(default)]
    annuaire: Option<annuaire::RawAnnuaire>,
    #[serde(default)]
    amc: amc::RawAmc,
    #[serde(default)]
    upstream: upstream::RawUpstream,
    #[serde(default)]
    proxy: Option<proxy::RawProxy>,
    #[serde(default)]
    reload: ops::RawReload,
    #[serde(default)]
    audit: ops::RawAudit,
    #[serde(default)]
    assertion: assertion::RawAssertion,
    #[serde(default)]
    services: Option<Vec<String>>,
    #[serde(default)]
    routes: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    environment: Option<Environment>,
}

/// Which IGC hierarchies a gateway runs on: hospitals qualify with TEST certificates (IGC-Santé
/// TEST, IGC OSI TEST) before going live with production ones; a gateway never mixes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Test => "test",
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (or a description, for the sandbox).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub access: AccessConfig,
    pub log_format: LogFormat,
    pub log_level: Option<String>,
    pub identities: Identities,
    /// `production` refuses TEST certificates and anchors, `test` refuses production ones;
    /// unset: whatever is loaded, the environment detected is logged.
    pub environment: Option<Environment>,
    pub trust: TrustConfig,
    pub annuaire: Option<AnnuaireConfig>,
    pub amc: AmcConfig,
    pub upstream: UpstreamConfig,
    pub proxy: Option<ProxyConfig>,
    /// Seconds between checks of the certificate and CRL files for changes; 0 disables it
    /// (SIGHUP still reloads).
    pub reload_check_interval_s: u64,
    /// The audit log file (one JSON line per signed AMC call); `None`: the `rocgw::audit` log
    /// target.
    pub audit_file: Option<PathBuf>,
    /// The SAML assertion profile and the envelope parsing limits.
    pub assertion: Profile,
    pub services: Vec<String>,
    /// AMC number → service → https endpoint.
    pub routes: BTreeMap<String, BTreeMap<String, http::Uri>>,
    /// Every file a secret was read from (tokens, proxy credentials, P12 passwords), with its
    /// field: readable by rocgw only, or `serve` and `cert doctor` warn.
    pub secret_files: Vec<(String, PathBuf)>,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return Err(err(path, "", io_problem("config file", path, &e))),
        };
        Config::parse(&text, path, overrides)
    }

    /// Parses and validates `text`, which came from `path`.
    pub fn parse(text: &str, path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let v = Validator {
            file: path,
            base,
            secret_files: Default::default(),
        };
        v.validate(raw, overrides)
    }
}

fn err(file: &Path, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        field: field.to_string(),
        message: message.into(),
    }
}

fn io_problem(what: &str, path: &Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("{what} not found: {}", path.display()),
        std::io::ErrorKind::PermissionDenied => {
            format!(
                "{what} not readable (permission denied): {}",
                path.display()
            )
        }
        _ => format!("{what} unreadable: {}: {e}", path.display()),
    }
}

/// Keys that would hold a secret inline: refused with a pointer to the right way.
const INLINE_SECRET_KEYS: [&str; 4] = ["password", "token", "secret", "passphrase"];

fn parse_raw(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
    // Inline secrets get their own message rather than "unknown field".
    if let Ok(value) = text.parse::<toml::Table>() {
        if let Some(field) = find_inline_secret(&value, "") {
            return Err(err(
                path,
                &field,
                "secrets are never written in the config file: name an environment variable \
                 (`…_env`) or a file (`…_file`) instead",
            ));
        }
    }
    parse_toml(text, path)
}

/// Deserialises a TOML file's `text` into `T`; an error names the file, the field and the line
/// (shared by the gateway's and the simulator's configuration files).
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, "", &e, text))?;
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        toml_error(path, &field, e.inner(), text)
    })
}

fn find_inline_secret(table: &toml::Table, prefix: &str) -> Option<String> {
    for (k, v) in table {
        let field = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if INLINE_SECRET_KEYS.contains(&k.as_str()) {
            return Some(field);
        }
        if let toml::Value::Table(t) = v {
            if let Some(f) = find_inline_secret(t, &field) {
                return Some(f);
            }
        }
    }
    None
}

fn toml_error(path: &Path, field: &str, e: &toml::de::Error, text: &str) -> ConfigError {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let msg = e.message().trim().replace('\n', " ");
    let message = match line {
        Some(l) => format!("{msg} (line {l})"),
        None => msg,
    };
    err(path, field, message)
}

/// Who besides its owner can read a secret file: `Some((mode, "everyone" | "its group"))`, or
/// `None` (private, or unreadable here). Shared by `serve`'s warning and `cert doctor`.
pub fn readable_by_others(path: &Path) -> Option<(u32, &'static str)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    match mode {
        m if m & 0o004 != 0 => Some((m, "everyone")),
        m if m & 0o040 != 0 => Some((m, "its group")),
        _ => None,
    }
}

/// Checks one file's values; the sections' validation functions take it for its shared rules.
struct Validator<'a> {
    file: &'a Path,
    base: PathBuf,
    /// The secret files read so far (`<field>`, path), for the permission checks.
    secret_files: std::cell::RefCell<Vec<(String, PathBuf)>>,
}

impl Validator<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> ConfigError {
        err(self.file, field, message)
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A path that must name a readable file.
    fn file(&self, field: &str, p: &Path) -> Result<PathBuf, ConfigError> {
        let p = self.resolve(p);
        match std::fs::File::open(&p) {
            Ok(f) => match f.metadata() {
                Ok(m) if m.is_file() => Ok(p),
                Ok(_) => Err(self.err(field, format!("not a regular file: {}", p.display()))),
                Err(e) => Err(self.err(field, io_problem("file", &p, &e))),
            },
            Err(e) => Err(self.err(field, io_problem("file", &p, &e))),
        }
    }

    /// A list of paths that must each name a readable file (`field[i]` in errors).
    fn files(&self, field: &str, paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| self.file(&format!("{field}[{i}]"), p))
            .collect()
    }

    /// A secret named by `<name>_env` or `<name>_file`; exactly one of the two.
    fn secret(
        &self,
        section: &str,
        name: &str,
        env: Option<&str>,
        file: Option<&Path>,
        required: bool,
    ) -> Result<Option<Zeroizing<String>>, ConfigError> {
        let f_env = format!("{section}.{name}_env");
        let f_file = format!("{section}.{name}_file");
        match (env, file) {
            (Some(_), Some(_)) => Err(self.err(
                &f_env,
                format!("give either {name}_env or {name}_file, not both"),
            )),
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Zeroizing::new(v))),
                Ok(_) => Err(self.err(&f_env, format!("environment variable {var} is empty"))),
                Err(_) => Err(self.err(&f_env, format!("environment variable {var} is not set"))),
            },
            (None, Some(p)) => {
                let p = self.file(&f_file, p)?;
                self.secret_files
                    .borrow_mut()
                    .push((f_file.clone(), p.clone()));
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| self.err(&f_file, io_problem("secret file", &p, &e)))?;
                let v = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string());
                if v.is_empty() {
                    return Err(self.err(&f_file, format!("secret file is empty: {}", p.display())));
                }
                Ok(Some(v))
            }
            (None, None) if required => Err(self.err(
                section,
                format!("missing {name}: set {name}_env or {name}_file"),
            )),
            (None, None) => Ok(None),
        }
    }

    /// A bearer token of `section` (`token_env` or `token_file`): 16 characters at least.
    fn token(
        &self,
        section: &str,
        env: Option<&str>,
        file: Option<&Path>,
        required: bool,
    ) -> Result<Option<Zeroizing<String>>, ConfigError> {
        let Some(t) = self.secret(section, "token", env, file, required)? else {
            return Ok(None);
        };
        // Compared with what the SIH presents, trimmed the same way.
        let t = Zeroizing::new(t.trim().to_string());
        let field = format!("{section}.token_env");
        if t.len() < 16 {
            return Err(self.err(&field, "the token must be at least 16 characters long"));
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(self.err(
                &field,
                "the token must be printable ASCII without spaces (it travels in a header)",
            ));
        }
        Ok(Some(t))
    }

    /// A whole number within `range`, or `default` when absent. Every numeric setting goes
    /// through here: a value out of range is refused, never clamped, so what runs is what the
    /// file says, and every such error reads the same.
    fn ranged<T>(
        &self,
        field: &str,
        v: Option<T>,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: Copy + PartialOrd + fmt::Display,
    {
        match v {
            None => Ok(default),
            Some(v) if range.contains(&v) => Ok(v),
            Some(_) => Err(self.err(
                field,
                format!("must be between {} and {}", range.start(), range.end()),
            )),
        }
    }

    /// A `…_s` setting: whole seconds within `range`.
    fn secs(
        &self,
        field: &str,
        v: Option<u64>,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.ranged(field, v, default.as_secs(), range)
            .map(Duration::from_secs)
    }

    /// A `…_ms` setting: whole milliseconds within `range`.
    fn millis(
        &self,
        field: &str,
        v: Option<u64>,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.ranged(field, v, default, range)
            .map(Duration::from_millis)
    }

    fn addr(&self, field: &str, s: Option<&str>, default: &str) -> Result<SocketAddr, ConfigError> {
        let s = s.unwrap_or(default);
        s.parse().map_err(|_| {
            self.err(
                field,
                format!("not an IP address and port (like 127.0.0.1:8580): {s:?}"),
            )
        })
    }

    fn https_uri(&self, field: &str, s: &str) -> Result<http::Uri, ConfigError> {
        let uri: http::Uri = s
            .parse()
            .map_err(|_| self.err(field, format!("not a valid URL: {s:?}")))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(self.err(field, format!("must be an https:// URL with a host: {s:?}")));
        }
        Ok(uri)
    }

    /// Section by section; the first error stops. `[access]` follows `[server]`: whether a
    /// listen address is allowed depends on both.
    fn validate(&self, raw: RawConfig, ov: &Overrides) -> Result<Config, ConfigError> {
        let server = server::validate(self, &raw.server, ov)?;
        let mut access = access::validate(self, &raw.access, &server)?;
        let upstream = upstream::validate(self, &raw.upstream)?;
        let assertion = assertion::validate(self, &raw.assertion)?;
        let proxy = raw
            .proxy
            .as_ref()
            .map(|p| proxy::validate(self, p))
            .transpose()?;
        let identities = identities::validate(self, raw.identity, raw.structures)?;
        access.grants = access::grants(self, &raw.access, &access, &identities)?;
        if assertion.name_id.is_some() && identities.structures.len() > 1 {
            return Err(self.err(
                "assertion.name_id",
                "one fixed NameID for several structures would let one claim to be another: \
                 set name_id per structure ([structures.\"<id>\"] name_id)",
            ));
        }
        let trust = trust::validate(self, &raw.trust)?;
        let annuaire = raw
            .annuaire
            .as_ref()
            .map(|a| annuaire::validate(self, a))
            .transpose()?;
        let amc = amc::validate(self, &raw.amc)?;
        let ops = ops::validate(self, raw.log, &raw.reload, &raw.audit)?;
        let (services, routes) = routes::validate(self, raw.services, raw.routes)?;
        for amc_number in amc.response_signatures.keys() {
            if !routes.contains_key(amc_number) {
                return Err(self.err(
                    &format!("amc.response_signatures.{amc_number}"),
                    "per-AMC modes apply to the AMCs of [routes]",
                ));
            }
        }
        Ok(Config {
            source: self.file.to_path_buf(),
            server,
            access,
            log_format: ops.log_format,
            log_level: ops.log_level,
            identities,
            environment: raw.environment,
            trust,
            annuaire,
            amc,
            upstream,
            proxy,
            reload_check_interval_s: ops.reload_check_interval_s,
            audit_file: ops.audit_file,
            assertion,
            services,
            routes,
            secret_files: self.secret_files.take(),
        })
    }
}

//! Configuration: one TOML file parsed once into typed structs. Nothing downstream reads raw TOML
//! or environment variables.
//!
//! Secrets (P12 passwords, tokens) never sit in the file: only the name of an environment
//! variable or of a file holding them. Relative paths are relative to the config file's folder.
//! Every error names the file and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::fault::StatusMode;

/// Where `rocgw serve` looks for its configuration when neither `--config` nor `ROCGW_CONFIG`
/// names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/rocgw/rocgw.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8580";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9580";
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Services a ROC AMC offers; a route may name others (the list is configuration).
pub const DEFAULT_SERVICES: [&str; 4] = ["idb", "simulation", "clc", "annulation"];

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

// ---------------------------------------------------------------------------------------------
// The file's shape (serde). Unknown keys are errors.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    access: RawAccess,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    identity: RawIdentities,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    annuaire: Option<RawAnnuaire>,
    #[serde(default)]
    amc: RawAmc,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    proxy: Option<RawProxy>,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    assertion: RawAssertion,
    #[serde(default)]
    services: Option<Vec<String>>,
    #[serde(default)]
    routes: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    admin_listen: Option<String>,
    #[serde(default)]
    http_status: StatusMode,
    max_body_bytes: Option<usize>,
    drain_timeout_s: Option<u64>,
    max_concurrent_requests: Option<usize>,
    max_buffered_bytes: Option<u64>,
    request_deadline_ms: Option<u64>,
    unix_socket: Option<PathBuf>,
    unix_socket_mode: Option<String>,
    header_read_timeout_ms: Option<u64>,
    max_headers: Option<u64>,
    max_header_bytes: Option<u64>,
    max_connections: Option<u64>,
    write_timeout_ms: Option<u64>,
    tls: Option<RawServerTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Vec<PathBuf>,
    #[serde(default)]
    client_crls: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    allow_cidrs: Vec<String>,
    #[serde(default)]
    callers: Vec<RawCaller>,
    #[serde(default)]
    unix_uids: Vec<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaller {
    name: String,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentities {
    auth_cli: Option<RawIdentity>,
    sign: Option<RawIdentity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    p12: Option<PathBuf>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    amc_anchors: Vec<PathBuf>,
    annuaire_anchors: Option<Vec<PathBuf>>,
    #[serde(default)]
    crls: Vec<PathBuf>,
    #[serde(default)]
    identity_crls: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnnuaire {
    url: String,
    #[serde(default)]
    revocation: RevocationPolicy,
    cache_ttl_s: Option<u64>,
    stale_s: Option<u64>,
    negative_ttl_s: Option<u64>,
    cache_max_entries: Option<usize>,
    editeur: Option<String>,
    logiciel: Option<String>,
    version_logiciel: Option<String>,
    message_version: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmc {
    #[serde(default)]
    revocation: RevocationPolicy,
    #[serde(default)]
    present_client_cert: bool,
    #[serde(default)]
    explicit_endpoints: bool,
    #[serde(default)]
    endpoint_hosts: Vec<String>,
    max_concurrent_per_amc: Option<usize>,
    breaker_failures: Option<u32>,
    breaker_open_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    connect_timeout_ms: Option<u64>,
    tls_timeout_ms: Option<u64>,
    first_byte_timeout_ms: Option<u64>,
    total_timeout_ms: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    max_connections_per_host: Option<usize>,
    max_response_bytes: Option<usize>,
    connect_retries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    url: String,
    credentials_env: Option<String>,
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    no_proxy: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssertion {
    validity_s: Option<u64>,
    not_before_skew_s: Option<u64>,
    audience: Option<String>,
    name_id: Option<String>,
    name_id_format: Option<String>,
    subject_confirmation_method: Option<String>,
    authn_context_class_ref: Option<String>,
    default_attributes: Option<bool>,
    #[serde(default)]
    attributes: Vec<crate::wssec::AttributeSpec>,
    #[serde(default)]
    existing_security: crate::wssec::ExistingSecurity,
    #[serde(default)]
    must_understand: bool,
    reuse_s: Option<u64>,
    max_depth: Option<usize>,
    max_attributes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReload {
    check_interval_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    file: Option<PathBuf>,
}

/// What to do about an upstream certificate's revocation status (per upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevocationPolicy {
    /// No revocation check.
    Off,
    /// Revoked certificates are refused; unknown status (no CRL for the issuer, or a CRL past
    /// its next update) is allowed, logged and counted.
    #[default]
    Soft,
    /// Revoked certificates and unknown status are refused.
    Hard,
}

impl RevocationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationPolicy::Off => "off",
            RevocationPolicy::Soft => "soft",
            RevocationPolicy::Hard => "hard",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.
// ---------------------------------------------------------------------------------------------

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
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
    pub assertion: crate::wssec::Profile,
    pub services: Vec<String>,
    /// AMC number → service → https endpoint.
    pub routes: BTreeMap<String, BTreeMap<String, hyper::Uri>>,
}

#[derive(Debug, Clone)]
pub struct AnnuaireConfig {
    pub url: hyper::Uri,
    pub revocation: RevocationPolicy,
    /// How lookups are cached, and who rocgw says it is in them.
    pub directory: crate::annuaire::DirectoryConfig,
}

#[derive(Debug, Clone, Default)]
pub struct AmcConfig {
    pub revocation: RevocationPolicy,
    /// Present the AUTH_CLI certificate to AMCs that ask for a client certificate.
    pub present_client_cert: bool,
    /// Accept `X-Rocgw-Endpoint: https://…` from SIH software that knows the endpoint.
    pub explicit_endpoints: bool,
    /// Hosts an endpoint (from the annuaire or explicit) may name: `host` or `*.suffix`;
    /// empty: any host (its certificate must still chain to the IGC OSI anchors).
    pub endpoint_hosts: Vec<String>,
    /// Calls in progress to one AMC; beyond, `overloaded` at once, so one slow AMC cannot take
    /// every slot from the others.
    pub max_concurrent_per_amc: usize,
    /// Consecutive failures that open an endpoint's circuit (0: no circuit breaker).
    pub breaker_failures: u32,
    /// How long an open circuit fails fast before one probe is let through.
    pub breaker_open: Duration,
}

/// Timeouts and limits of the upstream clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub connect_timeout: std::time::Duration,
    pub tls_timeout: std::time::Duration,
    pub first_byte_timeout: std::time::Duration,
    pub total_timeout: std::time::Duration,
    pub pool_idle_timeout: std::time::Duration,
    pub max_connections_per_host: usize,
    pub max_response_bytes: usize,
    /// Retries of a request whose connection could not be opened (nothing was sent).
    pub connect_retries: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        use std::time::Duration;
        UpstreamConfig {
            connect_timeout: Duration::from_millis(3_000),
            tls_timeout: Duration::from_millis(5_000),
            first_byte_timeout: Duration::from_millis(20_000),
            total_timeout: Duration::from_millis(30_000),
            pool_idle_timeout: Duration::from_millis(20_000),
            max_connections_per_host: 32,
            max_response_bytes: 8 * 1024 * 1024,
            connect_retries: 2,
        }
    }
}

/// An outbound HTTP proxy reached with `CONNECT`.
#[derive(Clone)]
pub struct ProxyConfig {
    pub host: String,
    pub port: u16,
    /// `user:password` for Basic proxy authentication.
    pub credentials: Option<Zeroizing<String>>,
    /// Hosts reached directly: exact names, `.suffix` domains, IP addresses or CIDRs, `*`.
    pub no_proxy: Vec<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// Whether `host` bypasses the proxy.
    pub fn bypass(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip = host.parse::<std::net::IpAddr>().ok();
        self.no_proxy.iter().any(|rule| {
            let rule = rule.trim().to_ascii_lowercase();
            if rule == "*" {
                return true;
            }
            if let (Some(ip), Ok(net)) = (ip, rule.parse::<IpNet>()) {
                return net.contains(&ip);
            }
            if let Some(suffix) = rule.strip_prefix('.') {
                return host == suffix || host.ends_with(&format!(".{suffix}"));
            }
            host == rule
        })
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub http_status: StatusMode,
    pub max_body_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub drain_timeout: Duration,
    /// Requests handled at once; beyond, `overloaded` at once (load shedding).
    pub max_concurrent_requests: usize,
    /// Bytes of request bodies held at once; beyond, `overloaded` (bounds memory).
    pub max_buffered_bytes: usize,
    /// End-to-end deadline of a request; an SIH's `X-Rocgw-Deadline-Ms` may only shorten it.
    pub request_deadline: Duration,
    /// A Unix domain socket the gateway also listens on, and its file mode.
    pub unix_socket: Option<(PathBuf, u32)>,
    /// HTTPS with client certificates on `listen`.
    pub tls: Option<ServerTls>,
    /// Header size, count and read-time limits of the gateway listener.
    pub limits: crate::listener::Limits,
}

/// Mutual TLS on the gateway listener: rocgw's local server certificate, and the local CA(s)
/// whose client certificates identify SIH applications.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Vec<PathBuf>,
    /// CRLs of the local CA: a revoked SIH application certificate is refused.
    pub client_crls: Vec<PathBuf>,
}

impl ServerTls {
    /// The files it is made of (watched for changes).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut f = vec![self.cert.clone(), self.key.clone()];
        f.extend(self.client_ca.iter().cloned());
        f.extend(self.client_crls.iter().cloned());
        f
    }
}

/// Caller checks for the listeners. Empty means loopback-only operation.
#[derive(Clone, Default)]
pub struct AccessConfig {
    pub token: Option<Zeroizing<String>>,
    pub allow_cidrs: Vec<IpNet>,
    /// Named tokens, one per SIH application: the name goes to the audit log.
    pub callers: Vec<(String, Zeroizing<String>)>,
    /// User ids allowed on the Unix socket (peer credentials); empty: file permissions only.
    pub unix_uids: Vec<u32>,
    /// Client certificates from the local CA are required (`[server.tls]`).
    pub client_certs: bool,
}

impl fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow_cidrs", &self.allow_cidrs)
            .field(
                "callers",
                &self.callers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("unix_uids", &self.unix_uids)
            .field("client_certs", &self.client_certs)
            .finish()
    }
}

impl AccessConfig {
    /// A check that applies on every listener (client certificates apply to `listen` only).
    pub fn has_caller_check(&self) -> bool {
        self.token.is_some() || !self.callers.is_empty() || !self.allow_cidrs.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct Identities {
    pub auth_cli: IdentitySource,
    pub sign: IdentitySource,
}

/// Where an identity's key and certificates come from.
#[derive(Clone)]
pub enum IdentitySource {
    /// A PKCS#12 file and its password.
    P12 {
        /// The config field, for error messages (`identity.sign`).
        field: String,
        path: PathBuf,
        password: Zeroizing<String>,
        /// Where the password came from, when a file: re-read on reload, so a rotation may
        /// change both.
        password_file: Option<PathBuf>,
    },
    /// PEM certificate chain (leaf first) and PEM private key.
    Pem {
        field: String,
        cert: PathBuf,
        key: PathBuf,
    },
}

impl IdentitySource {
    pub fn field(&self) -> &str {
        match self {
            IdentitySource::P12 { field, .. } | IdentitySource::Pem { field, .. } => field,
        }
    }
}

impl fmt::Debug for IdentitySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentitySource::P12 {
                field,
                path,
                password_file,
                ..
            } => f
                .debug_struct("P12")
                .field("field", field)
                .field("path", path)
                .field("password_file", password_file)
                .field("password", &"<redacted>")
                .finish(),
            IdentitySource::Pem { field, cert, key } => f
                .debug_struct("Pem")
                .field("field", field)
                .field("cert", cert)
                .field("key", key)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TrustConfig {
    /// IGC OSI anchors (AC-SERVEUR, AC-SERVICES-APPLICATIFS and their root).
    pub amc_anchors: Vec<PathBuf>,
    /// Anchors for the annuaire's server certificate (defaults to `amc_anchors`).
    pub annuaire_anchors: Vec<PathBuf>,
    /// CRL files (PEM or DER) of the anchors' authorities.
    pub crls: Vec<PathBuf>,
    /// IGC-Santé CRL files, to check that the hospital's own certificates are not revoked
    /// (`rocgw cert doctor`).
    pub identity_crls: Vec<PathBuf>,
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
        let v = Validator { file: path, base };
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

struct Validator<'a> {
    file: &'a Path,
    base: PathBuf,
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

    /// A whole number within `range`, or `default` when absent.
    fn ranged(
        &self,
        field: &str,
        v: Option<u64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if range.contains(&v) => Ok(v),
            Some(_) => Err(self.err(
                field,
                format!("must be between {} and {}", range.start(), range.end()),
            )),
        }
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

    fn identity(
        &self,
        name: &str,
        raw: Option<RawIdentity>,
    ) -> Result<IdentitySource, ConfigError> {
        let field = format!("identity.{name}");
        let Some(raw) = raw else {
            return Err(self.err(
                &field,
                "missing section: give p12 + password_env/password_file, or cert + key (PEM)",
            ));
        };
        match (&raw.p12, &raw.cert, &raw.key) {
            (Some(p12), None, None) => {
                let path = self.file(&format!("{field}.p12"), p12)?;
                let password = self
                    .secret(
                        &field,
                        "password",
                        raw.password_env.as_deref(),
                        raw.password_file.as_deref(),
                        true,
                    )?
                    .expect("required secret");
                let password_file = raw.password_file.as_deref().map(|p| self.resolve(p));
                Ok(IdentitySource::P12 {
                    field,
                    path,
                    password,
                    password_file,
                })
            }
            (None, Some(cert), Some(key)) => {
                if raw.password_env.is_some() || raw.password_file.is_some() {
                    return Err(self.err(
                        &field,
                        "encrypted PEM keys are not supported: use an unencrypted PKCS#8 key \
                         readable only by rocgw, or a PKCS#12 file",
                    ));
                }
                let cert = self.file(&format!("{field}.cert"), cert)?;
                let key = self.file(&format!("{field}.key"), key)?;
                Ok(IdentitySource::Pem { field, cert, key })
            }
            _ => Err(self.err(
                &field,
                "give either p12 (with password_env or password_file), or cert and key",
            )),
        }
    }

    fn anchors(&self, field: &str, paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| self.file(&format!("{field}[{i}]"), p))
            .collect()
    }

    fn https_uri(&self, field: &str, s: &str) -> Result<hyper::Uri, ConfigError> {
        let uri: hyper::Uri = s
            .parse()
            .map_err(|_| self.err(field, format!("not a valid URL: {s:?}")))?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(self.err(field, format!("must be an https:// URL with a host: {s:?}")));
        }
        Ok(uri)
    }

    fn upstream(&self, raw: &RawUpstream) -> Result<UpstreamConfig, ConfigError> {
        use std::time::Duration;
        let d = UpstreamConfig::default();
        let ms = |field: &str,
                  v: Option<u64>,
                  default: Duration|
         -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(0) => Err(self.err(&format!("upstream.{field}"), "must be greater than 0")),
                Some(v) if v > 600_000 => Err(self.err(
                    &format!("upstream.{field}"),
                    "must be at most 600000 ms (10 minutes)",
                )),
                Some(v) => Ok(Duration::from_millis(v)),
            }
        };
        let u = UpstreamConfig {
            connect_timeout: ms(
                "connect_timeout_ms",
                raw.connect_timeout_ms,
                d.connect_timeout,
            )?,
            tls_timeout: ms("tls_timeout_ms", raw.tls_timeout_ms, d.tls_timeout)?,
            first_byte_timeout: ms(
                "first_byte_timeout_ms",
                raw.first_byte_timeout_ms,
                d.first_byte_timeout,
            )?,
            total_timeout: ms("total_timeout_ms", raw.total_timeout_ms, d.total_timeout)?,
            pool_idle_timeout: ms(
                "pool_idle_timeout_ms",
                raw.pool_idle_timeout_ms,
                d.pool_idle_timeout,
            )?,
            max_connections_per_host: raw
                .max_connections_per_host
                .unwrap_or(d.max_connections_per_host),
            max_response_bytes: raw.max_response_bytes.unwrap_or(d.max_response_bytes),
            connect_retries: self.ranged(
                "upstream.connect_retries",
                raw.connect_retries,
                d.connect_retries as u64,
                0..=5,
            )? as u32,
        };
        if u.max_connections_per_host == 0 {
            return Err(self.err(
                "upstream.max_connections_per_host",
                "must be greater than 0",
            ));
        }
        if u.total_timeout < u.first_byte_timeout {
            return Err(self.err(
                "upstream.total_timeout_ms",
                "must not be shorter than first_byte_timeout_ms",
            ));
        }
        Ok(u)
    }

    fn assertion(&self, raw: &RawAssertion) -> Result<crate::wssec::Profile, ConfigError> {
        use std::time::Duration;
        let d = crate::wssec::Profile::default();
        let validity = Duration::from_secs(raw.validity_s.unwrap_or(d.validity.as_secs()));
        if validity.is_zero() || validity > Duration::from_secs(3600) {
            return Err(self.err("assertion.validity_s", "must be between 1 and 3600 seconds"));
        }
        let reuse = Duration::from_secs(raw.reuse_s.unwrap_or(0));
        if reuse * 2 > validity {
            return Err(self.err(
                "assertion.reuse_s",
                "must be at most half of validity_s (a reused assertion must stay valid)",
            ));
        }
        for (i, a) in raw.attributes.iter().enumerate() {
            if a.name.trim().is_empty() || a.values.is_empty() {
                return Err(self.err(
                    &format!("assertion.attributes[{i}]"),
                    "an attribute needs a name and at least one value",
                ));
            }
            if let Some(t) = &a.xsi_type {
                if t.contains(':') && !t.starts_with("xs:") {
                    return Err(self.err(
                        &format!("assertion.attributes[{i}].type"),
                        "only the xs: prefix is declared (e.g. xs:string)",
                    ));
                }
            }
        }
        let max_depth = raw.max_depth.unwrap_or(d.max_depth);
        let max_attributes = raw.max_attributes.unwrap_or(d.max_attributes);
        if !(8..=1024).contains(&max_depth) {
            return Err(self.err("assertion.max_depth", "must be between 8 and 1024"));
        }
        if !(4..=1024).contains(&max_attributes) {
            return Err(self.err("assertion.max_attributes", "must be between 4 and 1024"));
        }
        Ok(crate::wssec::Profile {
            validity,
            not_before_skew: Duration::from_secs(
                raw.not_before_skew_s.unwrap_or(d.not_before_skew.as_secs()),
            ),
            audience: raw.audience.clone().filter(|a| a != "endpoint"),
            name_id: raw.name_id.clone(),
            name_id_format: raw.name_id_format.clone().unwrap_or(d.name_id_format),
            subject_confirmation_method: raw
                .subject_confirmation_method
                .clone()
                .unwrap_or(d.subject_confirmation_method),
            authn_context_class_ref: raw
                .authn_context_class_ref
                .clone()
                .unwrap_or(d.authn_context_class_ref),
            default_attributes: raw.default_attributes.unwrap_or(true),
            attributes: raw.attributes.clone(),
            existing_security: raw.existing_security,
            must_understand: raw.must_understand,
            reuse,
            max_depth,
            max_attributes,
        })
    }

    fn proxy(&self, raw: &RawProxy) -> Result<ProxyConfig, ConfigError> {
        let uri: hyper::Uri = raw
            .url
            .parse()
            .map_err(|_| self.err("proxy.url", format!("not a valid URL: {:?}", raw.url)))?;
        if uri.scheme_str() != Some("http") {
            return Err(self.err(
                "proxy.url",
                "must be an http:// URL (rocgw tunnels TLS through the proxy with CONNECT)",
            ));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(self.err(
                "proxy.url",
                "credentials are never written in the URL: use credentials_env or credentials_file",
            ));
        }
        let host = uri
            .host()
            .ok_or_else(|| self.err("proxy.url", "missing host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let credentials = self.secret(
            "proxy",
            "credentials",
            raw.credentials_env.as_deref(),
            raw.credentials_file.as_deref(),
            false,
        )?;
        if let Some(c) = &credentials {
            if !c.contains(':') {
                return Err(self.err(
                    "proxy.credentials_env",
                    "proxy credentials are `user:password`",
                ));
            }
        }
        Ok(ProxyConfig {
            host,
            port: uri.port_u16().unwrap_or(3128),
            credentials,
            no_proxy: raw.no_proxy.clone(),
        })
    }

    fn validate(&self, raw: RawConfig, ov: &Overrides) -> Result<Config, ConfigError> {
        let listen = match ov.listen {
            Some(a) => a,
            None => self.addr(
                "server.listen",
                raw.server.listen.as_deref(),
                DEFAULT_LISTEN,
            )?,
        };
        let admin_listen = match ov.admin_listen {
            Some(a) => a,
            None => self.addr(
                "server.admin_listen",
                raw.server.admin_listen.as_deref(),
                DEFAULT_ADMIN_LISTEN,
            )?,
        };
        let max_body_bytes = raw.server.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=64 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(self.err(
                "server.max_body_bytes",
                "must be between 1024 and 67108864 bytes",
            ));
        }

        let token = self.token(
            "access",
            raw.access.token_env.as_deref(),
            raw.access.token_file.as_deref(),
            false,
        )?;
        let mut allow_cidrs = Vec::new();
        for (i, c) in raw.access.allow_cidrs.iter().enumerate() {
            let net = c
                .parse::<IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    self.err(
                        &format!("access.allow_cidrs[{i}]"),
                        format!("not an IP network (like 10.1.0.0/16): {c:?}"),
                    )
                })?;
            allow_cidrs.push(net);
        }
        let mut callers: Vec<(String, Zeroizing<String>)> = Vec::new();
        for (i, c) in raw.access.callers.iter().enumerate() {
            let field = format!("access.callers[{i}]");
            let name = c.name.trim();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                return Err(self.err(
                    &format!("{field}.name"),
                    "1 to 64 letters, digits, '-', '_' or '.'",
                ));
            }
            if name == "token" {
                return Err(self.err(
                    &format!("{field}.name"),
                    "\"token\" names the shared [access] token in the audit log: choose another",
                ));
            }
            if callers.iter().any(|(n, _)| n == name) {
                return Err(self.err(&format!("{field}.name"), format!("{name:?} appears twice")));
            }
            let t = self
                .token(
                    &field,
                    c.token_env.as_deref(),
                    c.token_file.as_deref(),
                    true,
                )?
                .expect("required");
            if token.as_deref() == Some(&*t) || callers.iter().any(|(_, o)| *o == t) {
                return Err(self.err(&field, "two callers share a token"));
            }
            callers.push((name.to_string(), t));
        }
        let tls = match &raw.server.tls {
            None => None,
            Some(t) => {
                if t.client_ca.is_empty() {
                    return Err(self.err(
                        "server.tls.client_ca",
                        "name the local CA that issues the SIH applications' certificates",
                    ));
                }
                Some(ServerTls {
                    cert: self.file("server.tls.cert", &t.cert)?,
                    key: self.file("server.tls.key", &t.key)?,
                    client_ca: t
                        .client_ca
                        .iter()
                        .enumerate()
                        .map(|(i, p)| self.file(&format!("server.tls.client_ca[{i}]"), p))
                        .collect::<Result<_, _>>()?,
                    client_crls: t
                        .client_crls
                        .iter()
                        .enumerate()
                        .map(|(i, p)| self.file(&format!("server.tls.client_crls[{i}]"), p))
                        .collect::<Result<_, _>>()?,
                })
            }
        };
        if !raw.access.unix_uids.is_empty() && raw.server.unix_socket.is_none() {
            return Err(self.err(
                "access.unix_uids",
                "applies to the Unix socket: set [server] unix_socket, or remove it",
            ));
        }
        let unix_socket = match &raw.server.unix_socket {
            None => None,
            Some(p) => {
                let mode = match &raw.server.unix_socket_mode {
                    None => 0o660,
                    Some(m) => match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
                        Ok(v) if v <= 0o777 && v & 0o007 == 0 => v,
                        _ => return Err(self.err(
                            "server.unix_socket_mode",
                            "an octal mode without rights for others, like \"0660\" or \"0600\"",
                        )),
                    },
                };
                Some((self.resolve(p), mode))
            }
        };
        let limits = crate::listener::Limits {
            header_read_timeout: Duration::from_millis(self.ranged(
                "server.header_read_timeout_ms",
                raw.server.header_read_timeout_ms,
                10_000,
                100..=300_000,
            )?),
            max_headers: self.ranged("server.max_headers", raw.server.max_headers, 64, 8..=1_000)?
                as usize,
            max_header_bytes: self.ranged(
                "server.max_header_bytes",
                raw.server.max_header_bytes,
                32 * 1024,
                8_192..=1024 * 1024,
            )? as usize,
            max_connections: self.ranged(
                "server.max_connections",
                raw.server.max_connections,
                1024,
                1..=1_000_000,
            )? as usize,
            write_timeout: Duration::from_millis(self.ranged(
                "server.write_timeout_ms",
                raw.server.write_timeout_ms,
                30_000,
                100..=600_000,
            )?),
        };
        let access = AccessConfig {
            token,
            allow_cidrs,
            callers,
            unix_uids: raw.access.unix_uids.clone(),
            client_certs: tls.is_some(),
        };
        for (field, addr, tls_here) in [
            ("server.listen", listen, true),
            ("server.admin_listen", admin_listen, false),
        ] {
            crate::access::check_bind(addr, &access, tls_here).map_err(|m| self.err(field, m))?;
        }

        let upstream = self.upstream(&raw.upstream)?;
        let assertion = self.assertion(&raw.assertion)?;
        let proxy = raw.proxy.as_ref().map(|p| self.proxy(p)).transpose()?;

        let identities = Identities {
            auth_cli: self.identity("auth_cli", raw.identity.auth_cli)?,
            sign: self.identity("sign", raw.identity.sign)?,
        };

        if raw.trust.amc_anchors.is_empty() {
            return Err(self.err(
                "trust.amc_anchors",
                "missing: list the IGC OSI authorities (AC-SERVEUR, AC-SERVICES-APPLICATIFS, root)",
            ));
        }
        let amc_anchors = self.anchors("trust.amc_anchors", &raw.trust.amc_anchors)?;
        let annuaire_anchors = match &raw.trust.annuaire_anchors {
            Some(a) if !a.is_empty() => self.anchors("trust.annuaire_anchors", a)?,
            Some(_) => return Err(self.err("trust.annuaire_anchors", "empty list")),
            None => amc_anchors.clone(),
        };

        let annuaire = match &raw.annuaire {
            Some(a) => {
                let d = crate::annuaire::DirectoryConfig::default();
                let secs = |field: &str, v: Option<u64>, default: Duration, min: u64| match v {
                    None => Ok(default),
                    Some(v) if v < min || v > 30 * 86_400 => Err(self.err(
                        &format!("annuaire.{field}"),
                        format!("must be between {min} and 2592000 seconds (30 days)"),
                    )),
                    Some(v) => Ok(Duration::from_secs(v)),
                };
                let text = |field: &str, v: &Option<String>, default: &str| match v {
                    Some(t) if t.trim().is_empty() => {
                        Err(self.err(&format!("annuaire.{field}"), "must not be empty"))
                    }
                    Some(t) => Ok(t.trim().to_string()),
                    None => Ok(default.to_string()),
                };
                let max = match a.cache_max_entries {
                    None => d.max_entries,
                    Some(n) if (1..=10_000_000).contains(&n) => n,
                    Some(_) => {
                        return Err(self.err(
                            "annuaire.cache_max_entries",
                            "must be between 1 and 10000000",
                        ))
                    }
                };
                Some(AnnuaireConfig {
                    url: self.https_uri("annuaire.url", &a.url)?,
                    revocation: a.revocation,
                    directory: crate::annuaire::DirectoryConfig {
                        ttl: secs("cache_ttl_s", a.cache_ttl_s, d.ttl, 1)?,
                        stale: secs("stale_s", a.stale_s, d.stale, 0)?,
                        negative_ttl: secs("negative_ttl_s", a.negative_ttl_s, d.negative_ttl, 0)?,
                        max_entries: max,
                        requester: crate::annuaire::Requester {
                            version: text(
                                "message_version",
                                &a.message_version,
                                &d.requester.version,
                            )?,
                            editeur: text("editeur", &a.editeur, &d.requester.editeur)?,
                            logiciel: text("logiciel", &a.logiciel, &d.requester.logiciel)?,
                            version_logiciel: text(
                                "version_logiciel",
                                &a.version_logiciel,
                                &d.requester.version_logiciel,
                            )?,
                        },
                    },
                })
            }
            None => None,
        };
        let mut endpoint_hosts = Vec::new();
        for (i, h) in raw.amc.endpoint_hosts.iter().enumerate() {
            let h = h.trim().to_ascii_lowercase();
            let bare = h.strip_prefix("*.").unwrap_or(&h);
            if bare.is_empty()
                || !bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(self.err(
                    &format!("amc.endpoint_hosts[{i}]"),
                    "a host name, or *.domain for every host below it",
                ));
            }
            endpoint_hosts.push(h);
        }
        let crls = self.anchors("trust.crls", &raw.trust.crls)?;

        let services: Vec<String> = match raw.services {
            Some(s) if s.is_empty() => return Err(self.err("services", "empty list")),
            Some(s) => s.into_iter().map(|s| s.to_ascii_lowercase()).collect(),
            None => DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect(),
        };

        let mut routes = BTreeMap::new();
        for (amc, svcs) in raw.routes {
            if amc.is_empty() || amc.len() > 16 || !amc.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.err(
                    &format!("routes.{amc}"),
                    "an AMC number is made of 1 to 16 digits",
                ));
            }
            let mut m = BTreeMap::new();
            for (svc, url) in svcs {
                let field = format!("routes.{amc}.{svc}");
                let svc = svc.to_ascii_lowercase();
                if !services.contains(&svc) {
                    return Err(self.err(
                        &field,
                        format!("unknown service (known: {})", services.join(", ")),
                    ));
                }
                m.insert(svc, self.https_uri(&field, &url)?);
            }
            routes.insert(amc, m);
        }

        Ok(Config {
            source: self.file.to_path_buf(),
            server: ServerConfig {
                listen,
                admin_listen,
                http_status: raw.server.http_status,
                max_body_bytes,
                max_concurrent_requests: self.ranged(
                    "server.max_concurrent_requests",
                    raw.server.max_concurrent_requests.map(|n| n as u64),
                    512,
                    1..=100_000,
                )? as usize,
                max_buffered_bytes: self.ranged(
                    "server.max_buffered_bytes",
                    raw.server.max_buffered_bytes,
                    (64 * 1024 * 1024).max(max_body_bytes as u64),
                    max_body_bytes as u64..=4 * 1024 * 1024 * 1024,
                )? as usize,
                request_deadline: Duration::from_millis(self.ranged(
                    "server.request_deadline_ms",
                    raw.server.request_deadline_ms,
                    30_000,
                    100..=600_000,
                )?),
                unix_socket,
                tls,
                limits,
                drain_timeout: Duration::from_secs(self.ranged(
                    "server.drain_timeout_s",
                    raw.server.drain_timeout_s,
                    30,
                    0..=3_600,
                )?),
            },
            access,
            log_format: raw.log.format.unwrap_or_default(),
            log_level: raw.log.level,
            identities,
            trust: TrustConfig {
                amc_anchors,
                annuaire_anchors,
                crls,
                identity_crls: raw
                    .trust
                    .identity_crls
                    .iter()
                    .map(|p| self.resolve(p))
                    .collect(),
            },
            annuaire,
            amc: AmcConfig {
                revocation: raw.amc.revocation,
                present_client_cert: raw.amc.present_client_cert,
                explicit_endpoints: raw.amc.explicit_endpoints,
                endpoint_hosts,
                breaker_failures: raw.amc.breaker_failures.unwrap_or(5),
                breaker_open: Duration::from_secs(
                    raw.amc.breaker_open_s.unwrap_or(30).clamp(1, 3_600),
                ),
                max_concurrent_per_amc: match raw.amc.max_concurrent_per_amc {
                    None => 128,
                    Some(n) if (1..=100_000).contains(&n) => n,
                    Some(_) => {
                        return Err(
                            self.err("amc.max_concurrent_per_amc", "must be between 1 and 100000")
                        )
                    }
                },
            },
            upstream,
            proxy,
            reload_check_interval_s: raw.reload.check_interval_s.unwrap_or(30),
            audit_file: raw.audit.file.as_ref().map(|p| self.resolve(p)),
            assertion,
            services,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            Path::new("/etc/rocgw/rocgw.toml"),
            &Overrides::default(),
        )
    }

    #[test]
    fn local_listener_options_are_checked() {
        let e = parse("[server]\nunix_socket = \"/run/x.sock\"\nunix_socket_mode = \"0666\"\n")
            .unwrap_err();
        assert_eq!(e.field, "server.unix_socket_mode");
        let e = parse("[server.tls]\ncert = \"c\"\nkey = \"k\"\nclient_ca = []\n").unwrap_err();
        assert_eq!(e.field, "server.tls.client_ca");
        let e = parse("[server]\nmax_header_bytes = 100\n").unwrap_err();
        assert_eq!(e.field, "server.max_header_bytes");
        let e =
            parse("[access]\n[[access.callers]]\nname = \"a b\"\ntoken_env = \"X\"\n").unwrap_err();
        assert_eq!(e.field, "access.callers[0].name");
        let e = parse("[access]\n[[access.callers]]\nname = \"token\"\ntoken_env = \"X\"\n")
            .unwrap_err();
        assert_eq!(e.field, "access.callers[0].name");
        let e = parse("[access]\nunix_uids = [1000]\n").unwrap_err();
        assert_eq!(e.field, "access.unix_uids");
    }

    #[test]
    fn unknown_keys_name_the_field() {
        let e = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert_eq!(e.field, "server.lisen");
        assert!(e.message.contains("lisen"), "{e}");
        assert!(e.to_string().starts_with("/etc/rocgw/rocgw.toml: "), "{e}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = parse("[server]\nlisten = \"nope\"\n").unwrap_err();
        assert_eq!(e.field, "server.listen");
        let e = parse("[server]\nhttp_status = \"loose\"\n").unwrap_err();
        assert_eq!(e.field, "server.http_status");
    }

    #[test]
    fn inline_secrets_are_refused() {
        let e = parse("[identity.sign]\np12 = \"x.p12\"\npassword = \"hunter2\"\n").unwrap_err();
        assert_eq!(e.field, "identity.sign.password");
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn missing_identity_file_names_field_and_path() {
        let e = parse("[identity.auth_cli]\np12 = \"/nonexistent/a.p12\"\npassword_env = \"X\"\n")
            .unwrap_err();
        assert_eq!(e.field, "identity.auth_cli.p12");
        assert_eq!(e.message, "file not found: /nonexistent/a.p12");
    }

    #[test]
    fn non_loopback_without_caller_check_is_refused() {
        let e = parse("[server]\nlisten = \"0.0.0.0:8580\"\n").unwrap_err();
        assert_eq!(e.field, "server.listen");
        assert!(e.message.contains("caller check"), "{e}");
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let dir = std::env::temp_dir().join(format!("rocgw-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["a.p12", "s.p12", "anchor.pem"] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        std::fs::write(dir.join("pw"), "P12-Secret-Value\n").unwrap();
        std::fs::write(dir.join("tok"), "Token-Secret-Value-0123456789").unwrap();
        std::fs::write(dir.join("tok2"), "Caller-Secret-Value-0123456789").unwrap();
        let text = "[access]\ntoken_file = \"tok\"\n\
                    [[access.callers]]\nname = \"dpi\"\ntoken_file = \"tok2\"\n\
                    [identity.auth_cli]\np12 = \"a.p12\"\npassword_file = \"pw\"\n\
                    [identity.sign]\np12 = \"s.p12\"\npassword_file = \"pw\"\n\
                    [trust]\namc_anchors = [\"anchor.pem\"]\n";
        let cfg = Config::parse(text, &dir.join("rocgw.toml"), &Overrides::default()).unwrap();
        let IdentitySource::P12 { password, .. } = &cfg.identities.sign else {
            panic!("p12 expected")
        };
        assert_eq!(
            password.as_str(),
            "P12-Secret-Value",
            "trailing newline trimmed"
        );
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("P12-Secret-Value")
                && !dbg.contains("Token-Secret-Value")
                && !dbg.contains("Caller-Secret-Value"),
            "{dbg}"
        );
        assert!(dbg.contains("<redacted>") && dbg.contains("dpi"), "{dbg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn no_proxy_rules_match_names_suffixes_and_networks() {
        let p = ProxyConfig {
            host: "proxy".into(),
            port: 3128,
            credentials: None,
            no_proxy: vec![
                "localhost".into(),
                ".hopital.example".into(),
                "10.0.0.0/8".into(),
            ],
        };
        assert!(p.bypass("localhost"));
        assert!(p.bypass("LOCALHOST"));
        assert!(p.bypass("ws.hopital.example"));
        assert!(p.bypass("hopital.example"));
        assert!(!p.bypass("nothopital.example"));
        assert!(p.bypass("10.2.3.4"));
        assert!(!p.bypass("11.2.3.4"));
        assert!(!p.bypass("amc.example"));
    }

    #[test]
    fn proxy_url_must_be_http_without_credentials() {
        let e = parse("[proxy]\nurl = \"http://u:p@proxy:3128\"\n").unwrap_err();
        assert_eq!(e.field, "proxy.url");
        assert!(!e.to_string().contains("u:p"), "{e}");
        let e = parse("[proxy]\nurl = \"https://proxy:3128\"\n").unwrap_err();
        assert_eq!(e.field, "proxy.url");
    }
}

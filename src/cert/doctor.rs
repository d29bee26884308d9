//! `rocgw cert doctor`: everything rocgw needs before going live, one line per check with OK,
//! WARN or FAIL and the fix; exit code 0 ready (warnings allowed), 2 not ready (1: warnings
//! under `--strict`).
//!
//! One rule with `serve`: whatever doctor FAILs, `serve` refuses at start-up (it runs
//! [`check`] on its configuration), and doctor ends with the start-up `serve` would make, so
//! what `serve` refuses is a FAIL here too. What `serve` accepts is at most a WARN.

use std::path::Path;

use x509_parser::prelude::*;

use crate::clock::now_unix;
use crate::config::{Config, Environment, Overrides, StructureConfig};
use crate::identity::{is_test, CertInfo, EXPIRY_WARNING_DAYS};
use crate::trust::{Anchors, CrlSet};

mod identity;
use identity::file_mode;
pub(super) use identity::{identity, load_crls};

/// Which IGC hierarchies the credentials may belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `environment` is set: the other hierarchy fails, as `serve` refuses it.
    Only(Environment),
    /// Unset: `serve` accepts both; a TEST certificate warns unless `allow_test`
    /// (`--allow-test-pki`).
    Either { allow_test: bool },
}

impl Expect {
    pub fn of(environment: Option<Environment>, allow_test: bool) -> Expect {
        match environment {
            Some(env) => Expect::Only(env),
            None => Expect::Either { allow_test },
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub what: String,
    pub detail: String,
    pub fix: Option<String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "OK  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {}: {}", self.what, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, " — fix: {fix}")?;
        }
        Ok(())
    }
}

pub(super) struct Report(pub(super) Vec<Check>);

impl Report {
    pub(super) fn add(
        &mut self,
        level: Level,
        what: &str,
        detail: impl Into<String>,
        fix: Option<&str>,
    ) {
        self.0.push(Check {
            level,
            what: what.to_string(),
            detail: detail.into(),
            fix: fix.map(str::to_string),
        });
    }
}

/// Runs every check on the configuration at `path`, then the start-up `serve` would make.
/// `allow_test`: TEST certificates are expected when the configuration sets no `environment`.
pub fn run(path: &Path, allow_test: bool) -> Vec<Check> {
    let mut r = Report(Vec::new());
    let cfg = match Config::load(path, &Overrides::default()) {
        Ok(c) => c,
        Err(e) => {
            r.add(
                Level::Fail,
                "configuration",
                e.to_string(),
                Some("correct the file (config/rocgw.example.toml documents every field)"),
            );
            return r.0;
        }
    };
    r.add(Level::Ok, "configuration", path.display().to_string(), None);
    r.0.extend(check(&cfg, Expect::of(cfg.environment, allow_test)));
    match crate::runtime::Runtime::start(cfg) {
        Ok(_) => r.add(
            Level::Ok,
            "start-up",
            "rocgw serve loads these credentials",
            None,
        ),
        // The line `rocgw serve` would stop with.
        Err(e) => r.add(Level::Fail, "start-up", e, None),
    }
    r.0
}

/// The checks of a loaded configuration: identities, structures, anchors and CRLs, the local
/// listener. `serve` runs them at start-up and refuses any FAIL.
pub fn check(cfg: &Config, expect: Expect) -> Vec<Check> {
    let mut r = Report(Vec::new());
    let now = now_unix();
    let identity_crls = load_crls(&cfg.trust.identity_crls, &mut r);
    for st in &cfg.identities.structures {
        structure(&mut r, st, now, expect, &identity_crls);
    }
    anchors(&mut r, cfg, now, expect);
    local_listener(&mut r, cfg, now);
    // Token and proxy credential files (the identities' own were checked with them).
    let identity_secrets: Vec<_> = cfg
        .identities
        .structures
        .iter()
        .flat_map(|st| [&st.auth_cli, &st.sign])
        .flat_map(|src| crate::identity::open(src).secret_files())
        .collect();
    for (field, path) in &cfg.secret_files {
        if !identity_secrets.contains(path) {
            file_mode(&mut r, field, path);
        }
    }
    r.0
}

/// One structure's two identities, and that both certificates name the structure (the
/// configured identifier, in the `[structures.*]` form).
fn structure(
    r: &mut Report,
    st: &StructureConfig,
    now: i64,
    expect: Expect,
    identity_crls: &crate::trust::IdentityCrls,
) {
    use crate::identity::Role;
    let mut found = Vec::new();
    for (role, source) in [(Role::AuthCli, &st.auth_cli), (Role::Sign, &st.sign)] {
        let name = source.field();
        if let Some(s) = identity(r, name, role, source, now, expect, identity_crls) {
            found.push(s);
        }
    }
    let [a, b] = found.as_slice() else { return };
    let field = format!("{}: structure", st.field);
    let label = if st.id.is_some() {
        field.as_str()
    } else {
        "structure"
    };
    match &st.id {
        Some(id) if a != id || b != id => r.add(
            Level::Fail,
            label,
            format!("configured as {id}; AUTH_CLI is structure {a}, SIGN is structure {b}"),
            Some("the key of [structures.\"…\"] must be the structure both certificates name (their OU)"),
        ),
        _ if a == b => r.add(Level::Ok, label, format!("both identities are structure {a}"), None),
        _ => r.add(
            Level::Fail,
            label,
            format!("AUTH_CLI is structure {a}, SIGN is structure {b}"),
            Some("both certificates must identify the structure (EJ or EG) that signed the ROC contract: order them for the same OU"),
        ),
    }
}

/// The local listener's own credentials: `[server.tls]` (usable, not expiring) and the Unix
/// socket's folder.
fn local_listener(r: &mut Report, cfg: &Config, now: i64) {
    if let Some(t) = &cfg.server.tls {
        match crate::local_tls::load(t) {
            Err(e) => r.add(
                Level::Fail,
                "server.tls",
                e,
                Some("give the local certificate's PEM chain, its own RSA key, and the local CA"),
            ),
            Ok(_) => {
                let info = crate::identity::read_pem_certs(&t.cert)
                    .ok()
                    .and_then(|c| c.first().and_then(|c| CertInfo::parse(c.as_ref()).ok()));
                if let Some(info) = info {
                    let days = info.days_left(now);
                    let (level, fix) = match days {
                        d if d < 0 => (
                            Level::Fail,
                            Some("issue a new local certificate from the local CA"),
                        ),
                        d if d < EXPIRY_WARNING_DAYS => (
                            Level::Warn,
                            Some("renew it from the local CA, then systemctl reload rocgw"),
                        ),
                        _ => (Level::Ok, None),
                    };
                    r.add(
                        level,
                        "server.tls",
                        format!("local certificate {}: {days} days left", info.subject),
                        fix,
                    );
                }
            }
        }
        file_mode(r, "server.tls.key", &t.key);
        // The local CA's CRLs: rustls takes an expired one as it is, so say when one is stale.
        for p in &t.client_crls {
            let ders = crate::trust::read_crl_file(p).unwrap_or_default();
            for der in ders {
                let Ok((_, crl)) = parse_x509_crl(&der) else {
                    continue;
                };
                match crl.next_update().map(|t| t.timestamp()) {
                    Some(next) if next < now => r.add(
                        Level::Warn,
                        "server.tls.client_crls",
                        format!("{}: past its next update", p.display()),
                        Some("publish a fresh CRL from the local CA, then systemctl reload rocgw"),
                    ),
                    _ => r.add(
                        Level::Ok,
                        "server.tls.client_crls",
                        format!(
                            "{}: {} revoked",
                            p.display(),
                            crl.iter_revoked_certificates().count()
                        ),
                        None,
                    ),
                }
            }
        }
    }
    if let Some((path, _)) = &cfg.server.unix_socket {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let fix = Some("create it, writable by rocgw only (systemd: RuntimeDirectory=rocgw)");
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() && m.permissions().mode() & 0o022 != 0 => r.add(
                Level::Warn,
                "server.unix_socket",
                format!(
                    "{}: writable by others ({:o}): they could put their own socket in its place",
                    dir.display(),
                    m.permissions().mode() & 0o777
                ),
                fix,
            ),
            Ok(m) if m.is_dir() => {}
            _ => r.add(
                Level::Fail,
                "server.unix_socket",
                format!("{}: the folder does not exist", dir.display()),
                fix,
            ),
        }
    }
}

/// The worst level of a report, as an exit code: 0, 1 or 2.
/// 0 ready (warnings allowed: a certificate in its renewal month or a stale CRL under the soft
/// policy must not stop a service restart), 2 not ready; with `strict`, warnings give 1.
pub fn exit_code(checks: &[Check], strict: bool) -> u8 {
    match checks.iter().map(|c| c.level).max() {
        Some(Level::Fail) => 2,
        Some(Level::Warn) if strict => 1,
        _ => 0,
    }
}

/// With `environment` set, every anchor belongs to it (as `serve` requires).
fn anchor_hierarchy(r: &mut Report, field: &str, anchors: &Anchors, expect: Expect) {
    let Expect::Only(env) = expect else { return };
    let want_test = env == Environment::Test;
    for a in anchors
        .anchors
        .iter()
        .filter(|a| is_test(&a.info) != want_test)
    {
        r.add(
            Level::Fail,
            field,
            format!(
                "{}: a {} authority with environment = \"{}\"",
                a.info.subject,
                if want_test { "production" } else { "TEST" },
                env.as_str()
            ),
            Some("install the IGC OSI authorities of the environment the gateway runs in"),
        );
    }
}

/// The IGC OSI anchors and CRLs the AMC side needs.
fn anchors(r: &mut Report, cfg: &Config, now: i64, expect: Expect) {
    match Anchors::load("trust.amc_anchors", &cfg.trust.amc_anchors, now) {
        Err(e) => r.add(Level::Fail, "trust.amc_anchors", e.to_string(), None),
        Ok(a) => {
            anchor_hierarchy(r, "trust.amc_anchors", &a, expect);
            if !cfg.trust.annuaire_anchors.is_empty() {
                let field = "trust.annuaire_anchors";
                match Anchors::load(field, &cfg.trust.annuaire_anchors, now) {
                    Ok(an) => anchor_hierarchy(r, field, &an, expect),
                    Err(e) => r.add(Level::Fail, field, e.to_string(), None),
                }
            }
            for (name, needle) in [
                ("AC-SERVEUR", "AC-SERVEUR"),
                ("AC-SERVICES-APPLICATIFS", "AC-SERVICES-APPLICATIFS"),
            ] {
                let found = a
                    .anchors
                    .iter()
                    .any(|x| x.info.subject.to_ascii_uppercase().contains(needle));
                if found {
                    r.add(
                        Level::Ok,
                        "trust.amc_anchors",
                        format!("{name} present"),
                        None,
                    );
                } else {
                    r.add(
                        Level::Warn,
                        "trust.amc_anchors",
                        format!("no {name} certificate among the anchors"),
                        Some("install the GIE SESAM-Vitale IGC OSI authorities (AC-SERVEUR and AC-SERVICES-APPLICATIFS)"),
                    );
                }
            }
            if cfg.trust.crls.is_empty() {
                r.add(
                    Level::Warn,
                    "trust.crls",
                    "no CRL configured: revoked AMC certificates cannot be detected",
                    Some("download the IGC OSI CRLs daily and list them in [trust] crls"),
                );
                return;
            }
            let signers = match crate::trust::crl_signers(&cfg.trust, &[&a], now) {
                Ok(s) => s,
                Err(e) => return r.add(Level::Fail, "trust", e.to_string(), None),
            };
            let issuers = [&a, &signers];
            match CrlSet::load("trust.crls", &cfg.trust.crls, &issuers, now) {
                Err(e) => r.add(Level::Fail, "trust.crls", e.to_string(), None),
                Ok(set) => crl_lines(r, &set, cfg.amc.revocation, now),
            }
        }
    }
}

/// One line per CRL in force (fresh, or stale: a WARN), and a WARN per CRL superseded by a newer
/// one of the same authority and scope.
fn crl_lines(r: &mut Report, set: &CrlSet, policy: crate::config::RevocationPolicy, now: i64) {
    for c in set.crls() {
        let hard = policy == crate::config::RevocationPolicy::Hard;
        if c.is_stale(now) {
            // serve starts, and reloads fresh files without a restart.
            let effect = if hard {
                ": under revocation = \"hard\" every AMC call is refused until \
                 it is refreshed"
            } else {
                ""
            };
            r.add(
                Level::Warn,
                "trust.crls",
                format!("{}: past its next update{effect}", c.source.display()),
                Some("refresh the CRL files (they are published daily)"),
            );
        } else {
            let scope = c
                .scope
                .describe()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            r.add(
                Level::Ok,
                "trust.crls",
                format!("{}: fresh, {} entries{scope}", c.source.display(), c.len()),
                None,
            );
        }
    }
    for s in set.superseded() {
        r.add(
            Level::Warn,
            "trust.crls",
            s.to_string(),
            Some("list only the current CRL of each authority (and scope)"),
        );
    }
}

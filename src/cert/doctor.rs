//! `rocgw cert doctor`: everything rocgw needs before going live, one line per check with OK,
//! WARN or FAIL and the fix. Exit code 0 (all OK), 1 (warnings), 2 (failures).

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::*;

use super::{chain_up, is_test, key_matches, missing_is_aci_el_org, Chain};
use crate::clock::now_unix;
use crate::config::{Config, IdentitySource, Overrides, StructureConfig};
use crate::identity::{CertInfo, Role, EXPIRY_WARNING_DAYS};
use crate::trust::{Anchors, CrlSet};

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

/// Runs every check on the configuration at `path`. `test_pki_expected`: the configuration is
/// the sandbox's (or the caller allows TEST certificates); otherwise a TEST chain is a failure.
pub fn run(path: &Path, test_pki_expected: bool) -> Vec<Check> {
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
    let now = now_unix();
    let identity_crls = load_crls(&cfg.trust.identity_crls, &mut r);
    for st in &cfg.identities.structures {
        structure(&mut r, st, now, test_pki_expected, &identity_crls);
    }
    anchors(&mut r, &cfg, now);
    local_listener(&mut r, &cfg, now);
    r.0
}

/// One structure's two identities, and that both certificates name the structure (the
/// configured identifier, in the `[structures.*]` form).
fn structure(
    r: &mut Report,
    st: &StructureConfig,
    now: i64,
    test_pki_expected: bool,
    identity_crls: &[(Vec<u8>, Vec<Vec<u8>>)],
) {
    let mut found = Vec::new();
    for (role, source) in [(Role::AuthCli, &st.auth_cli), (Role::Sign, &st.sign)] {
        let name = source.field();
        if let Some(s) = identity(r, name, role, source, now, test_pki_expected, identity_crls) {
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

/// (issuer raw name, serials) of each IGC-Santé CRL file.
fn load_crls(paths: &[PathBuf], r: &mut Report) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut out = Vec::new();
    for p in paths {
        let ders = match crate::trust::read_crl_file(p) {
            Ok(d) => d,
            Err(e) => {
                r.add(Level::Fail, "trust.identity_crls", e.to_string(), None);
                continue;
            }
        };
        for der in ders {
            if let Ok((_, crl)) = parse_x509_crl(&der) {
                out.push((
                    crl.issuer().as_raw().to_vec(),
                    crl.iter_revoked_certificates()
                        .map(|c| c.raw_serial().to_vec())
                        .collect(),
                ));
            }
        }
    }
    out
}

/// Checks one identity; returns its structure identifier when it could be read.
pub(super) fn identity(
    r: &mut Report,
    name: &str,
    role: Role,
    source: &IdentitySource,
    now: i64,
    test_pki_expected: bool,
    crls: &[(Vec<u8>, Vec<Vec<u8>>)],
) -> Option<String> {
    let src = crate::identity::open(source);
    let raw = match src.read() {
        Ok(raw) => raw,
        Err(e) => {
            r.add(
                Level::Fail,
                name,
                format!("cannot read: {e}"),
                Some("check the path, the password (variable or file) and the file's format"),
            );
            return None;
        }
    };
    for f in src.files() {
        file_mode(r, name, &f);
    }
    let Some(leaf) = raw.chain.first() else {
        r.add(Level::Fail, name, "no certificate", None);
        return None;
    };
    let info = match CertInfo::parse(leaf) {
        Ok(i) => i,
        Err(e) => {
            r.add(Level::Fail, name, e, None);
            return None;
        }
    };
    r.add(
        Level::Ok,
        name,
        format!("{} (serial {})", info.subject, info.serial),
        None,
    );
    // One line per check, in this order.
    role_fit(r, name, role, &info);
    key_pair(r, name, raw.key_pkcs8.as_deref().map(Vec::as_slice), leaf);
    chain(r, name, leaf, &raw.chain[1..]);
    validity(r, name, &info, now);
    common_name(r, name, role, &info);
    hierarchy(r, name, &info, test_pki_expected);
    revocation(r, name, leaf, &info, crls);
    info.structure_id
}

/// `<name>: <check>`, the `what` of an identity's check.
fn what(name: &str, check: &str) -> String {
    format!("{name}: {check}")
}

/// The key usages fit `role`; when they fit the other role, the two files are swapped.
fn role_fit(r: &mut Report, name: &str, role: Role, info: &CertInfo) {
    let what = what(name, "role");
    match info.role_problem(role) {
        None => r.add(Level::Ok, &what, format!("fits {}", role.as_str()), None),
        Some(p) => {
            let other = match role {
                Role::AuthCli => Role::Sign,
                Role::Sign => Role::AuthCli,
            };
            let swapped = info.role_problem(other).is_none();
            r.add(
                Level::Fail,
                &what,
                p,
                Some(if swapped {
                    "this is the other certificate of the pair: swap the AUTH_CLI and SIGN files"
                } else {
                    "install the ORG certificate ordered for this service"
                }),
            );
        }
    }
}

/// The private key (PKCS#8, when the file has one) is the certificate's.
fn key_pair(r: &mut Report, name: &str, key: Option<&[u8]>, leaf: &[u8]) {
    let what = what(name, "key");
    match key {
        Some(k) if key_matches(k, leaf) => r.add(
            Level::Ok,
            &what,
            "the private key matches the certificate",
            None,
        ),
        Some(_) => r.add(
            Level::Fail,
            &what,
            "the private key does not match the certificate",
            Some("bundle the certificate with the key its CSR was made from (rocgw cert bundle)"),
        ),
        None => r.add(Level::Fail, &what, "no private key", None),
    }
}

/// The certificates of the file chain `leaf` up to an IGC-Santé root.
fn chain(r: &mut Report, name: &str, leaf: &[u8], rest: &[CertificateDer<'_>]) {
    let what = what(name, "chain");
    let pool: Vec<Vec<u8>> = rest.iter().map(|c| c.as_ref().to_vec()).collect();
    match chain_up(leaf, &pool) {
        Chain::Complete(chain) => {
            let root = chain
                .last()
                .and_then(|c| CertInfo::parse(c).ok())
                .map(|i| i.subject)
                .unwrap_or_default();
            if root.to_ascii_uppercase().contains("IGC-SANTE") {
                r.add(
                    Level::Ok,
                    &what,
                    format!("complete up to {root} ({} certificates)", chain.len()),
                    None,
                );
            } else {
                r.add(
                    Level::Fail,
                    &what,
                    format!("ends at {root}, not at an IGC-Santé root"),
                    Some("ORG certificates for ROC come from IGC-Santé (gamme élémentaire)"),
                );
            }
        }
        Chain::Incomplete(chain) => {
            let issuer = chain
                .last()
                .and_then(|c| CertInfo::parse(c).ok())
                .map(|i| i.issuer)
                .unwrap_or_default();
            r.add(
                Level::Fail,
                &what,
                format!("incomplete: the certificate of {issuer} is missing"),
                Some(if missing_is_aci_el_org(&issuer) {
                    "add the intermediate ACI-EL-ORG (AC IGC-SANTE ELEMENTAIRE ORGANISATIONS) to the file, as the procedure says for a certificate made from a CSR: rocgw cert bundle --chain"
                } else {
                    "add the missing CA certificates to the file"
                }),
            );
        }
    }
}

/// Inside its validity, and how long it has left (a warning within the renewal alert).
fn validity(r: &mut Report, name: &str, info: &CertInfo, now: i64) {
    let what = what(name, "validity");
    let days = info.days_left(now);
    if now >= info.not_after {
        r.add(
            Level::Fail,
            &what,
            format!("expired on {}", crate::clock::fmt_time(info.not_after)),
            Some("order a new certificate (3-year validity) and install it; rocgw reloads it without a restart"),
        );
    } else if now < info.not_before {
        r.add(Level::Fail, &what, "not yet valid", None);
    } else if days <= EXPIRY_WARNING_DAYS {
        r.add(
            Level::Warn,
            &what,
            format!(
                "expires in {days} days ({})",
                crate::clock::fmt_time(info.not_after)
            ),
            Some("order the renewal now (the procedure's one-month alert)"),
        );
    } else {
        r.add(Level::Ok, &what, format!("{days} days left"), None);
    }
}

/// The common name the procedure recommends for the role (a warning only).
fn common_name(r: &mut Report, name: &str, role: Role, info: &CertInfo) {
    let what = what(name, "name");
    match info.common_name.as_deref() {
        Some(cn) if cn == role.recommended_cn() => {
            r.add(Level::Ok, &what, format!("CN={cn}"), None)
        }
        other => r.add(
            Level::Warn,
            &what,
            format!(
                "CN={} (recommended: {})",
                other.unwrap_or("-"),
                role.recommended_cn()
            ),
            Some("not blocking; the procedure suggests this service name"),
        ),
    }
}

/// TEST certificates in the sandbox only, production ones outside it only.
fn hierarchy(r: &mut Report, name: &str, info: &CertInfo, test_pki_expected: bool) {
    let what = what(name, "hierarchy");
    let test = is_test(info);
    match (test, test_pki_expected) {
        (true, false) => r.add(
            Level::Fail,
            &what,
            "a TEST IGC-Santé certificate in a production configuration",
            Some("install the production certificate (or run the sandbox for tests)"),
        ),
        (false, true) => r.add(
            Level::Fail,
            &what,
            "a production certificate in the sandbox",
            Some("the sandbox is for TEST certificates only: write a production configuration"),
        ),
        _ => r.add(
            Level::Ok,
            &what,
            if test { "TEST (sandbox)" } else { "production" },
            None,
        ),
    }
}

/// Not listed by the configured IGC-Santé CRLs; no line when none is configured.
fn revocation(
    r: &mut Report,
    name: &str,
    leaf: &[u8],
    info: &CertInfo,
    crls: &[(Vec<u8>, Vec<Vec<u8>>)],
) {
    if crls.is_empty() {
        return;
    }
    let what = what(name, "revocation");
    let revoked = X509Certificate::from_der(leaf).is_ok_and(|(_, c)| {
        crls.iter().any(|(issuer, serials)| {
            issuer.as_slice() == c.issuer().as_raw()
                && serials.iter().any(|s| s.as_slice() == c.raw_serial())
        })
    });
    if revoked {
        r.add(
            Level::Fail,
            &what,
            format!("serial {} is in the IGC-Santé CRL", info.serial),
            Some("this certificate was revoked: order and install a new one"),
        );
    } else {
        r.add(
            Level::Ok,
            &what,
            "not in the configured IGC-Santé CRLs",
            None,
        );
    }
}

/// Secret files must not be readable by others.
fn file_mode(r: &mut Report, name: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(m) = std::fs::metadata(path) else {
        return;
    };
    let mode = m.permissions().mode() & 0o777;
    let what = format!("{name}: permissions");
    if mode & 0o004 != 0 {
        r.add(
            Level::Fail,
            &what,
            format!("{} is readable by everyone ({mode:o})", path.display()),
            Some(&format!("chmod 600 {}", path.display())),
        );
    } else if mode & 0o040 != 0 {
        r.add(
            Level::Warn,
            &what,
            format!("{} is readable by its group ({mode:o})", path.display()),
            Some("keep it readable by the rocgw user only (0600 or 0640 with a dedicated group)"),
        );
    }
}

/// The IGC OSI anchors and CRLs the AMC side needs.
fn anchors(r: &mut Report, cfg: &Config, now: i64) {
    match Anchors::load("trust.amc_anchors", &cfg.trust.amc_anchors, now) {
        Err(e) => r.add(Level::Fail, "trust.amc_anchors", e.to_string(), None),
        Ok(a) => {
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
            let issuers = [&a];
            match CrlSet::load("trust.crls", &cfg.trust.crls, &issuers, now) {
                Err(e) => r.add(Level::Fail, "trust.crls", e.to_string(), None),
                Ok(set) => {
                    for c in set.crls() {
                        let hard = cfg.amc.revocation == crate::config::RevocationPolicy::Hard;
                        if c.is_stale(now) {
                            r.add(
                                if hard { Level::Fail } else { Level::Warn },
                                "trust.crls",
                                format!("{}: past its next update", c.source.display()),
                                Some("refresh the CRL files (they are published daily)"),
                            );
                        } else {
                            r.add(
                                Level::Ok,
                                "trust.crls",
                                format!("{}: fresh, {} entries", c.source.display(), c.len()),
                                None,
                            );
                        }
                    }
                }
            }
        }
    }
}

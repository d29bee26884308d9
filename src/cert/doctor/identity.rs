//! The doctor's checks of one identity file (role, key, chain, validity, name, hierarchy,
//! revocation, permissions), shared by the configuration's check and `--candidate`.

use std::path::{Path, PathBuf};

use rustls::pki_types::CertificateDer;

use super::{Expect, Level, Report};
use crate::cert::{chain_up, is_test, key_matches, missing_is_aci_el_org, Chain};
use crate::config::{Environment, IdentitySource};
use crate::identity::{is_igc_sante_root, CertInfo, Role, EXPIRY_WARNING_DAYS};
use crate::trust::IdentityCrls;

/// The IGC-Santé CRL files; one FAIL line per file that cannot be read.
pub(in crate::cert) fn load_crls(paths: &[PathBuf], r: &mut Report) -> IdentityCrls {
    let (crls, errors) = IdentityCrls::load(paths);
    for e in errors {
        r.add(Level::Fail, "trust.identity_crls", e, None);
    }
    crls
}

/// Checks one identity; returns its structure identifier when it could be read.
pub(in crate::cert) fn identity(
    r: &mut Report,
    name: &str,
    role: Role,
    source: &IdentitySource,
    now: i64,
    expect: Expect,
    crls: &IdentityCrls,
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
    for f in src.secret_files() {
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
    hierarchy(r, name, &info, expect);
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
            if is_igc_sante_root(&root) {
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

/// The certificate belongs to the expected hierarchy: what `serve` refuses fails, a TEST
/// certificate with no `environment` set warns (unless TEST is allowed).
fn hierarchy(r: &mut Report, name: &str, info: &CertInfo, expect: Expect) {
    let what = what(name, "hierarchy");
    let test = is_test(info);
    let kind = if test { "TEST" } else { "production" };
    match expect {
        Expect::Only(env) if test != (env == Environment::Test) => r.add(
            Level::Fail,
            &what,
            format!(
                "a {kind} certificate with environment = \"{}\"",
                env.as_str()
            ),
            Some(if test {
                "install the production certificate (TEST ones are for qualification gateways)"
            } else {
                "install the TEST certificate, or set environment = \"production\""
            }),
        ),
        Expect::Only(env) => r.add(
            Level::Ok,
            &what,
            format!("{kind} (environment = \"{}\")", env.as_str()),
            None,
        ),
        Expect::Either { allow_test: false } if test => r.add(
            Level::Warn,
            &what,
            "a TEST IGC-Santé certificate, and no environment set (rocgw serve accepts it)",
            Some("set environment = \"test\" on a qualification gateway, or install the production certificate"),
        ),
        Expect::Either { .. } => r.add(Level::Ok, &what, kind, None),
    }
}

/// Not listed by the configured IGC-Santé CRLs; no line when none is configured.
fn revocation(r: &mut Report, name: &str, leaf: &[u8], info: &CertInfo, crls: &IdentityCrls) {
    if crls.is_empty() {
        return;
    }
    let what = what(name, "revocation");
    let revoked = crls.revokes(leaf);
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

/// Files that hold or unlock a key should be readable by rocgw only: `serve` warns about them,
/// and so does doctor. Certificates are public: never checked.
pub(super) fn file_mode(r: &mut Report, name: &str, path: &Path) {
    let Some((mode, who)) = crate::config::readable_by_others(path) else {
        return;
    };
    r.add(
        Level::Warn,
        &format!("{name}: permissions"),
        format!("{} is readable by {who} ({mode:o})", path.display()),
        Some(&format!(
            "chmod 600 {} (or 0640 with a group of its own)",
            path.display()
        )),
    );
}

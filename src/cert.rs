//! `rocgw cert …`: the certificate steps of the IGC-Santé procedure, checkable from the command
//! line — `inspect` a delivered file, make a key and `csr` for an order, `bundle` the delivered
//! certificate with its key and chain into the PKCS#12 rocgw loads. (`doctor`, the pre-flight
//! check of a whole configuration, lives in `cert/doctor.rs`.)

pub mod candidate;
pub mod doctor;

pub use crate::identity::{chain_up, is_test, issued_by, missing_is_aci_el_org, Chain};

use std::path::Path;

use rustls::pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::prelude::*;
use zeroize::Zeroizing;

use crate::clock::{fmt_time, now_unix};
use crate::identity::{read_p12, read_pem_certs, CertInfo, Role};

/// One certificate, as `cert inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertReport {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    pub days_left: i64,
    pub key: String,
    pub key_usage: Vec<String>,
    pub extended_key_usage: Vec<String>,
    /// `AUTH_CLI`, `SIGN`, `CA`, `server` or `other`.
    pub role: String,
    /// `1`+FINESS or `3`+SIRET, from the OU.
    pub structure_id: Option<String>,
    pub structure_kind: Option<String>,
    pub test_pki: bool,
}

/// What a file holds.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub file: String,
    pub format: String,
    pub has_private_key: bool,
    /// Whether the private key matches the first certificate (when there is a key).
    pub key_matches: Option<bool>,
    /// Certificates in file order (leaf first for a PKCS#12 chain).
    pub certificates: Vec<CertReport>,
    /// Whether each certificate is issued by the next one (a chain in order).
    pub chain_in_order: bool,
}

/// The role a certificate fits, by its extensions.
pub fn role_of(info: &CertInfo, server_auth: bool) -> &'static str {
    if info.is_ca {
        "CA"
    } else if server_auth {
        "server"
    } else if info.role_problem(Role::AuthCli).is_none() {
        "AUTH_CLI"
    } else if info.role_problem(Role::Sign).is_none() {
        "SIGN"
    } else {
        "other"
    }
}

pub fn report(der: &[u8], now: i64) -> Result<CertReport, String> {
    let info = CertInfo::parse(der)?;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let key = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(r)) => format!("RSA {}", r.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(p)) => format!("EC {}", p.key_size()),
        Ok(other) => format!("{other:?}").chars().take(24).collect(),
        Err(_) => "unknown".into(),
    };
    let mut key_usage = Vec::new();
    if let Ok(Some(ku)) = cert.key_usage() {
        let k = ku.value;
        for (on, name) in [
            (k.digital_signature(), "digitalSignature"),
            (k.non_repudiation(), "nonRepudiation"),
            (k.key_encipherment(), "keyEncipherment"),
            (k.data_encipherment(), "dataEncipherment"),
            (k.key_agreement(), "keyAgreement"),
            (k.key_cert_sign(), "keyCertSign"),
            (k.crl_sign(), "cRLSign"),
        ] {
            if on {
                key_usage.push(name.to_string());
            }
        }
    }
    let mut eku = Vec::new();
    let mut server_auth = false;
    if let Ok(Some(e)) = cert.extended_key_usage() {
        let e = e.value;
        server_auth = e.server_auth;
        for (on, name) in [
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.email_protection, "emailProtection"),
            (e.code_signing, "codeSigning"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "OCSPSigning"),
            (e.any, "anyExtendedKeyUsage"),
        ] {
            if on {
                eku.push(name.to_string());
            }
        }
        eku.extend(e.other.iter().map(|o| o.to_id_string()));
    }
    let structure_kind = info.structure_id.as_deref().map(|s| {
        if s.starts_with('1') {
            "FINESS".to_string()
        } else {
            "SIRET".to_string()
        }
    });
    Ok(CertReport {
        role: role_of(&info, server_auth).to_string(),
        test_pki: is_test(&info),
        subject: info.subject.clone(),
        issuer: info.issuer.clone(),
        serial: info.serial.clone(),
        not_before: fmt_time(info.not_before),
        not_after: fmt_time(info.not_after),
        days_left: info.days_left(now),
        key,
        key_usage,
        extended_key_usage: eku,
        structure_id: info.structure_id.clone(),
        structure_kind,
    })
}

/// Reads `path` as PKCS#12 (with `password`), PEM or DER.
pub fn inspect(path: &Path, password: Option<&str>) -> Result<Inspection, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let now = now_unix();
    let pem = data.starts_with(b"-----") || data.windows(11).any(|w| w == b"-----BEGIN ");
    let (format, certs, key): (
        &str,
        Vec<CertificateDer<'static>>,
        Option<Zeroizing<Vec<u8>>>,
    ) = if pem {
        let certs = read_pem_certs(path).unwrap_or_default();
        use rustls::pki_types::pem::PemObject as _;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&data)
            .ok()
            .map(|k| Zeroizing::new(k.secret_der().to_vec()));
        ("PEM", certs, key)
    } else if X509Certificate::from_der(&data).is_ok() {
        ("DER", vec![CertificateDer::from(data.clone())], None)
    } else {
        let pw = password.ok_or_else(|| {
                format!(
                    "{} looks like a PKCS#12 file: give its password with --password-env VAR or --password-file FILE",
                    path.display()
                )
            })?;
        let raw = read_p12(path, pw)?;
        ("PKCS#12", raw.chain, raw.key_pkcs8)
    };
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    let reports = certs
        .iter()
        .map(|c| report(c, now))
        .collect::<Result<Vec<_>, _>>()?;
    let key_matches = key.as_ref().map(|k| key_matches(k, &certs[0]));
    let chain_in_order = certs.windows(2).all(|w| issued_by(&w[0], &w[1]));
    Ok(Inspection {
        file: path.display().to_string(),
        format: format.into(),
        has_private_key: key.is_some(),
        key_matches,
        certificates: reports,
        chain_in_order,
    })
}

/// Whether a PKCS#8 (or PKCS#1) RSA key is the one of `cert`.
pub fn key_matches(key: &[u8], cert: &[u8]) -> bool {
    use aws_lc_rs::signature::KeyPair as _;
    let Ok(info) = CertInfo::parse(cert) else {
        return false;
    };
    let kp = aws_lc_rs::rsa::KeyPair::from_pkcs8(key)
        .or_else(|_| aws_lc_rs::rsa::KeyPair::from_der(key));
    kp.is_ok_and(|kp| kp.public_key().as_ref() == info.public_key.as_slice())
}

impl Inspection {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let mut t = format!(
            "{}: {}{}\n",
            self.file,
            self.format,
            match self.key_matches {
                Some(true) => ", private key matching the first certificate",
                Some(false) => ", private key NOT matching the first certificate",
                None => "",
            }
        );
        for (i, c) in self.certificates.iter().enumerate() {
            t.push_str(&format!(
                "[{i}] {role}{test}\n    subject     {}\n    issuer      {}\n    serial      {}\n    validity    {} → {} ({} days left)\n    key         {}\n    keyUsage    {}\n    extKeyUsage {}\n",
                c.subject,
                c.issuer,
                c.serial,
                c.not_before,
                c.not_after,
                c.days_left,
                c.key,
                if c.key_usage.is_empty() { "-".into() } else { c.key_usage.join(", ") },
                if c.extended_key_usage.is_empty() { "-".into() } else { c.extended_key_usage.join(", ") },
                role = c.role,
                test = if c.test_pki { " (TEST PKI)" } else { "" },
            ));
            if let (Some(id), Some(kind)) = (&c.structure_id, &c.structure_kind) {
                t.push_str(&format!("    structure   {id} ({kind} {})\n", &id[1..]));
            }
        }
        if self.certificates.len() > 1 {
            t.push_str(if self.chain_in_order {
                "chain: each certificate is issued by the next\n"
            } else {
                "chain: NOT in order (or incomplete)\n"
            });
        }
        t
    }
}

// ---------------------------------------------------------------------------------------------
// csr, bundle
// ---------------------------------------------------------------------------------------------

/// Writes a new RSA key (0600) and a CSR whose subject follows the ORG layout with the
/// recommended CN for `role`.
pub fn csr(
    role: Role,
    structure_id: &str,
    org: &str,
    state: &str,
    bits: u32,
    key_out: &Path,
    csr_out: &Path,
) -> Result<String, String> {
    if !(structure_id.len() >= 2
        && (structure_id.starts_with('1') || structure_id.starts_with('3'))
        && structure_id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(format!(
            "--structure-id {structure_id:?}: 1 followed by the FINESS, or 3 followed by the SIRET"
        ));
    }
    let size = match bits {
        2048 => rcgen::RsaKeySize::_2048,
        4096 => rcgen::RsaKeySize::_4096,
        other => return Err(format!("--bits {other}: 2048 or 4096")),
    };
    for p in [key_out, csr_out] {
        if p.exists() {
            return Err(format!("{} exists: refusing to overwrite it", p.display()));
        }
    }
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        .map_err(|e| format!("key generation: {e}"))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = crate::pki::org_dn(state, org, structure_id, role.recommended_cn());
    let req = params
        .serialize_request(&key)
        .map_err(|e| format!("CSR: {e}"))?;
    let pem = req.pem().map_err(|e| format!("CSR: {e}"))?;
    write_private(key_out, key.serialize_pem().as_bytes())?;
    std::fs::write(csr_out, &pem).map_err(|e| format!("{}: {e}", csr_out.display()))?;
    Ok(format!(
        "key: {} (RSA {bits}, mode 0600)\nCSR: {} — subject C=FR, ST={state}, O={org}, OU={structure_id}, CN={}",
        key_out.display(),
        csr_out.display(),
        role.recommended_cn()
    ))
}

/// Writes a secret file readable by its owner only.
fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Assembles `out` (PKCS#12, AES-256) from a key, its certificate and chain files. Refuses a
/// key that does not match, and a chain that does not reach a self-signed root (naming what is
/// missing).
pub fn bundle(
    key: &Path,
    cert: &Path,
    chain: &[std::path::PathBuf],
    out: &Path,
    password: &str,
) -> Result<String, String> {
    use rustls::pki_types::pem::PemObject as _;
    let key_der = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--key {}: {e}", key.display()))?;
    let key_der = Zeroizing::new(match key_der {
        rustls::pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
        rustls::pki_types::PrivateKeyDer::Pkcs1(k) => {
            use aws_lc_rs::encoding::AsDer as _;
            let kp = aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der())
                .map_err(|_| format!("--key {}: not an RSA key", key.display()))?;
            kp.as_der()
                .map_err(|_| format!("--key {}: not an RSA key", key.display()))?
                .as_ref()
                .to_vec()
        }
        _ => {
            return Err(format!(
                "--key {}: only RSA keys are supported",
                key.display()
            ))
        }
    });
    let leaf = read_pem_certs(cert).map_err(|e| format!("--cert: {e}"))?;
    let leaf = leaf[0].clone();
    if !key_matches(&key_der, &leaf) {
        return Err(format!(
            "--key {} does not match the certificate {}",
            key.display(),
            cert.display()
        ));
    }
    let mut pool = Vec::new();
    for c in chain {
        pool.extend(read_pem_certs(c).map_err(|e| format!("--chain: {e}"))?);
    }
    let pool: Vec<Vec<u8>> = pool.iter().map(|c| c.as_ref().to_vec()).collect();
    let ordered = match chain_up(&leaf, &pool) {
        Chain::Complete(c) => c,
        Chain::Incomplete(c) => {
            let info = CertInfo::parse(c.last().expect("non-empty"))?;
            let hint = if missing_is_aci_el_org(&info.issuer) {
                " (the intermediate ACI-EL-ORG: add it with --chain, as the procedure says for a certificate made from a CSR)"
            } else {
                ""
            };
            return Err(format!(
                "the chain stops at {}: the certificate of its issuer {} is missing{hint}",
                info.subject, info.issuer
            ));
        }
    };
    let mut certs = Vec::new();
    for c in &ordered {
        certs.push(p12_keystore::Certificate::from_der(c).map_err(|e| e.to_string())?);
    }
    let key_id = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &leaf);
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry(
        "rocgw",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            key_id.as_ref().to_vec(),
            p12_keystore::PrivateKey::from_der(&key_der).map_err(|e| e.to_string())?,
            certs,
        )),
    );
    let data = ks
        .writer(password)
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .write()
        .map_err(|e| format!("PKCS#12: {e}"))?;
    write_private(out, &data)?;
    let info = CertInfo::parse(&leaf)?;
    Ok(format!(
        "{}: PKCS#12 (AES-256, mode 0600) with the key, {} and {} chain certificate(s) up to the root",
        out.display(),
        info.subject,
        ordered.len() - 1
    ))
}

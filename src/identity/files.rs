//! Reading identity files as they are delivered: PKCS#12 (AES, legacy 3DES and RC2-40) or a PEM
//! chain and key; and the rustls key of a chain and key. No check of what is read here (that is
//! [`super::Identity`]'s), only clear errors, never with a password or key bytes.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

/// Key and certificates as read from a file, before any check.
pub struct RawIdentity {
    pub key_pkcs8: Option<Zeroizing<Vec<u8>>>,
    pub chain: Vec<CertificateDer<'static>>,
}

/// Reads a PKCS#12 file. Errors never contain the password.
pub fn read_p12(path: &Path, password: &str) -> Result<RawIdentity, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ks = p12_keystore::KeyStore::from_pkcs12(
        &data,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => format!(
            "cannot open PKCS#12 {}: wrong password (MAC check failed)",
            path.display()
        ),
        p12_keystore::error::Error::UnsupportedEncryptionScheme => format!(
            "cannot open PKCS#12 {}: unsupported encryption scheme",
            path.display()
        ),
        _ => format!(
            "cannot open PKCS#12 {}: wrong password or not a PKCS#12 file",
            path.display()
        ),
    })?;
    let Some((_, chain)) = ks.private_key_chain() else {
        return Err(format!(
            "{}: no private key in this PKCS#12 file",
            path.display()
        ));
    };
    let mut certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    // CA certificates stored as separate bags (how CAs deliver ACI and ACR) complete the chain.
    for (_, entry) in ks.entries() {
        if let p12_keystore::KeyStoreEntry::Certificate(c) = entry {
            let der = CertificateDer::from(c.as_der().to_vec());
            if !certs.contains(&der) {
                certs.push(der);
            }
        }
    }
    Ok(RawIdentity {
        key_pkcs8: Some(Zeroizing::new(chain.key().as_der().to_vec())),
        chain: certs,
    })
}

/// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8 or PKCS#1).
pub fn read_pem(cert: &Path, key: &Path) -> Result<RawIdentity, String> {
    let chain = read_pem_certs(cert)?;
    let mut key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable_key(key, &e))?;
    let pkcs8 = match &key_der {
        PrivateKeyDer::Pkcs8(k) => Ok(Zeroizing::new(k.secret_pkcs8_der().to_vec())),
        PrivateKeyDer::Pkcs1(k) => aws_lc_rs::rsa::KeyPair::from_der(k.secret_pkcs1_der())
            .ok()
            .and_then(|kp| {
                use aws_lc_rs::encoding::AsDer;
                kp.as_der()
                    .ok()
                    .map(|d| Zeroizing::new(d.as_ref().to_vec()))
            })
            .ok_or_else(|| format!("{}: invalid RSA private key", key.display())),
        _ => Err(format!("{}: only RSA keys are supported", key.display())),
    };
    zeroize::Zeroize::zeroize(&mut key_der);
    Ok(RawIdentity {
        key_pkcs8: Some(pkcs8?),
        chain,
    })
}

/// Why no key was read from the PEM file `key`: an encrypted key is named as such (rustls reads
/// only plain ones, and says "no items found"). This read's bytes are wiped after the look.
fn unreadable_key(key: &Path, e: &rustls_pki_types::pem::Error) -> String {
    let text = Zeroizing::new(std::fs::read(key).unwrap_or_default());
    let has = |marker: &[u8]| text.windows(marker.len()).any(|w| w == marker);
    if has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED") {
        format!(
            "{}: an encrypted private key: rocgw reads an unencrypted PEM key (mode 0600), or \
             the PKCS#12 file with its password (`p12` and `password_file`)",
            key.display()
        )
    } else if matches!(e, rustls_pki_types::pem::Error::NoItemsFound) {
        format!(
            "{}: no PEM private key in it (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)",
            key.display()
        )
    } else {
        format!("cannot read a private key from {}: {e}", key.display())
    }
}

/// A TLS certificate and key for rustls. The PKCS#8 DER is only lent to aws-lc, which keeps its
/// own copy (cleansed when freed): no unzeroed copy of the key outlives this call.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    pkcs8: &[u8],
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let der = PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8));
    let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| format!("unusable key: {e}"))?;
    let ck = rustls::sign::CertifiedKey::new(chain, key);
    ck.keys_match()
        .map_err(|e| format!("the key does not match the certificate: {e}"))?;
    Ok(Arc::new(ck))
}

/// `certified_key` of a PEM certificate chain and key (servers: the local listener, the
/// simulator).
pub fn certified_key_from_pem(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let raw = read_pem(cert, key)?;
    let pkcs8 = raw
        .key_pkcs8
        .as_ref()
        .map(|k| k.as_slice())
        .unwrap_or_default();
    certified_key(raw.chain, pkcs8).map_err(|e| format!("{}: {e}", key.display()))
}

/// Reads every certificate of a PEM file, or the one certificate of a DER file.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.first() == Some(&0x30) {
        return Ok(vec![CertificateDer::from(data)]);
    }
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&data).collect();
    let certs = certs.map_err(|e| format!("{}: invalid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

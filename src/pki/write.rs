//! Writing the test PKI's files, each with its manifest entry, so no file goes unlisted; keys
//! and P12 files are private to their owner (mode 0600).

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use p12_keystore::{
    Certificate as P12Cert, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};

use super::make::{Ca, Leaf};
use super::{Entry, PkiError, PASSWORD_FILE};

/// Writes into `dir` and records every file in `manifest`; P12 files use `password`.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) password: String,
    pub(super) manifest: Vec<Entry>,
}

impl Writer {
    pub(super) fn entry(&mut self, path: &str, role: &str, kind: &str) -> &mut Entry {
        self.manifest.push(Entry {
            path: path.to_string(),
            role: role.to_string(),
            kind: kind.to_string(),
            encryption: None,
            password_file: None,
            defect: None,
            serial: None,
        });
        self.manifest.last_mut().expect("just pushed")
    }

    pub(super) fn write(&self, rel: &str, data: &[u8], private: bool) -> Result<(), PkiError> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|error| PkiError::Create {
                path: parent.to_path_buf(),
                error,
            })?;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if private { 0o600 } else { 0o644 });
        }
        opts.open(&path)
            .and_then(|mut f| f.write_all(data))
            .map_err(|error| PkiError::Write { path, error })
    }

    pub(super) fn ca(&mut self, rel: &str, role: &str, ca: &Ca) -> Result<(), PkiError> {
        self.write(rel, ca.pem().as_bytes(), false)?;
        self.entry(rel, role, "cert").serial = Some(ca.serial.clone());
        Ok(())
    }

    /// Writes the certificates of `cas`, in this order, as one PEM file.
    pub(super) fn bundle(&mut self, rel: &str, role: &str, cas: &[&Ca]) -> Result<(), PkiError> {
        let pem: String = cas.iter().map(|ca| ca.pem()).collect();
        self.write(rel, pem.as_bytes(), false)?;
        self.entry(rel, role, "chain");
        Ok(())
    }

    pub(super) fn crl(&mut self, rel: &str, role: &str, pem: &str) -> Result<(), PkiError> {
        self.write(rel, pem.as_bytes(), false)?;
        self.entry(rel, role, "crl");
        Ok(())
    }

    /// Writes `<base>.pem` (leaf), `<base>.chain.pem` (leaf + chain), `<base>.key`.
    pub(super) fn leaf(
        &mut self,
        base: &str,
        role: &str,
        leaf: &Leaf,
        chain: &[&Ca],
        defect: Option<&str>,
    ) -> Result<(), PkiError> {
        self.write(&format!("{base}.pem"), leaf.pem.as_bytes(), false)?;
        let e = self.entry(&format!("{base}.pem"), role, "cert");
        e.serial = Some(leaf.serial.clone());
        e.defect = defect.map(str::to_string);
        let mut full = leaf.pem.clone();
        for ca in chain {
            full.push_str(&ca.pem());
        }
        self.write(&format!("{base}.chain.pem"), full.as_bytes(), false)?;
        self.entry(&format!("{base}.chain.pem"), role, "chain")
            .defect = defect.map(str::to_string);
        self.write(
            &format!("{base}.key"),
            leaf.key.serialize_pem().as_bytes(),
            true,
        )?;
        self.entry(&format!("{base}.key"), role, "key").defect = defect.map(str::to_string);
        Ok(())
    }

    /// Writes a PKCS#12 holding `key`, the leaf and `chain` (ACI then ACR, as the CA delivers).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn p12(
        &mut self,
        rel: &str,
        role: &str,
        key_der: &[u8],
        leaf_der: &[u8],
        chain: &[&Ca],
        enc: &str,
        defect: Option<&str>,
    ) -> Result<(), PkiError> {
        let mut certs = vec![P12Cert::from_der(leaf_der)?];
        for ca in chain {
            certs.push(P12Cert::from_der(ca.der())?);
        }
        let key_id =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf_der);
        let mut ks = KeyStore::new();
        ks.add_entry(
            role,
            KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
                key_id.as_ref().to_vec(),
                PrivateKey::from_der(key_der)?,
                certs,
            )),
        );
        let w = ks.writer(&self.password);
        let w = match enc {
            "aes" => w.encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256),
            "3des" => w
                .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
                .encryption_iterations(2048)
                .mac_algorithm(MacAlgorithm::HmacSha1)
                .mac_iterations(2048),
            // p12-keystore names the RC2-40 scheme after RC4; its OID is pbeWithSHAAnd40BitRC2-CBC.
            "rc2-40" => w
                .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd40BitRc4Cbc)
                .encryption_iterations(2048)
                .mac_algorithm(MacAlgorithm::HmacSha1)
                .mac_iterations(2048),
            other => return Err(PkiError::UnknownP12Encryption(other.to_string())),
        };
        let data = w.write()?;
        self.write(rel, &data, true)?;
        let e = self.entry(rel, role, "p12");
        e.encryption = Some(enc.to_string());
        e.password_file = Some(PASSWORD_FILE.to_string());
        e.defect = defect.map(str::to_string);
        Ok(())
    }
}

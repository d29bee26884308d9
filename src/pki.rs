//! The test PKI (`rocgw pki init`): an IGC-Santé-like TEST hierarchy with the hospital's ORG
//! AUTH_CLI and SIGN certificates, an IGC-OSI-like TEST hierarchy for the annuaire and the AMCs,
//! CRLs, and the negative fixtures the tests need. Generated with rcgen on aws-lc-rs; nothing is
//! shelled out. A `manifest.json` names every file, its role and its password source.
//!
//! These certificates are for tests and the sandbox only: every name carries `TEST`.
//!
//! What is made is data (`table`); `make` makes certificates, keys and CRLs, `write` writes
//! them with their manifest entries.

mod make;
mod table;
mod write;

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use make::org_dn;

/// The manifest's file name inside the PKI folder.
pub const MANIFEST: &str = "manifest.json";
/// Where the PKCS#12 password is written (mode 0600).
pub const PASSWORD_FILE: &str = "secrets/p12-password";
/// The test hospital.
pub const HOSPITAL: &str = "CH TEST ROCGW";
pub const FINESS: &str = "990000012";
/// The second structure (another EG of the same group), for "identities of two structures".
pub const HOSPITAL2: &str = "CH TEST ROCGW SITE NORD";
pub const FINESS2: &str = "990000020";

/// One file of the test PKI.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the PKI folder.
    pub path: String,
    /// What it is: `igc-sante-root`, `org-auth-cli`, `amc-server`, …
    pub role: String,
    /// `cert`, `chain`, `key`, `p12`, `crl`, `secret`.
    pub kind: String,
    /// For P12 files: `aes`, `3des` or `rc2-40`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// For P12 files: the file holding the password, relative to the PKI folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// For negative fixtures: what is wrong (`expired`, `revoked`, `unknown-ca`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defect: Option<String>,
    /// For certificates: serial in upper-case hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// `manifest.json`: what `pki init` wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub generated_at: String,
    pub hospital: String,
    pub structure_id: String,
    pub structure_id_2: String,
    pub password_file: String,
    pub files: Vec<Entry>,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest, PkiError> {
        let path = dir.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(error) => return Err(PkiError::Read { path, error }),
        };
        serde_json::from_str(&text).map_err(|error| PkiError::InvalidManifest { path, error })
    }

    /// The entry with this role and kind.
    pub fn find(&self, role: &str, kind: &str) -> Option<&Entry> {
        self.files.iter().find(|e| e.role == role && e.kind == kind)
    }

    /// Absolute path of the entry with this role and kind.
    pub fn path(&self, dir: &Path, role: &str, kind: &str) -> Option<PathBuf> {
        self.find(role, kind).map(|e| dir.join(&e.path))
    }
}

/// Errors of `pki init` and of reading its manifest, one line each.
///
/// Inner errors are shown in the line rather than chained as `source` (hence the hand-written
/// `From`s: thiserror's `#[from]` would chain them), so a reporter walking the chain does not
/// print them twice.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused a key, certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Generation(rcgen::Error),
    /// p12-keystore refused a certificate, the key or the PKCS#12 writing.
    #[error("PKCS#12 generation failed: {0}")]
    P12(p12_keystore::error::Error),
    #[error("unknown P12 encryption {0}")]
    UnknownP12Encryption(String),
    /// The table uses a CA before the entry that makes it (a bug of the table).
    #[error("test PKI table: no CA {0} made before")]
    NoSuchCa(String),
    /// The table uses a certificate before the entry that makes it (a bug of the table).
    #[error("test PKI table: no certificate {0} made before")]
    NoSuchCertificate(String),
    /// The target folder holds files and `--force` was not given.
    #[error(
        "{} is not empty: refusing to write a PKI into it (use --force to replace a previous test PKI)",
        dir.display()
    )]
    NotEmpty { dir: PathBuf },
    #[error("cannot remove {}: {error}", path.display())]
    Remove {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot create {}: {error}", path.display())]
    Create {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: invalid manifest: {error}", path.display())]
    InvalidManifest {
        path: PathBuf,
        error: serde_json::Error,
    },
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generation(e)
    }
}

impl From<p12_keystore::error::Error> for PkiError {
    fn from(e: p12_keystore::error::Error) -> Self {
        PkiError::P12(e)
    }
}

/// The folders and files `pki init` owns inside its target folder (removed by `--force`).
const OWNED: [&str; 8] = [
    "igc-sante",
    "local",
    "org",
    "org2",
    "osi",
    "negative",
    "secrets",
    MANIFEST,
];

/// Generates the test PKI into `dir`. Refuses a non-empty folder unless `force`, in which case
/// only the files and folders `pki init` owns are replaced.
pub fn init(dir: &Path, force: bool) -> Result<Manifest, PkiError> {
    prepare_dir(dir, force)?;
    let now = OffsetDateTime::now_utc();
    let mut w = write::Writer {
        dir: dir.to_path_buf(),
        password: make::random_password(),
        manifest: Vec::new(),
    };
    w.write(PASSWORD_FILE, w.password.as_bytes(), true)?;
    w.entry(PASSWORD_FILE, "p12-password", "secret");
    let mut made = table::Made::default();
    for h in table::HIERARCHIES {
        table::make(h, &mut w, &mut made, now)?;
    }
    let manifest = Manifest {
        generated_at: crate::clock::fmt_time(now.unix_timestamp()),
        hospital: HOSPITAL.to_string(),
        structure_id: make::structure_id(FINESS),
        structure_id_2: make::structure_id(FINESS2),
        password_file: PASSWORD_FILE.to_string(),
        files: w.manifest.clone(),
    };
    let json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    w.write(MANIFEST, json.as_bytes(), false)?;
    Ok(manifest)
}

fn prepare_dir(dir: &Path, force: bool) -> Result<(), PkiError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                if !force {
                    return Err(PkiError::NotEmpty {
                        dir: dir.to_path_buf(),
                    });
                }
                for name in OWNED {
                    let p = dir.join(name);
                    let r = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else if p.exists() {
                        fs::remove_file(&p)
                    } else {
                        Ok(())
                    };
                    r.map_err(|error| PkiError::Remove { path: p, error })?;
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|error| PkiError::Create {
                path: dir.to_path_buf(),
                error,
            })
        }
        Err(error) => Err(PkiError::Read {
            path: dir.to_path_buf(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_with_files_is_refused_without_force_and_the_manifest_error_names_its_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("other"), b"x").expect("write");
        let err = prepare_dir(dir.path(), false).expect_err("not empty");
        assert!(matches!(&err, PkiError::NotEmpty { dir: d } if d == dir.path()));
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not empty: refusing to write a PKI into it (use --force to replace a \
                 previous test PKI)",
                dir.path().display()
            )
        );
        fs::write(dir.path().join(MANIFEST), b"{").expect("write");
        let err = Manifest::load(dir.path()).expect_err("invalid JSON");
        assert!(matches!(&err, PkiError::InvalidManifest { path, .. } if path.ends_with(MANIFEST)));
        assert!(err.to_string().contains(": invalid manifest: "), "{err}");
    }
}

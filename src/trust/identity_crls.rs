//! The IGC-Santé CRLs of `[trust] identity_crls`, against which the hospital's own certificates
//! (AUTH_CLI, SIGN) are checked: by `cert doctor` and start-up, and by every reload.

use std::path::PathBuf;

use x509_parser::prelude::*;

/// Per CRL: its issuer's raw name and the serials it revokes.
#[derive(Debug, Default)]
pub struct IdentityCrls(Vec<(Vec<u8>, Vec<Vec<u8>>)>);

impl IdentityCrls {
    /// Reads every file of `paths`; the CRLs read, and one message per file that could not be.
    pub fn load(paths: &[PathBuf]) -> (IdentityCrls, Vec<String>) {
        let (mut crls, mut errors) = (Vec::new(), Vec::new());
        for p in paths {
            match super::read_crl_file(p) {
                Ok(ders) => crls.extend(ders.iter().filter_map(|der| {
                    let (_, crl) = parse_x509_crl(der).ok()?;
                    Some((
                        crl.issuer().as_raw().to_vec(),
                        crl.iter_revoked_certificates()
                            .map(|c| c.raw_serial().to_vec())
                            .collect(),
                    ))
                })),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (IdentityCrls(crls), errors)
    }

    /// True when no CRL is configured (or none could be read).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a CRL of the certificate's issuer lists its serial.
    pub fn revokes(&self, leaf: &[u8]) -> bool {
        X509Certificate::from_der(leaf).is_ok_and(|(_, c)| {
            self.0.iter().any(|(issuer, serials)| {
                issuer.as_slice() == c.issuer().as_raw()
                    && serials.iter().any(|s| s.as_slice() == c.raw_serial())
            })
        })
    }
}

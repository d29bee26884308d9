//! The IGC-Santé CRLs of `[trust] identity_crls`, against which the hospital's own certificates
//! (AUTH_CLI, SIGN) are checked: by `cert doctor` and start-up, and by every reload.

use std::path::PathBuf;

use x509_parser::prelude::*;

use super::crl::serial_key;

/// Per CRL: its issuer's raw name and the serials it revokes, without leading zero bytes.
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
                            .map(|c| serial_key(c.raw_serial()).to_vec())
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

    /// Whether a CRL of the certificate's issuer lists its serial (compared as the OSI CRLs
    /// compare them: a leading zero byte in either encoding does not hide a revocation).
    pub fn revokes(&self, leaf: &[u8]) -> bool {
        X509Certificate::from_der(leaf).is_ok_and(|(_, c)| {
            let serial = serial_key(c.raw_serial());
            self.0.iter().any(|(issuer, serials)| {
                issuer.as_slice() == c.issuer().as_raw()
                    && serials.iter().any(|s| s.as_slice() == serial)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

    fn ca() -> Ca {
        named_ca("TEST ROCGW CA")
    }

    fn named_ca(name: &str) -> Ca {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().expect("key"))
            .expect("CA")
    }

    /// A certificate of `ca` with this serial (DER).
    fn cert(ca: &Ca, serial: &[u8]) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        p.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
        let key = rcgen::KeyPair::generate().expect("key");
        p.signed_by(&key, ca).expect("certificate").der().to_vec()
    }

    /// `ca`'s CRL revoking `serials`, written as a PEM file in `dir`, loaded.
    fn load_crl(dir: &std::path::Path, ca: &Ca, serials: &[&[u8]]) -> IdentityCrls {
        let now = ::time::OffsetDateTime::now_utc();
        let crl = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: now + ::time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(s.to_vec()),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let path = dir.join("igc-sante.crl");
        let pem = crl.signed_by(ca).expect("CRL").pem().expect("PEM");
        std::fs::write(&path, pem).expect("write");
        let (crls, errors) = IdentityCrls::load(&[path]);
        assert!(errors.is_empty(), "{errors:?}");
        crls
    }

    #[test]
    fn a_crl_file_revokes_its_issuers_listed_serials_only() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = ca();
        // 0x80..: DER writes it with a leading zero byte, in the certificate and in the CRL.
        let crls = load_crl(dir.path(), &ca, &[&[0x12, 0x34], &[0x80, 0x01]]);
        assert!(crls.revokes(&cert(&ca, &[0x12, 0x34])));
        assert!(crls.revokes(&cert(&ca, &[0x80, 0x01])));
        assert!(!crls.revokes(&cert(&ca, &[0x12, 0x35])));
        // The same serial from another CA: not this CRL's.
        let other = named_ca("TEST ROCGW OTHER CA");
        assert!(!crls.revokes(&cert(&other, &[0x12, 0x34])));
        assert!(!crls.revokes(b"not a certificate"));
    }

    /// DER: a tag and its content.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        match content.len() {
            n @ 0..=127 => v.push(n as u8),
            n => v.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        v.extend_from_slice(content);
        v
    }

    #[test]
    fn a_serial_written_with_a_leading_zero_is_still_revoked() {
        // Some CA software pads serials (non-minimal DER): a CRL entry `00 12 34` names the
        // certificate `12 34`, as the OSI CRLs' lookup already holds. rcgen writes minimal
        // DER only, so this CRL is written by hand (its signature is not checked here).
        let dir = tempfile::tempdir().expect("dir");
        let ca = ca();
        let der = cert(&ca, &[0x12, 0x34]);
        let issuer = X509Certificate::from_der(&der)
            .expect("parse")
            .1
            .issuer()
            .as_raw()
            .to_vec();
        let sha256_rsa = tlv(
            0x30,
            &[
                &tlv(0x06, &[42, 134, 72, 134, 247, 13, 1, 1, 11])[..],
                &[5, 0],
            ]
            .concat(),
        );
        let time = tlv(0x17, b"261130000000Z");
        let entry = |serial: &[u8]| tlv(0x30, &[tlv(0x02, serial), time.clone()].concat());
        let crl = |serial: &[u8]| {
            let tbs = [
                tlv(0x02, &[1]),
                sha256_rsa.clone(),
                issuer.clone(),
                time.clone(),
                tlv(0x30, &entry(serial)),
            ];
            let body = [
                tlv(0x30, &tbs.concat()),
                sha256_rsa.clone(),
                tlv(0x03, &[0, 0]),
            ];
            tlv(0x30, &body.concat())
        };
        let load = |serial: &[u8]| {
            let path = dir.path().join("padded.crl");
            std::fs::write(&path, crl(serial)).expect("write");
            let (crls, errors) = IdentityCrls::load(&[path]);
            assert!(errors.is_empty() && !crls.is_empty(), "{errors:?}");
            crls
        };
        assert!(load(&[0x12, 0x34]).revokes(&der));
        assert!(load(&[0, 0x12, 0x34]).revokes(&der));
        assert!(!load(&[0, 0x12, 0x35]).revokes(&der));
    }
}

//! Where an identity's certificate comes from: its chain built by signature up to a root,
//! that root IGC-Santé's or not, the ACI-EL-ORG intermediate a CSR-made file lacks, and whether
//! the certificate is of a TEST hierarchy.

use x509_parser::prelude::*;

use super::CertInfo;

/// Whether `child` is signed by `parent`'s key (names and signature).
pub fn issued_by(child: &[u8], parent: &[u8]) -> bool {
    let (Ok((_, c)), Ok((_, p))) = (
        X509Certificate::from_der(child),
        X509Certificate::from_der(parent),
    ) else {
        return false;
    };
    c.issuer().as_raw() == p.subject().as_raw() && c.verify_signature(Some(p.public_key())).is_ok()
}

/// A chain built from a leaf up through a pool of CA certificates.
pub enum Chain {
    /// Leaf first, ending at a self-signed root.
    Complete(Vec<Vec<u8>>),
    /// What was found; the issuer of its last certificate is missing.
    Incomplete(Vec<Vec<u8>>),
}

/// Orders `pool` above `leaf` by signature, up to a self-signed root.
pub fn chain_up(leaf: &[u8], pool: &[Vec<u8>]) -> Chain {
    let mut chain = vec![leaf.to_vec()];
    loop {
        let last = chain.last().expect("non-empty").clone();
        if issued_by(&last, &last) {
            return Chain::Complete(chain);
        }
        match pool
            .iter()
            .find(|c| issued_by(&last, c) && !chain.contains(c))
        {
            Some(next) => chain.push(next.clone()),
            None => return Chain::Incomplete(chain),
        }
    }
}

/// Whether a missing issuer is the ACI-EL-ORG intermediate the procedure says to add.
pub fn missing_is_aci_el_org(issuer: &str) -> bool {
    issuer.contains("ELEMENTAIRE ORGANISATIONS")
}

/// Whether a root (its subject) is IGC-Santé's: ORG certificates for ROC come from IGC-Santé.
pub fn is_igc_sante_root(subject: &str) -> bool {
    subject.to_ascii_uppercase().contains("IGC-SANTE")
}

/// Whether a certificate belongs to a TEST hierarchy (IGC-Santé TEST names, the test PKI).
pub fn is_test(info: &CertInfo) -> bool {
    let up = |s: &str| s.to_ascii_uppercase();
    let (s, i) = (up(&info.subject), up(&info.issuer));
    s.contains("IGC-SANTE TEST") || i.contains("IGC-SANTE TEST") || i.contains("CN=TEST ")
}

//! Making the test PKI's certificates, keys and CRLs in memory (rcgen on aws-lc-rs); where
//! they go and under which names is the table's business (`table`), writing them the writer's.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, RsaKeySize, SanType,
    SerialNumber, PKCS_RSA_SHA256,
};
use time::{Duration, OffsetDateTime};

use super::{PkiError, HOSPITAL};

const OU_OID: [u64; 4] = [2, 5, 4, 11];

/// A CA of the test PKI: its certificate and what it needs to issue.
pub(super) struct Ca {
    cert: CertifiedIssuer<'static, KeyPair>,
    pub(super) serial: String,
}

impl Ca {
    pub(super) fn pem(&self) -> String {
        self.cert.pem()
    }
    pub(super) fn der(&self) -> &[u8] {
        self.cert.der().as_ref()
    }
    fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.cert
    }
}

/// An end-entity certificate with its key.
pub(super) struct Leaf {
    pub(super) key: KeyPair,
    pub(super) der: Vec<u8>,
    pub(super) pem: String,
    pub(super) serial: String,
    pub(super) serial_raw: Vec<u8>,
}

pub(super) fn rsa(bits: RsaKeySize) -> Result<KeyPair, PkiError> {
    Ok(KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, bits)?)
}

fn random_serial() -> Vec<u8> {
    let mut s = [0u8; 16];
    aws_lc_rs::rand::fill(&mut s).expect("system RNG");
    s[0] = (s[0] & 0x7f) | 0x10; // positive, 16 significant bytes
    s.to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

pub(super) fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

/// How a test certificate's subject is laid out.
#[derive(Clone, Copy)]
pub(super) enum Dn {
    /// `C=FR, O=ASIP-SANTE, OU=0002 187512751, OU=IGC-SANTE TEST, CN=<cn>`.
    IgcSante(&'static str),
    /// `C=FR, O=GIE SESAM-VITALE, OU=IGC OSI TEST, CN=<cn>`.
    Osi(&'static str),
    /// The hospital's own local CA and what it issues (mutual TLS between SIH and rocgw).
    Local(&'static str),
    /// `C=FR, O=TEST FOREIGN CA, CN=<cn>`: a CA no test configuration trusts.
    Foreign(&'static str),
    /// An ORG certificate of the structure `finess`: see [`org_dn`].
    Org {
        org: &'static str,
        finess: &'static str,
        cn: &'static str,
    },
}

/// The département written in the test ORG certificates.
const STATE: &str = "Bouches-du-Rhône (13)";

impl Dn {
    fn build(self) -> DistinguishedName {
        match self {
            Dn::IgcSante(cn) => igc_sante_dn(cn),
            Dn::Osi(cn) => osi_dn(cn),
            Dn::Local(cn) => local_dn(cn),
            Dn::Foreign(cn) => {
                let mut dn = DistinguishedName::new();
                dn.push(DnType::CountryName, "FR");
                dn.push(DnType::OrganizationName, "TEST FOREIGN CA");
                dn.push(DnType::CommonName, cn);
                dn
            }
            Dn::Org { org, finess, cn } => org_dn(STATE, org, &structure_id(finess), cn),
        }
    }
}

/// Two OUs, the second under a custom type because rcgen's `push` replaces a repeated
/// attribute type.
fn igc_sante_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, "ASIP-SANTE");
    dn.push(DnType::OrganizationalUnitName, "0002 187512751");
    dn.push(
        DnType::CustomDnType(OU_OID.to_vec()),
        DnValue::Utf8String("IGC-SANTE TEST".into()),
    );
    dn.push(DnType::CommonName, cn);
    dn
}

fn osi_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, "GIE SESAM-VITALE");
    dn.push(DnType::OrganizationalUnitName, "IGC OSI TEST");
    dn.push(DnType::CommonName, cn);
    dn
}

fn local_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, HOSPITAL);
    dn.push(DnType::OrganizationalUnitName, "SIH TEST");
    dn.push(DnType::CommonName, cn);
    dn
}

/// The structure identifier of a FINESS as ORG certificates carry it (`OU=1<FINESS>`).
pub(super) fn structure_id(finess: &str) -> String {
    format!("1{finess}")
}

/// The ORG end-entity layout: `C=FR, ST=…, O=<name>, OU=1<FINESS>, CN=<service>`.
pub fn org_dn(state: &str, org: &str, structure_id: &str, cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::StateOrProvinceName, state);
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::OrganizationalUnitName, structure_id);
    dn.push(DnType::CommonName, cn);
    dn
}

/// Validity window relative to now, in days.
#[derive(Clone, Copy)]
pub(super) struct Window(pub(super) i64, pub(super) i64);

impl Window {
    pub(super) const fn days(n: i64) -> Self {
        Window(-1, n)
    }
    fn apply(self, p: &mut CertificateParams, now: OffsetDateTime) {
        p.not_before = now + Duration::days(self.0);
        p.not_after = now + Duration::days(self.1);
    }
}

pub(super) fn new_ca(
    dn: Dn,
    parent: Option<&Ca>,
    path_len: Option<u8>,
    bits: RsaKeySize,
    window: Window,
    now: OffsetDateTime,
) -> Result<Ca, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn.build();
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let serial = random_serial();
    p.serial_number = Some(SerialNumber::from(serial.clone()));
    p.use_authority_key_identifier_extension = parent.is_some();
    p.key_identifier_method = KeyIdMethod::Sha256;
    window.apply(&mut p, now);
    let key = rsa(bits)?;
    let cert = match parent {
        None => CertifiedIssuer::self_signed(p, key)?,
        Some(parent) => CertifiedIssuer::signed_by(p, key, parent.issuer())?,
    };
    Ok(Ca {
        cert,
        serial: hex(&serial),
    })
}

/// What kind of end-entity certificate to make.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Profile {
    /// ORG AUTH_CLI, or a SIH client: clientAuth.
    AuthCli,
    /// ORG SIGN: digitalSignature and nonRepudiation.
    Sign,
    /// A TLS server: serverAuth.
    Server,
    /// An AMC's application signature (the same usages as SIGN).
    AppSign,
}

pub(super) fn new_leaf(
    profile: Profile,
    dn: Dn,
    sans: &[&str],
    ca: &Ca,
    window: Window,
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn.build();
    p.is_ca = IsCa::ExplicitNoCa;
    p.use_authority_key_identifier_extension = true;
    p.key_identifier_method = KeyIdMethod::Sha256;
    match profile {
        Profile::AuthCli => {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        Profile::Sign | Profile::AppSign => {
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::ContentCommitment,
            ];
        }
        Profile::Server => {
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
    }
    for s in sans {
        p.subject_alt_names
            .push(match s.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*s).try_into()?),
            });
    }
    let serial = random_serial();
    p.serial_number = Some(SerialNumber::from(serial.clone()));
    window.apply(&mut p, now);
    let key = rsa(RsaKeySize::_2048)?;
    let cert = p.signed_by(&key, ca.issuer())?;
    Ok(Leaf {
        key,
        der: cert.der().to_vec(),
        pem: cert.pem(),
        serial: hex(&serial),
        serial_raw: serial,
    })
}

/// The CRL of `ca`, listing the certificates of serials `revoked`.
pub(super) fn crl(ca: &Ca, revoked: &[Vec<u8>], now: OffsetDateTime) -> Result<String, PkiError> {
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(7),
        crl_number: SerialNumber::from(vec![1u8]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial.clone()),
                revocation_time: now - Duration::hours(2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(ca.issuer())?.pem()?)
}

//! The test PKI (`rocgw pki init`): an IGC-Santé-like TEST hierarchy with the hospital's ORG
//! AUTH_CLI and SIGN certificates, an IGC-OSI-like TEST hierarchy for the annuaire and the AMCs,
//! CRLs, and the negative fixtures the tests need. Generated with rcgen on aws-lc-rs; nothing is
//! shelled out. A `manifest.json` names every file, its role and its password source.
//!
//! These certificates are for tests and the sandbox only: every name carries `TEST`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use p12_keystore::{
    Certificate as P12Cert, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, RsaKeySize, SanType,
    SerialNumber, PKCS_RSA_SHA256,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

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

const OU_OID: [u64; 4] = [2, 5, 4, 11];
const ORG_VALIDITY_DAYS: i64 = 3 * 365;

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
    pub fn load(dir: &Path) -> Result<Manifest, String> {
        let p = dir.join(MANIFEST);
        let text =
            fs::read_to_string(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: invalid manifest: {e}", p.display()))
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

/// Errors of `pki init`, one line each.
#[derive(Debug)]
pub struct PkiError(pub String);

impl std::fmt::Display for PkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PkiError {}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError(format!("certificate generation failed: {e}"))
    }
}

impl From<p12_keystore::error::Error> for PkiError {
    fn from(e: p12_keystore::error::Error) -> Self {
        PkiError(format!("PKCS#12 generation failed: {e}"))
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

/// A CA of the test PKI: its certificate and what it needs to issue.
struct Ca {
    cert: CertifiedIssuer<'static, KeyPair>,
    serial: String,
}

impl Ca {
    fn pem(&self) -> String {
        self.cert.pem()
    }
    fn der(&self) -> &[u8] {
        self.cert.der().as_ref()
    }
    fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.cert
    }
}

/// An end-entity certificate with its key.
struct Leaf {
    key: KeyPair,
    der: Vec<u8>,
    pem: String,
    serial: String,
    serial_raw: Vec<u8>,
}

struct Writer {
    dir: PathBuf,
    password: String,
    manifest: Vec<Entry>,
}

fn rsa(bits: RsaKeySize) -> Result<KeyPair, PkiError> {
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

fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut b = [0u8; 24];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

/// `C=FR, O=ASIP-SANTE, OU=0002 187512751, OU=IGC-SANTE TEST, CN=<cn>`: two OUs, the second
/// under a custom type because rcgen's `push` replaces a repeated attribute type.
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

/// The hospital's own local CA and what it issues (mutual TLS between SIH and rocgw).
fn local_dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "FR");
    dn.push(DnType::OrganizationName, HOSPITAL);
    dn.push(DnType::OrganizationalUnitName, "SIH TEST");
    dn.push(DnType::CommonName, cn);
    dn
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
struct Window(i64, i64);

impl Window {
    const fn days(n: i64) -> Self {
        Window(-1, n)
    }
    fn apply(self, p: &mut CertificateParams, now: OffsetDateTime) {
        p.not_before = now + Duration::days(self.0);
        p.not_after = now + Duration::days(self.1);
    }
}

fn new_ca(
    dn: DistinguishedName,
    parent: Option<&Ca>,
    path_len: Option<u8>,
    bits: RsaKeySize,
    window: Window,
    now: OffsetDateTime,
) -> Result<Ca, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
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
enum Profile {
    AuthCli,
    Sign,
    Server,
    AppSign,
}

fn new_leaf(
    profile: Profile,
    dn: DistinguishedName,
    sans: &[&str],
    ca: &Ca,
    window: Window,
    now: OffsetDateTime,
    key: Option<KeyPair>,
) -> Result<Leaf, PkiError> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
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
    let key = match key {
        Some(k) => k,
        None => rsa(RsaKeySize::_2048)?,
    };
    let cert = p.signed_by(&key, ca.issuer())?;
    Ok(Leaf {
        key,
        der: cert.der().to_vec(),
        pem: cert.pem(),
        serial: hex(&serial),
        serial_raw: serial,
    })
}

fn crl(ca: &Ca, revoked: &[&Leaf], now: OffsetDateTime) -> Result<String, PkiError> {
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(7),
        crl_number: SerialNumber::from(vec![1u8]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|l| RevokedCertParams {
                serial_number: SerialNumber::from(l.serial_raw.clone()),
                revocation_time: now - Duration::hours(2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    Ok(params.signed_by(ca.issuer())?.pem()?)
}

impl Writer {
    fn entry(&mut self, path: &str, role: &str, kind: &str) -> &mut Entry {
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

    fn write(&self, rel: &str, data: &[u8], private: bool) -> Result<(), PkiError> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| PkiError(format!("cannot create {}: {e}", parent.display())))?;
        }
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if private { 0o600 } else { 0o644 });
        }
        let mut f = opts
            .open(&path)
            .map_err(|e| PkiError(format!("cannot write {}: {e}", path.display())))?;
        f.write_all(data)
            .map_err(|e| PkiError(format!("cannot write {}: {e}", path.display())))
    }

    fn ca(&mut self, rel: &str, role: &str, ca: &Ca) -> Result<(), PkiError> {
        self.write(rel, ca.pem().as_bytes(), false)?;
        self.entry(rel, role, "cert").serial = Some(ca.serial.clone());
        Ok(())
    }

    fn crl(&mut self, rel: &str, role: &str, pem: &str) -> Result<(), PkiError> {
        self.write(rel, pem.as_bytes(), false)?;
        self.entry(rel, role, "crl");
        Ok(())
    }

    /// Writes `<base>.pem` (leaf), `<base>.chain.pem` (leaf + chain), `<base>.key`.
    fn leaf(
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
    fn p12(
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
            other => return Err(PkiError(format!("unknown P12 encryption {other}"))),
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

/// Generates the test PKI into `dir`. Refuses a non-empty folder unless `force`, in which case
/// only the files and folders `pki init` owns are replaced.
pub fn init(dir: &Path, force: bool) -> Result<Manifest, PkiError> {
    prepare_dir(dir, force)?;
    let now = OffsetDateTime::now_utc();
    let mut w = Writer {
        dir: dir.to_path_buf(),
        password: random_password(),
        manifest: Vec::new(),
    };
    w.write(PASSWORD_FILE, w.password.as_bytes(), true)?;
    w.entry(PASSWORD_FILE, "p12-password", "secret");

    // --- IGC-Santé TEST: ACR → ACI-EL-ORG → ORG certificates -----------------------------
    let acr = new_ca(
        igc_sante_dn("TEST AC RACINE IGC-SANTE ELEMENTAIRE"),
        None,
        None,
        RsaKeySize::_4096,
        Window::days(20 * 365),
        now,
    )?;
    let aci = new_ca(
        igc_sante_dn("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"),
        Some(&acr),
        Some(0),
        RsaKeySize::_4096,
        Window::days(10 * 365),
        now,
    )?;
    w.ca("igc-sante/acr.pem", "igc-sante-root", &acr)?;
    w.ca("igc-sante/aci-el-org.pem", "igc-sante-aci-el-org", &aci)?;
    let chain_pem = format!("{}{}", aci.pem(), acr.pem());
    w.write("igc-sante/chain.pem", chain_pem.as_bytes(), false)?;
    w.entry("igc-sante/chain.pem", "igc-sante-chain", "chain");

    let sid = format!("1{FINESS}");
    let sid2 = format!("1{FINESS2}");
    let state = "Bouches-du-Rhône (13)";
    let org_cn = |role: Profile| match role {
        Profile::AuthCli => "Client_ROC_Annuaire_AMC",
        _ => "Client_ROC_WebServices_AMC",
    };
    let org_window = Window::days(ORG_VALIDITY_DAYS);
    let igc_chain = [&aci, &acr];

    let org = |w: &mut Writer,
               folder: &str,
               name: &str,
               sid: &str,
               profile: Profile,
               encs: &[&str]|
     -> Result<Leaf, PkiError> {
        let (base, role) = match profile {
            Profile::AuthCli => ("auth_cli", "org-auth-cli"),
            _ => ("sign", "org-sign"),
        };
        let role = if folder == "org2" {
            format!("{role}-2")
        } else {
            role.to_string()
        };
        let leaf = new_leaf(
            profile,
            org_dn(state, name, sid, org_cn(profile)),
            &[],
            &aci,
            org_window,
            now,
            None,
        )?;
        w.leaf(&format!("{folder}/{base}"), &role, &leaf, &igc_chain, None)?;
        for enc in encs {
            let rel = match *enc {
                "aes" => format!("{folder}/{base}.p12"),
                e => format!("{folder}/{base}.{e}.p12"),
            };
            w.p12(
                &rel,
                &role,
                leaf.key.serialized_der(),
                &leaf.der,
                &igc_chain,
                enc,
                None,
            )?;
        }
        Ok(leaf)
    };
    let all_encs = ["aes", "3des", "rc2-40"];
    let auth_cli = org(&mut w, "org", HOSPITAL, &sid, Profile::AuthCli, &all_encs)?;
    let _sign = org(&mut w, "org", HOSPITAL, &sid, Profile::Sign, &all_encs)?;
    org(&mut w, "org2", HOSPITAL2, &sid2, Profile::AuthCli, &["aes"])?;
    org(&mut w, "org2", HOSPITAL2, &sid2, Profile::Sign, &["aes"])?;

    // Negative ORG fixtures.
    let foreign = new_ca(
        {
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CountryName, "FR");
            dn.push(DnType::OrganizationName, "TEST FOREIGN CA");
            dn.push(DnType::CommonName, "TEST AC ETRANGERE ORGANISATIONS");
            dn
        },
        None,
        None,
        RsaKeySize::_2048,
        Window::days(10 * 365),
        now,
    )?;
    w.ca("negative/foreign-ca.pem", "foreign-ca", &foreign)?;
    let neg_org = |w: &mut Writer,
                   base: &str,
                   profile: Profile,
                   issuer: &Ca,
                   chain: &[&Ca],
                   window: Window,
                   defect: &str|
     -> Result<Leaf, PkiError> {
        let role = match profile {
            Profile::AuthCli => "org-auth-cli",
            _ => "org-sign",
        };
        let leaf = new_leaf(
            profile,
            org_dn(state, HOSPITAL, &sid, org_cn(profile)),
            &[],
            issuer,
            window,
            now,
            None,
        )?;
        w.leaf(
            &format!("negative/{base}"),
            role,
            &leaf,
            chain,
            Some(defect),
        )?;
        w.p12(
            &format!("negative/{base}.p12"),
            role,
            leaf.key.serialized_der(),
            &leaf.der,
            chain,
            "aes",
            Some(defect),
        )?;
        Ok(leaf)
    };
    neg_org(
        &mut w,
        "auth_cli-foreign",
        Profile::AuthCli,
        &foreign,
        &[&foreign],
        org_window,
        "unknown-ca",
    )?;
    neg_org(
        &mut w,
        "sign-foreign",
        Profile::Sign,
        &foreign,
        &[&foreign],
        org_window,
        "unknown-ca",
    )?;
    neg_org(
        &mut w,
        "sign-expired",
        Profile::Sign,
        &aci,
        &igc_chain,
        Window(-3 * 365, -1),
        "expired",
    )?;
    let sign_revoked = neg_org(
        &mut w,
        "sign-revoked",
        Profile::Sign,
        &aci,
        &igc_chain,
        org_window,
        "revoked",
    )?;
    neg_org(
        &mut w,
        "auth_cli-expiring",
        Profile::AuthCli,
        &aci,
        &igc_chain,
        Window(-3 * 365 + 10, 10),
        "expiring",
    )?;
    // A P12 without the ACI, as when a CSR-made certificate is bundled without ACI-EL-ORG.
    w.p12(
        "negative/auth_cli-no-aci.p12",
        "org-auth-cli",
        auth_cli.key.serialized_der(),
        &auth_cli.der,
        &[&acr],
        "aes",
        Some("missing-aci"),
    )?;
    // A SIGN certificate bundled with another key.
    let other_key = rsa(RsaKeySize::_2048)?;
    let mismatch = new_leaf(
        Profile::Sign,
        org_dn(state, HOSPITAL, &sid, org_cn(Profile::Sign)),
        &[],
        &aci,
        org_window,
        now,
        None,
    )?;
    w.write(
        "negative/sign-key-mismatch.pem",
        mismatch.pem.as_bytes(),
        false,
    )?;
    w.entry("negative/sign-key-mismatch.pem", "org-sign", "cert")
        .defect = Some("key-mismatch".into());
    w.write(
        "negative/sign-key-mismatch.key",
        other_key.serialize_pem().as_bytes(),
        true,
    )?;
    w.entry("negative/sign-key-mismatch.key", "org-sign", "key")
        .defect = Some("key-mismatch".into());
    w.p12(
        "negative/sign-key-mismatch.p12",
        "org-sign",
        other_key.serialized_der(),
        &mismatch.der,
        &igc_chain,
        "aes",
        Some("key-mismatch"),
    )?;

    let acr_crl = crl(&acr, &[], now)?;
    let aci_crl = crl(&aci, &[&sign_revoked], now)?;
    w.crl("igc-sante/acr.crl.pem", "igc-sante-root", &acr_crl)?;
    w.crl(
        "igc-sante/aci-el-org.crl.pem",
        "igc-sante-aci-el-org",
        &aci_crl,
    )?;

    // --- IGC OSI TEST: root → AC-SERVEUR, AC-SERVICES-APPLICATIFS -------------------------
    let osi_root = new_ca(
        osi_dn("TEST AC RACINE IGC OSI"),
        None,
        None,
        RsaKeySize::_2048,
        Window::days(20 * 365),
        now,
    )?;
    let ac_serveur = new_ca(
        osi_dn("TEST AC-SERVEUR"),
        Some(&osi_root),
        Some(0),
        RsaKeySize::_2048,
        Window::days(10 * 365),
        now,
    )?;
    let ac_sa = new_ca(
        osi_dn("TEST AC-SERVICES-APPLICATIFS"),
        Some(&osi_root),
        Some(0),
        RsaKeySize::_2048,
        Window::days(10 * 365),
        now,
    )?;
    w.ca("osi/root.pem", "osi-root", &osi_root)?;
    w.ca("osi/ac-serveur.pem", "osi-ac-serveur", &ac_serveur)?;
    w.ca(
        "osi/ac-services-applicatifs.pem",
        "osi-ac-services-applicatifs",
        &ac_sa,
    )?;
    let anchors = format!("{}{}{}", osi_root.pem(), ac_serveur.pem(), ac_sa.pem());
    w.write("osi/anchors.pem", anchors.as_bytes(), false)?;
    w.entry("osi/anchors.pem", "osi-anchors", "chain");

    let hosts = ["localhost", "127.0.0.1"];
    let server_window = Window::days(2 * 365);
    let server = |w: &mut Writer,
                  base: &str,
                  role: &str,
                  cn: &str,
                  sans: &[&str],
                  issuer: &Ca,
                  window: Window,
                  defect: Option<&str>|
     -> Result<Leaf, PkiError> {
        let leaf = new_leaf(Profile::Server, osi_dn(cn), sans, issuer, window, now, None)?;
        w.leaf(base, role, &leaf, &[issuer], defect)?;
        Ok(leaf)
    };
    server(
        &mut w,
        "osi/annuaire",
        "annuaire-server",
        "annuaire-amc.test",
        &hosts,
        &ac_serveur,
        server_window,
        None,
    )?;
    server(
        &mut w,
        "osi/amc-a",
        "amc-server",
        "amc-a.test",
        &hosts,
        &ac_serveur,
        server_window,
        None,
    )?;
    server(
        &mut w,
        "osi/amc-b",
        "amc-server-2",
        "amc-b.test",
        &hosts,
        &ac_serveur,
        server_window,
        None,
    )?;
    let amc_sign = new_leaf(
        Profile::AppSign,
        osi_dn("amc-signature.test"),
        &[],
        &ac_sa,
        server_window,
        now,
        None,
    )?;
    w.leaf("osi/amc-sign", "amc-sign", &amc_sign, &[&ac_sa], None)?;

    server(
        &mut w,
        "negative/server-expired",
        "amc-server",
        "amc-expired.test",
        &hosts,
        &ac_serveur,
        Window(-400, -1),
        Some("expired"),
    )?;
    let srv_revoked = server(
        &mut w,
        "negative/server-revoked",
        "amc-server",
        "amc-revoked.test",
        &hosts,
        &ac_serveur,
        server_window,
        Some("revoked"),
    )?;
    server(
        &mut w,
        "negative/server-wrong-host",
        "amc-server",
        "wrong-host.test",
        &["wrong-host.test"],
        &ac_serveur,
        server_window,
        Some("wrong-host"),
    )?;
    let rogue_root = new_ca(
        osi_dn("TEST AC RACINE INCONNUE"),
        None,
        None,
        RsaKeySize::_2048,
        Window::days(10 * 365),
        now,
    )?;
    w.ca(
        "negative/unknown-osi-root.pem",
        "unknown-osi-root",
        &rogue_root,
    )?;
    server(
        &mut w,
        "negative/server-unknown-ca",
        "amc-server",
        "amc-unknown-ca.test",
        &hosts,
        &rogue_root,
        server_window,
        Some("unknown-ca"),
    )?;

    w.crl("osi/root.crl.pem", "osi-root", &crl(&osi_root, &[], now)?)?;
    w.crl(
        "osi/ac-serveur.crl.pem",
        "osi-ac-serveur",
        &crl(&ac_serveur, &[&srv_revoked], now)?,
    )?;
    w.crl(
        "osi/ac-services-applicatifs.crl.pem",
        "osi-ac-services-applicatifs",
        &crl(&ac_sa, &[], now)?,
    )?;

    // --- Local CA: SIH applications' client certificates for rocgw's `[server.tls]` -------
    let local_ca = new_ca(
        local_dn("TEST AC LOCALE SIH"),
        None,
        Some(0),
        RsaKeySize::_2048,
        Window::days(10 * 365),
        now,
    )?;
    w.ca("local/ca.pem", "local-ca", &local_ca)?;
    server(
        &mut w,
        "local/gateway",
        "local-gateway",
        "rocgw.localhost",
        &hosts,
        &local_ca,
        server_window,
        None,
    )?;
    let client = |cn: &str, ca: &Ca| {
        new_leaf(
            Profile::AuthCli,
            local_dn(cn),
            &[],
            ca,
            server_window,
            now,
            None,
        )
    };
    let dpi = client("SIH TEST DPI", &local_ca)?;
    w.leaf("local/client", "local-client", &dpi, &[&local_ca], None)?;
    let revoked = client("SIH TEST REVOQUE", &local_ca)?;
    w.leaf(
        "negative/local-client-revoked",
        "local-client",
        &revoked,
        &[&local_ca],
        Some("revoked"),
    )?;
    w.crl(
        "local/ca.crl.pem",
        "local-ca",
        &crl(&local_ca, &[&revoked], now)?,
    )?;
    let stranger = client("SIH INCONNU", &rogue_root)?;
    w.leaf(
        "negative/local-client-unknown-ca",
        "local-client",
        &stranger,
        &[&rogue_root],
        Some("unknown-ca"),
    )?;

    let manifest = Manifest {
        generated_at: crate::clock::fmt_time(now.unix_timestamp()),
        hospital: HOSPITAL.to_string(),
        structure_id: sid,
        structure_id_2: sid2,
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
                    return Err(PkiError(format!(
                        "{} is not empty: refusing to write a PKI into it (use --force to \
                         replace a previous test PKI)",
                        dir.display()
                    )));
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
                    r.map_err(|e| PkiError(format!("cannot remove {}: {e}", p.display())))?;
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(dir)
            .map_err(|e| PkiError(format!("cannot create {}: {e}", dir.display()))),
        Err(e) => Err(PkiError(format!("cannot read {}: {e}", dir.display()))),
    }
}

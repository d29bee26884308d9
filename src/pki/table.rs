//! The test PKI as data: each hierarchy's CAs, the certificates they issue, the files written
//! and their manifest roles, in the order they are written. Adding a hierarchy, or a fixture,
//! is one entry here; `make` walks the table.

use std::collections::BTreeMap;

use rcgen::RsaKeySize;
use time::OffsetDateTime;

use super::make::{crl, new_ca, new_leaf, rsa, Ca, Dn, Leaf, Profile, Window};
use super::write::Writer;
use super::{PkiError, FINESS, FINESS2, HOSPITAL, HOSPITAL2};

/// One CA: written as `file` (manifest kind `cert`), and its CRL as `crl` (kind `crl`, same
/// role) once the rest of its hierarchy is made.
pub(super) struct CaSpec {
    /// How later entries name it (`parent`, `chain`).
    id: &'static str,
    dn: Dn,
    /// Self-signed when `None`.
    parent: Option<&'static str>,
    /// `pathLenConstraint`; `None`: unconstrained.
    path_len: Option<u8>,
    bits: RsaKeySize,
    window: Window,
    file: &'static str,
    role: &'static str,
    crl: Option<&'static str>,
}

/// One end-entity certificate (RSA 2048): `<base>.pem` (kind `cert`), `<base>.chain.pem`
/// (`chain`: the leaf then `chain`), `<base>.key` (`key`), and one P12 per encryption in `p12`
/// (`<base>.p12` for `aes`, `<base>.<enc>.p12` for the others), all under `role`.
pub(super) struct LeafSpec {
    base: &'static str,
    role: &'static str,
    profile: Profile,
    dn: Dn,
    /// subjectAltName: an IP address or a DNS name each.
    sans: &'static [&'static str],
    /// The issuing CA first, then the CAs above it that the chain files carry.
    chain: &'static [&'static str],
    window: Window,
    /// For negative fixtures: what is wrong, recorded in the manifest.
    defect: Option<&'static str>,
    p12: &'static [&'static str],
    /// Listed in its issuer's CRL.
    revoked: bool,
}

/// What a hierarchy makes, in order.
pub(super) enum Item {
    Ca(CaSpec),
    /// The certificates of CAs `cas`, in this order, as one PEM file (kind `chain`).
    Bundle {
        file: &'static str,
        role: &'static str,
        cas: &'static [&'static str],
    },
    Leaf(LeafSpec),
    /// Another AES P12 of the leaf written as `of`, bundled with another chain.
    OtherP12 {
        of: &'static str,
        file: &'static str,
        role: &'static str,
        chain: &'static [&'static str],
        defect: &'static str,
    },
    /// A certificate saved with a key that is not its own: `<base>.pem`, `<base>.key` and the
    /// P12s, no chain file.
    KeyMismatch(LeafSpec),
    /// A CRL of `issuer` that revokes the CAs `revoked` (kind `crl`): for revocation checks
    /// that go past an intermediate anchor.
    CaRevocation {
        file: &'static str,
        role: &'static str,
        issuer: &'static str,
        revoked: &'static [&'static str],
    },
}

pub(super) struct Hierarchy {
    items: &'static [Item],
}

const ORG_VALIDITY_DAYS: i64 = 3 * 365;
const ORG_WINDOW: Window = Window::days(ORG_VALIDITY_DAYS);
const SERVER_WINDOW: Window = Window::days(2 * 365);
const ALL_P12: &[&str] = &["aes", "3des", "rc2-40"];
const AES: &[&str] = &["aes"];
const IGC_CHAIN: &[&str] = &["aci-el-org", "acr"];
const HOSTS: &[&str] = &["localhost", "127.0.0.1"];

const AUTH_CLI_CN: &str = "Client_ROC_Annuaire_AMC";
const SIGN_CN: &str = "Client_ROC_WebServices_AMC";
const ORG_AUTH_CLI: Dn = Dn::Org {
    org: HOSPITAL,
    finess: FINESS,
    cn: AUTH_CLI_CN,
};
const ORG_SIGN: Dn = Dn::Org {
    org: HOSPITAL,
    finess: FINESS,
    cn: SIGN_CN,
};

/// The fields a leaf may leave out: no SAN, no defect, no P12, not revoked. The others are
/// always set.
const LEAF: LeafSpec = LeafSpec {
    base: "",
    role: "",
    profile: Profile::Server,
    dn: Dn::Osi(""),
    sans: &[],
    chain: &[],
    window: SERVER_WINDOW,
    defect: None,
    p12: &[],
    revoked: false,
};

/// An ORG certificate issued by ACI-EL-ORG, with an AES P12.
const ORG: LeafSpec = LeafSpec {
    chain: IGC_CHAIN,
    window: ORG_WINDOW,
    p12: AES,
    ..LEAF
};

/// An AMC server certificate issued by AC-SERVEUR, for this machine's names.
const OSI_SERVER: LeafSpec = LeafSpec {
    role: "amc-server",
    profile: Profile::Server,
    sans: HOSTS,
    chain: &["ac-serveur"],
    ..LEAF
};

/// The test PKI, in the order it is written.
pub(super) static HIERARCHIES: &[Hierarchy] = &[IGC_SANTE, IGC_OSI, LOCAL];

/// IGC-Santé TEST: ACR → ACI-EL-ORG → the hospital's ORG certificates, and the negative ORG
/// fixtures.
const IGC_SANTE: Hierarchy = Hierarchy {
    items: &[
        Item::Ca(CaSpec {
            id: "acr",
            dn: Dn::IgcSante("TEST AC RACINE IGC-SANTE ELEMENTAIRE"),
            parent: None,
            path_len: None,
            bits: RsaKeySize::_4096,
            window: Window::days(20 * 365),
            file: "igc-sante/acr.pem",
            role: "igc-sante-root",
            crl: Some("igc-sante/acr.crl.pem"),
        }),
        Item::Ca(CaSpec {
            id: "aci-el-org",
            dn: Dn::IgcSante("TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS"),
            parent: Some("acr"),
            path_len: Some(0),
            bits: RsaKeySize::_4096,
            window: Window::days(10 * 365),
            file: "igc-sante/aci-el-org.pem",
            role: "igc-sante-aci-el-org",
            crl: Some("igc-sante/aci-el-org.crl.pem"),
        }),
        Item::Bundle {
            file: "igc-sante/chain.pem",
            role: "igc-sante-chain",
            cas: IGC_CHAIN,
        },
        Item::Leaf(LeafSpec {
            base: "org/auth_cli",
            role: "org-auth-cli",
            profile: Profile::AuthCli,
            dn: ORG_AUTH_CLI,
            p12: ALL_P12,
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "org/sign",
            role: "org-sign",
            profile: Profile::Sign,
            dn: ORG_SIGN,
            p12: ALL_P12,
            ..ORG
        }),
        // The first structure's certificates renewed (same structure, new keys): a rotation.
        Item::Leaf(LeafSpec {
            base: "org/auth_cli-renewed",
            role: "org-auth-cli-renewed",
            profile: Profile::AuthCli,
            dn: ORG_AUTH_CLI,
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "org/sign-renewed",
            role: "org-sign-renewed",
            profile: Profile::Sign,
            dn: ORG_SIGN,
            ..ORG
        }),
        // The second structure (another EG of the same group).
        Item::Leaf(LeafSpec {
            base: "org2/auth_cli",
            role: "org-auth-cli-2",
            profile: Profile::AuthCli,
            dn: Dn::Org {
                org: HOSPITAL2,
                finess: FINESS2,
                cn: AUTH_CLI_CN,
            },
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "org2/sign",
            role: "org-sign-2",
            profile: Profile::Sign,
            dn: Dn::Org {
                org: HOSPITAL2,
                finess: FINESS2,
                cn: SIGN_CN,
            },
            ..ORG
        }),
        // Negative ORG fixtures.
        Item::Ca(CaSpec {
            id: "foreign",
            dn: Dn::Foreign("TEST AC ETRANGERE ORGANISATIONS"),
            parent: None,
            path_len: None,
            bits: RsaKeySize::_2048,
            window: Window::days(10 * 365),
            file: "negative/foreign-ca.pem",
            role: "foreign-ca",
            crl: None,
        }),
        Item::Leaf(LeafSpec {
            base: "negative/auth_cli-foreign",
            role: "org-auth-cli",
            profile: Profile::AuthCli,
            dn: ORG_AUTH_CLI,
            chain: &["foreign"],
            defect: Some("unknown-ca"),
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "negative/sign-foreign",
            role: "org-sign",
            profile: Profile::Sign,
            dn: ORG_SIGN,
            chain: &["foreign"],
            defect: Some("unknown-ca"),
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "negative/sign-expired",
            role: "org-sign",
            profile: Profile::Sign,
            dn: ORG_SIGN,
            window: Window(-3 * 365, -1),
            defect: Some("expired"),
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "negative/sign-revoked",
            role: "org-sign",
            profile: Profile::Sign,
            dn: ORG_SIGN,
            defect: Some("revoked"),
            revoked: true,
            ..ORG
        }),
        Item::Leaf(LeafSpec {
            base: "negative/auth_cli-expiring",
            role: "org-auth-cli",
            profile: Profile::AuthCli,
            dn: ORG_AUTH_CLI,
            window: Window(-3 * 365 + 10, 10),
            defect: Some("expiring"),
            ..ORG
        }),
        // A P12 without the ACI, as when a CSR-made certificate is bundled without ACI-EL-ORG.
        Item::OtherP12 {
            of: "org/auth_cli",
            file: "negative/auth_cli-no-aci.p12",
            role: "org-auth-cli",
            chain: &["acr"],
            defect: "missing-aci",
        },
        Item::KeyMismatch(LeafSpec {
            base: "negative/sign-key-mismatch",
            role: "org-sign",
            profile: Profile::Sign,
            dn: ORG_SIGN,
            defect: Some("key-mismatch"),
            ..ORG
        }),
    ],
};

/// IGC OSI TEST: root → AC-SERVEUR (the annuaire's and the AMCs' servers), and
/// AC-SERVICES-APPLICATIFS (the AMCs' signatures); the negative server fixtures.
const IGC_OSI: Hierarchy = Hierarchy {
    items: &[
        Item::Ca(CaSpec {
            id: "osi-root",
            dn: Dn::Osi("TEST AC RACINE IGC OSI"),
            parent: None,
            path_len: None,
            bits: RsaKeySize::_2048,
            window: Window::days(20 * 365),
            file: "osi/root.pem",
            role: "osi-root",
            crl: Some("osi/root.crl.pem"),
        }),
        Item::Ca(CaSpec {
            id: "ac-serveur",
            dn: Dn::Osi("TEST AC-SERVEUR"),
            parent: Some("osi-root"),
            path_len: Some(0),
            bits: RsaKeySize::_2048,
            window: Window::days(10 * 365),
            file: "osi/ac-serveur.pem",
            role: "osi-ac-serveur",
            crl: Some("osi/ac-serveur.crl.pem"),
        }),
        Item::Ca(CaSpec {
            id: "ac-services-applicatifs",
            dn: Dn::Osi("TEST AC-SERVICES-APPLICATIFS"),
            parent: Some("osi-root"),
            path_len: Some(0),
            bits: RsaKeySize::_2048,
            window: Window::days(10 * 365),
            file: "osi/ac-services-applicatifs.pem",
            role: "osi-ac-services-applicatifs",
            crl: Some("osi/ac-services-applicatifs.crl.pem"),
        }),
        Item::Bundle {
            file: "osi/anchors.pem",
            role: "osi-anchors",
            cas: &["osi-root", "ac-serveur", "ac-services-applicatifs"],
        },
        Item::Leaf(LeafSpec {
            base: "osi/annuaire",
            role: "annuaire-server",
            dn: Dn::Osi("annuaire-amc.test"),
            ..OSI_SERVER
        }),
        Item::Leaf(LeafSpec {
            base: "osi/amc-a",
            dn: Dn::Osi("amc-a.test"),
            ..OSI_SERVER
        }),
        Item::Leaf(LeafSpec {
            base: "osi/amc-b",
            role: "amc-server-2",
            dn: Dn::Osi("amc-b.test"),
            ..OSI_SERVER
        }),
        Item::Leaf(LeafSpec {
            base: "osi/amc-sign",
            role: "amc-sign",
            profile: Profile::AppSign,
            dn: Dn::Osi("amc-signature.test"),
            chain: &["ac-services-applicatifs"],
            ..LEAF
        }),
        Item::Leaf(LeafSpec {
            base: "negative/amc-sign-revoked",
            role: "amc-sign",
            profile: Profile::AppSign,
            dn: Dn::Osi("amc-signature-revoked.test"),
            chain: &["ac-services-applicatifs"],
            defect: Some("revoked"),
            revoked: true,
            ..LEAF
        }),
        Item::Leaf(LeafSpec {
            base: "negative/server-expired",
            dn: Dn::Osi("amc-expired.test"),
            window: Window(-400, -1),
            defect: Some("expired"),
            ..OSI_SERVER
        }),
        Item::Leaf(LeafSpec {
            base: "negative/server-revoked",
            dn: Dn::Osi("amc-revoked.test"),
            defect: Some("revoked"),
            revoked: true,
            ..OSI_SERVER
        }),
        // A TLS server certificate from the signature authority: a valid chain to the OSI root,
        // serverAuth, this machine's names — but not an AC-SERVEUR certificate.
        Item::Leaf(LeafSpec {
            base: "negative/server-under-services-applicatifs",
            role: "amc-server-wrong-role",
            dn: Dn::Osi("amc-wrong-role.test"),
            chain: &["ac-services-applicatifs", "osi-root"],
            defect: Some("wrong-role"),
            ..OSI_SERVER
        }),
        Item::CaRevocation {
            file: "negative/osi-root-revokes-ac-serveur.crl.pem",
            role: "osi-root-crl-revoking-ac-serveur",
            issuer: "osi-root",
            revoked: &["ac-serveur"],
        },
        Item::Leaf(LeafSpec {
            base: "negative/server-wrong-host",
            dn: Dn::Osi("wrong-host.test"),
            sans: &["wrong-host.test"],
            defect: Some("wrong-host"),
            ..OSI_SERVER
        }),
        Item::Ca(CaSpec {
            id: "unknown-osi-root",
            dn: Dn::Osi("TEST AC RACINE INCONNUE"),
            parent: None,
            path_len: None,
            bits: RsaKeySize::_2048,
            window: Window::days(10 * 365),
            file: "negative/unknown-osi-root.pem",
            role: "unknown-osi-root",
            crl: None,
        }),
        Item::Leaf(LeafSpec {
            base: "negative/server-unknown-ca",
            dn: Dn::Osi("amc-unknown-ca.test"),
            chain: &["unknown-osi-root"],
            defect: Some("unknown-ca"),
            ..OSI_SERVER
        }),
    ],
};

/// The hospital's local CA: rocgw's `[server.tls]` certificate and the SIH applications'
/// client certificates.
const LOCAL: Hierarchy = Hierarchy {
    items: &[
        Item::Ca(CaSpec {
            id: "local",
            dn: Dn::Local("TEST AC LOCALE SIH"),
            parent: None,
            path_len: Some(0),
            bits: RsaKeySize::_2048,
            window: Window::days(10 * 365),
            file: "local/ca.pem",
            role: "local-ca",
            crl: Some("local/ca.crl.pem"),
        }),
        Item::Leaf(LeafSpec {
            base: "local/gateway",
            role: "local-gateway",
            dn: Dn::Osi("rocgw.localhost"),
            sans: HOSTS,
            chain: &["local"],
            ..LEAF
        }),
        Item::Leaf(LeafSpec {
            base: "local/client",
            role: "local-client",
            profile: Profile::AuthCli,
            dn: Dn::Local("SIH TEST DPI"),
            chain: &["local"],
            ..LEAF
        }),
        Item::Leaf(LeafSpec {
            base: "negative/local-client-revoked",
            role: "local-client",
            profile: Profile::AuthCli,
            dn: Dn::Local("SIH TEST REVOQUE"),
            chain: &["local"],
            defect: Some("revoked"),
            revoked: true,
            ..LEAF
        }),
        Item::Leaf(LeafSpec {
            base: "negative/local-client-unknown-ca",
            role: "local-client",
            profile: Profile::AuthCli,
            dn: Dn::Local("SIH INCONNU"),
            chain: &["unknown-osi-root"],
            defect: Some("unknown-ca"),
            ..LEAF
        }),
    ],
};

// ---------------------------------------------------------------------------------------------
// Walking the table
// ---------------------------------------------------------------------------------------------

/// What is made so far: later entries, of any hierarchy, name earlier CAs and leaves.
#[derive(Default)]
pub(super) struct Made {
    cas: BTreeMap<&'static str, Ca>,
    leaves: BTreeMap<&'static str, Leaf>,
    /// Serials each CA's CRL lists.
    revoked: BTreeMap<&'static str, Vec<Vec<u8>>>,
}

impl Made {
    fn ca(&self, id: &str) -> Result<&Ca, PkiError> {
        self.cas
            .get(id)
            .ok_or_else(|| PkiError::NoSuchCa(id.to_string()))
    }

    fn chain(&self, ids: &[&str]) -> Result<Vec<&Ca>, PkiError> {
        ids.iter().map(|id| self.ca(id)).collect()
    }
}

/// Makes and writes hierarchy `h`'s items, then the CRLs of its CAs.
pub(super) fn make(
    h: &Hierarchy,
    w: &mut Writer,
    made: &mut Made,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    for item in h.items {
        match item {
            Item::Ca(c) => {
                let parent = c.parent.map(|p| made.ca(p)).transpose()?;
                let ca = new_ca(c.dn, parent, c.path_len, c.bits, c.window, now)?;
                w.ca(c.file, c.role, &ca)?;
                made.cas.insert(c.id, ca);
            }
            Item::Bundle { file, role, cas } => w.bundle(file, role, &made.chain(cas)?)?,
            Item::Leaf(l) => {
                let leaf = issue(l, made, now)?;
                let chain = made.chain(l.chain)?;
                w.leaf(l.base, l.role, &leaf, &chain, l.defect)?;
                p12s(w, l, leaf.key.serialized_der(), &leaf.der, &chain)?;
                if l.revoked {
                    let issuer = l.chain[0];
                    let serials = made.revoked.entry(issuer).or_default();
                    serials.push(leaf.serial_raw.clone());
                }
                made.leaves.insert(l.base, leaf);
            }
            Item::OtherP12 {
                of,
                file,
                role,
                chain,
                defect,
            } => {
                let leaf = made
                    .leaves
                    .get(of)
                    .ok_or_else(|| PkiError::NoSuchCertificate(of.to_string()))?;
                let (key, der) = (leaf.key.serialized_der(), &leaf.der);
                w.p12(
                    file,
                    role,
                    key,
                    der,
                    &made.chain(chain)?,
                    "aes",
                    Some(defect),
                )?;
            }
            Item::KeyMismatch(l) => key_mismatch(l, w, made, now)?,
            Item::CaRevocation {
                file,
                role,
                issuer,
                revoked,
            } => {
                let mut serials = Vec::new();
                for id in *revoked {
                    let (_, c) = x509_parser::parse_x509_certificate(made.ca(id)?.der())
                        .map_err(|e| PkiError::NoSuchCa(format!("{id}: {e}")))?;
                    serials.push(c.raw_serial().to_vec());
                }
                w.crl(file, role, &crl(made.ca(issuer)?, &serials, now)?)?;
            }
        }
    }
    for item in h.items {
        if let Item::Ca(CaSpec {
            id,
            role,
            crl: Some(file),
            ..
        }) = item
        {
            let revoked = made.revoked.get(id).map_or(&[][..], Vec::as_slice);
            w.crl(file, role, &crl(made.ca(id)?, revoked, now)?)?;
        }
    }
    Ok(())
}

/// Makes the certificate of `l`, issued by the first CA of its chain.
fn issue(l: &LeafSpec, made: &Made, now: OffsetDateTime) -> Result<Leaf, PkiError> {
    let issuer = made.ca(l.chain.first().copied().unwrap_or_default())?;
    new_leaf(l.profile, l.dn, l.sans, issuer, l.window, now)
}

/// Writes the P12s of `l`, one per encryption.
fn p12s(
    w: &mut Writer,
    l: &LeafSpec,
    key_der: &[u8],
    leaf_der: &[u8],
    chain: &[&Ca],
) -> Result<(), PkiError> {
    for enc in l.p12 {
        let file = match *enc {
            "aes" => format!("{}.p12", l.base),
            e => format!("{}.{e}.p12", l.base),
        };
        w.p12(&file, l.role, key_der, leaf_der, chain, enc, l.defect)?;
    }
    Ok(())
}

/// Writes the certificate of `l` with another key.
fn key_mismatch(
    l: &LeafSpec,
    w: &mut Writer,
    made: &Made,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let other_key = rsa(RsaKeySize::_2048)?;
    let leaf = issue(l, made, now)?;
    let defect = l.defect.map(str::to_string);
    let pem = format!("{}.pem", l.base);
    w.write(&pem, leaf.pem.as_bytes(), false)?;
    w.entry(&pem, l.role, "cert").defect = defect.clone();
    let key = format!("{}.key", l.base);
    w.write(&key, other_key.serialize_pem().as_bytes(), true)?;
    w.entry(&key, l.role, "key").defect = defect;
    let chain = made.chain(l.chain)?;
    p12s(w, l, other_key.serialized_der(), &leaf.der, &chain)
}

#[cfg(test)]
mod tests;

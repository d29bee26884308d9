use super::*;

use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope,
    KeyIdMethod, RevokedCertParams, SerialNumber,
};

/// A CA named `CN=TEST ROCGW CA`, with a key of its own: two of them share a name only.
fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "TEST ROCGW CA");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let key = rcgen::KeyPair::generate().expect("key");
    rcgen::CertifiedIssuer::self_signed(p, key).expect("CA certificate")
}

/// A certificate issued by `ca` with this serial, a CA certificate or not, naming `cdp` as its
/// CRL distribution point when given (DER).
fn cert(
    ca: &rcgen::Issuer<'_, rcgen::KeyPair>,
    serial: u8,
    is_ca: bool,
    cdp: Option<&str>,
) -> Vec<u8> {
    let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    p.serial_number = Some(SerialNumber::from(vec![serial]));
    if is_ca {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    p.crl_distribution_points = cdp
        .map(|u| CrlDistributionPoint {
            uris: vec![u.to_string()],
        })
        .into_iter()
        .collect();
    let key = rcgen::KeyPair::generate().expect("key");
    p.signed_by(&key, ca).expect("certificate").der().to_vec()
}

/// A CRL of `ca` numbered `number`, issued `age_h` hours ago, valid `valid_h` hours from its
/// issue, revoking `serials`, with an issuing distribution point when `idp` (DER).
fn crl_of(
    ca: &rcgen::Issuer<'_, rcgen::KeyPair>,
    number: u8,
    (age_h, valid_h): (i64, i64),
    serials: &[u8],
    idp: Option<(&str, Option<CrlScope>)>,
) -> Vec<u8> {
    // `::time`: the x509-parser prelude brings a `time` module of its own.
    let this_update = ::time::OffsetDateTime::now_utc() - ::time::Duration::hours(age_h);
    let params = CertificateRevocationListParams {
        this_update,
        next_update: this_update + ::time::Duration::hours(valid_h),
        crl_number: SerialNumber::from(vec![number]),
        issuing_distribution_point: idp.map(|(uri, scope)| CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint {
                uris: vec![uri.to_string()],
            },
            scope,
        }),
        revoked_certs: serials
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(vec![*s]),
                revocation_time: this_update,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(ca).expect("CRL").der().to_vec()
}

/// A fresh CRL: issued an hour ago, for a week.
const FRESH: (i64, i64) = (1, 24 * 7);

/// Writes the anchor and the CRLs (`name`, DER) in `dir` and loads them in this order.
fn load(
    dir: &Path,
    ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    crls: &[(&str, &[u8])],
) -> Result<CrlSet, TrustError> {
    let anchor = dir.join("anchor.pem");
    std::fs::write(&anchor, ca.pem()).expect("write");
    let now = crate::clock::now_unix();
    let anchors = Anchors::load("trust.amc_anchors", &[anchor], now).expect("anchor");
    let paths: Vec<PathBuf> = crls
        .iter()
        .map(|(name, der)| {
            let p = dir.join(name);
            std::fs::write(&p, der).expect("write");
            p
        })
        .collect();
    CrlSet::load("trust.crls", &paths, &[&anchors], now)
}

fn status(set: &CrlSet, der: &[u8], now: i64) -> Status {
    let (_, c) = X509Certificate::from_der(der).expect("certificate");
    set.status(&c, now)
}

#[test]
fn serials_compare_without_leading_zeros() {
    assert_eq!(serial_key(&[0, 0x80, 1]), &[0x80, 1]);
    assert_eq!(serial_key(&[0]), &[0]);
    // 0x9a is encoded with a leading zero, in the certificate as in the CRL.
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca();
    let set = load(
        dir.path(),
        &ca,
        &[("a.crl", &crl_of(&ca, 1, FRESH, &[0x9a], None))],
    )
    .expect("CRL");
    let now = crate::clock::now_unix();
    let (revoked, other) = (cert(&ca, 0x9a, false, None), cert(&ca, 0x9b, false, None));
    assert_eq!(status(&set, &revoked, now), Status::Revoked);
    assert_eq!(status(&set, &other, now), Status::Good);
    let later = now + 8 * 24 * 3600;
    assert_eq!(status(&set, &other, later), Status::Stale);
    assert_eq!(status(&set, &revoked, later), Status::Revoked);
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "ANOTHER CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let other_ca = rcgen::CertifiedIssuer::self_signed(p, key).expect("CA");
    assert_eq!(
        status(&set, &cert(&other_ca, 0x9a, false, None), now),
        Status::NoCrl
    );
}

#[test]
fn the_newest_crl_of_one_scope_wins_in_either_order_and_the_other_is_superseded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca();
    // A fresh CRL that revokes 5, and an older, empty one past its next update.
    let fresh = crl_of(&ca, 2, FRESH, &[5], None);
    let old = crl_of(&ca, 1, (24 * 8, 24 * 7), &[], None);
    let now = crate::clock::now_unix();
    let revoked = cert(&ca, 5, false, None);
    for order in [
        [("fresh.crl", &fresh[..]), ("old.crl", &old[..])],
        [("old.crl", &old[..]), ("fresh.crl", &fresh[..])],
    ] {
        let set = load(dir.path(), &ca, &order).expect("CRLs");
        assert_eq!(status(&set, &revoked, now), Status::Revoked, "{order:?}");
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.crls().next().expect("in force").number,
            Some(2u8.into())
        );
        let [s] = set.superseded() else {
            panic!("one superseded: {:?}", set.superseded());
        };
        assert_eq!(s.crl.source, dir.path().join("old.crl"));
        assert_eq!(s.by, dir.path().join("fresh.crl"));
        assert_eq!(s.why, "cRLNumber 1 below 2");
        assert_eq!(
            s.to_string(),
            format!(
                "{}: CRL of CN=TEST ROCGW CA superseded by {} (cRLNumber 1 below 2): not used",
                dir.path().join("old.crl").display(),
                dir.path().join("fresh.crl").display()
            )
        );
    }
}

/// A CRL in force, as `load` makes it, for the ordering rules.
fn made(source: &str, number: Option<u32>, this_update: i64) -> Crl {
    Crl {
        source: PathBuf::from(source),
        issuer: "CN=x".into(),
        this_update,
        next_update: None,
        number: number.map(BigUint::from),
        scope: Scope::default(),
        serials: HashSet::new(),
    }
}

#[test]
fn without_a_crl_number_or_with_the_same_the_latest_this_update_wins() {
    let mut set = CrlSet::default();
    set.insert(b"x".to_vec(), made("late.crl", None, 2_000));
    set.insert(b"x".to_vec(), made("early.crl", Some(9), 1_000));
    set.insert(b"x".to_vec(), made("same.crl", Some(3), 2_000));
    let in_force: Vec<_> = set.crls().map(|c| c.source.clone()).collect();
    assert_eq!(in_force, [PathBuf::from("late.crl")]);
    let why: Vec<_> = set
        .superseded()
        .iter()
        .map(|s| (s.crl.source.display().to_string(), s.why.clone()))
        .collect();
    assert_eq!(
        why,
        [
            (
                "early.crl".to_string(),
                format!("thisUpdate {} before {}", fmt_time(1_000), fmt_time(2_000))
            ),
            (
                "same.crl".to_string(),
                "the same thisUpdate: listed twice".to_string()
            ),
        ]
    );
    // Both numbered, the same number: the later thisUpdate.
    let mut set = CrlSet::default();
    set.insert(b"x".to_vec(), made("a.crl", Some(4), 1_000));
    set.insert(b"x".to_vec(), made("b.crl", Some(4), 1_500));
    assert_eq!(
        set.crls().next().expect("in force").source,
        PathBuf::from("b.crl")
    );
    assert!(set.superseded()[0]
        .why
        .starts_with("the same cRLNumber, thisUpdate"));
}

#[test]
fn an_arl_answers_for_ca_certificates_only_and_a_user_crl_for_end_entities_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca();
    const CDP: &str = "http://crl.test.invalid/root.crl";
    let (sub_ca, leaf) = (
        cert(&ca, 7, true, Some(CDP)),
        cert(&ca, 8, false, Some(CDP)),
    );
    let arl = crl_of(
        &ca,
        1,
        FRESH,
        &[7, 8],
        Some((CDP, Some(CrlScope::CaCertsOnly))),
    );
    let now = crate::clock::now_unix();

    let set = load(dir.path(), &ca, &[("arl.crl", &arl)]).expect("ARL");
    assert_eq!(status(&set, &sub_ca, now), Status::Revoked);
    assert_eq!(
        status(&set, &leaf, now),
        Status::NoCrl,
        "an ARL says nothing of an end-entity certificate, even one it lists"
    );
    assert_eq!(
        set.crls().next().expect("ARL").scope.describe().as_deref(),
        Some("CA certificates only (ARL), distribution point http://crl.test.invalid/root.crl")
    );

    // With the CRL for end entities too (an older number: another scope, no competition).
    let users = crl_of(
        &ca,
        0,
        FRESH,
        &[],
        Some((CDP, Some(CrlScope::UserCertsOnly))),
    );
    for order in [
        [("arl.crl", &arl[..]), ("users.crl", &users[..])],
        [("users.crl", &users[..]), ("arl.crl", &arl[..])],
    ] {
        let set = load(dir.path(), &ca, &order).expect("CRLs");
        assert_eq!((set.len(), set.superseded().len()), (2, 0));
        assert_eq!(status(&set, &sub_ca, now), Status::Revoked);
        assert_eq!(status(&set, &leaf, now), Status::Good);
    }
}

#[test]
fn a_crl_with_a_distribution_point_covers_only_the_certificates_that_name_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca();
    let here = "http://crl.test.invalid/part-1.crl";
    let part = crl_of(&ca, 1, FRESH, &[3, 4], Some((here, None)));
    let set = load(dir.path(), &ca, &[("part.crl", &part)]).expect("CRL");
    let now = crate::clock::now_unix();
    assert_eq!(
        status(&set, &cert(&ca, 3, false, Some(here)), now),
        Status::Revoked
    );
    assert_eq!(
        status(&set, &cert(&ca, 5, true, Some(here)), now),
        Status::Good
    );
    let elsewhere = "http://crl.test.invalid/part-2.crl";
    assert_eq!(
        status(&set, &cert(&ca, 4, false, Some(elsewhere)), now),
        Status::NoCrl
    );
    assert_eq!(status(&set, &cert(&ca, 4, false, None), now), Status::NoCrl);
}

#[test]
fn a_stale_crl_of_one_scope_does_not_make_a_certificate_covered_by_a_fresh_one_stale() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = test_ca();
    const CDP: &str = "http://crl.test.invalid/root.crl";
    let stale_all = crl_of(&ca, 5, (24 * 8, 24 * 7), &[], None);
    let fresh_arl = crl_of(&ca, 1, FRESH, &[], Some((CDP, Some(CrlScope::CaCertsOnly))));
    let set = load(
        dir.path(),
        &ca,
        &[("all.crl", &stale_all), ("arl.crl", &fresh_arl)],
    )
    .expect("CRLs");
    let now = crate::clock::now_unix();
    assert_eq!(
        status(&set, &cert(&ca, 7, true, Some(CDP)), now),
        Status::Good
    );
    assert_eq!(
        status(&set, &cert(&ca, 8, false, Some(CDP)), now),
        Status::Stale
    );
}

#[test]
fn a_crl_signed_by_another_key_gives_the_signature_error_with_its_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (anchor, impostor) = (test_ca(), test_ca());
    let good = crl_of(&anchor, 1, FRESH, &[], None);
    let forged = crl_of(&impostor, 1, FRESH, &[], None);
    let set = load(dir.path(), &anchor, &[("good.crl", &good)]).expect("good");
    assert_eq!(set.len(), 1);

    let err = load(
        dir.path(),
        &anchor,
        &[("good.crl", &good), ("forged.crl", &forged)],
    )
    .expect_err("a CRL signed by another key");
    let forged = dir.path().join("forged.crl");
    let TrustError::InField {
        field,
        index,
        inner,
    } = &err
    else {
        panic!("not wrapped with its field: {err:?}");
    };
    assert_eq!((field.as_str(), *index), ("trust.crls", 1));
    assert!(
        matches!(inner.as_ref(), TrustError::CrlSignature { path, issuer, .. }
            if *path == forged && issuer == "CN=TEST ROCGW CA"),
        "{inner:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "trust.crls[1]: {}: CRL signature does not verify with the key of CN=TEST ROCGW CA",
            forged.display()
        )
    );
}

/// DER by hand, for CRLs no tool makes: a tag, a length, the content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n < 0x100 => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// An extension: OID (encoded), criticality, value (DER).
fn ext(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![tlv(0x06, oid)];
    if critical {
        parts.push(tlv(0x01, &[0xff]));
    }
    parts.push(tlv(0x04, value));
    seq(&parts)
}

/// 2.5.29.`n`, encoded.
fn x509_ext(n: u8) -> Vec<u8> {
    vec![0x55, 0x1d, n]
}

/// 1.3.6.1.4.1.55555.1, encoded: an extension nobody knows.
const PRIVATE_OID: &[u8] = &[0x2b, 6, 1, 4, 1, 0x83, 0xb2, 0x03, 1];

/// An (unsigned) CRL of `CN=x` with these extensions and one entry, serial 0x2a, with
/// `entry_exts`; parsed, then `understood`.
fn understood_of(exts: &[Vec<u8>], entry_exts: &[Vec<u8>]) -> Result<Scope, TrustError> {
    let ecdsa_sha256 = seq(&[tlv(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02])]);
    let name = seq(&[tlv(
        0x31,
        &seq(&[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, b"x")]),
    )]);
    let mut entry = vec![tlv(0x02, &[0x2a]), tlv(0x17, b"250101000000Z")];
    if !entry_exts.is_empty() {
        entry.push(seq(entry_exts));
    }
    let mut tbs = vec![
        tlv(0x02, &[1]),
        ecdsa_sha256.clone(),
        name,
        tlv(0x17, b"250101000000Z"),
        tlv(0x17, b"350101000000Z"),
        seq(&[seq(&entry)]),
    ];
    if !exts.is_empty() {
        tbs.push(tlv(0xa0, &seq(exts)));
    }
    let der = seq(&[seq(&tbs), ecdsa_sha256, tlv(0x03, &[0, 1, 2, 3])]);
    let (_, crl) = CertificateRevocationList::from_der(&der).expect("a CRL that parses");
    understood(&crl, Path::new("x.crl"), "CN=x")
}

#[test]
fn only_complete_direct_crls_for_all_reasons_without_unknown_critical_extensions_are_read() {
    let number = ext(&x509_ext(20), false, &tlv(0x02, &[7]));
    let idp = |content: &[Vec<u8>]| ext(&x509_ext(28), true, &seq(content));
    // Understood: a CRL number, a non-critical private extension, reason codes, an IDP.
    assert_eq!(
        understood_of(
            &[number.clone(), ext(PRIVATE_OID, false, &tlv(0x05, &[]))],
            &[ext(&x509_ext(21), false, &tlv(0x0a, &[1]))],
        )
        .expect("understood"),
        Scope::default()
    );
    let arl = understood_of(&[idp(&[tlv(0x82, &[0xff])])], &[]).expect("an ARL");
    assert_eq!(arl.certs, Certs::Authorities);

    let refused = |exts: &[Vec<u8>], entry_exts: &[Vec<u8>]| {
        understood_of(exts, entry_exts)
            .expect_err("refused")
            .to_string()
    };
    assert_eq!(
        refused(
            &[number.clone(), ext(&x509_ext(27), true, &tlv(0x02, &[6]))],
            &[]
        ),
        "x.crl: delta CRL of CN=x (deltaCRLIndicator): not supported, list the authority's \
         complete CRL instead"
    );
    assert_eq!(
        refused(&[idp(&[tlv(0x84, &[0xff])])], &[]),
        "x.crl: indirect CRL of CN=x (issuingDistributionPoint indirectCRL): not supported, list \
         each authority's own CRL"
    );
    let certificate_issuer = ext(&x509_ext(29), true, &seq(&[tlv(0x86, b"http://x")]));
    assert_eq!(
        refused(&[], &[certificate_issuer]),
        "x.crl: indirect CRL of CN=x (a certificateIssuer entry extension): not supported, list \
         each authority's own CRL"
    );
    assert_eq!(
        refused(&[idp(&[tlv(0x83, &[6, 0x40])])], &[]),
        "x.crl: CRL of CN=x for some revocation reasons only (issuingDistributionPoint \
         onlySomeReasons: Key Compromise): not supported, list the authority's CRL for all reasons"
    );
    assert_eq!(
        refused(&[ext(PRIVATE_OID, true, &tlv(0x05, &[]))], &[]),
        "x.crl: CRL of CN=x has an unknown critical extension 1.3.6.1.4.1.55555.1: rocgw cannot \
         apply it"
    );
    assert_eq!(
        refused(&[], &[ext(PRIVATE_OID, true, &tlv(0x05, &[]))]),
        "x.crl: CRL of CN=x has an unknown critical extension 1.3.6.1.4.1.55555.1 on the entry of \
         serial 2a: rocgw cannot apply it"
    );
    assert!(
        refused(&[idp(&[tlv(0x81, &[0xff]), tlv(0x82, &[0xff])])], &[])
            .starts_with("x.crl: CRL of CN=x: invalid issuingDistributionPoint: more than one of"),
    );
}

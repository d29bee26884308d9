//! WS-Security stamping, checked by an independent verifier: the `xmlsec1` command line, with the
//! test IGC-Santé root as trusted and the ACI as untrusted (never `--pubkey-cert-pem`, which would
//! skip the chain). And the other direction: our verification function (bergshamra) accepts what
//! `xmlsec1` signs and refuses tampering and signature wrapping.

use std::fs;
use std::path::Path;

use rocgw::clock::now_unix;
use rocgw::config::{AttributeSpec, ExistingSecurity, IdentitySource, Profile};
use rocgw::identity::{Identity, Role};
use rocgw::wssec::{self, AssertionVerifier, Signer, VerifyError};

use crate::support::*;

/// The test PKI's ORG SIGN signer.
pub fn signer() -> Signer {
    let src = IdentitySource::P12 {
        field: "identity.sign".into(),
        path: pki_path("org/sign.p12"),
        password: zeroize::Zeroizing::new(p12_password()),
        password_file: None,
    };
    Signer::new(&Identity::load(&src, Role::Sign, now_unix()).unwrap()).unwrap()
}

fn stamp_with(envelope: &str, profile: &Profile) -> String {
    let plan = wssec::plan(envelope.as_bytes(), profile)
        .unwrap_or_else(|e| panic!("refused: {:?}", e.fault));
    let a = wssec::build_assertion(
        profile,
        &signer(),
        "https://amc.example.test/ws/idb",
        now_unix(),
    );
    String::from_utf8(wssec::stamp(
        envelope.as_bytes(),
        &plan,
        &a.xml,
        profile.must_understand,
    ))
    .unwrap()
}

fn stamp(envelope: &str) -> String {
    stamp_with(envelope, &Profile::default())
}

/// Runs `xmlsec1 --verify` on a document; returns (ok, output).
pub fn xmlsec_verify(doc: &[u8]) -> (bool, String) {
    let tmp = scratch();
    let f = tmp.path().join("doc.xml");
    fs::write(&f, doc).unwrap();
    let out = tool(
        "xmlsec1",
        &[
            "--verify",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--trusted-pem",
            pki_path("igc-sante/acr.pem").to_str().unwrap(),
            "--untrusted-pem",
            pki_path("igc-sante/aci-el-org.pem").to_str().unwrap(),
            f.to_str().unwrap(),
        ],
        Path::new("."),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Our verification function with the test IGC-Santé anchors.
pub fn verifier() -> AssertionVerifier {
    let der = |rel: &str| {
        rocgw::identity::read_pem_certs(&pki_path(rel))
            .unwrap()
            .remove(0)
            .to_vec()
    };
    AssertionVerifier::new(
        vec![der("igc-sante/acr.pem")],
        vec![der("igc-sante/aci-el-org.pem")],
    )
}

pub const BODY: &str =
    "<idb:demande xmlns:idb=\"urn:test:idb\"><idb:nir>2990199999999</idb:nir></idb:demande>";

#[test]
fn xmlsec1_verifies_stamped_envelopes_of_every_shape() {
    let cases = [
        ("soap11 no header", format!("<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body>{BODY}</soapenv:Body></soapenv:Envelope>")),
        ("soap12 with header and WS-Addressing", format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">\n  <env:Header>\n    <wsa:Action>urn:idb</wsa:Action>\n  </env:Header>\n  <env:Body>{BODY}</env:Body>\n</env:Envelope>\n")),
        ("empty header element", format!("<S:Envelope xmlns:S=\"http://www.w3.org/2003/05/soap-envelope\"><S:Header/><S:Body>{BODY}</S:Body></S:Envelope>")),
        ("default namespace, no prefix", format!("<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\"><Body>{BODY}</Body></Envelope>")),
        ("unusual prefixes, comments, CDATA", format!("<!-- SIH --><zz9:Envelope xmlns:zz9=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:saml2=\"urn:not-saml\" xmlns:ds=\"urn:not-dsig\"><zz9:Header><!-- h --></zz9:Header><zz9:Body><x><![CDATA[a < b & c]]></x>{BODY}</zz9:Body></zz9:Envelope>")),
        ("French accents", format!("<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body><nom>Hôpital Sainte-Cécile — Marseille</nom>{BODY}</soap:Body></soap:Envelope>")),
    ];
    for (name, env) in &cases {
        let stamped = stamp(env);
        let (ok, out) = xmlsec_verify(stamped.as_bytes());
        assert!(ok, "{name}: xmlsec1 refused: {out}\n{stamped}");
        // Every byte of the SIH's envelope outside the header insertion is kept.
        let a = stamped.find("<wsse:Security").unwrap();
        let b = stamped.find("</wsse:Security>").unwrap() + "</wsse:Security>".len();
        let rest = format!("{}{}", &stamped[..a], &stamped[b..]);
        // (a Header rocgw had to create, or an empty one it had to open, is put back as it was)
        let rest = rest
            .replace("<soapenv:Header></soapenv:Header>", "")
            .replace("<Header></Header>", "")
            .replace("<soap:Header></soap:Header>", "")
            .replace("<S:Header></S:Header>", "<S:Header/>");
        assert_eq!(&rest, env, "{name}: envelope bytes changed");
        // Our own verification function agrees.
        let v = verifier()
            .verify(&stamped)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            v.audience_restrictions,
            vec![vec!["https://amc.example.test/ws/idb".to_string()]]
        );
        assert_eq!(
            v.attribute("Authentification_mode"),
            Some(&["DIRECTE".to_string()][..])
        );
        assert_eq!(
            v.attribute("Identifiant_Structure"),
            Some(&["1990000012".to_string()][..])
        );
        assert!(v.issuer.starts_with("CN=Client_ROC_WebServices_AMC,OU=1990000012,O=CH TEST ROCGW,ST=Bouches-du-Rhône (13),C=FR"), "{}", v.issuer);
    }
}

#[test]
fn typed_attributes_and_awkward_characters_survive_canonicalisation() {
    let profile = Profile {
        attributes: vec![
            AttributeSpec {
                name: "Secteur_Activite".into(),
                name_format: Some("urn:oasis:names:tc:SAML:2.0:attrname-format:basic".into()),
                xsi_type: Some("xs:string".into()),
                values: vec!["SA07".into()],
            },
            AttributeSpec {
                name: "Odd \"chars\"\t<&>\r\n".into(),
                name_format: None,
                xsi_type: None,
                values: vec!["tab\there\r\nCR & < > \" ' é".into(), "second".into()],
            },
        ],
        name_id: Some("1990000012 <&> \"x\"".into()),
        ..Profile::default()
    };
    let env = format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xs=\"urn:other-xs\"><s:Body>{BODY}</s:Body></s:Envelope>");
    let stamped = stamp_with(&env, &profile);
    let (ok, out) = xmlsec_verify(stamped.as_bytes());
    assert!(ok, "xmlsec1 refused: {out}\n{stamped}");
    let v = verifier().verify(&stamped).unwrap();
    assert_eq!(
        v.attribute("Odd \"chars\"\t<&>\r\n").unwrap(),
        &[
            "tab\there\r\nCR & < > \" ' é".to_string(),
            "second".to_string()
        ]
    );
    assert_eq!(v.name_id.as_deref(), Some("1990000012 <&> \"x\""));
}

#[test]
fn iso_8859_1_envelopes_are_stamped_without_corruption() {
    let mut env: Vec<u8> = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><nom>".to_vec();
    env.extend_from_slice(&[b'H', 0xF4, b'p', b'i', b't', b'a', b'l']); // "Hôpital" in Latin-1
    env.extend_from_slice(b"</nom></soap:Body></soap:Envelope>");
    let profile = Profile::default();
    let plan = wssec::plan(&env, &profile).unwrap_or_else(|e| panic!("{:?}", e.fault));
    let a = wssec::build_assertion(
        &profile,
        &signer(),
        "https://amc.example.test/ws/idb",
        now_unix(),
    );
    let stamped = wssec::stamp(&env, &plan, &a.xml, false);
    assert!(
        stamped
            .windows(7)
            .any(|w| w == [b'H', 0xF4, b'p', b'i', b't', b'a', b'l']),
        "the SIH's Latin-1 bytes are kept"
    );
    assert!(
        String::from_utf8_lossy(&stamped).contains("Bouches-du-Rh&#xF4;ne"),
        "non-ASCII of the assertion as character references"
    );
    let (ok, out) = xmlsec_verify(&stamped);
    assert!(ok, "xmlsec1 refused the Latin-1 envelope: {out}");
    // UTF-16 is refused with a clear fault.
    let utf16 = [0xFF, 0xFE, b'<', 0];
    assert_eq!(
        wssec::plan(&utf16, &profile).unwrap_err().fault.code,
        rocgw::fault::FaultCode::NotSoap
    );
}

#[test]
fn an_existing_security_header_is_replaced_or_refused() {
    let env = format!("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><wsse:UsernameToken><wsse:Username>sih</wsse:Username></wsse:UsernameToken></wsse:Security><other xmlns=\"urn:x\">kept</other></soap:Header><soap:Body>{BODY}</soap:Body></soap:Envelope>");
    let stamped = stamp(&env);
    assert!(!stamped.contains("UsernameToken"), "{stamped}");
    assert_eq!(stamped.matches("<wsse:Security").count(), 1);
    assert!(stamped.contains("<other xmlns=\"urn:x\">kept</other>"));
    assert!(xmlsec_verify(stamped.as_bytes()).0);
    let reject = Profile {
        existing_security: ExistingSecurity::Reject,
        ..Profile::default()
    };
    let rocgw::fault::VersionedFault {
        fault: f,
        version: v,
    } = wssec::plan(env.as_bytes(), &reject).unwrap_err();
    assert_eq!(f.code, rocgw::fault::FaultCode::SecurityHeaderPresent);
    assert_eq!(v, rocgw::soap::SoapVersion::V11);
}

#[test]
fn tampering_is_detected_by_xmlsec1_and_by_our_verifier() {
    let env = format!("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{BODY}</soap:Body></soap:Envelope>");
    let stamped = stamp(&env);
    let tampered = stamped.replace(">DIRECTE<", ">INDIRECTE<");
    assert_ne!(tampered, stamped);
    assert!(
        !xmlsec_verify(tampered.as_bytes()).0,
        "xmlsec1 accepted a tampered assertion"
    );
    assert!(matches!(
        verifier().verify(&tampered),
        Err(VerifyError::Signature(_))
    ));
    // A certificate from another CA is refused even with a valid signature.
    let foreign = AssertionVerifier::new(
        vec![
            rocgw::identity::read_pem_certs(&pki_path("negative/foreign-ca.pem"))
                .unwrap()
                .remove(0)
                .to_vec(),
        ],
        vec![],
    );
    assert!(foreign.verify(&stamped).is_err());
}

/// Signs a template's SAML assertion with the `xmlsec1` tool and `signer`'s key (test PKI base
/// name, e.g. `org/sign`).
pub fn xmlsec_sign(template: &str, signer: &str) -> String {
    xmlsec_sign_node(
        template,
        signer,
        ("ID", "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"),
    )
}

/// Signs `template` with `xmlsec1`, the reference resolved through `id_attr` (the attribute
/// and the `namespace:element` it is an ID of).
pub fn xmlsec_sign_node(template: &str, signer: &str, id_attr: (&str, &str)) -> String {
    String::from_utf8(xmlsec_sign_bytes(template.as_bytes(), signer, id_attr)).unwrap()
}

/// `xmlsec_sign_node` of a template in any encoding; the signed document in that encoding.
pub fn xmlsec_sign_bytes(template: &[u8], signer: &str, id_attr: (&str, &str)) -> Vec<u8> {
    let tmp = scratch();
    let f = tmp.path().join("tpl.xml");
    fs::write(&f, template).unwrap();
    let key = format!(
        "{},{}",
        pki_path(&format!("{signer}.key")).display(),
        pki_path(&format!("{signer}.pem")).display()
    );
    let out = tool(
        "xmlsec1",
        &[
            "--sign",
            &format!("--id-attr:{}", id_attr.0),
            id_attr.1,
            "--privkey-pem",
            &key,
            f.to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert!(
        out.status.success(),
        "xmlsec1 --sign: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn template(id: &str, attribute_value: &str) -> String {
    format!(
        r##"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><wsse:Security xmlns:wsse="{}"><saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" IssueInstant="2026-01-01T00:00:00Z" Version="2.0"><saml2:Issuer>CN=other signer</saml2:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature><saml2:Conditions NotBefore="2026-01-01T00:00:00Z" NotOnOrAfter="2036-01-01T00:00:00Z"><saml2:AudienceRestriction><saml2:Audience>urn:amc:test</saml2:Audience></saml2:AudienceRestriction></saml2:Conditions><saml2:AttributeStatement><saml2:Attribute Name="Authentification_mode"><saml2:AttributeValue>{attribute_value}</saml2:AttributeValue></saml2:Attribute></saml2:AttributeStatement></saml2:Assertion></wsse:Security></soap:Header><soap:Body><x/></soap:Body></soap:Envelope>"##,
        wssec::WSSE_NS
    )
}

#[test]
fn our_verifier_accepts_an_assertion_signed_by_xmlsec1() {
    let signed = xmlsec_sign(&template("_xmlsec1signed", "DIRECTE"), "org/sign");
    let v = verifier()
        .verify(&signed)
        .unwrap_or_else(|e| panic!("{e}\n{signed}"));
    assert_eq!(v.id, "_xmlsec1signed");
    assert_eq!(
        v.audience_restrictions,
        vec![vec!["urn:amc:test".to_string()]]
    );
    assert_eq!(
        v.attribute("Authentification_mode"),
        Some(&["DIRECTE".to_string()][..])
    );
    assert_eq!(v.signer_chain.len(), 1);
}

/// The genuine signed assertion's element, cut out of a signed document.
fn assertion_of(signed: &str) -> String {
    let a = signed.find("<saml2:Assertion").unwrap();
    let b = signed.find("</saml2:Assertion>").unwrap() + "</saml2:Assertion>".len();
    signed[a..b].to_string()
}

fn in_security(inner: &str) -> String {
    format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><wsse:Security xmlns:wsse="{}">{inner}</wsse:Security></soap:Header><soap:Body><x/></soap:Body></soap:Envelope>"#,
        wssec::WSSE_NS
    )
}

#[test]
fn signature_wrapping_attempts_are_refused() {
    let signed = xmlsec_sign(&template("_genuine", "DIRECTE"), "org/sign");
    let genuine = assertion_of(&signed);
    let forged = r#"<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_forged" IssueInstant="2026-01-01T00:00:00Z" Version="2.0"><saml2:Issuer>CN=attacker</saml2:Issuer><saml2:AttributeStatement><saml2:Attribute Name="Authentification_mode"><saml2:AttributeValue>FORGED</saml2:AttributeValue></saml2:Attribute></saml2:AttributeStatement></saml2:Assertion>"#;
    // Sanity: the genuine one alone verifies.
    assert!(verifier().verify(&in_security(&genuine)).is_ok());
    // 1. A forged unsigned assertion before the genuine one.
    let before = in_security(&format!("{forged}{genuine}"));
    assert!(
        verifier().verify(&before).is_err(),
        "forged-before accepted"
    );
    // 2. The genuine one nested inside a forged one.
    let nested = in_security(&forged.replace(
        "</saml2:Assertion>",
        &format!("{genuine}</saml2:Assertion>"),
    ));
    assert!(verifier().verify(&nested).is_err(), "nested accepted");
    // 3. A forged assertion carrying the genuine ID (duplicate ID), the genuine one elsewhere.
    let dup = forged.replace("ID=\"_forged\"", "ID=\"_genuine\"");
    let duplicate = format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><wsse:Security xmlns:wsse="{}">{dup}</wsse:Security></soap:Header><soap:Body><hidden>{genuine}</hidden></soap:Body></soap:Envelope>"#,
        wssec::WSSE_NS
    );
    assert!(
        verifier().verify(&duplicate).is_err(),
        "duplicate ID accepted"
    );
    // 4. Only the genuine one, but moved out of the security header, and a forged one read.
    let moved = format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><wsse:Security xmlns:wsse="{}">{forged}</wsse:Security></soap:Header><soap:Body>{genuine}</soap:Body></soap:Envelope>"#,
        wssec::WSSE_NS
    );
    assert!(verifier().verify(&moved).is_err(), "moved genuine accepted");
    // DTDs never reach the parser.
    let dtd = format!("<!DOCTYPE x [<!ENTITY e \"x\">]>{}", in_security(&genuine));
    assert!(matches!(
        verifier().verify(&dtd),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn bad_envelopes_are_refused_with_the_fault_model() {
    use rocgw::fault::FaultCode as F;
    let p = Profile::default();
    let deep = format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{}{}</s:Body></s:Envelope>", "<a>".repeat(200), "</a>".repeat(200));
    let many_attrs = format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><a {}/></s:Body></s:Envelope>", (0..100).map(|i| format!("a{i}=\"x\"")).collect::<Vec<_>>().join(" "));
    let cases: Vec<(&str, Vec<u8>, F)> = vec![
        ("not xml", b"hello".to_vec(), F::NotSoap),
        ("not soap", b"<a/>".to_vec(), F::NotSoap),
        ("two bodies", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body/><s:Body/></s:Envelope>".to_vec(), F::NotSoap),
        ("no body", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header/></s:Envelope>".to_vec(), F::NotSoap),
        ("doctype", b"<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>&x;</s:Body></s:Envelope>".to_vec(), F::DtdForbidden),
        ("invalid utf-8", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\xff\xfe</s:Body></s:Envelope>".to_vec(), F::NotSoap),
        ("mismatched tags", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><a></b></s:Body></s:Envelope>".to_vec(), F::NotSoap),
        ("truncated", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><a>".to_vec(), F::NotSoap),
        ("undeclared entity", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>&nope;</s:Body></s:Envelope>".to_vec(), F::NotSoap),
        ("too deep", deep.into_bytes(), F::XmlLimit),
        ("too many attributes", many_attrs.into_bytes(), F::XmlLimit),
        ("header after body", b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body/><s:Header/></s:Envelope>".to_vec(), F::NotSoap),
    ];
    for (name, body, code) in cases {
        match wssec::plan(&body, &p) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert_eq!(e.fault.code, code, "{name}: {:?}", e.fault),
        }
    }
}

#[test]
fn the_gateway_stamps_amc_calls_and_xmlsec1_verifies_what_the_amc_received() {
    use crate::tls_server::{Behavior, TlsServer};
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let endpoint = amc.url("/ws/idb");
    let tmp = scratch();
    let cfg = write_config(
        tmp.path(),
        &config_text(
            "",
            &format!("[routes.\"10000001\"]\nidb = \"{endpoint}\"\n"),
        ),
    );
    // Signatures on the blocking pool (two cores), and in place on a one-core process.
    for pinned in [&[][..], &[(TASKSET, "0")][..]] {
        amc.seen.bodies.lock().unwrap().clear();
        let p = Proc::start(&["serve", "--config", cfg.to_str().unwrap()], pinned);
        let env = format!("<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Header><wsse:Security xmlns:wsse=\"{}\"><sih-token/></wsse:Security></soap:Header><soap:Body>{BODY}</soap:Body></soap:Envelope>", wssec::WSSE_NS);
        for _ in 0..2 {
            let r = post(p.gateway, "/amc/10000001/IDB", CT12, &env);
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let bodies = amc.seen.bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        for b in &bodies {
            let (ok, out) = xmlsec_verify(b.as_bytes());
            assert!(ok, "xmlsec1 refused what the AMC received: {out}\n{b}");
            assert!(
                !b.contains("sih-token"),
                "the SIH's own security header was replaced"
            );
            let v = verifier().verify(b).unwrap();
            assert_eq!(
                v.audience_restrictions,
                vec![vec![endpoint.clone()]],
                "audience: the resolved endpoint"
            );
        }
        // A fresh assertion per request (reuse is off by default).
        let ids: Vec<String> = bodies
            .iter()
            .map(|b| verifier().verify(b).unwrap().id)
            .collect();
        assert_ne!(ids[0], ids[1]);
    }
    let p = Proc::with_config(&cfg);
    // A bad envelope is refused before anything is forwarded.
    let r = post(p.gateway, "/amc/10000001/idb", CT12, "<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body/><soap:Body/></soap:Envelope>");
    assert_eq!(r.header("x-rocgw-error"), Some("not-soap"));
    assert_eq!(amc.seen.bodies.lock().unwrap().len(), 2);
}

#[test]
fn assertion_reuse_serves_one_signature_per_audience_within_the_window() {
    let profile = Profile {
        reuse: std::time::Duration::from_secs(60),
        ..Profile::default()
    };
    let cache = wssec::AssertionCache::default();
    let s = signer();
    let now = now_unix();
    let (a, reused_a) = cache.get(&profile, &s, "urn:amc:1", now);
    let (b, reused_b) = cache.get(&profile, &s, "urn:amc:1", now + 30);
    let (c, _) = cache.get(&profile, &s, "urn:amc:2", now + 30);
    let (d, reused_d) = cache.get(&profile, &s, "urn:amc:1", now + 61);
    assert!(!reused_a && reused_b && !reused_d);
    assert_eq!(a.id, b.id);
    assert_ne!(a.id, c.id);
    assert_ne!(a.id, d.id);
}

#[test]
fn bad_envelopes_reach_the_sih_as_faults_and_nothing_is_forwarded() {
    use crate::tls_server::{Behavior, TlsServer};
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let text = config_text("max_body_bytes = 65536", &format!("[routes.\"10000001\"]\nidb = \"{}\"\n\n[assertion]\nexisting_security = \"reject\"\nmax_depth = 32\nmax_attributes = 16\n", amc.url("/idb")));
    let mut p = Proc::with_config(&write_config(tmp.path(), &text));
    let s11 = |inner: &str| {
        format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">{inner}</s:Envelope>")
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not xml", b"hello".to_vec(), "not-soap"),
        (
            "two bodies",
            s11("<s:Body/><s:Body/>").into_bytes(),
            "not-soap",
        ),
        (
            "doctype",
            format!(
                "<!DOCTYPE s [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>{}",
                s11("<s:Body>&x;</s:Body>")
            )
            .into_bytes(),
            "dtd-forbidden",
        ),
        (
            "invalid utf-8",
            [
                s11("<s:Body>").as_bytes(),
                b"\xc3\x28",
                b"</s:Body></s:Envelope>",
            ]
            .concat(),
            "not-soap",
        ),
        (
            "too deep",
            s11(&format!(
                "<s:Body>{}{}</s:Body>",
                "<a>".repeat(40),
                "</a>".repeat(40)
            ))
            .into_bytes(),
            "xml-limit-exceeded",
        ),
        (
            "too many attributes",
            s11(&format!(
                "<s:Body><a {}/></s:Body>",
                (0..20)
                    .map(|i| format!("a{i}=\"1\""))
                    .collect::<Vec<_>>()
                    .join(" ")
            ))
            .into_bytes(),
            "xml-limit-exceeded",
        ),
        (
            "too large",
            s11(&format!("<s:Body>{}</s:Body>", "x".repeat(70_000))).into_bytes(),
            "body-too-large",
        ),
        (
            "security present, policy reject",
            s11(&format!(
                "<s:Header><wsse:Security xmlns:wsse=\"{}\"/></s:Header><s:Body/>",
                wssec::WSSE_NS
            ))
            .into_bytes(),
            "security-header-present",
        ),
        (
            "60 KB nested 20,000 deep",
            s11(&format!("<s:Body>{}</s:Body>", "<a>".repeat(20_000))).into_bytes(),
            "xml-limit-exceeded",
        ),
    ];
    // And every envelope that is not well-formed XML (tests/it/envelopes.rs): `not-soap`.
    let malformed = crate::envelopes::malformed();
    let cases = cases
        .into_iter()
        .chain(malformed.iter().map(|(n, b)| (*n, b.clone(), "not-soap")));
    for (name, body, code) in cases {
        let r = http(
            p.gateway,
            "POST",
            "/amc/10000001/idb",
            &[("Content-Type", CT11)],
            &body,
        );
        assert_eq!(r.header("x-rocgw-error"), Some(code), "{name}: {}", r.body);
        parse_fault(&r.body);
    }
    assert!(
        amc.seen.bodies.lock().unwrap().is_empty(),
        "a bad envelope was forwarded"
    );
    assert!(p.alive());
    let ok = post(
        p.gateway,
        "/amc/10000001/idb",
        CT11,
        &s11("<s:Body><ok/></s:Body>"),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

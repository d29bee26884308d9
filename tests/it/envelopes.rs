//! What rocgw writes into the SIH's envelope, and what it refuses to sign, checked by parsers and
//! verifiers that are not its own: `xmlsec1` for the signature, whatever charset the AMC reads the
//! body in; uppsala (namespace-aware) for the `mustUnderstand` attribute's namespace; Python's
//! expat for the envelopes refused as malformed (and their well-formed neighbours).

use rocgw::clock::now_unix;
use rocgw::config::{AttributeSpec, Profile};
use rocgw::fault::FaultCode;
use rocgw::soap::{SoapVersion, SOAP11_NS, SOAP12_NS};
use rocgw::wssec::{self, WSSE_NS};

use crate::support::*;
use crate::wssec::{signer, verifier, xmlsec_verify};

const AUDIENCE: &str = "https://amc.example.test/ws/idb";

fn stamp_with(envelope: &[u8], profile: &Profile) -> Vec<u8> {
    let plan = wssec::plan(envelope, profile).unwrap_or_else(|e| panic!("refused: {:?}", e.fault));
    let a = wssec::build_assertion(profile, &signer(), AUDIENCE, now_unix());
    wssec::stamp(envelope, &plan, &a.xml, profile.must_understand)
}

/// The bytes as an AMC that honours `charset=ISO-8859-1` reads them, written back as UTF-8 (the
/// document has no declaration, so `xmlsec1` reads that as UTF-8: the same characters).
fn read_as_latin1(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .map(|&b| char::from(b))
        .collect::<String>()
        .into_bytes()
}

fn assert_verifies_in_both_readings(name: &str, stamped: &[u8]) {
    let (ok, out) = xmlsec_verify(stamped);
    assert!(ok, "{name}: xmlsec1 refused the body read as UTF-8: {out}");
    let (ok, out) = xmlsec_verify(&read_as_latin1(stamped));
    assert!(
        ok,
        "{name}: xmlsec1 refused the body read as ISO-8859-1: {out}"
    );
}

#[test]
fn every_character_rocgw_inserts_is_ascii_so_the_http_charset_cannot_break_the_signature() {
    // The SIGN subject has `Bouches-du-Rhône`; the profile adds non-ASCII values of its own.
    let profile = Profile {
        name_id: Some("Hôpital Nord — 1990000012".into()),
        attributes: vec![AttributeSpec {
            name: "Établissement".into(),
            name_format: None,
            xsi_type: Some("xs:string".into()),
            values: vec!["Cécile & Zoë <Œuvre>".into()],
        }],
        ..Profile::default()
    };
    let bare = format!("<soap:Envelope xmlns:soap=\"{SOAP11_NS}\"><soap:Body><nom>HOPITAL</nom></soap:Body></soap:Envelope>");
    for (name, profile) in [
        ("default profile", Profile::default()),
        ("accented profile", profile),
    ] {
        let stamped = stamp_with(bare.as_bytes(), &profile);
        assert!(
            stamped.is_ascii(),
            "{name}: {}",
            String::from_utf8_lossy(&stamped)
        );
        let text = String::from_utf8(stamped.clone()).unwrap();
        assert!(text.contains("Bouches-du-Rh&#xF4;ne"), "{name}: {text}");
        assert_verifies_in_both_readings(name, &stamped);
        let v = verifier().verify(&text).unwrap();
        assert!(v.issuer.contains("Bouches-du-Rhône"), "{}", v.issuer);
    }
    // Legacy SIHs: `charset=utf-8` over HTTP, an ISO-8859-1 declaration and Latin-1 bytes. Not
    // refused, the SIH's bytes kept, the assertion ASCII.
    let legacy = latin1(&format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><soap:Envelope xmlns:soap=\"{SOAP11_NS}\"><soap:Body><nom>Hôpital</nom></soap:Body></soap:Envelope>"));
    let stamped = stamp_with(&legacy, &Profile::default());
    let inserted_len = stamped.len() - legacy.len();
    assert!(stamped.windows(7).any(|w| w == b"H\xF4pital"));
    assert_eq!(
        stamped.iter().filter(|&&b| b >= 0x80).count(),
        1,
        "only the SIH's own byte"
    );
    assert!(inserted_len > 1000);
    let (ok, out) = xmlsec_verify(&stamped);
    assert!(ok, "xmlsec1 refused the Latin-1 envelope: {out}");
}

#[test]
fn an_amc_honouring_charset_iso_8859_1_verifies_what_the_gateway_forwarded() {
    use crate::tls_server::{Behavior, TlsServer};
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let tmp = scratch();
    let text = config_text(
        "",
        &format!("[routes.\"10000001\"]\nidb = \"{}\"\n", amc.url("/idb")),
    );
    let p = Proc::with_config(&write_config(tmp.path(), &text));
    // A Latin-1 SIH: no XML declaration, the charset only in the HTTP header.
    let env = format!("<soap:Envelope xmlns:soap=\"{SOAP11_NS}\"><soap:Body><nom>HOPITAL</nom></soap:Body></soap:Envelope>");
    let r = post(
        p.gateway,
        "/amc/10000001/idb",
        "text/xml; charset=ISO-8859-1",
        &env,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let bodies = amc.seen.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let received = bodies[0].as_bytes();
    assert!(received.is_ascii(), "{}", bodies[0]);
    assert_verifies_in_both_readings("through the gateway", received);
}

/// The `mustUnderstand` attributes of the inserted `wsse:Security`, as (namespace, value), read
/// by uppsala with namespace resolution.
fn must_understand_of(stamped: &str) -> Vec<(Option<String>, String)> {
    let doc = uppsala::parse(stamped).unwrap_or_else(|e| panic!("{e}\n{stamped}"));
    let security = doc.get_elements_by_tag_name_ns(WSSE_NS, "Security");
    assert_eq!(security.len(), 1, "{stamped}");
    let el = doc.element(security[0]).unwrap();
    el.attributes
        .iter()
        .filter(|a| a.name.local_name == "mustUnderstand")
        .map(|a| {
            let ns = a.name.namespace_uri.as_deref().map(str::to_string);
            (ns, a.value.to_string())
        })
        .collect()
}

#[test]
fn must_understand_is_in_the_envelope_namespace_whatever_prefixes_the_sih_uses() {
    let profile = Profile {
        must_understand: true,
        ..Profile::default()
    };
    let body = "<soap:Body xmlns:soap=\"urn:not-soap-here\"><x/></soap:Body>";
    let cases: Vec<(&str, SoapVersion, String)> = vec![
        ("SOAP 1.1, default namespace, Header", SoapVersion::V11, format!("<Envelope xmlns=\"{SOAP11_NS}\"><Header><a xmlns=\"urn:a\"/></Header><Body><x/></Body></Envelope>")),
        ("SOAP 1.2, default namespace, no Header", SoapVersion::V12, format!("<Envelope xmlns=\"{SOAP12_NS}\"><Body><x/></Body></Envelope>")),
        ("SOAP 1.1, Header's own prefix, s rebound", SoapVersion::V11, format!("<s:Envelope xmlns:s=\"{SOAP11_NS}\"><h:Header xmlns:h=\"{SOAP11_NS}\" xmlns:s=\"urn:evil\"><s:x/></h:Header><s:Body><x/></s:Body></s:Envelope>")),
        ("SOAP 1.2, soapenv rebound in the Header", SoapVersion::V12, format!("<S:Envelope xmlns:S=\"{SOAP12_NS}\"><S:Header xmlns:soapenv=\"urn:evil\" xmlns=\"urn:evil\"><soapenv:x/></S:Header><S:Body><x/></S:Body></S:Envelope>")),
        ("SOAP 1.1, empty Header element", SoapVersion::V11, format!("<soapenv:Envelope xmlns:soapenv=\"{SOAP11_NS}\"><soapenv:Header/><soapenv:Body><x/></soapenv:Body></soapenv:Envelope>")),
        ("SOAP 1.2, usual prefix", SoapVersion::V12, format!("<soap:Envelope xmlns:soap=\"{SOAP12_NS}\"><soap:Header></soap:Header>{}</soap:Envelope>", body.replace(" xmlns:soap=\"urn:not-soap-here\"", ""))),
    ];
    for (name, version, env) in &cases {
        let stamped = String::from_utf8(stamp_with(env.as_bytes(), &profile)).unwrap();
        let value = if *version == SoapVersion::V11 {
            "1"
        } else {
            "true"
        };
        assert_eq!(
            must_understand_of(&stamped),
            vec![(Some(version.namespace().to_string()), value.to_string())],
            "{name}: {stamped}"
        );
        let (ok, out) = xmlsec_verify(stamped.as_bytes());
        assert!(ok, "{name}: xmlsec1 refused: {out}\n{stamped}");
    }
    // Off by default: no attribute at all.
    let off = String::from_utf8(stamp_with(cases[0].2.as_bytes(), &Profile::default())).unwrap();
    assert!(must_understand_of(&off).is_empty(), "{off}");
}

/// `s` in ISO-8859-1 (every character of it is in Latin-1).
fn latin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect()
}

fn s11(inner: &str) -> Vec<u8> {
    format!("<s:Envelope xmlns:s=\"{SOAP11_NS}\">{inner}</s:Envelope>").into_bytes()
}

/// Envelopes that are not well-formed, namespace-correct XML, each in a place the planner reads
/// differently (the Body's payload walk, the Header, the prolog).
pub(crate) fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "duplicate attribute in the Body",
            s11("<s:Body><a x=\"1\" x=\"2\"/></s:Body>"),
        ),
        (
            "duplicate attribute on the Body",
            s11("<s:Body id=\"1\" id=\"1\"><a/></s:Body>"),
        ),
        (
            "duplicate expanded attribute name in the Body",
            s11("<s:Body><a xmlns:p=\"urn:u\" xmlns:q=\"urn:u\" p:x=\"1\" q:x=\"2\"/></s:Body>"),
        ),
        (
            "duplicate attribute deep in the Header",
            s11("<s:Header><h xmlns=\"urn:h\"><i y='1' y='1'/></h></s:Header><s:Body/>"),
        ),
        (
            "undeclared element prefix in the Body",
            s11("<s:Body><p:a/></s:Body>"),
        ),
        (
            "undeclared attribute prefix in the Body",
            s11("<s:Body><a p:x=\"1\"/></s:Body>"),
        ),
        (
            "prefix used out of its scope",
            s11("<s:Body><a xmlns:p=\"urn:p\"/><p:b/></s:Body>"),
        ),
        (
            "undeclared prefix deep in the Header",
            s11("<s:Header><h xmlns=\"urn:h\"><q:i/></h></s:Header><s:Body/>"),
        ),
        (
            "prefix undeclared with an empty name",
            s11("<s:Body><a xmlns:p=\"\"/></s:Body>"),
        ),
        (
            "xmlns as an element prefix",
            s11("<s:Body><xmlns:a/></s:Body>"),
        ),
        (
            "XML declaration inside the Header",
            s11("<s:Header><?xml version=\"1.0\"?></s:Header><s:Body/>"),
        ),
        (
            "XML declaration in capitals inside the Header",
            s11("<s:Header><?XML version=\"1.0\"?></s:Header><s:Body/>"),
        ),
        (
            "XML declaration after a comment",
            [
                b"<!-- c -->".as_slice(),
                b"<?xml version=\"1.0\"?>",
                &s11("<s:Body/>"),
            ]
            .concat(),
        ),
        (
            "US-ASCII declared, 8-bit byte",
            latin1(&format!(
                "<?xml version=\"1.0\" encoding=\"US-ASCII\"?>{}",
                String::from_utf8(s11("<s:Body>Hôpital</s:Body>")).unwrap()
            )),
        ),
    ]
}

/// Whether Python's expat (namespace processing on) parses each document, in order.
fn expat_accepts(docs: &[Vec<u8>]) -> Vec<bool> {
    let tmp = scratch();
    let mut args = vec![
        "-c".to_string(),
        "import sys, xml.parsers.expat as e\nfor f in sys.argv[1:]:\n    p = e.ParserCreate(namespace_separator='\\x01')\n    try:\n        p.Parse(open(f, 'rb').read(), True); print('ok')\n    except e.ExpatError:\n        print('refused')".to_string(),
    ];
    for (k, d) in docs.iter().enumerate() {
        let f = tmp.path().join(format!("{k}.xml"));
        std::fs::write(&f, d).unwrap();
        args.push(f.to_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tool("python3", &args, tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<bool> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l == "ok")
        .collect();
    assert_eq!(verdicts.len(), docs.len());
    verdicts
}

#[test]
fn malformed_envelopes_are_refused_as_not_soap_and_expat_agrees() {
    let malformed = malformed();
    for (name, env) in &malformed {
        match wssec::plan(env, &Profile::default()) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => assert_eq!(e.fault.code, FaultCode::NotSoap, "{name}: {:?}", e.fault),
        }
    }
    let docs: Vec<Vec<u8>> = malformed.iter().map(|(_, d)| d.clone()).collect();
    for ((name, _), ok) in malformed.iter().zip(expat_accepts(&docs)) {
        assert!(!ok, "{name}: expat accepts it");
    }
    // What is close to those but well-formed is still stamped (and expat reads it).
    let fine: Vec<(&str, Vec<u8>)> = vec![
        ("xml:lang without a declaration", s11("<s:Body><a xml:lang=\"fr\" lang=\"fr\"/></s:Body>")),
        ("same local name, two namespaces", s11("<s:Body><a xmlns:p=\"urn:p\" xmlns:q=\"urn:q\" p:x=\"1\" q:x=\"2\" x=\"3\"/></s:Body>")),
        ("prefix redeclared in an inner scope", s11("<s:Body><p:a xmlns:p=\"urn:1\"><p:b xmlns:p=\"urn:2\"/></p:a></s:Body>")),
        ("default namespace undeclared", s11("<s:Body><a xmlns=\"urn:a\"><b xmlns=\"\"/></a></s:Body>")),
        ("processing instruction in the Header", s11("<s:Header><?sih trace=\"1\"?></s:Header><s:Body/>")),
        ("Latin-1 declared, 8-bit byte", latin1(&format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{}", String::from_utf8(s11("<s:Body>Hôpital</s:Body>")).unwrap()))),
        ("US-ASCII declared, ASCII only", [b"<?xml version=\"1.0\" encoding=\"us-ascii\"?>".as_slice(), &s11("<s:Body>H&#xF4;pital</s:Body>")].concat()),
        ("accented names in UTF-8", s11("<s:Body><é:bénéficiaire xmlns:é=\"urn:é\" é:rôle=\"assuré\"/></s:Body>")),
    ];
    let docs: Vec<Vec<u8>> = fine.iter().map(|(_, d)| d.clone()).collect();
    for ((name, env), ok) in fine.iter().zip(expat_accepts(&docs)) {
        assert!(ok, "{name}: expat refuses it");
        let stamped = stamp_with(env, &Profile::default());
        assert!(stamped.len() > env.len() + 1000, "{name}");
    }
}

//! The simulator verifies assertions as an AMC would: each rule is shown on an assertion signed
//! by the `xmlsec1` tool (not by rocgw's signer), valid in every respect but one, POSTed with
//! `curl` straight to the simulator's TLS port. The valid one passes; the tolerances an AMC could
//! set differently (clock skew, longest validity) are configuration.

use rocgw::clock::{fmt_time, now_unix};
use rocgw::fault::escape;
use rocgw::identity::CertInfo;
use rocgw::wssec::{self, EXC_C14N, SAML2_NS, WSSE_NS};

use crate::sim::{curl_post, SimFixture};
use crate::support::*;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const C14N_WITH_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";

/// A signing certificate of the test PKI: its subject (the assertion's Issuer) and structure.
struct SignCert {
    base: &'static str,
    subject: String,
    structure: String,
}

fn sign_cert(base: &'static str) -> SignCert {
    let der = rocgw::identity::read_pem_certs(&pki_path(&format!("{base}.pem"))).unwrap();
    let (_, c) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    SignCert {
        base,
        subject: wssec::rfc4514(c.subject()),
        structure: CertInfo::parse(&der[0]).unwrap().structure_id.unwrap(),
    }
}

/// An assertion template for `xmlsec1 --sign`, valid by default; each case changes one thing.
#[derive(Clone)]
struct Draft {
    signer: &'static str,
    issuer: String,
    id: String,
    version: &'static str,
    issued: i64,
    not_before: i64,
    not_after: i64,
    name_id: String,
    structure_attribute: String,
    subject: bool,
    authn_statement: bool,
    attribute_statement: bool,
    canonicalization: &'static str,
    transforms: Vec<&'static str>,
    signature: &'static str,
    digest: &'static str,
    /// One `AudienceRestriction` per entry.
    audiences: Vec<String>,
    /// Written in `Conditions` after the audience restrictions.
    more_conditions: String,
    /// Written in the SOAP header after `wsse:Security`.
    more_headers: String,
}

impl Draft {
    fn new(signer: &SignCert, audience: &str, now: i64) -> Draft {
        Draft {
            signer: signer.base,
            issuer: signer.subject.clone(),
            id: wssec::new_id(),
            version: "2.0",
            issued: now,
            not_before: now - 60,
            not_after: now + 300,
            name_id: signer.structure.clone(),
            structure_attribute: signer.structure.clone(),
            subject: true,
            authn_statement: true,
            attribute_statement: true,
            canonicalization: EXC_C14N,
            transforms: vec![ENVELOPED, EXC_C14N],
            signature: RSA_SHA256,
            digest: SHA256,
            audiences: vec![audience.to_string()],
            more_conditions: String::new(),
            more_headers: String::new(),
        }
    }

    fn template(&self) -> String {
        let t = fmt_time;
        let transforms: String = self
            .transforms
            .iter()
            .map(|a| format!("<ds:Transform Algorithm=\"{a}\"/>"))
            .collect();
        let signature = format!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
             <ds:CanonicalizationMethod Algorithm=\"{}\"/><ds:SignatureMethod Algorithm=\"{}\"/>\
             <ds:Reference URI=\"#{}\"><ds:Transforms>{transforms}</ds:Transforms>\
             <ds:DigestMethod Algorithm=\"{}\"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>\
             <ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data>\
             </ds:KeyInfo></ds:Signature>",
            self.canonicalization, self.signature, self.id, self.digest
        );
        let subject = format!(
            "<saml2:Subject><saml2:NameID>{}</saml2:NameID><saml2:SubjectConfirmation \
             Method=\"urn:oasis:names:tc:SAML:2.0:cm:sender-vouches\"/></saml2:Subject>",
            self.name_id
        );
        let restrictions: String = self
            .audiences
            .iter()
            .map(|a| {
                format!(
                    "<saml2:AudienceRestriction><saml2:Audience>{}</saml2:Audience>\
                     </saml2:AudienceRestriction>",
                    escape(a)
                )
            })
            .collect();
        let conditions = format!(
            "<saml2:Conditions NotBefore=\"{}\" NotOnOrAfter=\"{}\">{restrictions}{}\
             </saml2:Conditions>",
            t(self.not_before),
            t(self.not_after),
            self.more_conditions
        );
        let authn = format!(
            "<saml2:AuthnStatement AuthnInstant=\"{}\"><saml2:AuthnContext>\
             <saml2:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:X509\
             </saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement>",
            t(self.issued)
        );
        let attributes = format!(
            "<saml2:AttributeStatement><saml2:Attribute Name=\"Identifiant_Structure\">\
             <saml2:AttributeValue>{}</saml2:AttributeValue></saml2:Attribute>\
             <saml2:Attribute Name=\"Authentification_mode\"><saml2:AttributeValue>DIRECTE\
             </saml2:AttributeValue></saml2:Attribute></saml2:AttributeStatement>",
            self.structure_attribute
        );
        let pick = |on: bool, xml: String| if on { xml } else { String::new() };
        format!(
            "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header>\
             <wsse:Security xmlns:wsse=\"{WSSE_NS}\"><saml2:Assertion xmlns:saml2=\"{SAML2_NS}\" \
             ID=\"{}\" IssueInstant=\"{}\" Version=\"{}\"><saml2:Issuer>{}</saml2:Issuer>\
             <!-- signed by xmlsec1 -->{signature}{}{conditions}{}{}</saml2:Assertion>\
             </wsse:Security>{}</soap:Header><soap:Body><clc/></soap:Body></soap:Envelope>",
            self.id,
            t(self.issued),
            self.version,
            escape(&self.issuer),
            pick(self.subject, subject),
            pick(self.authn_statement, authn),
            pick(self.attribute_statement, attributes),
            self.more_headers,
        )
    }

    /// The envelope, signed by `xmlsec1` with the signer's key.
    fn signed(&self) -> String {
        crate::wssec::xmlsec_sign(&self.template(), self.signer)
    }
}

/// POSTs `body`; returns the status and the simulator's reason header.
fn post(url: &str, body: &str) -> (u16, Option<String>, String) {
    let r = curl_post(url, body);
    let reason = r.header("x-rocsim-reason").map(str::to_string);
    (r.status, reason, r.body)
}

#[test]
fn each_assertion_rule_of_an_amc_refuses_an_xmlsec1_assertion_with_its_own_reason() {
    let s = SimFixture::start(|_| {});
    let url = s.endpoint("99999992", "clc");
    let now = now_unix();
    let (a, b) = (sign_cert("org/sign"), sign_cert("org2/sign"));
    assert_ne!(a.structure, b.structure);
    let valid = Draft::new(&a, &url, now);
    let edit = |f: &dyn Fn(&mut Draft)| {
        let mut d = valid.clone();
        d.id = wssec::new_id();
        f(&mut d);
        d
    };
    let unsigned_elsewhere = format!(
        "<x:Routage xmlns:x=\"urn:example:routage\"><saml2:Assertion xmlns:saml2=\"{SAML2_NS}\" \
         ID=\"_unsigned\" IssueInstant=\"{}\" Version=\"2.0\"><saml2:Issuer>CN=attacker\
         </saml2:Issuer><saml2:Subject><saml2:NameID>{}</saml2:NameID></saml2:Subject>\
         </saml2:Assertion></x:Routage>",
        fmt_time(now),
        b.structure
    );
    let cases: Vec<(&str, Draft, &str)> = vec![
        (
            "signed by structure B, claiming structure A",
            edit(&|d| {
                d.signer = b.base;
                d.issuer.clone_from(&b.subject);
            }),
            "structure-mismatch",
        ),
        (
            "Identifiant_Structure of another structure",
            edit(&|d| d.structure_attribute.clone_from(&b.structure)),
            "structure-mismatch",
        ),
        (
            "RSA-SHA1 with a SHA-1 digest",
            edit(&|d| {
                d.signature = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
                d.digest = "http://www.w3.org/2000/09/xmldsig#sha1";
            }),
            "weak-algorithm",
        ),
        (
            "a SHA-1 digest under RSA-SHA256",
            edit(&|d| d.digest = "http://www.w3.org/2000/09/xmldsig#sha1"),
            "weak-algorithm",
        ),
        (
            "inclusive C14N with comments",
            edit(&|d| {
                d.canonicalization = C14N_WITH_COMMENTS;
                d.transforms = vec![ENVELOPED, C14N_WITH_COMMENTS];
            }),
            "wrong-canonicalization",
        ),
        (
            "two AudienceRestrictions, one naming another AMC",
            edit(&|d| d.audiences.push(s.endpoint("99999991", "clc"))),
            "wrong-audience",
        ),
        (
            "an unknown Condition",
            edit(&|d| {
                d.more_conditions =
                    "<saml2:Condition xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
                     xmlns:geo=\"urn:example:geo\" xsi:type=\"geo:InFrance\"/>"
                        .into()
            }),
            "unknown-condition",
        ),
        (
            "no Subject",
            edit(&|d| d.subject = false),
            "incomplete-assertion",
        ),
        (
            "no AuthnStatement",
            edit(&|d| d.authn_statement = false),
            "incomplete-assertion",
        ),
        (
            "no AttributeStatement",
            edit(&|d| d.attribute_statement = false),
            "incomplete-assertion",
        ),
        ("Version 1.1", edit(&|d| d.version = "1.1"), "wrong-version"),
        (
            "IssueInstant ten minutes ahead",
            edit(&|d| d.issued = now + 600),
            "issued-in-future",
        ),
        (
            "NotOnOrAfter ten years ahead",
            edit(&|d| d.not_after = now + 10 * 365 * 86_400),
            "validity-too-long",
        ),
        (
            "an unsigned assertion in another header",
            edit(&|d| d.more_headers.clone_from(&unsigned_elsewhere)),
            "unsigned-assertion",
        ),
    ];
    let (status, reason, body) = post(&url, &valid.signed());
    assert_eq!((status, reason), (200, None), "the valid assertion: {body}");
    let understood = edit(&|d| d.more_conditions = "<saml2:OneTimeUse/>".into());
    let (status, _, body) = post(&url, &understood.signed());
    assert_eq!(status, 200, "OneTimeUse is understood: {body}");

    for (name, draft, expected) in &cases {
        let (status, reason, body) = post(&url, &draft.signed());
        assert_eq!(status, 500, "{name}: {body}");
        assert_eq!(reason.as_deref(), Some(*expected), "{name}: {body}");
        assert!(
            body.contains(&format!("<r:code>{expected}</r:code>")),
            "{name}: {body}"
        );
    }
    for (name, _, reason) in &cases {
        assert!(s.counter("refused", reason) >= 1.0, "{name}: counter");
    }
    assert_eq!(s.counter("accepted", ""), 2.0);
}

#[test]
fn the_tolerances_an_amc_may_set_differently_are_configuration() {
    let s = SimFixture::start(|c| {
        c.clock_skew_s = 900;
        c.max_validity_s = 11 * 365 * 86_400;
    });
    let url = s.endpoint("99999991", "idb");
    let now = now_unix();
    let signer = sign_cert("org/sign");
    let mut ahead = Draft::new(&signer, &url, now);
    ahead.issued = now + 600;
    let mut long = Draft::new(&signer, &url, now);
    long.not_after = now + 10 * 365 * 86_400;
    for (name, d) in [("issued 10 min ahead", ahead), ("valid 10 years", long)] {
        let (status, reason, body) = post(&url, &d.signed());
        assert_eq!((status, reason), (200, None), "{name}: {body}");
    }
    let mut beyond = Draft::new(&signer, &url, now);
    beyond.issued = now + 1_200;
    let (_, reason, _) = post(&url, &beyond.signed());
    assert_eq!(reason.as_deref(), Some("issued-in-future"));
}

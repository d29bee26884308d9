//! WS-Security stamping: a SAML 2.0 assertion signed with the ORG SIGN key, inserted in a
//! `wsse:Security` header of the SIH's SOAP envelope ("authentification directe d'une personne
//! morale"), and the verification function that checks such an assertion.
//!
//! The assertion is written by this module directly in its exclusive-c14n canonical form
//! (namespace declarations first, attributes sorted, explicit end tags, c14n escaping), so the
//! digest is taken over the bytes as written and the enveloped signature is inserted after
//! `Issuer` without any canonicalisation pass. What is inserted is that canonical form with every
//! non-ASCII character written as a character reference: the same canonical form (so the same
//! digest), and the same bytes in every ASCII-compatible charset, so the signature holds whatever
//! charset the AMC reads the body in (declared, HTTP, or neither). The envelope is read once
//! ([`envelope`]) and every byte the SIH sent is kept, except a replaced `wsse:Security` header.
//!
//! Verification is never code of this repository: canonicalisation and signature checks are
//! bergshamra's (aws-lc backend); this module only insists that the verified reference is
//! exactly the assertion it then reads.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use x509_parser::prelude::*;

use crate::clock::fmt_time;
use crate::config::Profile;

mod envelope;
pub mod media;
pub mod response;
mod signer;
pub mod verify;
pub use envelope::{plan, plan_in, stamp, utf8_retry, utf8_text, Charset, Plan};
pub use signer::{AssertionCache, ReloadableSigner, Signer};
pub use verify::{AssertionVerifier, VerifiedAssertion, VerifyError};

pub const SAML2_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const XS_NS: &str = "http://www.w3.org/2001/XMLSchema";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
const X509_SUBJECT_NAME: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName";

/// RFC 4514 string of a name: last RDN first, `,` between RDNs, special characters escaped.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type();
            let key = match oid.to_id_string().as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                other => other.to_string(),
            };
            out.push_str(&key);
            out.push('=');
            let value = atv.as_str().unwrap_or("");
            let n = value.chars().count();
            for (k, c) in value.chars().enumerate() {
                let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                    || (k == 0 && (c == '#' || c == ' '))
                    || (k + 1 == n && c == ' ');
                if special {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

/// Appends `s` escaped for a canonical text node (`&`, `<`, `>`, CR).
fn text(out: &mut String, s: &str) {
    crate::fault::push_escaped(out, s, |b| match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'\r' => Some("&#xD;"),
        _ => None,
    });
}

/// Appends `s` escaped for a canonical attribute value (`&`, `<`, `"`, TAB, LF, CR).
fn attr(out: &mut String, s: &str) {
    crate::fault::push_escaped(out, s, |b| match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'"' => Some("&quot;"),
        b'\t' => Some("&#x9;"),
        b'\n' => Some("&#xA;"),
        b'\r' => Some("&#xD;"),
        _ => None,
    });
}

/// `s` with every non-ASCII character written as a character reference (`&#xF4;`): for text and
/// attribute values, where it reads as the character itself. Borrowed when `s` is ASCII.
pub(crate) fn ascii_refs(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 32);
    let mut rest = s;
    while let Some(i) = rest.bytes().position(|b| !b.is_ascii()) {
        out.push_str(&rest[..i]);
        let c = rest[i..].chars().next().unwrap_or_default();
        let _ = write!(out, "&#x{:X};", u32::from(c));
        rest = &rest[i + c.len_utf8()..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// A fresh assertion ID: an NCName (`_` and 32 hex digits).
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(33);
    s.push('_');
    for x in b {
        s.push(char::from(HEX[usize::from(x >> 4)]));
        s.push(char::from(HEX[usize::from(x & 15)]));
    }
    s
}

/// A signed assertion, ready to insert.
#[derive(Debug, Clone)]
pub struct SignedAssertion {
    pub id: String,
    pub audience: String,
    pub not_on_or_after: i64,
    pub issued_at: i64,
    /// The assertion element as inserted, signature included: its canonical form with every
    /// non-ASCII character as a character reference (ASCII only; same canonical form).
    pub xml: Arc<str>,
}

/// The assertion's times, formatted once.
struct Times<'a> {
    issued: &'a str,
    not_before: &'a str,
    not_on_or_after: &'a str,
}

/// The canonical assertion up to and including its `Issuer`: `issuer_text` is the signer's
/// subject DN escaped for a text node (either form of [`Signer`]'s).
fn assertion_head(id: &str, issued: &str, issuer_text: &str) -> String {
    let mut head = String::with_capacity(512);
    head.push_str("<saml2:Assertion xmlns:saml2=\"");
    head.push_str(SAML2_NS);
    head.push_str("\" xmlns:xs=\"");
    head.push_str(XS_NS);
    head.push_str("\" ID=\"");
    head.push_str(id);
    head.push_str("\" IssueInstant=\"");
    head.push_str(issued);
    head.push_str("\" Version=\"2.0\"><saml2:Issuer Format=\"");
    head.push_str(X509_SUBJECT_NAME);
    head.push_str("\">");
    head.push_str(issuer_text);
    head.push_str("</saml2:Issuer>");
    head
}

/// The canonical assertion after its `Issuer`: subject, conditions, authentication statement
/// and attributes.
fn assertion_tail(profile: &Profile, structure: &str, audience: &str, t: &Times<'_>) -> String {
    let mut tail = String::with_capacity(1024);
    tail.push_str("<saml2:Subject><saml2:NameID Format=\"");
    attr(&mut tail, &profile.name_id_format);
    tail.push_str("\">");
    text(&mut tail, profile.name_id.as_deref().unwrap_or(structure));
    tail.push_str("</saml2:NameID><saml2:SubjectConfirmation Method=\"");
    attr(&mut tail, &profile.subject_confirmation_method);
    tail.push_str("\"></saml2:SubjectConfirmation></saml2:Subject><saml2:Conditions NotBefore=\"");
    tail.push_str(t.not_before);
    tail.push_str("\" NotOnOrAfter=\"");
    tail.push_str(t.not_on_or_after);
    tail.push_str("\"><saml2:AudienceRestriction><saml2:Audience>");
    text(&mut tail, audience);
    tail.push_str("</saml2:Audience></saml2:AudienceRestriction></saml2:Conditions><saml2:AuthnStatement AuthnInstant=\"");
    tail.push_str(t.issued);
    tail.push_str("\"><saml2:AuthnContext><saml2:AuthnContextClassRef>");
    text(&mut tail, &profile.authn_context_class_ref);
    tail.push_str("</saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement><saml2:AttributeStatement>");
    if profile.default_attributes {
        let string = Some("xs:string");
        saml_attribute(
            &mut tail,
            "Identifiant_Structure",
            None,
            string,
            &[structure],
        );
        saml_attribute(
            &mut tail,
            "Authentification_mode",
            None,
            string,
            &["DIRECTE"],
        );
    }
    for a in &profile.attributes {
        let values: Vec<&str> = a.values.iter().map(String::as_str).collect();
        let (format, ty) = (a.name_format.as_deref(), a.xsi_type.as_deref());
        saml_attribute(&mut tail, &a.name, format, ty, &values);
    }
    tail.push_str("</saml2:AttributeStatement></saml2:Assertion>");
    tail
}

/// One `saml2:Attribute`, its values typed with `xsi:type` when `ty` is given.
fn saml_attribute(
    out: &mut String,
    name: &str,
    name_format: Option<&str>,
    ty: Option<&str>,
    values: &[&str],
) {
    out.push_str("<saml2:Attribute Name=\"");
    attr(out, name);
    if let Some(f) = name_format {
        out.push_str("\" NameFormat=\"");
        attr(out, f);
    }
    out.push_str("\">");
    for v in values {
        match ty {
            Some(t) => {
                out.push_str("<saml2:AttributeValue xmlns:xsi=\"");
                out.push_str(XSI_NS);
                out.push_str("\" xsi:type=\"");
                attr(out, t);
                out.push_str("\">");
            }
            None => out.push_str("<saml2:AttributeValue>"),
        }
        text(out, v);
        out.push_str("</saml2:AttributeValue>");
    }
    out.push_str("</saml2:Attribute>");
}

/// The `ds:SignedInfo` over the assertion `id` with its `digest` (enveloped signature,
/// exclusive c14n with `xs` inclusive for typed values, RSA-SHA256).
fn signed_info(id: &str, digest: &str) -> String {
    let mut si = String::with_capacity(1024);
    si.push_str("<ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"");
    si.push_str(EXC_C14N);
    si.push_str("\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"></ds:SignatureMethod><ds:Reference URI=\"#");
    si.push_str(id);
    si.push_str("\"><ds:Transforms><ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"></ds:Transform><ds:Transform Algorithm=\"");
    si.push_str(EXC_C14N);
    si.push_str("\"><ec:InclusiveNamespaces xmlns:ec=\"");
    si.push_str(EXC_C14N);
    si.push_str("\" PrefixList=\"xs\"></ec:InclusiveNamespaces></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"></ds:DigestMethod><ds:DigestValue>");
    si.push_str(digest);
    si.push_str("</ds:DigestValue></ds:Reference></ds:SignedInfo>");
    si
}

/// Writes the assertion in canonical form and signs it (enveloped, exclusive c14n,
/// RSA-SHA256, SHA-256 digest, `KeyInfo` with the certificate).
pub fn build_assertion(
    profile: &Profile,
    signer: &Signer,
    audience: &str,
    now: i64,
) -> SignedAssertion {
    build_assertion_with(profile, signer, audience, now, |m| signer.sign(m))
}

/// `build_assertion` with the RSA step supplied by the caller: benchmarks measure the XML work
/// alone with it.
pub fn build_assertion_with(
    profile: &Profile,
    signer: &Signer,
    audience: &str,
    now: i64,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> SignedAssertion {
    let id = new_id();
    let issued = fmt_time(now);
    let noa_unix = now + profile.validity.as_secs() as i64;
    let times = Times {
        issued: &issued,
        not_before: &fmt_time(now - profile.not_before_skew.as_secs() as i64),
        not_on_or_after: &fmt_time(noa_unix),
    };
    // Head: up to and including Issuer; tail: everything after it. The signature goes between.
    let head = assertion_head(&id, &issued, &signer.issuer_text);
    let tail = assertion_tail(profile, &signer.structure_id, audience, &times);

    // Digest of the canonical assertion without its signature (the enveloped transform).
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(head.as_bytes());
    ctx.update(tail.as_bytes());
    let b64 = &base64::engine::general_purpose::STANDARD;
    let signed_info = signed_info(&id, &b64.encode(ctx.finish().as_ref()));
    // Canonical SignedInfo as its own apex carries the ds declaration it uses.
    let canonical_si = format!(
        "<ds:SignedInfo xmlns:ds=\"{DSIG_NS}\">{}",
        &signed_info["<ds:SignedInfo>".len()..]
    );
    let signature = b64.encode(sign(canonical_si.as_bytes()));

    // The inserted form: non-ASCII (the issuer's name, an attribute value) as character
    // references; the signature's own parts are ASCII (base64, IDs, algorithm URIs).
    let head = ascii_refs(&head);
    let tail = ascii_refs(&tail);
    let mut xml = String::with_capacity(head.len() + tail.len() + signed_info.len() + 2600);
    xml.push_str(&head);
    xml.push_str("<ds:Signature xmlns:ds=\"");
    xml.push_str(DSIG_NS);
    xml.push_str("\">");
    xml.push_str(&signed_info);
    xml.push_str("<ds:SignatureValue>");
    xml.push_str(&signature);
    xml.push_str("</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>");
    xml.push_str(&signer.cert_b64);
    xml.push_str("</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>");
    xml.push_str(&tail);
    SignedAssertion {
        id,
        audience: audience.to_string(),
        not_on_or_after: noa_unix,
        issued_at: now,
        xml: xml.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attribute_values_are_escaped_as_canonical_xml_writes_them() {
        let s = "a&b<c>d\"e\tf\ng\rh — Rhône";
        let mut t = String::new();
        text(&mut t, s);
        assert_eq!(t, "a&amp;b&lt;c&gt;d\"e\tf\ng&#xD;h — Rhône");
        let mut a = String::new();
        attr(&mut a, s);
        assert_eq!(a, "a&amp;b&lt;c>d&quot;e&#x9;f&#xA;g&#xD;h — Rhône");
        let mut plain = String::from("x");
        text(&mut plain, "");
        attr(&mut plain, "y");
        assert_eq!(plain, "xy");
    }

    #[test]
    fn non_ascii_becomes_character_references_and_ascii_stays_borrowed() {
        assert_eq!(
            ascii_refs("Bouches-du-Rhône (13) — ÉJ 😀."),
            "Bouches-du-Rh&#xF4;ne (13) &#x2014; &#xC9;J &#x1F600;."
        );
        assert!(matches!(ascii_refs("ascii"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn assertion_ids_are_an_underscore_and_32_fresh_hex_digits() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 33);
            assert!(id.starts_with('_'));
            assert!(id[1..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        }
    }
}

//! Verification of an AMC response's signature, as rocgw assumes it (the ROC specifications are
//! not public): a WS-Security 1.0 message signature of the SOAP Body.
//!
//! The rules, each a refusal when broken: exactly one `ds:Signature` in the whole message, a
//! child of `/Envelope/Header/wsse:Security`; one `Reference`, whose `#id` resolves to the
//! Envelope's only `Body`; no `Id`/`wsu:Id`/`ID` value twice anywhere (signature wrapping);
//! RSA-SHA256 or stronger and SHA-256 or stronger digests, never HMAC or SHA-1; exclusive C14N
//! (without comments) as canonicalisation and as the only transform; the key from
//! `ds:X509Data` or from a `wsse:SecurityTokenReference` to a `wsse:BinarySecurityToken`; the
//! signer chained to a signature-role authority (never a server-role one), valid now and not
//! revoked. Canonicalisation and the signature check itself are bergshamra's, with the signer's
//! key as the only key and each reference bound to the node this function chose.

use std::collections::HashSet;

use base64::Engine as _;
use bergshamra::{DsigContext, KeysManager, VerifyResult};
use uppsala::{Document, NodeId};
use x509_parser::prelude::*;

use super::Charset;
use super::{DSIG_NS, EXC_C14N, WSSE_NS};
use crate::config::RevocationPolicy;
use crate::soap::SoapVersion;
use crate::trust::{Role, Status, TrustSet};

/// Namespace of `wsu:Id`.
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";

const SIGNATURE_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
];
const DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// A response whose signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// No signature at all (the mode decides what that means).
    No,
    /// A valid signature of the Body by this signer (serial, upper-case hex), checked on the
    /// document read in `charset`: the one the SIH must be told.
    Yes {
        signer_serial: String,
        charset: Charset,
    },
}

/// Why a response's signature is refused; the text goes to the fault detail and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseSignatureError {
    #[error("not a readable SOAP envelope: {0}")]
    Malformed(String),
    #[error("signature placement: {0}")]
    Structure(String),
    #[error("duplicate identifier {0:?} (signature wrapping)")]
    DuplicateId(String),
    #[error("algorithm not allowed: {0}")]
    Algorithm(String),
    #[error("signing key: {0}")]
    Key(String),
    #[error("signer: {0}")]
    Signer(String),
    #[error("signature does not verify: {0}")]
    Signature(String),
}

use ResponseSignatureError as E;

/// Checks the signature of `body` (an AMC answer whose HTTP `charset` says `http`) against
/// `trust`'s signature-role authorities and CRLs, under `policy` for an unknown revocation
/// status.
pub fn verify_response(
    body: &[u8],
    http: Option<Charset>,
    trust: &TrustSet,
    policy: RevocationPolicy,
    now: i64,
) -> Result<Signed, ResponseSignatureError> {
    let version = crate::soap::sniff(body).map_err(|e| E::Malformed(e.to_string()))?;
    let check = |text: &str, charset| {
        let signed = verify_text(text, version, trust, policy, now)?;
        Ok(signed.map_or(Signed::No, |signer_serial| Signed::Yes {
            signer_serial,
            charset,
        }))
    };
    match super::utf8_text(body, http) {
        // In the encoding it declares, or its HTTP charset names; when that was the HTTP
        // charset's and the signature fails in it, in UTF-8 (an AMC's wrong charset on an
        // undeclared UTF-8 answer). The SIH is then told the encoding that verified.
        Ok((text, charset)) => {
            check(&text, charset).or_else(|refused| match super::utf8_retry(body, http, charset) {
                Some(utf8) => check(utf8, Charset::Utf8).map_err(|_| refused),
                None => Err(refused),
            })
        }
        // A declaration rocgw does not read (another label, XML 1.1, US-ASCII with 8-bit
        // bytes): read as UTF-8 when it is, for `if-present` must not refuse an unsigned answer
        // over its declaration; but never accepted signed, since nothing says which characters
        // an SIH reads its bytes as (even ASCII bytes differ in UTF-7 or ISO 646-FR).
        Err(why) => {
            let text = std::str::from_utf8(body).map_err(|_| E::Malformed(why.clone()))?;
            match check(text, Charset::Utf8)? {
                Signed::Yes { .. } => Err(E::Malformed(why)),
                Signed::No => Ok(Signed::No),
            }
        }
    }
}

/// [`verify_response`] of the answer read as `text`: its signer's serial, if it is signed.
fn verify_text(
    text: &str,
    version: SoapVersion,
    trust: &TrustSet,
    policy: RevocationPolicy,
    now: i64,
) -> Result<Option<String>, ResponseSignatureError> {
    let doc = uppsala::parse(text).map_err(|_| E::Malformed("not well-formed XML".into()))?;
    let root = doc
        .document_element()
        .ok_or_else(|| E::Malformed("no root element".into()))?;
    let signatures: Vec<NodeId> = doc
        .descendants(root)
        .into_iter()
        .filter(|n| is(&doc, *n, DSIG_NS, "Signature"))
        .collect();
    if signatures.is_empty() {
        return Ok(None);
    }
    let [signature] = signatures.as_slice() else {
        return Err(E::Structure(format!(
            "{} signatures (one expected)",
            signatures.len()
        )));
    };
    no_duplicate_ids(&doc, root)?;
    let soap_ns = soap_ns(version);
    let security = doc
        .parent(*signature)
        .filter(|s| is(&doc, *s, WSSE_NS, "Security"));
    let header = security
        .and_then(|s| doc.parent(s))
        .filter(|h| is(&doc, *h, soap_ns, "Header"));
    if header.and_then(|h| doc.parent(h)) != Some(root) {
        return Err(E::Structure(
            "the signature is not in /Envelope/Header/wsse:Security".into(),
        ));
    }
    let bodies = doc.child_elements_by_name_ns(root, soap_ns, "Body");
    let [soap_body] = bodies.as_slice() else {
        return Err(E::Structure(format!(
            "{} Body elements (one expected)",
            bodies.len()
        )));
    };
    let body_id = signed_info(&doc, *signature)?;
    if id_of(&doc, *soap_body) != Some(body_id.as_str()) {
        return Err(E::Structure(
            "the reference does not resolve to the Envelope's Body".into(),
        ));
    }
    let signer = signer(&doc, *signature, security.expect("checked above"))?;
    let serial = check_signer(&signer, trust, policy, now)?;
    check_signature(&doc, text, *signature, *soap_body, &signer)?;
    Ok(Some(serial))
}

fn soap_ns(v: SoapVersion) -> &'static str {
    match v {
        SoapVersion::V11 => crate::soap::SOAP11_NS,
        SoapVersion::V12 => crate::soap::SOAP12_NS,
    }
}

fn is(doc: &Document<'_>, n: NodeId, ns: &str, local: &str) -> bool {
    doc.element(n).is_some_and(|e| {
        *e.name.local_name == *local && e.name.namespace_uri.as_deref() == Some(ns)
    })
}

/// The value of an element's `Id`, `wsu:Id` or `ID` attribute.
fn id_of<'d>(doc: &'d Document<'_>, n: NodeId) -> Option<&'d str> {
    let e = doc.element(n)?;
    e.get_attribute("Id").or_else(|| e.get_attribute("ID"))
}

/// Any identifier value twice, in any element, is refused: a second element with the signed
/// Body's identifier is how a signature is wrapped around other content.
fn no_duplicate_ids(doc: &Document<'_>, root: NodeId) -> Result<(), ResponseSignatureError> {
    let mut seen = HashSet::new();
    for n in doc.descendants(root) {
        let Some(e) = doc.element(n) else { continue };
        for a in &e.attributes {
            if matches!(&*a.name.local_name, "Id" | "ID" | "id")
                && !seen.insert(a.value.to_string())
            {
                return Err(E::DuplicateId(a.value.to_string()));
            }
        }
    }
    Ok(())
}

/// `SignedInfo`: exclusive C14N, an allowed signature method, one reference with exclusive C14N
/// transforms only and an allowed digest. Returns the identifier the reference points to.
fn signed_info(doc: &Document<'_>, signature: NodeId) -> Result<String, ResponseSignatureError> {
    let first =
        |parent: NodeId, local: &str| doc.first_child_element_by_name_ns(parent, DSIG_NS, local);
    let algorithm = |n: Option<NodeId>| {
        n.and_then(|n| doc.get_attribute(n, "Algorithm"))
            .unwrap_or("")
            .to_string()
    };
    let si = first(signature, "SignedInfo").ok_or_else(|| E::Structure("no SignedInfo".into()))?;
    let c14n = algorithm(first(si, "CanonicalizationMethod"));
    if c14n != EXC_C14N {
        return Err(E::Algorithm(format!("canonicalisation {c14n}")));
    }
    let method = algorithm(first(si, "SignatureMethod"));
    if !SIGNATURE_METHODS.contains(&method.as_str()) {
        return Err(E::Algorithm(format!("signature method {method}")));
    }
    let refs = doc.child_elements_by_name_ns(si, DSIG_NS, "Reference");
    let [reference] = refs.as_slice() else {
        return Err(E::Structure(format!(
            "{} references (one expected)",
            refs.len()
        )));
    };
    if let Some(transforms) = first(*reference, "Transforms") {
        for t in doc.child_elements_by_name_ns(transforms, DSIG_NS, "Transform") {
            let a = algorithm(Some(t));
            if a != EXC_C14N {
                return Err(E::Algorithm(format!("transform {a}")));
            }
        }
    }
    let digest = algorithm(first(*reference, "DigestMethod"));
    if !DIGEST_METHODS.contains(&digest.as_str()) {
        return Err(E::Algorithm(format!("digest {digest}")));
    }
    let uri = doc.get_attribute(*reference, "URI").unwrap_or("");
    uri.strip_prefix('#')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| E::Structure(format!("reference URI {uri:?} is not a same-document #id")))
}

/// The signing certificate: `KeyInfo/X509Data/X509Certificate` (the one whose key signs: the
/// first), or `KeyInfo/SecurityTokenReference/Reference` to a `BinarySecurityToken` of the
/// same security header.
fn signer(
    doc: &Document<'_>,
    signature: NodeId,
    security: NodeId,
) -> Result<Vec<u8>, ResponseSignatureError> {
    let b64 = |n: NodeId| {
        let t: String = doc.text_content_deep(n).split_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|_| E::Key("certificate is not base64".into()))
    };
    let key_info = doc
        .first_child_element_by_name_ns(signature, DSIG_NS, "KeyInfo")
        .ok_or_else(|| E::Key("no KeyInfo".into()))?;
    if let Some(data) = doc.first_child_element_by_name_ns(key_info, DSIG_NS, "X509Data") {
        let cert = doc
            .first_child_element_by_name_ns(data, DSIG_NS, "X509Certificate")
            .ok_or_else(|| E::Key("X509Data without a certificate".into()))?;
        return b64(cert);
    }
    let reference = doc
        .first_child_element_by_name_ns(key_info, WSSE_NS, "SecurityTokenReference")
        .and_then(|s| doc.first_child_element_by_name_ns(s, WSSE_NS, "Reference"))
        .ok_or_else(|| E::Key("neither X509Data nor a SecurityTokenReference".into()))?;
    let uri = doc.get_attribute(reference, "URI").unwrap_or("");
    let id = uri.strip_prefix('#').unwrap_or("");
    let token = doc
        .child_elements_by_name_ns(security, WSSE_NS, "BinarySecurityToken")
        .into_iter()
        .find(|t| id_of(doc, *t) == Some(id))
        .ok_or_else(|| {
            E::Key(format!(
                "no BinarySecurityToken {uri:?} in the security header"
            ))
        })?;
    b64(token)
}

/// The signer: inside its validity, on a path through a signature-role authority and through
/// no server-role one, not revoked. Returns its serial.
fn check_signer(
    der: &[u8],
    trust: &TrustSet,
    policy: RevocationPolicy,
    now: i64,
) -> Result<String, ResponseSignatureError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|_| E::Key("unreadable certificate".into()))?;
    let v = cert.validity();
    if now < v.not_before.timestamp() || now >= v.not_after.timestamp() {
        return Err(E::Signer("certificate outside its validity dates".into()));
    }
    let roles = trust
        .roles
        .as_ref()
        .ok_or_else(|| E::Signer("no signature-role authority configured".into()))?;
    let anchors: Vec<&[u8]> = trust.anchors.certificates().collect();
    if roles.path_has(Role::Server, der, &anchors) {
        return Err(E::Signer(
            "issued under a server-role (AC-SERVEUR) authority".into(),
        ));
    }
    if !roles.path_has(Role::Signature, der, &anchors) {
        return Err(E::Signer(
            "not issued under a signature-role (AC-SERVICES-APPLICATIFS) authority".into(),
        ));
    }
    match trust.crls.status(&cert, now) {
        Status::Good => {}
        Status::Revoked => return Err(E::Signer("certificate revoked".into())),
        Status::NoCrl | Status::Stale if policy == RevocationPolicy::Hard => {
            return Err(E::Signer("revocation status unknown (hard policy)".into()))
        }
        Status::NoCrl | Status::Stale => {}
    }
    let info = crate::identity::CertInfo::parse(der).map_err(E::Key)?;
    Ok(info.serial)
}

/// bergshamra checks the signature with the signer's key as the only key; the one valid
/// signature must be ours and its one reference must have resolved to the Body chosen above.
fn check_signature(
    doc: &Document<'_>,
    text: &str,
    signature: NodeId,
    soap_body: NodeId,
    signer: &[u8],
) -> Result<(), ResponseSignatureError> {
    let key =
        bergshamra::keys::loader::load_x509_cert_der(signer).map_err(|e| E::Key(e.to_string()))?;
    let mut keys = KeysManager::new();
    keys.add_key(key);
    let mut ctx = DsigContext::new(keys);
    ctx.trusted_keys_only = true;
    // The reference is bound to the Body by this function; bergshamra's position rule (target
    // an ancestor or sibling of the signature) does not fit a header signature of the Body.
    ctx.strict_verification = false;
    let results = bergshamra::dsig::verify::verify_all_document_with_source(&ctx, doc, Some(text))
        .map_err(|e| E::Signature(e.to_string()))?;
    // One signature in the document (checked above): one result.
    match results.into_iter().next() {
        Some(VerifyResult::Valid {
            signature_node,
            references,
            ..
        }) if signature_node == signature
            && references.len() == 1
            && references[0].digest_verified
            && references[0].resolved_node == Some(soap_body) =>
        {
            Ok(())
        }
        Some(VerifyResult::Valid { .. }) => Err(E::Signature(
            "the valid signature covers something else".into(),
        )),
        Some(VerifyResult::Invalid { reason }) => Err(E::Signature(reason)),
        None => Err(E::Signature("no signature verified".into())),
    }
}

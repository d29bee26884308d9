//! Verification of a SAML assertion in a `wsse:Security` header, for the simulator and, later,
//! for AMC responses. Canonicalisation and signature checking are bergshamra's (aws-lc backend),
//! never code of this repository. This function only:
//! - refuses DTDs before parsing;
//! - runs `verify_all` and requires a valid signature whose single reference resolves to exactly
//!   the `Assertion` it then reads (the one child of `Header/Security`), with the signature
//!   inside that assertion — never "the first Assertion" of the document;
//! - treats every error as invalid;
//! - returns what the assertion says and the signing certificate chain, for the caller's own
//!   checks (validity window, audience, issuer, usage, replay).

use bergshamra::{DsigContext, KeysManager, VerifyResult};
use uppsala::{Document, NodeId};

use super::{DSIG_NS, SAML2_NS, WSSE_NS};
use crate::soap::SoapVersion;

/// Why an assertion was refused. Every variant means "invalid".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    /// Not well-formed, not SOAP, or a DOCTYPE.
    Malformed(String),
    /// No `wsse:Security` header.
    NoSecurityHeader,
    /// No assertion, or more than one, in the security header.
    Assertion(String),
    /// No valid signature covers the assertion that is read.
    Signature(String),
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyError::Malformed(m) => write!(f, "malformed request: {m}"),
            VerifyError::NoSecurityHeader => f.write_str("no wsse:Security header"),
            VerifyError::Assertion(m) => write!(f, "assertion: {m}"),
            VerifyError::Signature(m) => write!(f, "signature: {m}"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// What a verified assertion says, and how it was signed: enough for a relying party's own
/// rules (version, parts, conditions, algorithms), which this module does not apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub id: String,
    pub version: String,
    pub issuer: String,
    pub issue_instant: String,
    /// Local names of the assertion's SAML children, in order (`Issuer`, `Subject`, …).
    pub parts: Vec<String>,
    pub not_before: Option<String>,
    pub not_on_or_after: Option<String>,
    /// The audiences of each `AudienceRestriction`, in order.
    pub audience_restrictions: Vec<Vec<String>>,
    /// Children of `Conditions` other than `AudienceRestriction`, as `{namespace}local`.
    pub other_conditions: Vec<String>,
    pub name_id: Option<String>,
    /// (Name, values) in document order.
    pub attributes: Vec<(String, Vec<String>)>,
    /// Algorithms of the verified signature.
    pub algorithms: Algorithms,
    /// SAML assertions in the document besides this one (unsigned or not, anywhere).
    pub other_assertions: usize,
    /// DER certificates from `KeyInfo`, signing certificate first.
    pub signer_chain: Vec<Vec<u8>>,
}

/// The algorithm URIs of a signature's `SignedInfo` and its one reference.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Algorithms {
    pub canonicalization: String,
    pub signature: String,
    pub digest: String,
    /// The reference's transforms, in order.
    pub transforms: Vec<String>,
}

impl VerifiedAssertion {
    pub fn attribute(&self, name: &str) -> Option<&[String]> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// Verifies assertions whose signing certificate chains to `trusted` (roots) through
/// `intermediates`.
#[derive(Debug, Clone, Default)]
pub struct AssertionVerifier {
    trusted: Vec<Vec<u8>>,
    intermediates: Vec<Vec<u8>>,
}

fn child_elements<'d>(
    doc: &'d Document<'_>,
    parent: NodeId,
    ns: &'d str,
    local: &'d str,
) -> Vec<NodeId> {
    doc.child_elements_by_name_ns(parent, ns, local)
}

fn text_of(doc: &Document<'_>, id: NodeId) -> String {
    doc.text_content_deep(id)
}

impl AssertionVerifier {
    pub fn new(trusted: Vec<Vec<u8>>, intermediates: Vec<Vec<u8>>) -> Self {
        AssertionVerifier {
            trusted,
            intermediates,
        }
    }

    /// Verifies the assertion of a SOAP envelope.
    pub fn verify(&self, envelope: &str) -> Result<VerifiedAssertion, VerifyError> {
        // DTDs are refused before any parser sees them: no entity expansion, no XXE.
        let version = crate::soap::sniff(envelope.as_bytes())
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let doc = uppsala::parse(envelope)
            .map_err(|_| VerifyError::Malformed("not well-formed XML".into()))?;
        let root = doc
            .document_element()
            .ok_or_else(|| VerifyError::Malformed("no root element".into()))?;
        let soap_ns = match version {
            SoapVersion::V11 => crate::soap::SOAP11_NS,
            SoapVersion::V12 => crate::soap::SOAP12_NS,
        };
        let headers = child_elements(&doc, root, soap_ns, "Header");
        let [header] = headers.as_slice() else {
            return Err(VerifyError::NoSecurityHeader);
        };
        let securities = child_elements(&doc, *header, WSSE_NS, "Security");
        let [security] = securities.as_slice() else {
            return Err(if securities.is_empty() {
                VerifyError::NoSecurityHeader
            } else {
                VerifyError::Assertion("more than one wsse:Security header".into())
            });
        };
        let assertions = child_elements(&doc, *security, SAML2_NS, "Assertion");
        let [assertion] = assertions.as_slice() else {
            return Err(VerifyError::Assertion(format!(
                "{} assertions in the security header (one expected)",
                assertions.len()
            )));
        };
        let assertion = *assertion;

        let mut keys = KeysManager::new();
        for t in &self.trusted {
            keys.add_trusted_cert(t.clone());
        }
        for i in &self.intermediates {
            keys.add_untrusted_cert(i.clone());
        }
        // `ID` is among bergshamra's default ID attributes (with Id, id, AssertionID).
        // Strict mode (anti-wrapping checks) with the key taken from the KeyInfo certificate,
        // which must then chain to the trusted roots (bergshamra enforces it whenever trust
        // anchors are configured; raw inline keys are refused).
        let mut ctx = DsigContext::new(keys);
        ctx.trusted_keys_only = false;
        ctx.enabled_key_data_x509 = true;
        let results =
            bergshamra::dsig::verify::verify_all_document_with_source(&ctx, &doc, Some(envelope))
                .map_err(|e| VerifyError::Signature(e.to_string()))?;
        let mut chain = None;
        let mut reasons = Vec::new();
        for r in results {
            match r {
                VerifyResult::Valid {
                    signature_node,
                    references,
                    key_info,
                } => {
                    let covers = references.len() == 1
                        && references[0].digest_verified
                        && references[0].resolved_node == Some(assertion)
                        && doc.parent(signature_node) == Some(assertion);
                    if covers {
                        chain = Some(key_info.x509_chain);
                    } else {
                        reasons.push("a valid signature covers something else".to_string());
                    }
                }
                VerifyResult::Invalid { reason } => reasons.push(reason),
            }
        }
        let Some(signer_chain) = chain else {
            return Err(VerifyError::Signature(if reasons.is_empty() {
                "no signature covers the assertion".into()
            } else {
                reasons.join("; ")
            }));
        };
        let signatures = child_elements(&doc, assertion, DSIG_NS, "Signature");
        let [signature] = signatures.as_slice() else {
            return Err(VerifyError::Signature(
                "more than one signature in the assertion".into(),
            ));
        };
        let mut v = read(&doc, assertion, signer_chain);
        v.algorithms = algorithms(&doc, *signature);
        v.other_assertions = SAML_ASSERTION_NS
            .iter()
            .map(|ns| doc.get_elements_by_tag_name_ns(ns, "Assertion").len())
            .sum::<usize>()
            .saturating_sub(1);
        Ok(v)
    }
}

/// SAML 2.0 and 1.x assertion namespaces.
const SAML_ASSERTION_NS: [&str; 2] = [SAML2_NS, "urn:oasis:names:tc:SAML:1.0:assertion"];

/// The algorithms of a verified `ds:Signature` (empty strings where absent).
fn algorithms(doc: &Document<'_>, signature: NodeId) -> Algorithms {
    let ds = |parent: Option<NodeId>, local: &str| {
        parent.and_then(|p| doc.first_child_element_by_name_ns(p, DSIG_NS, local))
    };
    let algorithm = |node: Option<NodeId>| {
        node.and_then(|n| doc.get_attribute(n, "Algorithm"))
            .unwrap_or_default()
            .to_string()
    };
    let signed_info = ds(Some(signature), "SignedInfo");
    let reference = ds(signed_info, "Reference");
    let transforms = ds(reference, "Transforms")
        .map(|t| child_elements(doc, t, DSIG_NS, "Transform"))
        .unwrap_or_default()
        .into_iter()
        .map(|t| algorithm(Some(t)))
        .collect();
    Algorithms {
        canonicalization: algorithm(ds(signed_info, "CanonicalizationMethod")),
        signature: algorithm(ds(signed_info, "SignatureMethod")),
        digest: algorithm(ds(reference, "DigestMethod")),
        transforms,
    }
}

/// Reads the fields of the verified assertion node.
fn read(doc: &Document<'_>, a: NodeId, signer_chain: Vec<Vec<u8>>) -> VerifiedAssertion {
    let attr = |id: NodeId, name: &str| doc.get_attribute(id, name).map(str::to_string);
    let first =
        |parent: NodeId, local: &str| doc.first_child_element_by_name_ns(parent, SAML2_NS, local);
    let mut v = VerifiedAssertion {
        id: attr(a, "ID").unwrap_or_default(),
        version: attr(a, "Version").unwrap_or_default(),
        issue_instant: attr(a, "IssueInstant").unwrap_or_default(),
        issuer: first(a, "Issuer")
            .map(|i| text_of(doc, i))
            .unwrap_or_default(),
        signer_chain,
        ..VerifiedAssertion::default()
    };
    for child in doc.children(a) {
        if let Some(e) = doc.element(child) {
            if e.name.namespace_uri.as_deref() == Some(SAML2_NS) {
                v.parts.push(e.name.local_name.to_string());
            }
        }
    }
    if let Some(subject) = first(a, "Subject") {
        v.name_id = first(subject, "NameID").map(|n| text_of(doc, n));
    }
    if let Some(c) = first(a, "Conditions") {
        v.not_before = attr(c, "NotBefore");
        v.not_on_or_after = attr(c, "NotOnOrAfter");
        for child in doc.children(c) {
            let Some(e) = doc.element(child) else {
                continue;
            };
            if e.name.matches(Some(SAML2_NS), "AudienceRestriction") {
                let audiences = child_elements(doc, child, SAML2_NS, "Audience")
                    .into_iter()
                    .map(|au| text_of(doc, au).trim().to_string());
                v.audience_restrictions.push(audiences.collect());
            } else {
                let ns = e.name.namespace_uri.as_deref().unwrap_or_default();
                v.other_conditions
                    .push(format!("{{{ns}}}{}", e.name.local_name));
            }
        }
    }
    for st in child_elements(doc, a, SAML2_NS, "AttributeStatement") {
        for at in child_elements(doc, st, SAML2_NS, "Attribute") {
            let values = child_elements(doc, at, SAML2_NS, "AttributeValue")
                .into_iter()
                .map(|x| text_of(doc, x))
                .collect();
            v.attributes
                .push((attr(at, "Name").unwrap_or_default(), values));
        }
    }
    v
}

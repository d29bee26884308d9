//! The AMC's rules on an assertion whose signature verified: how it was signed, what it must
//! contain, whom it names, when and for whom it holds. Each rule refuses with its own reason.
//! These are the rules of the SAML 2.0 core specification and of the ROC "authentification
//! directe" profile as far as it is public; where an AMC could reasonably differ (clock skew,
//! longest validity window) the simulator's configuration says.

use super::{parse_time, refuse, Refusal};
use crate::wssec::{VerifiedAssertion, EXC_C14N};

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// Signature methods an AMC accepts: RSA or ECDSA with SHA-256 or longer.
const SIGNATURE_METHODS: [&str; 6] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];

/// Digest methods an AMC accepts: SHA-256 or longer.
const DIGEST_METHODS: [&str; 3] = [
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];

/// Conditions an AMC understands besides `AudienceRestriction` (SAML core 2.5.1): any other
/// makes the assertion's validity indeterminate, hence refused.
const UNDERSTOOD_CONDITIONS: [&str; 2] = ["OneTimeUse", "ProxyRestriction"];

/// The statements and subject the ROC profile requires.
const REQUIRED_PARTS: [&str; 3] = ["Subject", "AuthnStatement", "AttributeStatement"];

/// SHA-256 or longer, exclusive canonicalisation without comments (SAML core 5.4.3–5.4.4): no
/// SHA-1, no inclusive c14n, no comments kept, no other transform.
pub fn algorithms(a: &VerifiedAssertion) -> Result<(), Refusal> {
    let alg = &a.algorithms;
    if !SIGNATURE_METHODS.contains(&alg.signature.as_str()) {
        return Err(refuse(
            "weak-algorithm",
            format!(
                "signature method {} (RSA-SHA256 or stronger expected)",
                alg.signature
            ),
        ));
    }
    if !DIGEST_METHODS.contains(&alg.digest.as_str()) {
        return Err(refuse(
            "weak-algorithm",
            format!(
                "digest method {} (SHA-256 or stronger expected)",
                alg.digest
            ),
        ));
    }
    let transforms_ok = alg.transforms.first().map(String::as_str) == Some(ENVELOPED)
        && alg.transforms[1..].iter().all(|t| t == EXC_C14N);
    if alg.canonicalization != EXC_C14N || !transforms_ok {
        return Err(refuse(
            "wrong-canonicalization",
            format!(
                "canonicalization {} with transforms {:?} (exclusive c14n without comments \
                 after the enveloped-signature transform expected)",
                alg.canonicalization, alg.transforms
            ),
        ));
    }
    Ok(())
}

/// SAML 2.0, with a `Subject` naming someone, an `AuthnStatement` and an `AttributeStatement`.
pub fn shape(a: &VerifiedAssertion) -> Result<(), Refusal> {
    if a.version != "2.0" {
        return Err(refuse(
            "wrong-version",
            format!("Version=\"{}\" (SAML 2.0 expected)", a.version),
        ));
    }
    if let Some(part) = REQUIRED_PARTS
        .iter()
        .find(|p| !a.parts.iter().any(|q| q == *p))
    {
        return Err(refuse(
            "incomplete-assertion",
            format!("the assertion has no saml2:{part}"),
        ));
    }
    if a.name_id.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(refuse(
            "incomplete-assertion",
            "the assertion's Subject has no NameID",
        ));
    }
    Ok(())
}

/// The assertion speaks for the structure whose certificate signed it: `NameID` and every
/// `Identifiant_Structure` value are the structure identifier of the signing certificate's OU.
pub fn structure(a: &VerifiedAssertion, signer: Option<&str>) -> Result<(), Refusal> {
    let Some(signer) = signer else {
        return Err(refuse(
            "structure-mismatch",
            "the signing certificate names no structure (no FINESS or SIRET in its OU)",
        ));
    };
    let name_id = a.name_id.as_deref().unwrap_or_default().trim();
    if name_id != signer {
        return Err(refuse(
            "structure-mismatch",
            format!("NameID {name_id} is not the signing certificate's structure {signer}"),
        ));
    }
    if let Some(values) = a.attribute("Identifiant_Structure") {
        if let Some(other) = values.iter().find(|v| v.trim() != signer) {
            return Err(refuse(
                "structure-mismatch",
                format!(
                    "Identifiant_Structure {} is not the signing certificate's structure {signer}",
                    other.trim()
                ),
            ));
        }
    }
    Ok(())
}

/// What an AMC tolerates in an assertion's times.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    pub skew_s: i64,
    /// Longest `NotOnOrAfter − IssueInstant` accepted.
    pub max_validity_s: i64,
}

/// Issued now or before (within the skew), only understood conditions, now inside
/// `[NotBefore, NotOnOrAfter)` (within the skew), and no longer than the longest window.
/// Returns `NotOnOrAfter`.
pub fn times(a: &VerifiedAssertion, now: i64, rules: TimeRules) -> Result<i64, Refusal> {
    let Some(issued) = parse_time(&a.issue_instant) else {
        return Err(refuse(
            "malformed-assertion",
            "IssueInstant missing or unreadable",
        ));
    };
    if issued > now + rules.skew_s {
        return Err(refuse(
            "issued-in-future",
            format!(
                "IssueInstant {} is {} s ahead of this AMC's clock",
                a.issue_instant,
                issued - now
            ),
        ));
    }
    let unknown = a.other_conditions.iter().find(|c| {
        !UNDERSTOOD_CONDITIONS
            .iter()
            .any(|u| **c == format!("{{{}}}{u}", crate::wssec::SAML2_NS))
    });
    if let Some(c) = unknown {
        return Err(refuse(
            "unknown-condition",
            format!("condition {c} is not understood"),
        ));
    }
    let (not_before, not_after) = match (
        a.not_before.as_deref().map_or(Some(i64::MIN), parse_time),
        a.not_on_or_after.as_deref().and_then(parse_time),
    ) {
        (Some(b), Some(e)) => (b, e),
        _ => {
            return Err(refuse(
                "outside-validity-window",
                "Conditions NotOnOrAfter missing, or a time unreadable",
            ))
        }
    };
    if now + rules.skew_s < not_before || now - rules.skew_s >= not_after {
        return Err(refuse(
            "outside-validity-window",
            format!(
                "now is outside the assertion's window [{}, {})",
                a.not_before.as_deref().unwrap_or_default(),
                a.not_on_or_after.as_deref().unwrap_or_default()
            ),
        ));
    }
    if not_after - issued > rules.max_validity_s {
        return Err(refuse(
            "validity-too-long",
            format!(
                "valid {} s after IssueInstant (at most {} s accepted)",
                not_after - issued,
                rules.max_validity_s
            ),
        ));
    }
    Ok(not_after)
}

/// Every `AudienceRestriction` names this AMC (SAML core 2.5.1.4: each must be met), and
/// there is at least one.
pub fn audience(a: &VerifiedAssertion, accepted: &[String]) -> Result<(), Refusal> {
    let restrictions = &a.audience_restrictions;
    let unmet = restrictions
        .iter()
        .position(|r| !r.iter().any(|au| audience_matches(au, accepted)));
    match (restrictions.is_empty(), unmet) {
        (true, _) => Err(refuse(
            "wrong-audience",
            "the assertion has no AudienceRestriction",
        )),
        (false, Some(i)) => Err(refuse(
            "wrong-audience",
            format!(
                "AudienceRestriction {} of {} does not name this AMC ({:?})",
                i + 1,
                restrictions.len(),
                restrictions[i]
            ),
        )),
        (false, None) => Ok(()),
    }
}

/// An audience is accepted when it equals an accepted one or lies below it as a URL path.
fn audience_matches(audience: &str, accepted: &[String]) -> bool {
    let au = audience.trim_end_matches('/');
    accepted.iter().any(|a| {
        let a = a.trim_end_matches('/');
        au == a
            || au
                .strip_prefix(a)
                .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('?'))
    })
}

/// The signed assertion is the only one in the request: an assertion elsewhere (another
/// header, the body, nested) is what a careless relying party would read instead.
pub fn alone(a: &VerifiedAssertion) -> Result<(), Refusal> {
    if a.other_assertions > 0 {
        return Err(refuse(
            "unsigned-assertion",
            format!(
                "{} SAML assertion(s) besides the signed one in wsse:Security",
                a.other_assertions
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_compare_as_an_amc_would() {
        let mine = vec!["https://localhost:8581/amc/99999991".to_string()];
        for (audience, ok) in [
            ("https://localhost:8581/amc/99999991/idb", true),
            ("https://localhost:8581/amc/99999991", true),
            ("https://localhost:8581/amc/999999910/idb", false),
            ("https://localhost:8581/amc/99999992/idb", false),
        ] {
            assert_eq!(audience_matches(audience, &mine), ok, "{audience}");
        }
        let two = |second: &str| VerifiedAssertion {
            audience_restrictions: vec![
                vec!["https://localhost:8581/amc/99999991/idb".into()],
                vec![second.into()],
            ],
            ..VerifiedAssertion::default()
        };
        assert!(audience(&two("https://localhost:8581/amc/99999991"), &mine).is_ok());
        let e = audience(&two("https://elsewhere/"), &mine).unwrap_err();
        assert_eq!(e.reason, "wrong-audience");
        assert!(e.detail.contains("2 of 2"), "{}", e.detail);
    }
}

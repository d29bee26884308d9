//! What a simulated AMC checks on every request, in the order a real AMC would, each failure
//! with its own stable reason. Signature and canonicalisation are never checked here: that is
//! [`AssertionVerifier`] (bergshamra). This file adds the signing certificate (chain, dates,
//! revocation, usage), issuer and replay; [`rules`] the assertion's own rules (algorithms,
//! version, parts, structure, times, conditions, audience).

use std::collections::HashMap;
use std::sync::Mutex;

use quick_xml::events::Event;
use x509_parser::prelude::*;

use crate::identity::{CertInfo, Role};
use crate::soap::SoapVersion;
use crate::trust::{CrlSet, Status};
use crate::wssec::{AssertionVerifier, Charset, VerifiedAssertion, VerifyError};

mod rules;
pub use rules::TimeRules;

/// Why a request was refused. `reason` is stable (metrics label, fault subcode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub detail: String,
}

fn refuse(reason: &'static str, detail: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        detail: detail.into(),
    }
}

/// Every refusal reason, for documentation and for zero-initialised metrics.
pub const REASONS: [&str; 22] = [
    "not-soap",
    "wrong-content-type",
    "no-security-header",
    "malformed-assertion",
    "bad-signature",
    "unsigned-assertion",
    "weak-algorithm",
    "wrong-canonicalization",
    "signer-untrusted",
    "signer-expired",
    "signer-revoked",
    "signer-usage",
    "issuer-mismatch",
    "wrong-version",
    "incomplete-assertion",
    "structure-mismatch",
    "issued-in-future",
    "unknown-condition",
    "outside-validity-window",
    "validity-too-long",
    "wrong-audience",
    "replayed-assertion",
];

/// The HTTP binding of the envelope's SOAP version, as SOAP stacks that dispatch on it (WCF,
/// Axis2) hold it: SOAP 1.2 comes as `application/soap+xml` (RFC 3902), SOAP 1.1 as `text/xml`
/// with a `SOAPAction` header (SOAP 1.1, 6.1) whose value is a quoted string (WS-I Basic
/// Profile R1109; `""` is one). The media type's parameters (`charset`, `action`) and case do
/// not matter. `content_type` and `soap_action`: the request's first of each.
pub fn binding(
    version: SoapVersion,
    content_type: Option<&[u8]>,
    soap_action: Option<&[u8]>,
) -> Result<(), Refusal> {
    let sent = String::from_utf8_lossy(content_type.unwrap_or_default());
    let essence = sent.split(';').next().unwrap_or("").trim();
    let (v, expected) = match version {
        SoapVersion::V12 => ("1.2", "application/soap+xml"),
        SoapVersion::V11 => ("1.1", "text/xml"),
    };
    if !essence.eq_ignore_ascii_case(expected) {
        let sent: String = essence.chars().take(64).collect();
        let sent = if sent.is_empty() { "none".into() } else { sent };
        return Err(refuse(
            "wrong-content-type",
            format!("a SOAP {v} envelope is sent as {expected}, not as {sent}"),
        ));
    }
    if version == SoapVersion::V11 {
        let quoted = |a: &[u8]| a.len() >= 2 && a.starts_with(b"\"") && a.ends_with(b"\"");
        match soap_action.map(<[u8]>::trim_ascii) {
            None => {
                return Err(refuse(
                    "wrong-content-type",
                    "a SOAP 1.1 request carries a SOAPAction header (it may be \"\")",
                ))
            }
            Some(a) if !quoted(a) => {
                return Err(refuse(
                    "wrong-content-type",
                    "the SOAPAction header is a quoted string (\"urn:…\", or \"\")",
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// What an AMC could reasonably tune: clock tolerance, longest validity, replay memory.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub times: TimeRules,
    pub replay_check: bool,
}

/// The checks shared by all simulated AMCs.
pub struct Checker {
    verifier: AssertionVerifier,
    /// IGC-Santé certificates (anchors and intermediates), DER, to name why a chain fails.
    known: Vec<Vec<u8>>,
    crls: CrlSet,
    times: TimeRules,
    replay: Option<Mutex<Replay>>,
}

/// Assertion IDs already accepted, remembered until their `NotOnOrAfter` (plus skew): after
/// that the window check refuses them anyway.
#[derive(Default)]
struct Replay {
    seen: HashMap<String, i64>,
    inserts: u64,
}

impl Checker {
    pub fn new(
        anchors: Vec<Vec<u8>>,
        intermediates: Vec<Vec<u8>>,
        crls: CrlSet,
        policy: Policy,
    ) -> Checker {
        let known = anchors.iter().chain(&intermediates).cloned().collect();
        Checker {
            verifier: AssertionVerifier::new(anchors, intermediates),
            known,
            crls,
            times: policy.times,
            replay: policy.replay_check.then(Mutex::default),
        }
    }

    /// Checks a request addressed to an AMC known by `audiences` (an audience is accepted when
    /// it equals one of them or lies below one of them as a URL path): the signature, then the
    /// rules of [`rules`] and the signing certificate, then replay. `http`: the request's HTTP
    /// `charset`.
    pub fn check(
        &self,
        body: &[u8],
        http: Option<Charset>,
        audiences: &[String],
        now: i64,
    ) -> Result<VerifiedAssertion, Refusal> {
        // In the encoding it declares (or its HTTP charset), as rocgw reads and stamps it
        // (ISO-8859-1 SIHs), and in UTF-8 when the HTTP charset's reading is not XML.
        let (text, read_in) =
            crate::wssec::utf8_text(body, http).map_err(|why| refuse("not-soap", why))?;
        let verified = match self.verifier.verify(&text) {
            Err(VerifyError::Malformed(m)) => match crate::wssec::utf8_retry(body, http, read_in) {
                Some(utf8) => self.verifier.verify(utf8),
                None => Err(VerifyError::Malformed(m)),
            },
            v => v,
        };
        let a = match verified {
            Ok(a) => a,
            Err(VerifyError::Malformed(m)) => return Err(refuse("not-soap", m)),
            Err(VerifyError::NoSecurityHeader) => {
                return Err(refuse(
                    "no-security-header",
                    "the request has no wsse:Security header",
                ))
            }
            Err(VerifyError::Assertion(m)) => return Err(refuse("malformed-assertion", m)),
            Err(VerifyError::Signature(m)) => return Err(self.diagnose(body, m, now)),
        };
        rules::alone(&a)?;
        rules::algorithms(&a)?;
        let signer = self.signer(&a, now)?;
        rules::shape(&a)?;
        rules::structure(&a, signer.structure_id.as_deref())?;
        let not_after = rules::times(&a, now, self.times)?;
        rules::audience(&a, audiences)?;
        self.remember(&a.id, not_after, now)?;
        Ok(a)
    }

    /// The signing certificate: within its dates, not revoked, the assertion's issuer, with
    /// the signature usage. (Its chain was checked with the signature.)
    fn signer(&self, a: &VerifiedAssertion, now: i64) -> Result<CertInfo, Refusal> {
        let Some(leaf) = a.signer_chain.first() else {
            return Err(refuse(
                "signer-untrusted",
                "no signing certificate in KeyInfo",
            ));
        };
        let info = CertInfo::parse(leaf).map_err(|e| refuse("signer-untrusted", e))?;
        if now < info.not_before || now >= info.not_after {
            return Err(refuse(
                "signer-expired",
                format!(
                    "the signing certificate {} is outside its validity",
                    info.serial
                ),
            ));
        }
        if let Ok((_, cert)) = X509Certificate::from_der(leaf) {
            if self.crls.status(&cert, now) == Status::Revoked {
                return Err(refuse(
                    "signer-revoked",
                    format!("the signing certificate {} is revoked", info.serial),
                ));
            }
            if !same_dn(&a.issuer, &crate::wssec::rfc4514(cert.subject())) {
                return Err(refuse(
                    "issuer-mismatch",
                    "the assertion's Issuer is not the signing certificate's subject",
                ));
            }
        }
        if let Some(p) = info.role_problem(Role::Sign) {
            return Err(refuse("signer-usage", p));
        }
        Ok(info)
    }

    /// Refuses an assertion ID seen before; remembers this one until it expires.
    fn remember(&self, id: &str, not_after: i64, now: i64) -> Result<(), Refusal> {
        let Some(replay) = &self.replay else {
            return Ok(());
        };
        let mut r = replay.lock().unwrap_or_else(|e| e.into_inner());
        if r.seen.get(id).is_some_and(|until| *until > now) {
            return Err(refuse(
                "replayed-assertion",
                format!("assertion {id} was already used"),
            ));
        }
        r.seen.insert(id.to_string(), not_after + self.times.skew_s);
        r.inserts += 1;
        if r.inserts % 4096 == 0 {
            r.seen.retain(|_, until| *until > now);
        }
        Ok(())
    }

    /// Names why a signature did not verify: the KeyInfo certificate's dates or chain, else
    /// the signature itself.
    fn diagnose(&self, body: &[u8], message: String, now: i64) -> Refusal {
        let Some(der) = keyinfo_certificate(body) else {
            return refuse("bad-signature", message);
        };
        let Ok((_, cert)) = X509Certificate::from_der(&der) else {
            return refuse("bad-signature", message);
        };
        let v = cert.validity();
        if now < v.not_before.timestamp() || now >= v.not_after.timestamp() {
            return refuse(
                "signer-expired",
                "the signing certificate is outside its validity",
            );
        }
        let issued_by_known = self.known.iter().any(|ca| crate::cert::issued_by(&der, ca));
        if !issued_by_known {
            return refuse(
                "signer-untrusted",
                "the signing certificate does not chain to the IGC-Santé authorities",
            );
        }
        refuse("bad-signature", message)
    }
}

/// The first `X509Certificate` of the document (for diagnosis only; the verifier decides).
fn keyinfo_certificate(body: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let mut r = quick_xml::Reader::from_reader(body);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match r.read_event().ok()? {
            Event::Start(e) if e.local_name().as_ref() == b"X509Certificate" => inside = true,
            Event::Text(t) if inside => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) if inside => break,
            Event::Eof => return None,
            _ => {}
        }
    }
    let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

/// An `xs:dateTime` in UTC (or with an offset) as Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    ::time::OffsetDateTime::parse(s.trim(), &::time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Two distinguished names written as strings are the same when their attribute=value parts
/// match one by one, in the same or in reverse order (RFC 4514 writes the most specific first,
/// OpenSSL's one-line form the least), attribute types compared case-insensitively.
pub fn same_dn(a: &str, b: &str) -> bool {
    let parts = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    cur.push(c);
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ',' | ';' => out.push(std::mem::take(&mut cur)),
                _ => cur.push(c),
            }
        }
        out.push(cur);
        out.into_iter()
            .map(|p| match p.trim().split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim().to_ascii_uppercase(), v.trim()),
                None => p.trim().to_string(),
            })
            .collect()
    };
    let (pa, mut pb) = (parts(a), parts(b));
    if pa == pb {
        return true;
    }
    pb.reverse();
    pa == pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times_read_as_an_amc_would() {
        assert!(same_dn(
            "CN=Client_ROC_WebServices_AMC,OU=1990000012,O=CH TEST",
            "O=CH TEST, OU=1990000012, cn=Client_ROC_WebServices_AMC"
        ));
        assert!(!same_dn("CN=A,O=B", "CN=A,O=C"));
        assert!(same_dn("CN=A\\,B,O=C", "O=C,CN=A\\,B"));
        assert_eq!(parse_time("2026-11-28T10:00:00Z"), Some(1_795_860_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn an_envelope_comes_as_its_soap_versions_binding_says() {
        let v12 = |ct: Option<&str>| binding(SoapVersion::V12, ct.map(str::as_bytes), None);
        let v11 = |ct: Option<&str>, action: Option<&str>| {
            binding(
                SoapVersion::V11,
                ct.map(str::as_bytes),
                action.map(str::as_bytes),
            )
        };
        assert_eq!(v12(Some("application/soap+xml")), Ok(()));
        let with_action = "Application/SOAP+XML ; charset=utf-8; action=\"urn:idb\"";
        assert_eq!(v12(Some(with_action)), Ok(()));
        assert_eq!(v11(Some("text/xml; charset=utf-8"), Some("\"\"")), Ok(()));
        assert_eq!(v11(Some("text/xml"), Some(" \"urn:idb\" ")), Ok(()));
        for (r, says) in [
            (
                v12(Some("text/xml; charset=utf-8")),
                "SOAP 1.2 envelope is sent as application/soap+xml, not as text/xml",
            ),
            (v12(None), "not as none"),
            (
                v11(Some("application/soap+xml"), Some("\"\"")),
                "SOAP 1.1 envelope is sent as text/xml, not as application/soap+xml",
            ),
            (v11(Some("text/xml"), None), "carries a SOAPAction"),
            (v11(Some("text/xml"), Some("urn:idb")), "quoted string"),
            (v11(Some("text/xml"), Some("\"")), "quoted string"),
            (v12(Some("application/json")), "not as application/json"),
        ] {
            let r = r.unwrap_err();
            assert_eq!(r.reason, "wrong-content-type");
            assert!(r.detail.contains(says), "{}", r.detail);
        }
    }
}

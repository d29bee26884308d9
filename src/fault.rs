//! The fault model: every error rocgw returns to a SIH is a SOAP fault in the request's SOAP
//! version, with a stable machine-readable code, a French and an English reason, and the code
//! repeated in the `X-Rocgw-Error` header.
//!
//! HTTP statuses follow the SOAP bindings by default (SOAP 1.1: always 500, WS-I Basic Profile
//! R1126; SOAP 1.2: 400 for sender faults, 500 for receiver faults) so that every SOAP stack reads
//! the fault. `http_status = "precise"` uses 400/401/404/408/413/415/502/503/504 instead.

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Deserialize;

use crate::soap::{NotSoap, SoapVersion};

/// Response header carrying the fault code.
pub const ERROR_HEADER: &str = "x-rocgw-error";
/// Namespace of the `rocgw:` elements inside a fault's detail.
pub const FAULT_NS: &str = "urn:rocgw:fault:1";

/// Stable fault codes. The string form (`as_str`) is part of rocgw's public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultCode {
    NotSoap,
    UnsupportedEncoding,
    DtdForbidden,
    BodyTooLarge,
    BodyTimeout,
    XmlLimit,
    SecurityHeaderPresent,
    UnknownAmc,
    UnknownStructure,
    UnknownService,
    AnnuaireUnavailable,
    AmcUnavailable,
    AmcTimeout,
    AmcSignatureInvalid,
    UpstreamTls,
    UpstreamCertExpired,
    UpstreamCertRevoked,
    UpstreamCertUnknownCa,
    Unauthorized,
    Overloaded,
    NotFound,
    Internal,
}

/// Who is at fault, in SOAP terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The request was wrong (SOAP 1.2 `Sender`, SOAP 1.1 `Client`).
    Sender,
    /// rocgw or something behind it failed (SOAP 1.2 `Receiver`, SOAP 1.1 `Server`).
    Receiver,
}

/// How fault HTTP statuses are chosen (`server.http_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusMode {
    /// Follow the SOAP 1.1 / 1.2 HTTP bindings.
    #[default]
    Binding,
    /// One precise HTTP status per fault code.
    Precise,
}

impl FaultCode {
    /// Every code, for documentation and tests.
    pub const ALL: [FaultCode; 22] = [
        FaultCode::NotSoap,
        FaultCode::UnsupportedEncoding,
        FaultCode::DtdForbidden,
        FaultCode::BodyTooLarge,
        FaultCode::BodyTimeout,
        FaultCode::XmlLimit,
        FaultCode::SecurityHeaderPresent,
        FaultCode::UnknownAmc,
        FaultCode::UnknownStructure,
        FaultCode::UnknownService,
        FaultCode::AnnuaireUnavailable,
        FaultCode::AmcUnavailable,
        FaultCode::AmcTimeout,
        FaultCode::AmcSignatureInvalid,
        FaultCode::UpstreamTls,
        FaultCode::UpstreamCertExpired,
        FaultCode::UpstreamCertRevoked,
        FaultCode::UpstreamCertUnknownCa,
        FaultCode::Unauthorized,
        FaultCode::Overloaded,
        FaultCode::NotFound,
        FaultCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultCode::NotSoap => "not-soap",
            FaultCode::UnsupportedEncoding => "unsupported-encoding",
            FaultCode::DtdForbidden => "dtd-forbidden",
            FaultCode::BodyTooLarge => "body-too-large",
            FaultCode::BodyTimeout => "body-timeout",
            FaultCode::XmlLimit => "xml-limit-exceeded",
            FaultCode::SecurityHeaderPresent => "security-header-present",
            FaultCode::UnknownAmc => "unknown-amc",
            FaultCode::UnknownStructure => "unknown-structure",
            FaultCode::UnknownService => "unknown-service",
            FaultCode::AnnuaireUnavailable => "annuaire-unavailable",
            FaultCode::AmcUnavailable => "amc-unavailable",
            FaultCode::AmcTimeout => "amc-timeout",
            FaultCode::AmcSignatureInvalid => "amc-signature-invalid",
            FaultCode::UpstreamTls => "upstream-tls",
            FaultCode::UpstreamCertExpired => "upstream-cert-expired",
            FaultCode::UpstreamCertRevoked => "upstream-cert-revoked",
            FaultCode::UpstreamCertUnknownCa => "upstream-cert-unknown-ca",
            FaultCode::Unauthorized => "unauthorized",
            FaultCode::Overloaded => "overloaded",
            FaultCode::NotFound => "not-found",
            FaultCode::Internal => "internal",
        }
    }

    pub fn side(self) -> Side {
        match self {
            FaultCode::NotSoap
            | FaultCode::UnsupportedEncoding
            | FaultCode::DtdForbidden
            | FaultCode::BodyTooLarge
            | FaultCode::BodyTimeout
            | FaultCode::XmlLimit
            | FaultCode::SecurityHeaderPresent
            | FaultCode::UnknownAmc
            | FaultCode::UnknownStructure
            | FaultCode::UnknownService
            | FaultCode::Unauthorized
            | FaultCode::NotFound => Side::Sender,
            _ => Side::Receiver,
        }
    }

    /// The status under `http_status = "precise"`.
    pub fn precise_status(self) -> StatusCode {
        match self {
            FaultCode::NotSoap
            | FaultCode::DtdForbidden
            | FaultCode::XmlLimit
            | FaultCode::SecurityHeaderPresent => StatusCode::BAD_REQUEST,
            FaultCode::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FaultCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FaultCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            FaultCode::UnknownAmc
            | FaultCode::UnknownStructure
            | FaultCode::UnknownService
            | FaultCode::NotFound => StatusCode::NOT_FOUND,
            FaultCode::Unauthorized => StatusCode::UNAUTHORIZED,
            FaultCode::AnnuaireUnavailable | FaultCode::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            FaultCode::AmcTimeout => StatusCode::GATEWAY_TIMEOUT,
            FaultCode::AmcUnavailable
            | FaultCode::AmcSignatureInvalid
            | FaultCode::UpstreamTls
            | FaultCode::UpstreamCertExpired
            | FaultCode::UpstreamCertRevoked
            | FaultCode::UpstreamCertUnknownCa => StatusCode::BAD_GATEWAY,
            FaultCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The status a SOAP binding prescribes for this fault.
    pub fn binding_status(self, version: SoapVersion) -> StatusCode {
        match (version, self.side()) {
            (SoapVersion::V11, _) => StatusCode::INTERNAL_SERVER_ERROR,
            (SoapVersion::V12, Side::Sender) => StatusCode::BAD_REQUEST,
            (SoapVersion::V12, Side::Receiver) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn status(self, version: SoapVersion, mode: StatusMode) -> StatusCode {
        match mode {
            StatusMode::Binding => self.binding_status(version),
            StatusMode::Precise => self.precise_status(),
        }
    }

    /// (French, English) reasons. Stable wording; details go in `Fault::detail`.
    pub fn reasons(self) -> (&'static str, &'static str) {
        match self {
            FaultCode::NotSoap => (
                "La requête n'est pas une enveloppe SOAP 1.1 ou 1.2.",
                "The request is not a SOAP 1.1 or 1.2 envelope.",
            ),
            FaultCode::UnsupportedEncoding => (
                "Le corps de la requête doit être envoyé sans compression (Content-Encoding).",
                "The request body must be sent uncompressed (no Content-Encoding).",
            ),
            FaultCode::DtdForbidden => (
                "Les DTD et déclarations d'entités sont interdites.",
                "DTDs and entity declarations are forbidden.",
            ),
            FaultCode::BodyTooLarge => (
                "Le corps de la requête dépasse la taille autorisée.",
                "The request body exceeds the size limit.",
            ),
            FaultCode::BodyTimeout => (
                "Le corps de la requête est arrivé trop lentement.",
                "The request body arrived too slowly.",
            ),
            FaultCode::XmlLimit => (
                "L'enveloppe dépasse les limites d'analyse XML (profondeur, attributs).",
                "The envelope exceeds the XML parsing limits (depth, attributes).",
            ),
            FaultCode::SecurityHeaderPresent => (
                "La requête contient déjà un en-tête wsse:Security.",
                "The request already carries a wsse:Security header.",
            ),
            FaultCode::UnknownAmc => ("AMC inconnue.", "Unknown AMC."),
            FaultCode::UnknownStructure => (
                "Structure (EJ ou EG) inconnue de cette passerelle.",
                "Structure (EJ or EG) unknown to this gateway.",
            ),
            FaultCode::UnknownService => (
                "Service non proposé par cette AMC.",
                "Service not offered by this AMC.",
            ),
            FaultCode::AnnuaireUnavailable => (
                "L'annuaire AMC est indisponible.",
                "The Annuaire AMC is unavailable.",
            ),
            FaultCode::AmcUnavailable => (
                "Le service de l'AMC est indisponible.",
                "The AMC service is unavailable.",
            ),
            FaultCode::AmcSignatureInvalid => (
                "La réponse de l'AMC n'est pas signée valablement.",
                "The AMC's answer does not carry a valid signature.",
            ),
            FaultCode::AmcTimeout => (
                "Le service de l'AMC n'a pas répondu à temps.",
                "The AMC service did not answer in time.",
            ),
            FaultCode::UpstreamTls => (
                "Échec de la connexion TLS avec le serveur distant.",
                "TLS connection to the remote server failed.",
            ),
            FaultCode::UpstreamCertExpired => (
                "Le certificat du serveur distant est expiré.",
                "The remote server's certificate has expired.",
            ),
            FaultCode::UpstreamCertRevoked => (
                "Le certificat du serveur distant est révoqué.",
                "The remote server's certificate is revoked.",
            ),
            FaultCode::UpstreamCertUnknownCa => (
                "Le certificat du serveur distant n'est pas émis par une autorité de confiance.",
                "The remote server's certificate is not issued by a trusted authority.",
            ),
            FaultCode::Unauthorized => ("Appelant non autorisé.", "Caller not authorised."),
            FaultCode::Overloaded => (
                "Passerelle surchargée, réessayez plus tard.",
                "Gateway overloaded, retry later.",
            ),
            FaultCode::NotFound => (
                "Ressource inconnue sur cette passerelle.",
                "No such resource on this gateway.",
            ),
            FaultCode::Internal => (
                "Erreur interne de la passerelle.",
                "Internal gateway error.",
            ),
        }
    }
}

impl std::fmt::Display for FaultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fault to send back to the SIH. `detail` is an optional English sentence with context; it
/// must never carry patient data or secrets.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: FaultCode,
    pub detail: Option<String>,
    /// Seconds for a `Retry-After` header (overload).
    pub retry_after: Option<u32>,
}

impl Fault {
    pub fn new(code: FaultCode) -> Self {
        Fault {
            code,
            detail: None,
            retry_after: None,
        }
    }

    pub fn with_detail(code: FaultCode, detail: impl Into<String>) -> Self {
        Fault {
            code,
            detail: Some(detail.into()),
            retry_after: None,
        }
    }

    /// The SOAP fault document.
    pub fn to_xml(&self, version: SoapVersion) -> String {
        // Written piece by piece (no formatting machinery): a shed request under load is
        // mostly this (callgrind: 25,000 instructions per `overloaded` answer, 6,000 of them
        // here before).
        let (fr, en) = self.code.reasons();
        let code = self.code.as_str();
        let mut x = String::with_capacity(1024);
        x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"");
        x.push_str(version.namespace());
        x.push_str("\"><soap:Body><soap:Fault>");
        let sender = matches!(self.code.side(), Side::Sender);
        match version {
            SoapVersion::V11 => {
                x.push_str("<faultcode>");
                x.push_str(if sender { "soap:Client" } else { "soap:Server" });
                x.push_str("</faultcode><faultstring xml:lang=\"fr\">");
                push_text(&mut x, fr);
                x.push_str("</faultstring><detail>");
            }
            SoapVersion::V12 => {
                x.push_str("<soap:Code><soap:Value>");
                x.push_str(if sender {
                    "soap:Sender"
                } else {
                    "soap:Receiver"
                });
                x.push_str("</soap:Value><soap:Subcode><soap:Value xmlns:rocgw=\"");
                x.push_str(FAULT_NS);
                x.push_str("\">rocgw:");
                x.push_str(code);
                x.push_str("</soap:Value></soap:Subcode></soap:Code><soap:Reason><soap:Text xml:lang=\"fr\">");
                push_text(&mut x, fr);
                x.push_str("</soap:Text><soap:Text xml:lang=\"en\">");
                push_text(&mut x, en);
                x.push_str("</soap:Text></soap:Reason><soap:Detail>");
            }
        }
        x.push_str("<rocgw:error xmlns:rocgw=\"");
        x.push_str(FAULT_NS);
        x.push_str("\"><rocgw:code>");
        x.push_str(code);
        x.push_str("</rocgw:code><rocgw:message xml:lang=\"fr\">");
        push_text(&mut x, fr);
        x.push_str("</rocgw:message><rocgw:message xml:lang=\"en\">");
        push_text(&mut x, en);
        x.push_str("</rocgw:message>");
        if let Some(d) = &self.detail {
            x.push_str("<rocgw:detail>");
            push_text(&mut x, d);
            x.push_str("</rocgw:detail>");
        }
        x.push_str("</rocgw:error>");
        x.push_str(match version {
            SoapVersion::V11 => "</detail>",
            SoapVersion::V12 => "</soap:Detail>",
        });
        x.push_str("</soap:Fault></soap:Body></soap:Envelope>");
        x
    }

    /// The full HTTP response for this fault.
    pub fn to_response(&self, version: SoapVersion, mode: StatusMode) -> Response<Bytes> {
        let mut resp = Response::new(Bytes::from(self.to_xml(version)));
        *resp.status_mut() = self.code.status(version, mode);
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(version.fault_content_type()),
        );
        h.insert(ERROR_HEADER, HeaderValue::from_static(self.code.as_str()));
        if let Some(secs) = self.retry_after {
            h.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == FaultCode::UnsupportedEncoding {
            // RFC 9110, 15.5.16: the content codings that would have been accepted.
            h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        }
        resp
    }
}

/// XML text and attribute escaping for the few strings rocgw writes itself.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(|b| xml_entity(b).is_some()) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    push_text(&mut out, s);
    std::borrow::Cow::Owned(out)
}

/// Appends `s` escaped as [`escape`] does; the runs between the characters to escape are
/// found by `memchr` (a fault's texts are most of its bytes).
pub fn push_text(out: &mut String, s: &str) {
    let mut rest = s;
    loop {
        let b = rest.as_bytes();
        let next = match (
            memchr::memchr3(b'&', b'<', b'>', b),
            memchr::memchr2(b'"', b'\'', b),
        ) {
            (None, None) => break,
            (x, y) => x.unwrap_or(usize::MAX).min(y.unwrap_or(usize::MAX)),
        };
        out.push_str(&rest[..next]);
        out.push_str(xml_entity(b[next]).unwrap_or_default());
        rest = &rest[next + 1..];
    }
    out.push_str(rest);
}

fn xml_entity(b: u8) -> Option<&'static str> {
    match b {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'"' => Some("&quot;"),
        b'\'' => Some("&apos;"),
        _ => None,
    }
}

/// Appends `s` with each byte `esc` names replaced (all are ASCII, so UTF-8 sequences pass
/// whole); the runs between them are copied at once.
pub fn push_escaped(out: &mut String, s: &str, esc: impl Fn(u8) -> Option<&'static str>) {
    let mut rest = s;
    while let Some((i, with)) = rest
        .bytes()
        .enumerate()
        .find_map(|(i, b)| Some((i, esc(b)?)))
    {
        out.push_str(&rest[..i]);
        out.push_str(with);
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// A fault with the SOAP version it is written in: what travels back from every hop.
#[derive(Debug)]
pub struct VersionedFault {
    pub fault: Fault,
    pub version: SoapVersion,
}

impl Fault {
    /// This fault, written in `version`.
    pub fn in_version(self, version: SoapVersion) -> VersionedFault {
        VersionedFault {
            fault: self,
            version,
        }
    }
}

impl From<NotSoap> for VersionedFault {
    fn from(e: NotSoap) -> Self {
        let code = match e {
            NotSoap::Doctype(_) => FaultCode::DtdForbidden,
            NotSoap::Malformed(_) => FaultCode::NotSoap,
        };
        VersionedFault {
            version: e.version(),
            fault: Fault::with_detail(code, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> (FaultCode, SoapVersion) {
        let r = VersionedFault::from(crate::soap::sniff(body.as_bytes()).unwrap_err());
        (r.fault.code, r.version)
    }

    #[test]
    fn refusals_carry_the_right_code_and_version() {
        assert_eq!(code("hello"), (FaultCode::NotSoap, SoapVersion::V12));
        assert_eq!(code(""), (FaultCode::NotSoap, SoapVersion::V12));
        assert_eq!(
            code(r#"<Envelope xmlns="urn:other"/>"#),
            (FaultCode::NotSoap, SoapVersion::V12)
        );
        assert_eq!(
            code(
                r#"<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>"#
            ),
            (FaultCode::DtdForbidden, SoapVersion::V11)
        );
        assert_eq!(
            code(r#"<!DOCTYPE x><x/>"#),
            (FaultCode::DtdForbidden, SoapVersion::V12)
        );
    }

    #[test]
    fn codes_are_unique_and_statuses_follow_bindings() {
        let mut seen = std::collections::HashSet::new();
        for c in FaultCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert_eq!(c.binding_status(SoapVersion::V11), 500);
            let v12 = c.binding_status(SoapVersion::V12);
            match c.side() {
                Side::Sender => assert_eq!(v12, 400, "{c}"),
                Side::Receiver => assert_eq!(v12, 500, "{c}"),
            }
        }
        assert_eq!(FaultCode::BodyTooLarge.precise_status(), 413);
        assert_eq!(FaultCode::Unauthorized.precise_status(), 401);
        assert_eq!(FaultCode::AmcTimeout.precise_status(), 504);
    }

    #[test]
    fn fault_xml_is_well_formed_in_both_versions() {
        for v in [SoapVersion::V11, SoapVersion::V12] {
            let f = Fault::with_detail(FaultCode::UnknownAmc, "AMC <12345678> & co");
            let xml = f.to_xml(v);
            let mut r = quick_xml::Reader::from_str(&xml);
            let mut depth = 0i32;
            loop {
                match r.read_event().expect("well-formed") {
                    quick_xml::events::Event::Start(_) => depth += 1,
                    quick_xml::events::Event::End(_) => depth -= 1,
                    quick_xml::events::Event::Eof => break,
                    _ => {}
                }
            }
            assert_eq!(depth, 0);
            assert!(xml.contains("&lt;12345678&gt; &amp; co"));
            assert!(xml.contains(v.namespace()));
        }
    }

    #[test]
    fn every_character_to_escape_is_escaped_wherever_it_stands() {
        let cases = [
            ("", ""),
            ("plain é", "plain é"),
            ("<", "&lt;"),
            ("a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e&apos;f"),
            ("'l'AMC' \"x\"", "&apos;l&apos;AMC&apos; &quot;x&quot;"),
            ("&&", "&amp;&amp;"),
        ];
        for (raw, want) in cases {
            let mut out = String::from(">");
            push_text(&mut out, raw);
            assert_eq!(&out[1..], want);
            assert_eq!(escape(raw), want);
        }
    }
}

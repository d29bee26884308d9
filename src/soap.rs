//! SOAP envelope facts: which SOAP version a request speaks, and the refusal of what must never
//! be parsed (DTDs). rocgw is message-agnostic: it reads only the envelope's outer shape.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The SOAP version of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoapVersion {
    V11,
    V12,
}

impl SoapVersion {
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_NS,
            SoapVersion::V12 => SOAP12_NS,
        }
    }

    /// The media type of this version's binding (`text/xml`, `application/soap+xml`).
    pub fn media_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml",
            SoapVersion::V12 => "application/soap+xml",
        }
    }

    /// Content type of the faults rocgw writes in this version.
    pub fn fault_content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    pub fn from_namespace(ns: &[u8]) -> Option<Self> {
        if ns == SOAP11_NS.as_bytes() {
            Some(SoapVersion::V11)
        } else if ns == SOAP12_NS.as_bytes() {
            Some(SoapVersion::V12)
        } else {
            None
        }
    }
}

/// Faults for a request that is not SOAP at all are written in SOAP 1.2.
pub const DEFAULT_FAULT_VERSION: SoapVersion = SoapVersion::V12;

/// Why a body is not an envelope rocgw will read; `fault` turns it into the SOAP fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSoap {
    /// A DOCTYPE (no DTD is ever read); the fault speaks the envelope's version when it has one.
    #[error("the request contains a DOCTYPE")]
    Doctype(SoapVersion),
    /// Not XML, not an Envelope, or nothing at all: a short reason with no input quoted.
    #[error("{0}")]
    Malformed(String),
}

impl NotSoap {
    /// The SOAP version the fault is written in.
    pub fn version(&self) -> SoapVersion {
        match self {
            NotSoap::Doctype(v) => *v,
            NotSoap::Malformed(_) => DEFAULT_FAULT_VERSION,
        }
    }
}

/// Reads the prolog and the root element of `body`: returns the SOAP version, or the refusal.
///
/// A DOCTYPE is refused (no DTD, no entity expansion, no XXE) but the root element after it is
/// still looked at, so that the fault speaks the envelope's own SOAP version.
pub fn sniff(body: &[u8]) -> Result<SoapVersion, NotSoap> {
    if is_utf16_or_32(body) {
        return Err(not_soap(UTF16_REFUSED));
    }
    // Borrowing events: nothing of the body is copied. No namespace resolver: the root
    // element's namespace can only be declared on the root itself.
    let mut reader = Reader::from_reader(body);
    // Reading stops at the root's start: no end tag to match, no stack of open names to keep.
    reader.config_mut().check_end_names = false;
    let mut saw_doctype = false;
    loop {
        match reader.read_event() {
            Ok(Event::Decl(_) | Event::Comment(_) | Event::PI(_)) => {}
            Ok(Event::Text(t)) if t.iter().all(u8::is_ascii_whitespace) => {}
            Ok(Event::DocType(_)) => saw_doctype = true,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let version = match root_namespace(&e) {
                    Ok(ns) if e.local_name().as_ref() == b"Envelope" => ns,
                    Ok(_) => None,
                    Err(_) if saw_doctype => None,
                    Err(why) => return Err(not_soap(&format!("not well-formed XML: {why}"))),
                };
                return match (version, saw_doctype) {
                    (Some(v), false) => Ok(v),
                    (Some(v), true) => Err(dtd(v)),
                    (None, true) => Err(dtd(DEFAULT_FAULT_VERSION)),
                    (None, false) => Err(not_soap("the root element is not a SOAP Envelope")),
                };
            }
            Ok(Event::Eof) if saw_doctype => return Err(dtd(DEFAULT_FAULT_VERSION)),
            Ok(Event::Eof) => return Err(not_soap("empty or truncated document")),
            Ok(_) => return Err(not_soap("unexpected content before the root element")),
            Err(_) if saw_doctype => return Err(dtd(DEFAULT_FAULT_VERSION)),
            Err(e) => return Err(not_soap(&format!("not well-formed XML: {}", short(&e)))),
        }
    }
}

/// Why a UTF-16 or UTF-32 document is refused (rocgw reads UTF-8 and the 8-bit encodings it
/// names). Said of an SIH's envelope and of an annuaire's or AMC's answer alike.
pub const UTF16_REFUSED: &str =
    "a UTF-16 or UTF-32 document: rocgw reads UTF-8, ISO-8859-1/15, windows-1252 and US-ASCII";

/// A UTF-16 or UTF-32 document: a byte order mark, or its first character (`<`, or the white
/// space a document without an XML declaration may start with) in one of them without one (XML
/// 1.0, appendix F). No XML document holds a NUL character, so nothing else is taken for one.
pub fn is_utf16_or_32(body: &[u8]) -> bool {
    match body {
        [0xFE, 0xFF, ..] | [0xFF, 0xFE, ..] | [0, 0, ..] => true,
        [0, c, ..] | [c, 0, ..] => matches!(c, b'<' | b' ' | b'\t' | b'\n' | b'\r'),
        _ => false,
    }
}

/// The SOAP version named by the root element `e`'s namespace, from its own declarations
/// (`xmlns` or `xmlns:prefix`); `None` for no namespace or another one. A prefix declared
/// nowhere is an error.
fn root_namespace(e: &BytesStart<'_>) -> Result<Option<SoapVersion>, &'static str> {
    const ILL_FORMED: &str = "ill-formed markup";
    let prefix = e.name().prefix().map(|p| p.into_inner());
    let mut found = None;
    // Duplicate names are looked for among the first few here, without quick-xml's list of
    // every name (an allocation per root); a root with more is checked again by quick-xml.
    let mut seen: [&[u8]; 16] = [b""; 16];
    let mut count = 0;
    for a in e.attributes().with_checks(false) {
        let a = a.map_err(|_| ILL_FORMED)?;
        let key = a.key.into_inner();
        if seen[..count.min(seen.len())].contains(&key) {
            return Err(ILL_FORMED);
        }
        if let Some(slot) = seen.get_mut(count) {
            *slot = key;
        }
        count += 1;
        let declares = match (key.strip_prefix(b"xmlns"), prefix) {
            (Some(b""), None) => true,
            (Some(rest), Some(p)) => rest.strip_prefix(b":") == Some(p),
            _ => false,
        };
        if declares {
            found = Some(SoapVersion::from_namespace(&a.value));
        }
    }
    if count > seen.len() && e.attributes().any(|a| a.is_err()) {
        return Err(ILL_FORMED);
    }
    match (found, prefix) {
        (None, Some(_)) => Err("undeclared namespace prefix"),
        (found, _) => Ok(found.flatten()),
    }
}

fn dtd(version: SoapVersion) -> NotSoap {
    NotSoap::Doctype(version)
}

fn not_soap(why: &str) -> NotSoap {
    NotSoap::Malformed(why.to_string())
}

/// Parser errors can quote input; keep only the kind so no patient data reaches a fault or log.
fn short(e: &quick_xml::Error) -> &'static str {
    match e {
        quick_xml::Error::Syntax(_) => "syntax error",
        quick_xml::Error::IllFormed(_) => "ill-formed markup",
        quick_xml::Error::Encoding(_) => "invalid text encoding",
        quick_xml::Error::Escape(_) => "invalid character reference",
        quick_xml::Error::Namespace(_) => "undeclared namespace prefix",
        _ => "parse error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_namespace_not_the_prefix() {
        let v11 = r#"<?xml version="1.0"?><!-- c --><S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body/></S:Envelope>"#;
        let v12 = r#"<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body/></Envelope>"#;
        assert_eq!(sniff(v11.as_bytes()).unwrap(), SoapVersion::V11);
        assert_eq!(sniff(v12.as_bytes()).unwrap(), SoapVersion::V12);
        // The root's own declaration counts, whatever else is declared beside it.
        let other_prefix = r#"<soap:Envelope xmlns="urn:x" xmlns:S="urn:y" xmlns:soap="http://www.w3.org/2003/05/soap-envelope"/>"#;
        assert_eq!(sniff(other_prefix.as_bytes()).unwrap(), SoapVersion::V12);
    }

    #[test]
    fn a_utf16_envelope_is_named_as_such_with_or_without_its_byte_order_mark() {
        let doc = r#"<?xml version="1.0" encoding="UTF-16"?><Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"/>"#;
        let le: Vec<u8> = doc.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = doc.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let spaced = |b: &[u8], space: [u8; 2]| [&space[..], &space[..], b].concat();
        for body in [
            [&[0xFF, 0xFE][..], &le].concat(),
            [&[0xFE, 0xFF][..], &be].concat(),
            spaced(&le, [b'\n', 0]),
            spaced(&be, [0, b' ']),
            le,
            be,
            // UTF-32 (big-endian without a byte order mark, little-endian with one).
            doc.chars().flat_map(|c| (c as u32).to_be_bytes()).collect(),
            [
                &[0xFF, 0xFE, 0, 0][..],
                &doc.chars()
                    .flat_map(|c| (c as u32).to_le_bytes())
                    .collect::<Vec<u8>>(),
            ]
            .concat(),
        ] {
            match sniff(&body) {
                Err(NotSoap::Malformed(why)) => assert_eq!(why, UTF16_REFUSED),
                other => panic!("{:?}: {other:?}", &body[..4]),
            }
        }
        // UTF-8 with its byte order mark is read.
        let utf8 = doc.replace(r#" encoding="UTF-16""#, "");
        let utf8_bom = [&[0xEF, 0xBB, 0xBF][..], utf8.as_bytes()].concat();
        assert_eq!(sniff(&utf8_bom).unwrap(), SoapVersion::V12);
    }

    #[test]
    fn roots_that_are_not_soap_envelopes_say_why() {
        let why = |doc: &str| match sniff(doc.as_bytes()) {
            Err(NotSoap::Malformed(why)) => why,
            other => panic!("{doc}: {other:?}"),
        };
        let not_envelope = "the root element is not a SOAP Envelope";
        // The SOAP namespace bound to another prefix than the root's.
        assert_eq!(
            why(
                r#"<S:Envelope xmlns:S="urn:x" xmlns:T="http://www.w3.org/2003/05/soap-envelope"/>"#
            ),
            not_envelope
        );
        // A default namespace does not reach a prefixed root, nor a prefixed one an unprefixed.
        assert_eq!(
            why(r#"<S:Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"/>"#),
            "not well-formed XML: undeclared namespace prefix"
        );
        assert_eq!(
            why(r#"<Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"/>"#),
            not_envelope
        );
        // No namespace, another local name, a repeated attribute.
        assert_eq!(why("<Envelope/>"), not_envelope);
        assert_eq!(
            why(r#"<Body xmlns="http://www.w3.org/2003/05/soap-envelope"/>"#),
            not_envelope
        );
        assert_eq!(
            why(r#"<Envelope xmlns="urn:a" xmlns="urn:a"/>"#),
            "not well-formed XML: ill-formed markup"
        );
        // Repeated after many others (beyond the first sixteen names kept), or among them.
        let many: String = (0..20).map(|i| format!(" a{i}=\"\"")).collect();
        for repeated in [" a3=\"\"", " a19=\"\""] {
            let doc = format!(
                r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"{many}{repeated}/>"#
            );
            assert_eq!(
                why(&doc),
                "not well-formed XML: ill-formed markup",
                "{repeated}"
            );
        }
        let fine =
            format!(r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"{many}/>"#);
        assert_eq!(sniff(fine.as_bytes()).unwrap(), SoapVersion::V12);
        assert_eq!(why(""), "empty or truncated document");
        assert_eq!(why("<a"), "not well-formed XML: syntax error");
        // A DOCTYPE is refused in the envelope's version.
        assert_eq!(
            sniff(br#"<!DOCTYPE x><Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"/>"#),
            Err(NotSoap::Doctype(SoapVersion::V11))
        );
    }
}

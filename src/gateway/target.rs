//! What a request asks for, read once off its head: the target (an AMC service or the annuaire,
//! from the path as sent, refused when it could mean another path), the SOAP version its faults
//! speak before the body is read, its deadline, and whether its body comes uncompressed.

use std::time::Duration;

use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::HeaderMap;

use crate::fault::{Fault, FaultCode};
use crate::soap::{self, SoapVersion};

/// Header by which an SIH may shorten a request's deadline (milliseconds).
pub const DEADLINE_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static(DEADLINE_NAME);
/// Its name, as the listener's gate looks it up in a head not yet parsed.
pub const DEADLINE_NAME: &str = "x-rocgw-deadline-ms";

/// What the SIH asked for, read off the path.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Amc {
        amc: &'a str,
        /// Lower case: the one spelling of the service that routing, metrics and the audit
        /// log use, whatever the SIH typed (`IDB`, `Idb`).
        service: String,
    },
    /// The path below `/annuaire`, passed on to the annuaire as it is (only once
    /// [`refused_path`] found nothing to refuse in it).
    Annuaire { suffix: &'a str },
}

impl Target<'_> {
    /// The `route` metric label.
    pub fn route(&self) -> &'static str {
        match self {
            Target::Amc { .. } => "amc",
            Target::Annuaire { .. } => "annuaire",
        }
    }
}

/// `POST /amc/{numero_amc}/{service}` or `POST /annuaire[/…]`, read off the raw request target
/// (the listener passes the path as the SIH sent it, undecoded and unnormalised). `Err` says why there
/// is no target: no such route, or a path refused by [`refused_path`].
pub fn target(path: &str) -> Result<Target<'_>, &'static str> {
    const NO_ROUTE: &str = "use POST /amc/{numero_amc}/{service} or POST /annuaire";
    if let Some(why) = refused_path(path) {
        return Err(why);
    }
    if let Some(suffix) = path.strip_prefix("/annuaire") {
        if suffix.is_empty() || suffix.starts_with('/') {
            return Ok(Target::Annuaire { suffix });
        }
        return Err(NO_ROUTE);
    }
    let rest = path.strip_prefix("/amc/").ok_or(NO_ROUTE)?;
    let (amc, service) = rest.split_once('/').ok_or(NO_ROUTE)?;
    let service = service.strip_suffix('/').unwrap_or(service);
    if amc.is_empty() || service.is_empty() || service.contains('/') {
        return Err(NO_ROUTE);
    }
    Ok(Target::Amc {
        amc,
        service: service.to_ascii_lowercase(),
    })
}

/// Why a path must not go further, if it must not: what the annuaire (or a server in front of
/// it) could read as another path than the one rocgw routed — a `.` or `..` segment (also
/// `..;x`, the form some servlet containers strip to `..`), an encoded dot, slash, backslash or
/// percent sign (`%2e`, `%2f`, `%5c`, `%25`, any case), a backslash, or an empty segment (`//`;
/// one trailing `/` is allowed). Applies to every route, though only `/annuaire` forwards its
/// path.
pub fn refused_path(path: &str) -> Option<&'static str> {
    if path.contains('\\') {
        return Some("a backslash in the path");
    }
    if path.contains('%') && {
        let lower = path.to_ascii_lowercase();
        ["%2e", "%2f", "%5c", "%25"]
            .iter()
            .any(|e| lower.contains(e))
    } {
        return Some("an encoded dot, slash, backslash or percent sign in the path");
    }
    let body = path.strip_prefix('/').unwrap_or(path);
    let body = body.strip_suffix('/').unwrap_or(body);
    for segment in body.split('/') {
        // `..;x` is `..` to servers that strip path parameters; `;x` is then empty.
        let name = segment.split(';').next().unwrap_or("");
        if name == "." || name == ".." {
            return Some("a dot segment (. or ..) in the path");
        }
        if name.is_empty() && !body.is_empty() {
            return Some("an empty segment (//) in the path");
        }
    }
    None
}

/// The SOAP version a fault is written in before the body has been read: the SOAP 1.1 binding
/// sends `text/xml`, SOAP 1.2 `application/soap+xml`. Otherwise (MTOM's `multipart/related`,
/// a missing or odd type) SOAP 1.1 when the type names `text/xml` as the envelope's
/// (`start-info`, `type`) or a `SOAPAction` field came (SOAP 1.2 has none); else SOAP 1.2.
pub fn version_hint(headers: &HeaderMap) -> SoapVersion {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start();
    let starts = |p: &str| ct.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    if starts("text/xml") {
        return SoapVersion::V11;
    }
    if starts("application/soap+xml") {
        return SoapVersion::V12;
    }
    let lower = ct.to_ascii_lowercase();
    let names_soap11 = lower.contains("\"text/xml\"") || lower.contains("=text/xml");
    if names_soap11 || headers.contains_key("soapaction") {
        SoapVersion::V11
    } else {
        soap::DEFAULT_FAULT_VERSION
    }
}

/// A body rocgw can read: a bare envelope, refused before it is read otherwise.
///
/// - Without a content coding (`identity`, or a value that names none, passes): a compressed
///   envelope cannot be parsed, stamped or passed on as it is (only the headers of the call
///   go upstream).
/// - Not a MIME multipart (MTOM/XOP, SOAP with attachments): its envelope is one part among
///   others, under a boundary, which rocgw neither stamps nor passes on as such.
pub fn plain_body(headers: &HeaderMap) -> Result<(), Fault> {
    let coding = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .find_map(|v| crate::http1::coded(v.as_bytes()));
    if let Some(coding) = coding {
        return Err(Fault::with_detail(
            FaultCode::UnsupportedEncoding,
            format!(
                "Content-Encoding: {}: send the envelope uncompressed",
                shown(&String::from_utf8_lossy(coding))
            ),
        ));
    }
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if media
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
    {
        return Err(Fault::with_detail(
            FaultCode::NotSoap,
            format!(
                "Content-Type: {} (MTOM/XOP or SOAP with attachments): rocgw takes a bare \
                 SOAP envelope; turn MTOM off in the SIH's SOAP stack",
                shown(media)
            ),
        ));
    }
    Ok(())
}

/// A header value as a fault detail shows it: 32 printable ASCII characters at most.
fn shown(value: &str) -> String {
    value
        .chars()
        .take(32)
        .filter(char::is_ascii_graphic)
        .collect()
}

/// The request's deadline: `configured`, shortened by `X-Rocgw-Deadline-Ms`.
pub fn deadline(headers: &HeaderMap, configured: Duration) -> Result<Duration, Fault> {
    let Some(v) = headers.get(&DEADLINE_HEADER) else {
        return Ok(configured);
    };
    match deadline_value(v.as_bytes()) {
        Some(asked) => Ok(configured.min(asked)),
        _ => Err(Fault::with_detail(
            FaultCode::NotFound,
            "X-Rocgw-Deadline-Ms: a whole number of milliseconds greater than 0",
        )),
    }
}

/// The deadline a request asks for in `X-Rocgw-Deadline-Ms`: a whole number of milliseconds
/// greater than 0, else `None`.
pub fn deadline_value(v: &[u8]) -> Option<Duration> {
    let ms = std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_targets() {
        assert_eq!(
            target("/amc/12345678/idb"),
            Ok(Target::Amc {
                amc: "12345678",
                service: "idb".into()
            })
        );
        assert_eq!(
            target("/amc/12345678/CLC/"),
            Ok(Target::Amc {
                amc: "12345678",
                service: "clc".into()
            })
        );
        assert_eq!(target("/annuaire"), Ok(Target::Annuaire { suffix: "" }));
        assert_eq!(target("/annuaire/"), Ok(Target::Annuaire { suffix: "/" }));
        assert_eq!(
            target("/annuaire/search"),
            Ok(Target::Annuaire { suffix: "/search" })
        );
        assert_eq!(
            target("/annuaire/v1/search.do;jsessionid=1"),
            Ok(Target::Annuaire {
                suffix: "/v1/search.do;jsessionid=1"
            })
        );
        for none in [
            "/annuairex",
            "/amc/12345678",
            "/amc//idb",
            "/amc/1/idb/x",
            "/",
        ] {
            assert!(target(none).is_err(), "{none}");
        }
    }

    #[test]
    fn paths_that_could_mean_another_path_are_refused() {
        for bad in [
            "/annuaire/..",
            "/annuaire/../../amc/x",
            "/annuaire/./search",
            "/annuaire/%2e%2e/amc",
            "/annuaire/%2E%2E/amc",
            "/annuaire/.%2e/amc",
            "/annuaire/x%2fy",
            "/annuaire/x%2F..%2Fy",
            "/annuaire/x%5cy",
            "/annuaire/%252e%252e/x",
            "/annuaire/..;/amc/x",
            "/annuaire/.;x/y",
            "/annuaire/;x/amc",
            "/annuaire//amc/x",
            "/annuaire/x//",
            "/annuaire\\..\\amc",
            "/amc/../idb",
            "/amc/..;/idb",
            "/amc/%2e%2e/idb",
            "//annuaire",
        ] {
            assert!(refused_path(bad).is_some(), "{bad}");
            assert!(target(bad).is_err(), "{bad}");
        }
        for good in [
            "/annuaire",
            "/annuaire/",
            "/annuaire/a.b/..c/x..",
            "/amc/1/idb/",
        ] {
            assert_eq!(refused_path(good), None, "{good}");
        }
    }

    #[test]
    fn only_an_uncompressed_body_is_read() {
        let with = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(CONTENT_ENCODING, v.parse().unwrap());
            }
            plain_body(&h).map_err(|f| (f.code, f.detail.unwrap_or_default()))
        };
        assert_eq!(with(&[]), Ok(()));
        assert_eq!(with(&["identity"]), Ok(()));
        assert_eq!(with(&["Identity, "]), Ok(()));
        // A value that names no coding, sent by mistake on a plain body.
        assert_eq!(with(&["UTF-8"]), Ok(()));
        for sent in [&["gzip"][..], &["identity, br"], &["identity", "deflate"]] {
            let (code, detail) = with(sent).unwrap_err();
            assert_eq!(code, FaultCode::UnsupportedEncoding, "{sent:?}");
            let coding = sent.last().unwrap().rsplit(' ').next().unwrap();
            assert!(
                detail.contains(&format!("Content-Encoding: {coding}")),
                "{detail}"
            );
        }
    }

    #[test]
    fn a_multipart_body_is_refused_naming_mtom() {
        let with = |ct: &str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            plain_body(&h).map_err(|f| (f.code, f.detail.unwrap_or_default()))
        };
        for ct in [
            r#"multipart/related; type="application/xop+xml"; boundary=b"#,
            " Multipart/Related;boundary=b",
            "multipart/form-data; boundary=x",
        ] {
            let (code, detail) = with(ct).unwrap_err();
            assert_eq!(code, FaultCode::NotSoap, "{ct}");
            assert!(detail.contains("MTOM"), "{detail}");
            let media = ct.split(';').next().unwrap().trim();
            assert!(
                detail.contains(&format!("Content-Type: {media} ")),
                "{detail}"
            );
        }
        for ct in [
            "application/soap+xml; charset=utf-8",
            "text/xml",
            "application/xml",
            "",
        ] {
            assert_eq!(with(ct), Ok(()), "{ct}");
        }
    }

    #[test]
    fn faults_before_the_body_follow_the_content_type() {
        let mut h = HeaderMap::new();
        assert_eq!(version_hint(&h), SoapVersion::V12);
        h.insert(CONTENT_TYPE, "Text/XML; charset=utf-8".parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V11);
        h.insert(CONTENT_TYPE, "application/soap+xml".parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V12);
        // MTOM names the envelope's type among its parameters.
        let mtom = r#"multipart/related; type="application/xop+xml"; start-info="#;
        h.insert(CONTENT_TYPE, format!("{mtom}\"text/xml\"").parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V11);
        h.insert(
            CONTENT_TYPE,
            format!("{mtom}\"application/soap+xml\"").parse().unwrap(),
        );
        assert_eq!(version_hint(&h), SoapVersion::V12);
        // Only SOAP 1.1 sends a SOAPAction field; the type, when it says, wins.
        h.insert("soapaction", "\"urn:idb\"".parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V11);
        h.insert(CONTENT_TYPE, "application/soap+xml".parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V12);
        h.remove(CONTENT_TYPE);
        assert_eq!(version_hint(&h), SoapVersion::V11);
    }
}

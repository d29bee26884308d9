//! The upstream hop: the SIH's (stamped) body sent to the AMC or the annuaire with only the
//! headers that belong to the call, and the answer brought back as it came (but for the charset
//! of a verified one); an error page that is not SOAP becomes an `…-unavailable` fault. The AMC's
//! own SOAP faults pass untouched.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, ACCEPT_LANGUAGE, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, Request, Response, Uri};

use crate::breaker::Open;
use crate::budget::Budget;
use crate::fault::{Fault, FaultCode};
use crate::listener::HttpResponse;
use crate::soap::SoapVersion;
use crate::upstream::{Upstream, UpstreamError};
use crate::wssec::{media, Charset};

/// Request headers passed on to the upstream; everything else (the local bearer token above
/// all) stays here. Content-Type and SOAPAction are single values: the first, the one rocgw
/// read (a second one would let the AMC read another request than rocgw did); the lists, all.
const FORWARDED_SINGLE: [HeaderName; 2] = [CONTENT_TYPE, HeaderName::from_static("soapaction")];
const FORWARDED_LISTS: [HeaderName; 2] = [ACCEPT, ACCEPT_LANGUAGE];

/// The annuaire URL with the path below `/annuaire` appended and the SIH's query string.
pub fn join(base: &Uri, suffix: &str, query: Option<&str>) -> Result<Uri, Fault> {
    // `/annuaire` itself, no query: the base as configured (unless a trailing `/` goes).
    if suffix.is_empty() && query.is_none() && (base.path() == "/" || !base.path().ends_with('/')) {
        return Ok(base.clone());
    }
    let mut path = base.path().trim_end_matches('/').to_string();
    path.push_str(suffix);
    if path.is_empty() {
        path.push('/');
    }
    if let Some(q) = query.or(base.query()) {
        path.push('?');
        path.push_str(q);
    }
    let mut parts = base.clone().into_parts();
    parts.path_and_query =
        Some(path.parse().map_err(|_| {
            Fault::with_detail(FaultCode::NotFound, "invalid path below /annuaire")
        })?);
    Uri::from_parts(parts).map_err(|_| Fault::new(FaultCode::Internal))
}

/// What an answer's bytes (in the encoding its HTTP `charset` names, if any) must pass before
/// they reach the SIH (the AMC's response signature), and the encoding the bytes were verified
/// in, when a signature was.
pub type Check<'a> = &'a (dyn Fn(&[u8], Option<Charset>) -> Result<Option<Charset>, Fault> + Sync);

/// Sends the SIH's body to `url` through `up` and returns the upstream's answer as it came:
/// status, content type and body (SOAP faults of the AMC pass through untouched), once `check`
/// passed on the exact bytes that are passed on. A non-2xx answer that is not SOAP becomes an
/// `…-unavailable` fault. The `Content-Type` of an answer whose signature was verified names
/// the encoding it was verified in ([`media::say_charset`]).
pub async fn forward(
    up: &Upstream,
    url: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    budget: &Budget,
    check: Option<Check<'_>>,
) -> Result<HttpResponse, Fault> {
    let mut req = Request::new(body);
    *req.method_mut() = Method::POST;
    *req.uri_mut() = url.clone();
    let out = req.headers_mut();
    out.reserve(FORWARDED_SINGLE.len() + FORWARDED_LISTS.len() + 1);
    for name in FORWARDED_SINGLE {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    for name in FORWARDED_LISTS {
        for v in headers.get_all(&name) {
            out.append(name.clone(), v.clone());
        }
    }
    out.insert(
        USER_AGENT,
        HeaderValue::from_static(crate::upstream::USER_AGENT),
    );
    match up.send_within(req, Some(budget)).await {
        // An error page (a load balancer's 502/503 HTML, an empty 500) is not the AMC's answer:
        // the SIH gets a SOAP fault that says what came back.
        Ok(r) if !r.status.is_success() && crate::soap::sniff(&r.body).is_err() => {
            let detail = format!(
                "the {} answered HTTP {} without a SOAP envelope",
                up.kind().label(),
                r.status.as_u16()
            );
            tracing::warn!(upstream = up.kind().label(), host = %host(url), status = r.status.as_u16(), "upstream error without SOAP");
            Err(Fault::with_detail(up.kind().unavailable(), detail))
        }
        Ok(r) => {
            let verified_in = match check {
                Some(check) => check(&r.body, media::charset_in(&r.headers))?,
                None => None,
            };
            // The upstream kept only the fields passed back (`upstream::KEPT_HEADERS`).
            let mut headers = r.headers;
            if let Some(charset) = verified_in {
                // The SIH then decodes the characters whose signature was checked. The SOAP
                // version's media type stands in for a type that is none (read only then).
                let essence = || {
                    crate::soap::sniff(&r.body)
                        .unwrap_or(SoapVersion::V12)
                        .media_type()
                };
                if media::say_charset(&mut headers, charset, essence) {
                    tracing::debug!(
                        charset = charset.name(),
                        "answer's charset set to the encoding verified"
                    );
                }
            }
            // The answer keeps its share of the memory budget until its last byte is written.
            let mut resp = Response::new(crate::budget::holding(r.body, r.held));
            *resp.status_mut() = r.status;
            *resp.headers_mut() = headers;
            Ok(resp)
        }
        Err(UpstreamError {
            code,
            reason,
            detail,
        }) => {
            tracing::warn!(upstream = up.kind().label(), host = %host(url), reason = reason.as_str(), detail = %detail, "upstream failure");
            // No Retry-After on an answer refused for memory: the AMC may have acted on the call.
            Err(Fault::with_detail(code, detail))
        }
    }
}

/// The host of `url`, for a log line.
fn host(url: &Uri) -> &str {
    url.host().unwrap_or("")
}

/// The fault of a call refused because the endpoint's circuit is open, with its Retry-After.
pub fn circuit_open(key: &str, open: &Open) -> Fault {
    let retry_in = open.retry_in.as_secs().max(1);
    let mut f = Fault::with_detail(
        FaultCode::AmcUnavailable,
        format!(
            "circuit open for {key} after {} consecutive failures: next try in {retry_in} s",
            open.failures
        ),
    );
    f.retry_after = Some(retry_in as u32);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annuaire_urls_join_the_path_below_annuaire_and_the_sih_query() {
        let j = |base: &str, suffix: &str, q: Option<&str>| {
            join(&base.parse().unwrap(), suffix, q).unwrap().to_string()
        };
        let base = "https://annuaire.example:8443/ws/annuaire";
        assert_eq!(j(base, "", None), base);
        assert_eq!(j(&format!("{base}/"), "", None), base);
        assert_eq!(
            j(&format!("{base}/"), "/x", Some("a=1")),
            format!("{base}/x?a=1")
        );
        assert_eq!(j(&format!("{base}?k=v"), "", None), format!("{base}?k=v"));
        assert_eq!(
            j(&format!("{base}?k=v"), "", Some("a=1")),
            format!("{base}?a=1")
        );
        assert_eq!(j("https://h:1/", "", None), "https://h:1/");
        assert_eq!(j("https://h:1/", "/s", None), "https://h:1/s");
    }
}

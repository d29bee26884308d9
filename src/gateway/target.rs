//! What a request asks for, read once off its head: the target (an AMC service or the annuaire),
//! the SOAP version its faults speak before the body is read, and its deadline.

use std::time::Duration;

use hyper::header::CONTENT_TYPE;
use hyper::HeaderMap;

use crate::fault::{Fault, FaultCode};
use crate::soap::{self, SoapVersion};

/// Header by which an SIH may shorten a request's deadline (milliseconds).
pub const DEADLINE_HEADER: &str = "x-rocgw-deadline-ms";

/// What the SIH asked for, read off the path.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    Amc {
        amc: &'a str,
        service: &'a str,
    },
    /// The path below `/annuaire`, passed on to the annuaire as it is.
    Annuaire {
        suffix: &'a str,
    },
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

/// `POST /amc/{numero_amc}/{service}` or `POST /annuaire[/…]`; anything else is no target.
pub fn target(path: &str) -> Option<Target<'_>> {
    if let Some(suffix) = path.strip_prefix("/annuaire") {
        if suffix.is_empty() || suffix.starts_with('/') {
            return Some(Target::Annuaire { suffix });
        }
        return None;
    }
    let rest = path.strip_prefix("/amc/")?;
    let (amc, service) = rest.split_once('/')?;
    let service = service.strip_suffix('/').unwrap_or(service);
    if amc.is_empty() || service.is_empty() || service.contains('/') {
        return None;
    }
    Some(Target::Amc { amc, service })
}

/// The SOAP version a fault is written in before the body has been read: the SOAP 1.1 binding
/// sends `text/xml`, SOAP 1.2 `application/soap+xml`; anything else gets SOAP 1.2.
pub fn version_hint(headers: &HeaderMap) -> SoapVersion {
    let ct = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start();
    if ct
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("text/xml"))
    {
        SoapVersion::V11
    } else {
        soap::DEFAULT_FAULT_VERSION
    }
}

/// The request's deadline: `configured`, shortened by `X-Rocgw-Deadline-Ms`.
pub fn deadline(headers: &HeaderMap, configured: Duration) -> Result<Duration, Fault> {
    let Some(v) = headers.get(DEADLINE_HEADER) else {
        return Ok(configured);
    };
    match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(ms) if ms > 0 => Ok(configured.min(Duration::from_millis(ms))),
        _ => Err(Fault::with_detail(
            FaultCode::NotFound,
            "X-Rocgw-Deadline-Ms: a whole number of milliseconds greater than 0",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_targets() {
        assert_eq!(
            target("/amc/12345678/idb"),
            Some(Target::Amc {
                amc: "12345678",
                service: "idb"
            })
        );
        assert_eq!(
            target("/amc/12345678/CLC/"),
            Some(Target::Amc {
                amc: "12345678",
                service: "CLC"
            })
        );
        assert_eq!(target("/annuaire"), Some(Target::Annuaire { suffix: "" }));
        assert_eq!(
            target("/annuaire/search"),
            Some(Target::Annuaire { suffix: "/search" })
        );
        assert_eq!(target("/annuairex"), None);
        assert_eq!(target("/amc/12345678"), None);
        assert_eq!(target("/amc//idb"), None);
        assert_eq!(target("/amc/1/idb/x"), None);
    }

    #[test]
    fn faults_before_the_body_follow_the_content_type() {
        let mut h = HeaderMap::new();
        assert_eq!(version_hint(&h), SoapVersion::V12);
        h.insert(CONTENT_TYPE, "Text/XML; charset=utf-8".parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V11);
        h.insert(CONTENT_TYPE, "application/soap+xml".parse().unwrap());
        assert_eq!(version_hint(&h), SoapVersion::V12);
    }
}

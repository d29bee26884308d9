//! Where an AMC call goes: static routes first (`[routes]` win), then an explicit endpoint when
//! the SIH names one and the configuration allows it, then the annuaire (through the cache).
//! Every endpoint must be `https`, well-formed and, when `[amc] endpoint_hosts` is set, on an
//! allowed host; its certificate is checked against the IGC OSI anchors when rocgw connects.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Uri};

use crate::annuaire::{self, parse_search_response, search_request, Answer, Directory, Lookup};
use crate::config::Config;
use crate::fault::{Fault, FaultCode};
use crate::runtime::Runtime;

/// Optional request headers carrying the annuaire's other routing keys.
pub const ROUTING_HEADERS: [(&str, &str); 3] = [
    ("x-rocgw-convention", "code_type_convention"),
    ("x-rocgw-csr", "code_csr"),
    ("x-rocgw-domaine", "domaine_conventionnel"),
];

/// Header naming the endpoint, for SIH software that already knows it (`[amc]
/// explicit_endpoints = true`).
pub const ENDPOINT_HEADER: &str = "x-rocgw-endpoint";

/// Resolves `(AMC, service)` to an endpoint.
#[derive(Debug)]
pub struct Router {
    services: Vec<String>,
    routes: BTreeMap<String, BTreeMap<String, Uri>>,
    /// One annuaire cache per structure: answers may differ with the AUTH_CLI that asked.
    directories: BTreeMap<String, Arc<Directory>>,
    explicit: bool,
    hosts: Vec<String>,
}

impl Router {
    pub fn new(cfg: &Config, runtime: &Arc<Runtime>) -> Router {
        let mut directories = BTreeMap::new();
        for id in runtime.structures().map(|s| s.id.clone()) {
            let Some(a) = &cfg.annuaire else { break };
            let rt = runtime.clone();
            let who = a.directory.requester.clone();
            let structure = id.clone();
            let fetch: annuaire::Fetch = Arc::new(move |key: Lookup| {
                let (rt, who, structure) = (rt.clone(), who.clone(), structure.clone());
                Box::pin(async move { call(&rt, &structure, &who, &key).await })
            });
            directories.insert(id, Directory::new(a.directory.clone(), fetch));
        }
        Router {
            services: cfg.services.clone(),
            routes: cfg.routes.clone(),
            directories,
            explicit: cfg.amc.explicit_endpoints,
            hosts: cfg.amc.endpoint_hosts.clone(),
        }
    }

    /// Metric labels that stay bounded: the AMC number when it is configured or found by the
    /// annuaire, else `other`; the service (lower-cased by `target`) when it is configured,
    /// else `other`.
    pub fn labels<'a>(&self, amc: &'a str, service: &'a str) -> (&'a str, &'a str) {
        let service = if self.services.iter().any(|s| s == service) {
            service
        } else {
            "other"
        };
        (self.amc_label(amc), service)
    }

    /// The AMC's metric label alone (`labels`).
    pub fn amc_label<'a>(&self, amc: &'a str) -> &'a str {
        let known =
            self.routes.contains_key(amc) || self.directories.values().any(|d| d.knows(amc));
        if known {
            amc
        } else {
            "other"
        }
    }

    /// The annuaire caches, one per structure, when an annuaire is configured.
    pub fn directories(&self) -> Vec<Arc<Directory>> {
        self.directories.values().cloned().collect()
    }

    /// The endpoint of `service` at AMC `amc` for `structure`, given the SIH's request headers.
    pub async fn resolve(
        &self,
        structure: &str,
        amc: &str,
        service: &str,
        headers: &HeaderMap,
    ) -> Result<Uri, Fault> {
        // `service` comes lower-cased from `target`.
        if !self.services.iter().any(|s| s == service) {
            return Err(Fault::with_detail(
                FaultCode::UnknownService,
                format!("known services: {}", self.services.join(", ")),
            ));
        }
        if let Some(url) = self.routes.get(amc).and_then(|s| s.get(service)) {
            return Ok(url.clone());
        }
        if let Some(v) = headers.get(ENDPOINT_HEADER) {
            if !self.explicit {
                return Err(Fault::with_detail(
                    FaultCode::NotFound,
                    "X-Rocgw-Endpoint is not accepted here ([amc] explicit_endpoints = false)",
                ));
            }
            let url = v.to_str().unwrap_or("");
            return endpoint_allowed(url, &self.hosts).map_err(|why| {
                tracing::warn!(amc, service = %service, reason = %why, "explicit endpoint refused");
                Fault::with_detail(
                    FaultCode::NotFound,
                    format!("X-Rocgw-Endpoint refused: {why}"),
                )
            });
        }
        if !crate::config::is_amc_number(amc) {
            return Err(Fault::with_detail(
                FaultCode::UnknownAmc,
                "an AMC number is made of 1 to 16 digits",
            ));
        }
        let Some(directory) = self.directories.get(structure) else {
            return Err(if self.routes.contains_key(amc) {
                Fault::with_detail(
                    FaultCode::UnknownService,
                    format!("this AMC's static routes have no {service} endpoint (and no annuaire is configured)"),
                )
            } else {
                Fault::with_detail(
                    FaultCode::UnknownAmc,
                    "no route for this AMC number (and no annuaire configured)",
                )
            });
        };
        let mut key = Lookup {
            numero_amc: amc.to_string(),
            code_service: service.to_string(),
            ..Lookup::default()
        };
        for (header, field) in ROUTING_HEADERS {
            let Some(v) = headers.get(header) else {
                continue;
            };
            let v = v.to_str().unwrap_or("").trim();
            if v.is_empty()
                || v.len() > 32
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Fault::with_detail(
                    FaultCode::NotFound,
                    format!("{header}: 1 to 32 letters, digits, '-' or '_'"),
                ));
            }
            let slot = match field {
                "code_type_convention" => &mut key.code_type_convention,
                "code_csr" => &mut key.code_csr,
                _ => &mut key.domaine_conventionnel,
            };
            *slot = v.to_string();
        }
        let answer = directory.resolve(key).await.map_err(|e| {
            Fault::with_detail(
                FaultCode::AnnuaireUnavailable,
                format!("annuaire lookup: {e}"),
            )
        })?;
        let entry = match &*answer {
            Answer::UnknownAmc => {
                return Err(Fault::with_detail(
                    FaultCode::UnknownAmc,
                    "the annuaire does not know this AMC",
                ))
            }
            Answer::Found(e) => e,
        };
        let Some((_, url)) = entry.services.iter().find(|(s, _)| *s == service) else {
            return Err(Fault::with_detail(
                FaultCode::UnknownService,
                format!("the annuaire lists no {service} endpoint for this AMC"),
            ));
        };
        endpoint_allowed(url, &self.hosts).map_err(|why| {
            tracing::warn!(amc, service = %service, reason = %why, "annuaire endpoint refused");
            Fault::with_detail(
                FaultCode::AmcUnavailable,
                format!("the annuaire's address for this service was refused: {why}"),
            )
        })
    }
}

/// An endpoint rocgw may send to: an `https` URL with a host, on an allowed host when
/// `hosts` is not empty (`host` exactly, or `*.domain` for any host below `domain`).
pub fn endpoint_allowed(url: &str, hosts: &[String]) -> Result<Uri, String> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|_| "not a valid URL".to_string())?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "only https endpoints are used (got {})",
            uri.scheme_str().unwrap_or("no scheme")
        ));
    }
    let Some(host) = uri.host().filter(|h| !h.is_empty()) else {
        return Err("no host".into());
    };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("credentials in the URL".into());
    }
    let host = host.to_ascii_lowercase();
    if !hosts.is_empty()
        && !hosts.iter().any(|h| match h.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
            None => *h == host,
        })
    {
        return Err(format!("host {host} is not in [amc] endpoint_hosts"));
    }
    Ok(uri)
}

/// One lookup over the annuaire's mutual-TLS client of `structure` (its AUTH_CLI).
async fn call(
    rt: &Runtime,
    structure: &str,
    who: &crate::config::Requester,
    key: &Lookup,
) -> Result<Answer, String> {
    let count = |o: &str| {
        crate::metrics::get()
            .annuaire_calls
            .with_label_values(&[o])
            .inc()
    };
    let upstreams = rt.upstreams();
    let Some((up, url)) = &upstreams.of(structure).annuaire else {
        return Err("no annuaire configured".into());
    };
    let body = search_request(who, key, crate::clock::now_unix());
    let req = Request::post(url.clone())
        .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .header("soapaction", crate::annuaire::SEARCH_ACTION)
        .header(http::header::USER_AGENT, crate::upstream::USER_AGENT)
        .body(Bytes::from(body))
        .map_err(|e| e.to_string())?;
    let r = match up.send(req).await {
        Ok(r) => r,
        Err(e) => {
            count("error");
            tracing::warn!(reason = e.reason.as_str(), detail = %e.detail, "annuaire unreachable");
            return Err(e.detail);
        }
    };
    if !r.status.is_success() {
        count("error");
        tracing::warn!(status = r.status.as_u16(), "annuaire answered an error");
        return Err(format!("the annuaire answered HTTP {}", r.status.as_u16()));
    }
    match parse_search_response(&r.body, key) {
        Ok(a) => {
            count(match a {
                Answer::Found(_) => "found",
                Answer::UnknownAmc => "unknown-amc",
            });
            Ok(a)
        }
        Err(e) => {
            count("error");
            // Not cached, not used: the lookup fails (`annuaire-unavailable`).
            tracing::warn!(amc = %key.numero_amc, error = %e, "unexpected annuaire answer, refused");
            Err(format!("unexpected answer: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_endpoints_on_allowed_hosts_are_used() {
        let none: Vec<String> = Vec::new();
        assert!(endpoint_allowed("https://amc.example/idb", &none).is_ok());
        for (bad, why) in [
            ("http://amc.example/idb", "only https"),
            ("ftp://amc.example/idb", "only https"),
            ("https:///idb", "not a valid URL"),
            ("not a url", "not a valid URL"),
            ("https://user:pw@amc.example/idb", "credentials"),
        ] {
            let e = endpoint_allowed(bad, &none).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let hosts = vec!["localhost".to_string(), "*.amc.example".to_string()];
        assert!(endpoint_allowed("https://localhost:8581/x", &hosts).is_ok());
        assert!(endpoint_allowed("https://ws.amc.example/x", &hosts).is_ok());
        assert!(endpoint_allowed("https://amc.example/x", &hosts).is_err());
        assert!(endpoint_allowed("https://evilamc.example/x", &hosts).is_err());
        assert!(endpoint_allowed("https://other.test/x", &hosts).is_err());
    }
}

//! `services` and `[routes]`: the services an AMC may offer, and static routes from an AMC
//! number and a service to an https endpoint.

use std::collections::BTreeMap;

use super::{ConfigError, Validator};

/// Services a ROC AMC offers; a route may name others (the list is configuration).
pub const DEFAULT_SERVICES: [&str; 4] = ["idb", "simulation", "clc", "annulation"];

/// AMC number → service → endpoint.
type Routes = BTreeMap<String, BTreeMap<String, http::Uri>>;

/// The services (lowercased) and the routes, whose services must be among them.
pub(super) fn validate(
    v: &Validator<'_>,
    services: Option<Vec<String>>,
    raw: BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(Vec<String>, Routes), ConfigError> {
    let services: Vec<String> = match services {
        Some(s) if s.is_empty() => return Err(v.err("services", "empty list")),
        Some(s) => s.into_iter().map(|s| s.to_ascii_lowercase()).collect(),
        None => DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect(),
    };
    let mut routes = BTreeMap::new();
    for (amc, svcs) in raw {
        if !is_amc_number(&amc) {
            return Err(v.err(
                &format!("routes.{amc}"),
                "an AMC number is made of 1 to 16 digits",
            ));
        }
        let mut m = BTreeMap::new();
        for (svc, url) in svcs {
            let field = format!("routes.{amc}.{svc}");
            let svc = svc.to_ascii_lowercase();
            if !services.contains(&svc) {
                return Err(v.err(
                    &field,
                    format!("unknown service (known: {})", services.join(", ")),
                ));
            }
            m.insert(svc, v.https_uri(&field, &url)?);
        }
        routes.insert(amc, m);
    }
    Ok((services, routes))
}

/// An AMC number: 1 to 16 ASCII digits.
pub fn is_amc_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 16 && s.bytes().all(|b| b.is_ascii_digit())
}

//! Which hospital structure (EJ or EG) a request signs as, and whether its caller may.
//!
//! The rule (README, "Hospital groups"): `X-Rocgw-Structure` names the structure; without it,
//! the caller's default, else the gateway's. An identifier no structure has is
//! `unknown-structure`. The structure must be granted to every identity of the caller (client
//! certificate, named token, Unix user id) by `[[access.grants]]`; an identity without a grant,
//! and a caller with no identity at all (shared token, address only, anonymous loopback), may
//! use only the gateway default. Anything else is `unauthorized`: the fallback never escapes a
//! caller's list.

use std::collections::BTreeMap;

use http::HeaderMap;

use crate::access::Caller;
use crate::config::Grant;
use crate::fault::{Fault, FaultCode};

/// Header by which a request names its structure (`1`+FINESS or `3`+SIRET).
pub const STRUCTURE_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static("x-rocgw-structure");

/// The structures served and who may use which.
#[derive(Debug)]
pub struct Selector {
    known: Vec<String>,
    default: String,
    grants: BTreeMap<String, Grant>,
}

impl Selector {
    pub fn new(known: Vec<String>, default: String, grants: BTreeMap<String, Grant>) -> Self {
        Selector {
            known,
            default,
            grants,
        }
    }

    /// The structure `caller` signs as for a request with `headers`, or the refusal.
    pub fn select(&self, caller: &Caller, headers: &HeaderMap) -> Result<&str, Fault> {
        let grants: Vec<Option<&Grant>> = caller
            .identities
            .iter()
            .map(|i| self.grants.get(i))
            .collect();
        let chosen = match headers.get(&STRUCTURE_HEADER) {
            Some(v) => {
                let asked = v.to_str().unwrap_or("").trim();
                self.known
                    .iter()
                    .find(|k| *k == asked)
                    .ok_or_else(|| {
                        Fault::with_detail(
                            FaultCode::UnknownStructure,
                            format!(
                                "X-Rocgw-Structure: this gateway serves {}",
                                self.known.join(", ")
                            ),
                        )
                    })?
                    .as_str()
            }
            None => grants
                .iter()
                .flatten()
                .find_map(|g| g.default.as_deref())
                .unwrap_or(&self.default),
        };
        let allows = |g: &Option<&Grant>| match g {
            Some(g) => g.structures.iter().any(|s| s == chosen),
            None => chosen == self.default,
        };
        let allowed = if grants.is_empty() {
            chosen == self.default
        } else {
            grants.iter().all(allows)
        };
        if allowed {
            Ok(chosen)
        } else {
            Err(Fault::with_detail(
                FaultCode::Unauthorized,
                format!("{} may not sign as structure {chosen}", caller.name),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> Selector {
        let grant = |s: &[&str], d: Option<&str>| Grant {
            structures: s.iter().map(|x| x.to_string()).collect(),
            default: d.map(str::to_string),
        };
        Selector::new(
            vec![
                "1000000001".into(),
                "1000000002".into(),
                "1000000003".into(),
            ],
            "1000000001".into(),
            BTreeMap::from([
                (
                    "token:both".to_string(),
                    grant(&["1000000001", "1000000002"], None),
                ),
                (
                    "token:second".to_string(),
                    grant(&["1000000002"], Some("1000000002")),
                ),
                ("cert:SIH".to_string(), grant(&["1000000001"], None)),
            ]),
        )
    }

    fn caller(ids: &[&str]) -> Caller {
        Caller {
            name: (*ids.first().unwrap_or(&"ip:127.0.0.1")).into(),
            identities: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pick(c: &Caller, header: Option<&str>) -> Result<String, FaultCode> {
        let mut h = HeaderMap::new();
        if let Some(v) = header {
            h.insert(STRUCTURE_HEADER, v.parse().unwrap());
        }
        selector()
            .select(c, &h)
            .map(str::to_string)
            .map_err(|f| f.code)
    }

    #[test]
    fn the_header_then_the_callers_default_then_the_gateways() {
        assert_eq!(
            pick(&caller(&["token:both"]), Some("1000000002")),
            Ok("1000000002".into())
        );
        assert_eq!(
            pick(&caller(&["token:both"]), None),
            Ok("1000000001".into())
        );
        assert_eq!(
            pick(&caller(&["token:second"]), None),
            Ok("1000000002".into())
        );
        assert_eq!(pick(&caller(&[]), None), Ok("1000000001".into()));
    }

    #[test]
    fn a_structure_outside_every_list_is_refused() {
        let u = Err(FaultCode::Unauthorized);
        // Anonymous and unlisted identities: the gateway default only.
        assert_eq!(pick(&caller(&[]), Some("1000000002")), u);
        assert_eq!(pick(&caller(&["uid:1000"]), Some("1000000002")), u);
        assert_eq!(
            pick(&caller(&["uid:1000"]), Some("1000000001")),
            Ok("1000000001".into())
        );
        // A list without the gateway default: the fallback does not escape it.
        assert_eq!(pick(&caller(&["token:second"]), Some("1000000001")), u);
        // Two identities: each must allow it.
        assert_eq!(
            pick(&caller(&["cert:SIH", "token:both"]), Some("1000000002")),
            u
        );
        assert_eq!(
            pick(&caller(&["cert:SIH", "token:both"]), None),
            Ok("1000000001".into())
        );
        // Unknown before unauthorized.
        assert_eq!(
            pick(&caller(&[]), Some("1999999999")),
            Err(FaultCode::UnknownStructure)
        );
    }
}

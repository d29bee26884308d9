//! Local access control: who may ask rocgw to sign on the hospital's behalf.
//!
//! Listeners bind loopback by default. Any other address needs at least one caller check: a
//! bearer token (compared in constant time) or an allowlist of client networks. When both are
//! configured, a caller must pass both.

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::{constant_time, digest};
use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;
use ipnet::IpNet;

use crate::config::AccessConfig;
use crate::fault::{Fault, FaultCode};

/// Refuses a listen address that is reachable from other machines unless a caller check exists.
pub fn check_bind(addr: SocketAddr, access: &AccessConfig) -> Result<(), String> {
    if addr.ip().is_loopback() || access.has_caller_check() {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address: configure a caller check first \
             ([access] token_env/token_file or allow_cidrs), or listen on 127.0.0.1"
        ))
    }
}

/// The caller checks of one process, ready for the request path.
#[derive(Clone, Default)]
pub struct Access {
    /// SHA-256 of the expected token: comparing digests keeps the comparison constant-time
    /// whatever the presented token's length.
    token_digest: Option<[u8; 32]>,
    allow: Vec<IpNet>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token_digest.map(|_| "<redacted>"))
            .field("allow", &self.allow)
            .finish()
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Access {
    pub fn new(cfg: &AccessConfig) -> Self {
        Access {
            token_digest: cfg.token.as_ref().map(|t| sha256(t.as_bytes())),
            allow: cfg.allow_cidrs.clone(),
        }
    }

    /// Checks one request. The fault's detail says which check failed, never what was presented.
    pub fn check(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Fault> {
        if !self.allow.is_empty() {
            let peer = canonical(peer);
            if !self.allow.iter().any(|n| n.contains(&peer)) {
                return Err(Fault::with_detail(
                    FaultCode::Unauthorized,
                    "caller address not in access.allow_cidrs",
                ));
            }
        }
        if let Some(expected) = &self.token_digest {
            let presented = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                });
            let Some(presented) = presented else {
                return Err(Fault::with_detail(
                    FaultCode::Unauthorized,
                    "missing bearer token (Authorization: Bearer …)",
                ));
            };
            if constant_time::verify_slices_are_equal(
                &sha256(presented.trim().as_bytes()),
                expected,
            )
            .is_err()
            {
                return Err(Fault::with_detail(
                    FaultCode::Unauthorized,
                    "invalid bearer token",
                ));
            }
        }
        Ok(())
    }
}

/// An IPv4 peer seen through a dual-stack socket is matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn token_and_cidr_are_both_required_when_both_set() {
        let cfg = AccessConfig {
            token: Some(Zeroizing::new("0123456789abcdef-token".into())),
            allow_cidrs: vec!["10.1.0.0/16".parse().unwrap()],
        };
        let a = Access::new(&cfg);
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "10.2.0.1".parse().unwrap();
        let good = headers(Some("Bearer 0123456789abcdef-token"));
        assert!(a.check(inside, &good).is_ok());
        assert!(a.check(outside, &good).is_err());
        assert!(a.check(inside, &headers(None)).is_err());
        assert!(a
            .check(inside, &headers(Some("Bearer 0123456789abcdef-toke")))
            .is_err());
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert!(a.check(mapped, &good).is_ok());
    }

    #[test]
    fn loopback_binds_need_no_check() {
        let none = AccessConfig::default();
        assert!(check_bind("127.0.0.1:0".parse().unwrap(), &none).is_ok());
        assert!(check_bind("[::1]:0".parse().unwrap(), &none).is_ok());
        assert!(check_bind("0.0.0.0:0".parse().unwrap(), &none).is_err());
    }
}

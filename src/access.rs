//! Local access control: who may ask rocgw to sign on the hospital's behalf, and who asked.
//!
//! Listeners bind loopback by default. Any other address needs at least one caller check:
//! client certificates from a local CA (`[server.tls]`), a bearer token (one shared, or one per
//! SIH application in `[[access.callers]]`, compared in constant time), or an allowlist of client
//! networks. A Unix domain socket is guarded by its file mode and, optionally, by the peer's user
//! id. Every configured check applies where it makes sense (networks to TCP callers, user ids to
//! socket callers, tokens to all): a caller must pass them all.
//!
//! A caller that passes gets an identity for the audit log: its certificate's common name, else
//! its token's name, else its user id, else its address.

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::{constant_time, digest};
use http::header::AUTHORIZATION;
use http::HeaderMap;
use ipnet::IpNet;

use crate::config::AccessConfig;
use crate::fault::{Fault, FaultCode};
use crate::listener::Peer;

/// The caller checks of one process, ready for the request path.
#[derive(Clone, Default)]
pub struct Access {
    /// SHA-256 of each accepted token, the caller name it gives (`token:<name>`, made once),
    /// and whether it opens the admin listener only (`admin_only`): comparing digests keeps the
    /// comparison constant-time whatever the presented token's length.
    tokens: Vec<([u8; 32], Arc<str>, bool)>,
    allow: Vec<IpNet>,
    unix_uids: Vec<u32>,
    /// A token identifies its caller when presented, but may be absent (`require_token = false`).
    token_optional: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field(
                "tokens",
                &self
                    .tokens
                    .iter()
                    .map(|(_, n, _)| n.trim_start_matches("token:"))
                    .collect::<Vec<_>>(),
            )
            .field("allow", &self.allow)
            .field("unix_uids", &self.unix_uids)
            .finish()
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The caller name of the shared token: it identifies nobody (no grant can name it).
const SHARED_TOKEN: &str = "token:token";

fn refused(why: &str) -> Fault {
    Fault::with_detail(FaultCode::Unauthorized, why.to_string())
}

impl Access {
    pub fn new(cfg: &AccessConfig) -> Self {
        let mut tokens: Vec<([u8; 32], Arc<str>, bool)> = cfg
            .token
            .iter()
            .map(|t| (sha256(t.as_bytes()), Arc::from(SHARED_TOKEN), false))
            .collect();
        tokens.extend(cfg.callers.iter().map(|(name, t)| {
            let admin_only = cfg.admin_only.contains(name);
            (
                sha256(t.as_bytes()),
                Arc::from(format!("token:{name}")),
                admin_only,
            )
        }));
        Access {
            tokens,
            allow: cfg.allow_cidrs.clone(),
            unix_uids: cfg.unix_uids.clone(),
            token_optional: cfg.token_optional,
        }
    }

    /// `check` for the admin listener, where `admin_only` tokens are accepted too.
    pub fn check_admin(&self, peer: &Peer, headers: &HeaderMap) -> Result<Caller, Fault> {
        self.check_on(peer, headers, true)
    }

    /// Checks one request and names its caller. The fault's detail says which check failed,
    /// never what was presented.
    pub fn check(&self, peer: &Peer, headers: &HeaderMap) -> Result<Caller, Fault> {
        self.check_on(peer, headers, false)
    }

    fn check_on(&self, peer: &Peer, headers: &HeaderMap, admin: bool) -> Result<Caller, Fault> {
        if let Some(ip) = peer.ip() {
            if !self.allow.is_empty() {
                let ip = canonical(ip);
                if !self.allow.iter().any(|n| n.contains(&ip)) {
                    return Err(refused("caller address not in access.allow_cidrs"));
                }
            }
        } else if !self.unix_uids.is_empty()
            && !peer.uid.is_some_and(|u| self.unix_uids.contains(&u))
        {
            return Err(refused("caller user id not in access.unix_uids"));
        }
        let mut token_name = None;
        if !self.tokens.is_empty() {
            let presented = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                });
            match presented {
                None if self.token_optional => {}
                None => return Err(refused("missing bearer token (Authorization: Bearer …)")),
                Some(presented) => {
                    let presented = sha256(presented.trim().as_bytes());
                    // Every token is compared, so the time taken does not say which one came
                    // close.
                    let mut admin_only = false;
                    for (expected, name, only) in &self.tokens {
                        if constant_time::verify_slices_are_equal(&presented, expected).is_ok() {
                            token_name = Some(name.clone());
                            admin_only = *only;
                        }
                    }
                    if token_name.is_none() {
                        return Err(refused("invalid bearer token"));
                    }
                    if admin_only && !admin {
                        return Err(refused(
                            "this token opens the admin listener only (access.callers admin_only)",
                        ));
                    }
                }
            }
        }
        Ok(Caller::new(peer, token_name))
    }
}

/// Who called: the name the audit log gives it, and its identities — the client certificate,
/// the named token and the Unix user id that came with the request — each of which may be
/// granted structures (`[[access.grants]]`). The shared token and a client address identify
/// nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: Arc<str>,
    pub identities: Vec<String>,
}

impl Caller {
    /// `token`: the caller name of the token presented, `token:<name>`.
    fn new(peer: &Peer, token: Option<Arc<str>>) -> Caller {
        let cert = peer.tls_client.as_ref().map(|cn| format!("cert:{cn}"));
        let named = token
            .as_deref()
            .filter(|t| *t != SHARED_TOKEN)
            .map(str::to_string);
        let uid = peer.uid.map(|u| format!("uid:{u}"));
        let name = match (&cert, token) {
            (None, Some(t)) => t,
            // A certificate, or no token: the connection's own name, made once.
            _ => peer
                .name
                .get_or_init(|| Arc::from(connection_name(peer)))
                .clone(),
        };
        Caller {
            name,
            identities: [cert, named, uid].into_iter().flatten().collect(),
        }
    }
}

/// A connection's caller name without a token: its certificate, its user id, its address.
fn connection_name(peer: &Peer) -> String {
    match (&peer.tls_client, peer.uid, peer.ip()) {
        (Some(cn), ..) => format!("cert:{cn}"),
        (None, Some(u), _) => format!("uid:{u}"),
        (None, None, Some(ip)) => format!("ip:{}", canonical(ip)),
        (None, None, None) => "unix".to_string(),
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
    use std::net::SocketAddr;

    use super::*;
    use crate::config::check_bind;
    use zeroize::Zeroizing;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    fn tcp(ip: &str) -> Peer {
        Peer::tcp(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    #[test]
    fn token_and_cidr_are_both_required_when_both_set() {
        let cfg = AccessConfig {
            token: Some(Zeroizing::new("0123456789abcdef-token".into())),
            allow_cidrs: vec!["10.1.0.0/16".parse().unwrap()],
            ..AccessConfig::default()
        };
        let a = Access::new(&cfg);
        let good = headers(Some("Bearer 0123456789abcdef-token"));
        assert_eq!(
            a.check(&tcp("10.1.2.3"), &good).unwrap().name.as_ref(),
            "token:token"
        );
        assert!(a.check(&tcp("10.2.0.1"), &good).is_err());
        assert!(a.check(&tcp("10.1.2.3"), &headers(None)).is_err());
        assert!(a
            .check(
                &tcp("10.1.2.3"),
                &headers(Some("Bearer 0123456789abcdef-toke"))
            )
            .is_err());
        assert!(a.check(&tcp("::ffff:10.1.2.3"), &good).is_ok());
    }

    #[test]
    fn a_connection_is_named_once_for_all_its_requests() {
        let open = Access::new(&AccessConfig::default());
        let peer = tcp("10.1.2.3");
        let first = open.check(&peer.clone(), &headers(None)).unwrap().name;
        let again = open.check(&peer.clone(), &headers(None)).unwrap().name;
        assert_eq!(&*first, "ip:10.1.2.3");
        assert!(
            Arc::ptr_eq(&first, &again),
            "made once, shared by the request copies"
        );
        // Another connection from the same address is named on its own.
        let other = open.check(&tcp("10.1.2.3"), &headers(None)).unwrap().name;
        assert!(!Arc::ptr_eq(&first, &other));
    }

    #[test]
    fn each_caller_is_named_by_its_strongest_credential() {
        let cfg = AccessConfig {
            callers: vec![
                ("dpi".into(), Zeroizing::new("dpi-token-0123456789".into())),
                ("gap".into(), Zeroizing::new("gap-token-0123456789".into())),
            ],
            unix_uids: vec![1001],
            ..AccessConfig::default()
        };
        let a = Access::new(&cfg);
        let gap = headers(Some("Bearer gap-token-0123456789"));
        assert_eq!(
            a.check(&tcp("127.0.0.1"), &gap).unwrap().name.as_ref(),
            "token:gap"
        );
        let mut tls = tcp("127.0.0.1");
        tls.tls_client = Some("SIH DPI".into());
        assert_eq!(a.check(&tls, &gap).unwrap().name.as_ref(), "cert:SIH DPI");
        let sock = |uid| Peer {
            uid: Some(uid),
            ..Peer::default()
        };
        assert_eq!(
            a.check(&sock(1001), &gap).unwrap().name.as_ref(),
            "token:gap"
        );
        let f = a.check(&sock(1002), &gap).unwrap_err();
        assert!(f.detail.unwrap().contains("unix_uids"));
        assert!(a.check(&tcp("127.0.0.1"), &headers(None)).is_err());

        let open = Access::new(&AccessConfig::default());
        assert_eq!(
            open.check(&sock(7), &headers(None)).unwrap().name.as_ref(),
            "uid:7"
        );
        assert_eq!(
            open.check(&tcp("::ffff:127.0.0.1"), &headers(None))
                .unwrap()
                .name
                .as_ref(),
            "ip:127.0.0.1"
        );
    }

    #[test]
    fn identities_are_the_certificate_the_named_token_and_the_user_id() {
        let cfg = AccessConfig {
            token: Some(Zeroizing::new("shared-token-0123456789".into())),
            callers: vec![("gap".into(), Zeroizing::new("gap-token-0123456789".into()))],
            token_optional: true,
            ..AccessConfig::default()
        };
        let a = Access::new(&cfg);
        let mut tls = tcp("127.0.0.1");
        tls.tls_client = Some("SIH DPI".into());
        let gap = headers(Some("Bearer gap-token-0123456789"));
        assert_eq!(
            a.check(&tls, &gap).unwrap().identities,
            ["cert:SIH DPI", "token:gap"]
        );
        let sock = Peer {
            uid: Some(1001),
            ..Peer::default()
        };
        assert_eq!(
            a.check(&sock, &gap).unwrap().identities,
            ["token:gap", "uid:1001"]
        );
        // The shared token and an address identify nobody.
        let shared = headers(Some("Bearer shared-token-0123456789"));
        assert!(a
            .check(&tcp("127.0.0.1"), &shared)
            .unwrap()
            .identities
            .is_empty());
        // An optional token may be absent (anonymous), never wrong.
        let anonymous = a.check(&tcp("127.0.0.1"), &headers(None)).unwrap();
        assert_eq!(
            (&*anonymous.name, anonymous.identities.len()),
            ("ip:127.0.0.1", 0)
        );
        assert!(a
            .check(&tcp("127.0.0.1"), &headers(Some("Bearer nope")))
            .is_err());
        assert!(!cfg.has_caller_check(), "an optional token guards nothing");
    }

    #[test]
    fn loopback_binds_need_no_check() {
        let none = AccessConfig::default();
        assert!(check_bind("127.0.0.1:0".parse().unwrap(), &none, false).is_ok());
        assert!(check_bind("[::1]:0".parse().unwrap(), &none, false).is_ok());
        assert!(check_bind("0.0.0.0:0".parse().unwrap(), &none, false).is_err());
        // Client certificates protect the TLS listener, not the plain admin one.
        let tls = AccessConfig {
            client_certs: true,
            ..AccessConfig::default()
        };
        assert!(check_bind("0.0.0.0:0".parse().unwrap(), &tls, true).is_ok());
        assert!(check_bind("0.0.0.0:0".parse().unwrap(), &tls, false).is_err());
    }
}

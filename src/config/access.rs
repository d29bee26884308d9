//! `[access]`: the caller checks of the gateway's listeners (tokens, client networks, Unix user
//! ids), the rule that a listener reachable from other machines has one, and which hospital
//! structures each identified caller may sign as (`[[access.grants]]`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, Identities, ServerConfig, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    #[serde(default)]
    allow_cidrs: Vec<String>,
    #[serde(default)]
    callers: Vec<RawCaller>,
    #[serde(default)]
    unix_uids: Vec<u32>,
    /// `false`: a token identifies its caller when presented but is not required (the
    /// sandbox); requests without one are anonymous. Not a caller check then.
    require_token: Option<bool>,
    #[serde(default)]
    grants: Vec<RawGrant>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    caller: String,
    structures: Vec<String>,
    default: Option<String>,
}

/// The structures an identified caller may sign as, and the one it uses when it names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub structures: Vec<String>,
    pub default: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaller {
    name: String,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    /// The token opens the admin listener (`/metrics`, `/status`) and nothing else: a
    /// monitoring system's credential, which must not be able to call an AMC.
    admin_only: Option<bool>,
}

/// Caller checks for the listeners. Empty means loopback-only operation.
#[derive(Clone, Default)]
pub struct AccessConfig {
    pub token: Option<Zeroizing<String>>,
    pub allow_cidrs: Vec<IpNet>,
    /// Named tokens, one per SIH application: the name goes to the audit log.
    pub callers: Vec<(String, Zeroizing<String>)>,
    /// Names of the callers whose token opens the admin listener only (`admin_only = true`).
    pub admin_only: Vec<String>,
    /// User ids allowed on the Unix socket (peer credentials); empty: file permissions only.
    pub unix_uids: Vec<u32>,
    /// Client certificates from the local CA are required (`[server.tls]`).
    pub client_certs: bool,
    /// Tokens identify callers but a request may come without one (`require_token = false`).
    pub token_optional: bool,
    /// By caller identity (`cert:<CN>`, `token:<name>`, `uid:<n>`): the structures it may use.
    pub grants: BTreeMap<String, Grant>,
}

impl fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("allow_cidrs", &self.allow_cidrs)
            .field(
                "callers",
                &self.callers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("admin_only", &self.admin_only)
            .field("unix_uids", &self.unix_uids)
            .field("client_certs", &self.client_certs)
            .field("token_optional", &self.token_optional)
            .field("grants", &self.grants)
            .finish()
    }
}

impl AccessConfig {
    /// A check that applies on every listener (client certificates apply to `listen` only).
    pub fn has_caller_check(&self) -> bool {
        let tokens = self.token.is_some() || !self.callers.is_empty();
        (tokens && !self.token_optional) || !self.allow_cidrs.is_empty()
    }
}

/// Refuses a listen address that is reachable from other machines unless a caller check exists
/// on it. Client certificates count only on the listener that has them (`tls_here`): the admin
/// listener is plain HTTP.
pub fn check_bind(addr: SocketAddr, access: &AccessConfig, tls_here: bool) -> Result<(), String> {
    let tls = tls_here && access.client_certs;
    if addr.ip().is_loopback() || access.has_caller_check() || tls {
        Ok(())
    } else {
        Err(format!(
            "{addr} is not a loopback address: configure a caller check first \
             ([access] token_env/token_file, [[access.callers]] or allow_cidrs; \
             [server.tls] client certificates protect server.listen only), or listen on 127.0.0.1"
        ))
    }
}

/// `server` is the validated `[server]`: whether its listeners are guarded depends on both.
pub(super) fn validate(
    v: &Validator<'_>,
    raw: &RawAccess,
    server: &ServerConfig,
) -> Result<AccessConfig, ConfigError> {
    let token = v.token(
        "access",
        raw.token_env.as_deref(),
        raw.token_file.as_deref(),
        false,
    )?;
    let mut allow_cidrs = Vec::new();
    for (i, c) in raw.allow_cidrs.iter().enumerate() {
        let net = c
            .parse::<IpNet>()
            .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                v.err(
                    &format!("access.allow_cidrs[{i}]"),
                    format!("not an IP network (like 10.1.0.0/16): {c:?}"),
                )
            })?;
        allow_cidrs.push(net);
    }
    let callers = callers(v, &raw.callers, token.as_ref())?;
    if !raw.unix_uids.is_empty() && server.unix_socket.is_none() {
        return Err(v.err(
            "access.unix_uids",
            "applies to the Unix socket: set [server] unix_socket, or remove it",
        ));
    }
    let admin_only = raw
        .callers
        .iter()
        .filter(|c| c.admin_only == Some(true))
        .map(|c| c.name.trim().to_string())
        .collect();
    let access = AccessConfig {
        token,
        allow_cidrs,
        callers,
        admin_only,
        unix_uids: raw.unix_uids.clone(),
        client_certs: server.tls.is_some(),
        token_optional: raw.require_token == Some(false),
        grants: BTreeMap::new(),
    };
    for (field, addr, tls_here) in [
        ("server.listen", server.listen, true),
        ("server.admin_listen", server.admin_listen, false),
    ] {
        check_bind(addr, &access, tls_here).map_err(|m| v.err(field, m))?;
    }
    Ok(access)
}

/// The named tokens; `shared` is the `[access]` token, which none of them may repeat.
fn callers(
    v: &Validator<'_>,
    raw: &[RawCaller],
    shared: Option<&Zeroizing<String>>,
) -> Result<Vec<(String, Zeroizing<String>)>, ConfigError> {
    let mut callers: Vec<(String, Zeroizing<String>)> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let field = format!("access.callers[{i}]");
        let name = c.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(v.err(
                &format!("{field}.name"),
                "1 to 64 letters, digits, '-', '_' or '.'",
            ));
        }
        if name == "token" {
            return Err(v.err(
                &format!("{field}.name"),
                "\"token\" names the shared [access] token in the audit log: choose another",
            ));
        }
        if callers.iter().any(|(n, _)| n == name) {
            return Err(v.err(&format!("{field}.name"), format!("{name:?} appears twice")));
        }
        let t = v
            .token(
                &field,
                c.token_env.as_deref(),
                c.token_file.as_deref(),
                true,
            )?
            .expect("required");
        if shared == Some(&t) || callers.iter().any(|(_, o)| *o == t) {
            return Err(v.err(&field, "two callers share a token"));
        }
        callers.push((name.to_string(), t));
    }
    Ok(callers)
}

/// `[[access.grants]]`: each names an identified caller and structures of `[structures.*]`
/// (checked once the structures are known).
pub(super) fn grants(
    v: &Validator<'_>,
    raw: &RawAccess,
    access: &AccessConfig,
    identities: &Identities,
) -> Result<BTreeMap<String, Grant>, ConfigError> {
    let callers = &access.callers;
    let raw = &raw.grants;
    let known: Vec<&str> = identities
        .structures
        .iter()
        .filter_map(|s| s.id.as_deref())
        .collect();
    let mut out = BTreeMap::new();
    for (i, g) in raw.iter().enumerate() {
        let field = format!("access.grants[{i}]");
        if known.is_empty() {
            return Err(v.err(&field, "grants name structures: configure [structures.*]"));
        }
        let caller = g.caller.trim();
        let identified = match caller.split_once(':') {
            Some(("cert", cn)) => !cn.is_empty(),
            Some(("uid", n)) => n.parse::<u32>().is_ok(),
            Some(("token", name)) if access.admin_only.iter().any(|a| a == name) => {
                return Err(v.err(
                    &format!("{field}.caller"),
                    "an admin_only caller opens the admin listener only: it signs as no structure",
                ));
            }
            Some(("token", name)) => callers.iter().any(|(n, _)| n == name),
            _ => false,
        };
        if !identified {
            return Err(v.err(
                &format!("{field}.caller"),
                "cert:<CN>, token:<name of an [[access.callers]]> or uid:<user id> \
                 (the shared token and client addresses do not identify a caller)",
            ));
        }
        if out.contains_key(caller) {
            return Err(v.err(
                &format!("{field}.caller"),
                format!("{caller:?} appears twice"),
            ));
        }
        if g.structures.is_empty() {
            return Err(v.err(
                &format!("{field}.structures"),
                "name at least one structure",
            ));
        }
        for s in &g.structures {
            if !known.contains(&s.as_str()) {
                return Err(v.err(
                    &format!("{field}.structures"),
                    format!("{s:?} is not in [structures.*]"),
                ));
            }
        }
        if let Some(d) = &g.default {
            if !g.structures.contains(d) {
                return Err(v.err(&format!("{field}.default"), "must be one of its structures"));
            }
        }
        let grant = Grant {
            structures: g.structures.clone(),
            default: g.default.clone(),
        };
        out.insert(caller.to_string(), grant);
    }
    Ok(out)
}

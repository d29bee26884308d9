//! `[proxy]`: the outbound HTTP proxy rocgw tunnels its TLS connections through, and the hosts it
//! reaches directly.

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{ConfigError, Validator};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    url: String,
    credentials_env: Option<String>,
    credentials_file: Option<PathBuf>,
    #[serde(default)]
    no_proxy: Vec<String>,
}

/// An outbound HTTP proxy reached with `CONNECT`.
#[derive(Clone)]
pub struct ProxyConfig {
    pub host: String,
    pub port: u16,
    /// `user:password` for Basic proxy authentication.
    pub credentials: Option<Zeroizing<String>>,
    /// Hosts reached directly: exact names, `.suffix` domains, IP addresses or CIDRs, `*`.
    pub no_proxy: Vec<String>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl ProxyConfig {
    /// Whether `host` bypasses the proxy.
    pub fn bypass(&self, host: &str) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let ip = host.parse::<std::net::IpAddr>().ok();
        self.no_proxy.iter().any(|rule| {
            let rule = rule.trim().to_ascii_lowercase();
            if rule == "*" {
                return true;
            }
            if let (Some(ip), Ok(net)) = (ip, rule.parse::<IpNet>()) {
                return net.contains(&ip);
            }
            if let Some(suffix) = rule.strip_prefix('.') {
                return host == suffix || host.ends_with(&format!(".{suffix}"));
            }
            host == rule
        })
    }
}

pub(super) fn validate(v: &Validator<'_>, raw: &RawProxy) -> Result<ProxyConfig, ConfigError> {
    let uri: http::Uri = raw
        .url
        .parse()
        .map_err(|_| v.err("proxy.url", format!("not a valid URL: {:?}", raw.url)))?;
    if uri.scheme_str() != Some("http") {
        return Err(v.err(
            "proxy.url",
            "must be an http:// URL (rocgw tunnels TLS through the proxy with CONNECT)",
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(v.err(
            "proxy.url",
            "credentials are never written in the URL: use credentials_env or credentials_file",
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| v.err("proxy.url", "missing host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let credentials = v.secret(
        "proxy",
        "credentials",
        raw.credentials_env.as_deref(),
        raw.credentials_file.as_deref(),
        false,
    )?;
    if let Some(c) = &credentials {
        if !c.contains(':') {
            return Err(v.err(
                "proxy.credentials_env",
                "proxy credentials are `user:password`",
            ));
        }
    }
    Ok(ProxyConfig {
        host,
        port: uri.port_u16().unwrap_or(3128),
        credentials,
        no_proxy: raw.no_proxy.clone(),
    })
}

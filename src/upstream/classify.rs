//! What an upstream failure means for the SIH: the fault code, a stable reason for metrics
//! and logs, and one sentence of detail (never a secret or a body), read off the error chain
//! (connector, rustls, I/O).

use crate::fault::FaultCode;
use std::error::Error as StdError;

use super::{ConnectError, Kind};
use crate::trust::WrongRole;

/// Why an upstream exchange failed. `as_str` is the stable metric label and log word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Timeout,
    Proxy,
    NotHttps,
    Connect,
    ClosedDuringHandshake,
    TlsError,
    Io,
    CertExpired,
    CertNotYetValid,
    CertRevoked,
    UnknownCa,
    WrongRole,
    WrongHost,
    RevocationUnknown,
    PeerRejectedClientCert,
    NoCommonParameters,
    HandshakeFailure,
    TlsAlert,
    ResponseTooLarge,
    MemoryBudget,
}

impl Reason {
    /// The TLS failures (counted in `rocgw_upstream_tls_failures_total`, each series made at
    /// start).
    pub const TLS: [Reason; 13] = [
        Reason::CertExpired,
        Reason::CertRevoked,
        Reason::UnknownCa,
        Reason::WrongRole,
        Reason::WrongHost,
        Reason::CertNotYetValid,
        Reason::RevocationUnknown,
        Reason::PeerRejectedClientCert,
        Reason::NoCommonParameters,
        Reason::HandshakeFailure,
        Reason::TlsAlert,
        Reason::ClosedDuringHandshake,
        Reason::TlsError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Proxy => "proxy",
            Reason::NotHttps => "not-https",
            Reason::Connect => "connect",
            Reason::ClosedDuringHandshake => "closed-during-handshake",
            Reason::TlsError => "tls-error",
            Reason::Io => "io",
            Reason::CertExpired => "cert-expired",
            Reason::CertNotYetValid => "cert-not-yet-valid",
            Reason::CertRevoked => "cert-revoked",
            Reason::UnknownCa => "unknown-ca",
            Reason::WrongRole => "wrong-role",
            Reason::WrongHost => "wrong-host",
            Reason::RevocationUnknown => "revocation-unknown",
            Reason::PeerRejectedClientCert => "peer-rejected-client-cert",
            Reason::NoCommonParameters => "no-common-parameters",
            Reason::HandshakeFailure => "handshake-failure",
            Reason::TlsAlert => "tls-alert",
            Reason::ResponseTooLarge => "response-too-large",
            Reason::MemoryBudget => "memory-budget",
        }
    }

    /// A failure of the TLS handshake (counted in `rocgw_upstream_tls_failures_total`).
    pub fn is_tls(self) -> bool {
        Reason::TLS.contains(&self)
    }

    /// Nothing reached the upstream (the TCP connection could not be opened): the only case
    /// where a call may be tried again, since the AMC cannot have acted on it.
    pub fn nothing_sent(self) -> bool {
        self == Reason::Connect
    }
}

/// An upstream failure, classified for the SIH.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{detail}")]
pub struct UpstreamError {
    pub code: FaultCode,
    pub reason: Reason,
    /// One sentence for the fault detail and the log; no secrets, no bodies.
    pub detail: String,
}

/// Walks an error's sources and says what the SIH should hear.
pub fn classify(kind: Kind, err: &(dyn StdError + 'static)) -> UpstreamError {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut in_tls = false;
    while let Some(e) = cur {
        if let Some(ce) = e.downcast_ref::<ConnectError>() {
            match ce {
                ConnectError::ConnectTimeout | ConnectError::TlsTimeout => {
                    return UpstreamError {
                        code: kind.timeout(),
                        reason: Reason::Timeout,
                        detail: format!("{} {ce}", kind.label()),
                    }
                }
                ConnectError::ProxyRefused(_) | ConnectError::Proxy(_) => {
                    return UpstreamError {
                        code: kind.unavailable(),
                        reason: Reason::Proxy,
                        detail: ce.to_string(),
                    }
                }
                ConnectError::NotHttps => {
                    return UpstreamError {
                        code: kind.unavailable(),
                        reason: Reason::NotHttps,
                        detail: ce.to_string(),
                    }
                }
                ConnectError::Connect(_) => {
                    return UpstreamError {
                        code: kind.unavailable(),
                        reason: Reason::Connect,
                        detail: format!("{} {ce}", kind.label()),
                    }
                }
                ConnectError::Tls(_) => in_tls = true,
            }
        }
        if let Some(te) = e.downcast_ref::<rustls::Error>() {
            return tls_error(kind, te);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(te) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_error(kind, te);
            }
            if in_tls
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                )
            {
                return UpstreamError {
                    code: FaultCode::UpstreamTls,
                    reason: Reason::ClosedDuringHandshake,
                    detail: format!(
                        "the {} closed the connection during the TLS handshake",
                        kind.label()
                    ),
                };
            }
        }
        cur = e.source();
    }
    UpstreamError {
        code: if in_tls {
            FaultCode::UpstreamTls
        } else {
            kind.unavailable()
        },
        reason: if in_tls { Reason::TlsError } else { Reason::Io },
        detail: format!("{} exchange failed: {}", kind.label(), short_chain(err)),
    }
}

fn tls_error(kind: Kind, e: &rustls::Error) -> UpstreamError {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    let who = kind.label();
    let (code, reason, detail) = match e {
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => (
            FaultCode::UpstreamCertExpired,
            Reason::CertExpired,
            format!("the {who} server certificate has expired"),
        ),
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => (
            FaultCode::UpstreamTls,
            Reason::CertNotYetValid,
            format!("the {who} server certificate is not valid yet"),
        ),
        E::InvalidCertificate(C::Revoked) => (
            FaultCode::UpstreamCertRevoked,
            Reason::CertRevoked,
            format!("the {who} server certificate is revoked"),
        ),
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => (
            FaultCode::UpstreamCertUnknownCa,
            Reason::UnknownCa,
            format!("the {who} server certificate does not chain to a configured IGC OSI anchor"),
        ),
        E::InvalidCertificate(C::Other(o)) if o.0.downcast_ref::<WrongRole>().is_some() => (
            FaultCode::UpstreamCertUnknownCa,
            Reason::WrongRole,
            format!(
                "the {who} server certificate is not issued under a server-role (AC-SERVEUR) authority"
            ),
        ),
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => (
            FaultCode::UpstreamTls,
            Reason::WrongHost,
            format!("the {who} server certificate does not name the host"),
        ),
        E::InvalidCertificate(
            C::UnknownRevocationStatus
            | C::ExpiredRevocationList
            | C::ExpiredRevocationListContext { .. },
        ) => (
            FaultCode::UpstreamTls,
            Reason::RevocationUnknown,
            format!(
                "the revocation status of the {who} server certificate is unknown (hard policy)"
            ),
        ),
        E::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::AccessDenied
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired,
        ) => (
            FaultCode::UpstreamTls,
            Reason::PeerRejectedClientCert,
            format!("the {who} server rejected our client certificate ({e})"),
        ),
        E::AlertReceived(A::ProtocolVersion | A::InsufficientSecurity) => (
            FaultCode::UpstreamTls,
            Reason::NoCommonParameters,
            format!(
                "the {who} server found no TLS version or cipher suite in common ({e}): {OFFERED}"
            ),
        ),
        // What OpenSSL, Java and Schannel servers send for no suite or key exchange in common,
        // and for a client certificate missing or refused, among other things.
        E::AlertReceived(A::HandshakeFailure) => (
            FaultCode::UpstreamTls,
            Reason::HandshakeFailure,
            format!(
                "the {who} server refused the handshake ({e}): often no cipher suite or key \
                 exchange in common, or a client certificate it wanted and did not get or \
                 accept; {OFFERED}"
            ),
        ),
        E::AlertReceived(_) => (
            FaultCode::UpstreamTls,
            Reason::TlsAlert,
            format!("the {who} server sent a TLS alert ({e})"),
        ),
        _ => (
            FaultCode::UpstreamTls,
            Reason::TlsError,
            format!("TLS with the {who} server failed: {e}"),
        ),
    };
    UpstreamError {
        code,
        reason,
        detail,
    }
}

/// What rocgw's TLS client offers, as a detail says it.
const OFFERED: &str =
    "rocgw offers TLS 1.3 and TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305";

/// The error and its sources on one line.
fn short_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

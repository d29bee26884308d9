//! The ORG SIGN key at work: the signer prepared once per certificate, the reused assertions,
//! and both kept with their identity behind swap points that a reload changes together.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::Engine as _;
use x509_parser::prelude::*;

use super::{build_assertion, rfc4514, text, Profile, SignedAssertion};
use crate::config::IdentitySource;
use crate::identity::{Identity, IdentityError, ReloadableIdentity, Role};

/// The signing half of the SIGN identity, prepared once: parsed key, base64 certificate,
/// issuer name. Rebuilt on reload, never per request.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
    pub(super) cert_b64: String,
    /// The certificate's subject DN (RFC 4514), the assertion's `Issuer`.
    pub issuer: String,
    /// `issuer` escaped for a canonical text node, prepared once per certificate.
    pub(super) issuer_text: String,
    pub structure_id: String,
    pub serial: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("issuer", &self.issuer)
            .field("serial", &self.serial)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Signer {
    pub fn new(id: &Identity) -> Result<Signer, String> {
        let key = RsaKeyPair::from_pkcs8(id.key_pkcs8())
            .map_err(|_| format!("{}: the key cannot sign with RSA-SHA256", id.field))?;
        let leaf = id
            .chain
            .first()
            .ok_or_else(|| format!("{}: no certificate", id.field))?;
        let (_, cert) = X509Certificate::from_der(leaf)
            .map_err(|e| format!("{}: unreadable certificate: {e}", id.field))?;
        let issuer = rfc4514(cert.subject());
        let mut issuer_text = String::with_capacity(issuer.len());
        text(&mut issuer_text, &issuer);
        Ok(Signer {
            key,
            rng: SystemRandom::new(),
            cert_b64: base64::engine::general_purpose::STANDARD.encode(leaf.as_ref()),
            issuer_text,
            issuer,
            structure_id: id.info.structure_id.clone().unwrap_or_default(),
            serial: id.info.serial.clone(),
        })
    }

    /// RSA-SHA256 (PKCS#1 v1.5) signature of `msg` with the SIGN key.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
            .expect("RSA signing with a validated key");
        sig
    }
}

/// Reuse of signed assertions per audience (off unless `Profile::reuse` > 0).
#[derive(Debug, Default)]
pub struct AssertionCache {
    by_audience: Mutex<std::collections::HashMap<String, SignedAssertion>>,
}

impl AssertionCache {
    /// A cached assertion for `audience` issued less than `reuse` ago and valid for at least
    /// `reuse` more, else a fresh one (cached when reuse is on). Returns whether it was reused.
    pub fn get(
        &self,
        profile: &Profile,
        signer: &Signer,
        audience: &str,
        now: i64,
    ) -> (SignedAssertion, bool) {
        if let Some(a) = self.lookup(profile, audience, now) {
            return (a, true);
        }
        let a = build_assertion(profile, signer, audience, now);
        self.insert(profile, &a);
        (a, false)
    }

    /// The reusable assertion for `audience`, if reuse is on and one is still fresh.
    pub fn lookup(&self, profile: &Profile, audience: &str, now: i64) -> Option<SignedAssertion> {
        let reuse = profile.reuse.as_secs() as i64;
        if reuse == 0 {
            return None;
        }
        let m = self.by_audience.lock().unwrap_or_else(|e| e.into_inner());
        m.get(audience)
            .filter(|a| now - a.issued_at < reuse && now + reuse <= a.not_on_or_after)
            .cloned()
    }

    /// Keeps `a` for reuse (no-op when reuse is off).
    pub fn insert(&self, profile: &Profile, a: &SignedAssertion) {
        if profile.reuse.is_zero() {
            return;
        }
        let mut m = self.by_audience.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(a.audience.clone(), a.clone());
    }

    /// Forgets every cached assertion (after a reload of the SIGN identity).
    pub fn clear(&self) {
        self.by_audience
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The ORG SIGN identity, its prepared [`Signer`] and its reused assertions, reloadable from the
/// identity's source.
///
/// Contract: if reloading fails (unreadable file, wrong key, a key that cannot sign), the old
/// identity and signer are kept and keep signing. A reload that finds the same certificate
/// keeps the signer and the reused assertions as they are; a new certificate replaces the
/// identity and the signer together and forgets the assertions signed with the old one.
pub struct ReloadableSigner {
    identity: ReloadableIdentity,
    signer: ArcSwap<Signer>,
    /// Reused assertions (when `[assertion] reuse_s` > 0).
    pub assertions: AssertionCache,
}

impl std::fmt::Debug for ReloadableSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableSigner")
            .field("identity", &self.identity)
            .finish()
    }
}

impl ReloadableSigner {
    /// Loads the SIGN identity and prepares its key; a failure here is a start-up error.
    pub fn new(cfg: &IdentitySource, now: i64) -> Result<Self, IdentityError> {
        let identity = ReloadableIdentity::new(cfg, Role::Sign, now)?;
        let signer =
            Signer::new(&identity.current()).map_err(|why| IdentityError::Unusable { why })?;
        Ok(ReloadableSigner {
            identity,
            signer: ArcSwap::from_pointee(signer),
            assertions: AssertionCache::default(),
        })
    }

    /// The signer in force.
    pub fn signer(&self) -> Arc<Signer> {
        self.signer.load_full()
    }

    /// The SIGN identity in force.
    pub fn identity(&self) -> Arc<Identity> {
        self.identity.current()
    }

    /// The files whose change calls for a reload.
    pub fn files(&self) -> Vec<PathBuf> {
        self.identity.files()
    }

    /// The files that hold or unlock the SIGN key.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        self.identity.secret_files()
    }

    /// Reads the source again; returns whether the certificate changed (see the contract).
    /// A new certificate `fit` refuses is not put in force.
    pub fn reload(
        &self,
        now: i64,
        fit: &dyn Fn(&Identity) -> Result<(), String>,
    ) -> Result<bool, IdentityError> {
        let (id, changed) = self.identity.read_fit(now, fit)?;
        if !changed {
            return Ok(false);
        }
        let signer = Signer::new(&id).map_err(|why| IdentityError::Unusable { why })?;
        self.identity.put(id);
        self.signer.store(Arc::new(signer));
        self.assertions.clear();
        Ok(true)
    }
}

//! The simulated AMCs sign their answers the way rocgw assumes an AMC does (`wssec::response`):
//! a WS-Security signature of the SOAP Body, RSA-SHA256, exclusive C14N, the certificate in
//! `ds:X509Data`, with the AMC application's key (AC-SERVICES-APPLICATIFS). bergshamra signs a
//! template; per AMC, a fault may leave the signature out, break it, use a key of no known CA,
//! or wrap it around another Body.

use bergshamra::{DsigContext, KeysManager};
use serde::{Deserialize, Serialize};

use super::config::CertKey;
use crate::wssec::response::WSU_NS;
use crate::wssec::{DSIG_NS, EXC_C14N, WSSE_NS};

/// How an AMC signs its answers (`[amc.faults] signature`, or `PUT /faults`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureFault {
    /// A valid signature.
    #[default]
    Valid,
    /// No signature at all.
    None,
    /// A signature whose value was altered after signing.
    Broken,
    /// Signed with a key whose certificate no IGC OSI authority issued.
    WrongCa,
    /// The signed Body moved into the header and another Body in its place.
    Wrapped,
}

/// A signing key and its certificate (base64 DER, for `X509Data`).
struct SigningKey {
    key_pem: zeroize::Zeroizing<Vec<u8>>,
    cert_b64: String,
}

/// Signs the simulated AMCs' answers.
pub struct AnswerSigner {
    amc: SigningKey,
    /// A self-signed key made at start, for `wrong-ca`.
    foreign: SigningKey,
}

impl std::fmt::Debug for AnswerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerSigner { key: <redacted> }")
    }
}

impl AnswerSigner {
    pub fn load(c: &CertKey) -> Result<AnswerSigner, String> {
        let key_pem =
            std::fs::read(&c.key).map_err(|e| format!("signing.key {}: {e}", c.key.display()))?;
        let cert = crate::identity::read_pem_certs(&c.cert)?;
        let leaf = cert.first().ok_or("signing.cert: no certificate")?;
        // RSA, like a genuine AMC key: only its issuer is wrong.
        let fkey =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .map_err(|e| format!("signing: {e}"))?;
        let fcert = rcgen::CertificateParams::new(vec!["foreign-signer.test".into()])
            .and_then(|p| p.self_signed(&fkey))
            .map_err(|e| format!("signing: {e}"))?;
        let b64 = |d: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, d);
        Ok(AnswerSigner {
            amc: SigningKey {
                key_pem: zeroize::Zeroizing::new(key_pem),
                cert_b64: b64(leaf.as_ref()),
            },
            foreign: SigningKey {
                key_pem: zeroize::Zeroizing::new(fkey.serialize_pem().into_bytes()),
                cert_b64: b64(fcert.der()),
            },
        })
    }

    /// `envelope` (as `answer` writes it: `<env:Envelope …><env:Body>…`) signed under `fault`.
    pub fn sign(&self, fault: SignatureFault, envelope: &str) -> String {
        let key = match fault {
            SignatureFault::None => return envelope.to_string(),
            SignatureFault::WrongCa => &self.foreign,
            _ => &self.amc,
        };
        let Some(signed) = sign_with(key, envelope) else {
            return envelope.to_string();
        };
        match fault {
            SignatureFault::Broken => broken(&signed),
            SignatureFault::Wrapped => wrapped(&signed),
            _ => signed,
        }
    }
}

/// The template: a security header with the signature of `#Body-1`, the Body given that id.
fn template(envelope: &str, cert_b64: &str) -> Option<String> {
    let header = format!(
        "<env:Header><wsse:Security xmlns:wsse=\"{WSSE_NS}\"><ds:Signature xmlns:ds=\"{DSIG_NS}\">\
         <ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>\
         <ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/>\
         <ds:Reference URI=\"#Body-1\"><ds:Transforms><ds:Transform Algorithm=\"{EXC_C14N}\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue/></ds:Reference>\
         </ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>\
         </ds:Signature></wsse:Security></env:Header>\
         <env:Body xmlns:wsu=\"{WSU_NS}\" wsu:Id=\"Body-1\">"
    );
    envelope
        .contains("<env:Body>")
        .then(|| envelope.replacen("<env:Body>", &header, 1))
}

fn sign_with(key: &SigningKey, envelope: &str) -> Option<String> {
    let template = template(envelope, &key.cert_b64)?;
    let k = bergshamra::keys::loader::load_pem_auto(&key.key_pem, None).ok()?;
    let mut keys = KeysManager::new();
    keys.add_key(k);
    let ctx = DsigContext::new(keys);
    bergshamra::sign(&ctx, &template).ok()
}

/// One character of the signature value changed.
fn broken(signed: &str) -> String {
    let Some(at) = signed.find("<ds:SignatureValue>") else {
        return signed.to_string();
    };
    let i = at + "<ds:SignatureValue>".len();
    let c = if signed[i..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    format!("{}{c}{}", &signed[..i], &signed[i + 1..])
}

/// The signed Body kept in the header, a forged one in its place.
fn wrapped(signed: &str) -> String {
    let (Some(start), Some(end)) = (signed.find("<env:Body"), signed.find("</env:Body>")) else {
        return signed.to_string();
    };
    let end = end + "</env:Body>".len();
    let kept = &signed[start..end];
    let forged = format!(
        "{}<env:Body><r:forged xmlns:r=\"urn:rocgw:sim\"/></env:Body>{}",
        &signed[..start],
        &signed[end..]
    );
    forged.replacen(
        "</wsse:Security>",
        &format!("<x:kept xmlns:x=\"urn:rocgw:sim\">{kept}</x:kept></wsse:Security>"),
        1,
    )
}

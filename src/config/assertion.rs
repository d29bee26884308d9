//! `[assertion]`: the profile of the SAML assertion rocgw signs into every AMC call, and the
//! limits under which it parses the SIH's envelope.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Validator};

/// Longest assertion validity (one hour); a `NotBefore` skew beyond it would mean nothing either.
const MAX_VALIDITY_S: u64 = 3_600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAssertion {
    validity_s: Option<u64>,
    not_before_skew_s: Option<u64>,
    audience: Option<String>,
    name_id: Option<String>,
    name_id_format: Option<String>,
    subject_confirmation_method: Option<String>,
    authn_context_class_ref: Option<String>,
    default_attributes: Option<bool>,
    #[serde(default)]
    attributes: Vec<AttributeSpec>,
    #[serde(default)]
    existing_security: ExistingSecurity,
    #[serde(default)]
    must_understand: bool,
    reuse_s: Option<u64>,
    max_depth: Option<usize>,
    max_attributes: Option<usize>,
}

/// What to do with a `wsse:Security` header the SIH already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingSecurity {
    /// Remove it and insert rocgw's.
    #[default]
    Replace,
    /// Refuse the request (`security-header-present`).
    Reject,
}

/// One extra SAML attribute of the profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    pub name: String,
    #[serde(default)]
    pub name_format: Option<String>,
    /// `xsi:type` of the values, e.g. `xs:string` (prefix `xs` is declared by rocgw).
    #[serde(default, rename = "type")]
    pub xsi_type: Option<String>,
    pub values: Vec<String>,
}

/// The assertion profile (`[assertion]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `NotOnOrAfter` = now + validity.
    pub validity: Duration,
    /// `NotBefore` = now − skew.
    pub not_before_skew: Duration,
    /// Fixed audience; `None`: the resolved AMC endpoint URL.
    pub audience: Option<String>,
    /// `Subject/NameID`; `None`: the structure identifier of the SIGN certificate.
    pub name_id: Option<String>,
    pub name_id_format: String,
    pub subject_confirmation_method: String,
    pub authn_context_class_ref: String,
    /// `Identifiant_Structure` and `Authentification_mode=DIRECTE` first, unless disabled.
    pub default_attributes: bool,
    pub attributes: Vec<AttributeSpec>,
    pub existing_security: ExistingSecurity,
    pub must_understand: bool,
    /// Reuse one signed assertion per audience this long (0: a fresh assertion per request).
    pub reuse: Duration,
    /// Envelope parsing limits.
    pub max_depth: usize,
    pub max_attributes: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            validity: Duration::from_secs(300),
            not_before_skew: Duration::from_secs(60),
            audience: None,
            name_id: None,
            name_id_format: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into(),
            subject_confirmation_method: "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches".into(),
            authn_context_class_ref: "urn:oasis:names:tc:SAML:2.0:ac:classes:X509".into(),
            default_attributes: true,
            attributes: Vec::new(),
            existing_security: ExistingSecurity::Replace,
            must_understand: false,
            reuse: Duration::ZERO,
            max_depth: 64,
            max_attributes: 64,
        }
    }
}

pub(super) fn validate(v: &Validator<'_>, raw: &RawAssertion) -> Result<Profile, ConfigError> {
    let d = Profile::default();
    let validity = v.secs(
        "assertion.validity_s",
        raw.validity_s,
        d.validity,
        1..=MAX_VALIDITY_S,
    )?;
    let not_before_skew = v.secs(
        "assertion.not_before_skew_s",
        raw.not_before_skew_s,
        d.not_before_skew,
        0..=MAX_VALIDITY_S,
    )?;
    let reuse = v.secs(
        "assertion.reuse_s",
        raw.reuse_s,
        d.reuse,
        0..=MAX_VALIDITY_S / 2,
    )?;
    if reuse * 2 > validity {
        return Err(v.err(
            "assertion.reuse_s",
            "must be at most half of validity_s (a reused assertion must stay valid)",
        ));
    }
    attributes(v, "assertion.attributes", &raw.attributes)?;
    let max_depth = v.ranged("assertion.max_depth", raw.max_depth, d.max_depth, 8..=1024)?;
    let max_attributes = v.ranged(
        "assertion.max_attributes",
        raw.max_attributes,
        d.max_attributes,
        4..=1024,
    )?;
    Ok(Profile {
        validity,
        not_before_skew,
        audience: raw.audience.clone().filter(|a| a != "endpoint"),
        name_id: raw.name_id.clone(),
        name_id_format: raw.name_id_format.clone().unwrap_or(d.name_id_format),
        subject_confirmation_method: raw
            .subject_confirmation_method
            .clone()
            .unwrap_or(d.subject_confirmation_method),
        authn_context_class_ref: raw
            .authn_context_class_ref
            .clone()
            .unwrap_or(d.authn_context_class_ref),
        default_attributes: raw.default_attributes.unwrap_or(d.default_attributes),
        attributes: raw.attributes.clone(),
        existing_security: raw.existing_security,
        must_understand: raw.must_understand,
        reuse,
        max_depth,
        max_attributes,
    })
}

/// Checks extra attributes (`field` names the list: `assertion.attributes`, or a structure's).
pub(super) fn attributes(
    v: &Validator<'_>,
    field: &str,
    list: &[AttributeSpec],
) -> Result<(), ConfigError> {
    for (i, a) in list.iter().enumerate() {
        if a.name.trim().is_empty() || a.values.is_empty() {
            return Err(v.err(
                &format!("{field}[{i}]"),
                "an attribute needs a name and at least one value",
            ));
        }
        if let Some(t) = &a.xsi_type {
            if t.contains(':') && !t.starts_with("xs:") {
                return Err(v.err(
                    &format!("{field}[{i}].type"),
                    "only the xs: prefix is declared (e.g. xs:string)",
                ));
            }
        }
    }
    Ok(())
}

//! What an AMC built on other SAML software checks, run on the assertions an AMC received
//! through the gateway:
//! - the OASIS SAML 2.0 assertion schema (`xmllint`, with the schemas Debian ships in
//!   `opensaml-schemas` and `xmltooling-schemas`);
//! - the signature under the SAML signature profile (OpenSAML's `samlsign`, Shibboleth's C++
//!   library on xerces-c and Apache Santuario: a third XML-DSig implementation beside xmlsec1
//!   and bergshamra).

use std::fs;
use std::path::Path;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};
use crate::wssec::BODY;

const SAML_XSD: &str = "/usr/share/xml/opensaml/saml-schema-assertion-2.0.xsd";
const XMLTOOLING: &str = "/usr/share/xml/xmltooling";

/// The assertion schema with its imports read from the local files (the schema names them by
/// their w3.org URLs, and the tests use no network).
fn schema(dir: &Path) -> String {
    for xsd in [SAML_XSD, &format!("{XMLTOOLING}/xmldsig-core-schema.xsd")] {
        assert!(
            Path::new(xsd).exists(),
            "{xsd} is needed by this test: run `bash .ci/run` or `apt-get install -y \
             opensaml-schemas xmltooling-schemas`"
        );
    }
    let path = dir.join("saml-assertion.xsd");
    let text = format!(
        r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:import namespace="http://www.w3.org/2000/09/xmldsig#" schemaLocation="{XMLTOOLING}/xmldsig-core-schema.xsd"/>
  <xs:import namespace="http://www.w3.org/2001/04/xmlenc#" schemaLocation="{XMLTOOLING}/xenc-schema.xsd"/>
  <xs:import namespace="urn:oasis:names:tc:SAML:2.0:assertion" schemaLocation="{SAML_XSD}"/>
</xs:schema>"#
    );
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `xmllint --schema` of `file`: (valid, output).
fn schema_valid(schema: &str, file: &Path) -> (bool, String) {
    let args = ["--nonet", "--noout", "--schema", schema];
    let out = tool(
        "xmllint",
        &[&args[..], &[file.to_str().unwrap()]].concat(),
        file.parent().unwrap(),
    );
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), text)
}

/// `samlsign` verification of the assertion in `file` with `cert`'s key: (verified, output).
fn samlsign(cert: &str, file: &Path) -> (bool, String) {
    let cert = pki_path(cert).display().to_string();
    let args = ["-c", &cert, "-f", file.to_str().unwrap()];
    let out = tool("samlsign", &args, file.parent().unwrap());
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    (out.status.success(), text)
}

/// The assertion an envelope carries, as a document of its own. Its signature is over its
/// exclusive canonical form, which does not depend on the envelope around it (every prefix it
/// uses is declared on it or inside it).
fn assertion(envelope: &str) -> &str {
    let start = envelope.find("<saml2:Assertion").expect("an assertion");
    let end = envelope.find("</saml2:Assertion>").unwrap() + "</saml2:Assertion>".len();
    &envelope[start..end]
}

/// A profile with every optional part set, in SOAP 1.1.
const FULL_PROFILE: &str = r#"
[assertion]
audience = "urn:amc:10000001"
name_id_format = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
subject_confirmation_method = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
authn_context_class_ref = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
must_understand = true

[[assertion.attributes]]
name = "Secteur_Activite"
type = "xs:string"
values = ["SA07"]

[[assertion.attributes]]
name = "Établissement « Sainte-Cécile » & <annexe>"
values = ["un", "deux"]
"#;

#[test]
fn opensaml_and_the_saml_schema_accept_the_assertions_the_amc_received() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let route = format!("[routes.\"10000001\"]\nidb = \"{}\"\n", amc.url("/ws/idb"));
    let dir = scratch();
    let xsd = schema(dir.path());
    let s12 = format!("<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body>{BODY}</soap:Body></soap:Envelope>");
    let s11 = envelope11(BODY);
    for (name, profile, ct, envelope, shows) in [
        ("default profile", "", CT12, &s12, "Authentification_mode"),
        (
            "every optional part",
            FULL_PROFILE,
            CT11,
            &s11,
            "<saml2:Audience>urn:amc:10000001</saml2:Audience>",
        ),
    ] {
        amc.seen.bodies.lock().unwrap().clear();
        let cfg = write_config(dir.path(), &config_text("", &format!("{route}{profile}")));
        let p = Proc::with_config(&cfg);
        let r = post(p.gateway, "/amc/10000001/idb", ct, envelope);
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let received = amc.seen.bodies.lock().unwrap().clone();
        let a = assertion(&received[0]);
        let file = dir.path().join("assertion.xml");
        fs::write(&file, a).unwrap();
        assert!(a.contains(shows), "{name}: {a}");
        if !profile.is_empty() {
            assert!(
                a.contains(r#"xsi:type="xs:string""#) && a.contains("Sainte-C"),
                "{a}"
            );
        }

        let (valid, why) = schema_valid(&xsd, &file);
        assert!(valid, "{name}: the SAML 2.0 schema refused it: {why}\n{a}");
        let (verified, why) = samlsign("org/sign.pem", &file);
        assert!(verified, "{name}: samlsign refused it: {why}\n{a}");

        // Both checks can fail: another structure's key, a changed value, an unknown attribute.
        assert!(!samlsign("org2/sign.pem", &file).0, "{name}: another key");
        let changed = a.replacen("DIRECTE", "INDIRECTE", 1);
        assert_ne!(changed, a);
        fs::write(&file, &changed).unwrap();
        assert!(
            !samlsign("org/sign.pem", &file).0,
            "{name}: a changed value"
        );
        fs::write(&file, a.replacen(" Version=", " Extra=\"1\" Version=", 1)).unwrap();
        assert!(!schema_valid(&xsd, &file).0, "{name}: an unknown attribute");
    }
}

//! AMC answers signed by `xmlsec1` (WS-Security signature of the SOAP Body, both key forms)
//! are accepted; tampered, unsigned (per mode), foreign, server-role, revoked, wrapped and
//! moved-Body answers are refused with `amc-signature-invalid`, nothing of them reaching the SIH.

use std::sync::Arc;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};

const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const X509V3: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3";
const ANSWER: &str =
    "<r:idbResponse xmlns:r=\"urn:t\"><r:libelle>Droits ouverts</r:libelle></r:idbResponse>";

/// How the answer names its signing key.
#[derive(Clone, Copy)]
enum KeyForm {
    X509Data,
    TokenReference,
}

/// An answer template for `xmlsec1 --sign`, signed by `signer` (test PKI base name).
fn template(form: KeyForm, signer: &str) -> String {
    let (token, key_info) = match form {
        KeyForm::X509Data => (
            String::new(),
            "<ds:X509Data><ds:X509Certificate/></ds:X509Data>".to_string(),
        ),
        KeyForm::TokenReference => {
            let pem = std::fs::read_to_string(pki_path(&format!("{signer}.pem"))).unwrap();
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            (
                format!("<wsse:BinarySecurityToken wsu:Id=\"X509-1\" ValueType=\"{X509V3}\" EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\">{b64}</wsse:BinarySecurityToken>"),
                format!("<wsse:SecurityTokenReference><wsse:Reference URI=\"#X509-1\" ValueType=\"{X509V3}\"/></wsse:SecurityTokenReference>"),
            )
        }
    };
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><env:Header><wsse:Security>{token}<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#Body-1"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo>{key_info}</ds:KeyInfo></ds:Signature></wsse:Security></env:Header><env:Body wsu:Id="Body-1">{ANSWER}</env:Body></env:Envelope>
"##
    )
}

/// `xmlsec1 --sign` of `form`'s template with `signer`'s key.
fn signed(form: KeyForm, signer: &str) -> String {
    crate::wssec::xmlsec_sign_node(
        &template(form, signer),
        signer,
        ("Id", "http://www.w3.org/2003/05/soap-envelope:Body"),
    )
}

/// A gateway routing AMC 10000001 to an AMC that answers `answer`, under `mode`.
fn call_with(answer: String, status: u16, mode: &str) -> (Resp, TlsServer) {
    call_with_amc(
        answer,
        status,
        &format!("response_signature = \"{mode}\"\n"),
    )
}

/// The same, with `amc` as the `[amc]` section's body.
fn call_with_amc(answer: String, status: u16, amc_section: &str) -> (Resp, TlsServer) {
    let behavior = Behavior::Answer(status, Arc::from(answer));
    call_amc(TlsServer::fixture("osi/amc-a", None, behavior), amc_section)
}

/// An answer of any bytes (an encoding other than UTF-8), as SOAP 1.2 with its length, under
/// `mode`.
fn call_with_bytes(answer: Vec<u8>, mode: &str) -> (Resp, TlsServer) {
    let amc = raw_amc(answer, "application/soap+xml; charset=ISO-8859-1");
    call_amc(amc, &format!("response_signature = \"{mode}\"\n"))
}

/// An AMC that answers `answer` with `content_type` (none when empty) and its length.
fn raw_amc(answer: Vec<u8>, content_type: &str) -> TlsServer {
    let content_type = match content_type {
        "" => String::new(),
        ct => format!("Content-Type: {ct}\r\n"),
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\n{content_type}Content-Length: {}\r\n\r\n",
        answer.len()
    );
    let pieces = Arc::new(vec![[head.as_bytes(), &answer].concat()]);
    TlsServer::fixture(
        "osi/amc-a",
        None,
        Behavior::Raw {
            pieces,
            close: false,
        },
    )
}

/// A gateway routing AMC 10000001 to `amc`, with `amc_section` as its `[amc]` section's body.
fn call_amc(amc: TlsServer, amc_section: &str) -> (Resp, TlsServer) {
    let tmp = scratch();
    let gw = gateway_to(&amc, amc_section, tmp.path());
    let r = post(gw.gateway, "/amc/10000001/idb", CT12, &envelope12("<q/>"));
    (r, amc)
}

/// The gateway of [`call_amc`].
fn gateway_to(amc: &TlsServer, amc_section: &str, tmp: &std::path::Path) -> Proc {
    let p = |r: &str| pki_path(r).display().to_string();
    let crls = format!(
        "crls = [\"{}\", \"{}\", \"{}\"]",
        p("osi/root.crl.pem"),
        p("osi/ac-serveur.crl.pem"),
        p("osi/ac-services-applicatifs.crl.pem")
    );
    let text = format!(
        "{}\n[amc]\n{amc_section}\n[routes.\"10000001\"]\nidb = \"{}\"\n",
        base_config(
            &p("org/auth_cli.p12"),
            &p("secrets/p12-password"),
            "",
            &crls
        ),
        amc.url("/idb")
    );
    Proc::with_config(&write_config(tmp, &text))
}

fn refused(r: &Resp, why: &str) {
    assert_eq!(
        r.header("x-rocgw-error"),
        Some("amc-signature-invalid"),
        "{}",
        r.body
    );
    assert!(
        !r.body.contains("Droits ouverts"),
        "the AMC's body must not pass: {}",
        r.body
    );
    assert!(r.body.contains(why), "{why}: {}", r.body);
}

#[test]
fn answers_signed_by_xmlsec1_are_accepted_in_both_key_forms() {
    for form in [KeyForm::X509Data, KeyForm::TokenReference] {
        let answer = signed(form, "osi/amc-sign");
        let (r, _amc) = call_with(answer.clone(), 200, "required");
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body, answer, "the bytes verified are the bytes passed on");
    }
    // A signed SOAP fault passes too, with its status.
    let fault = signed(KeyForm::X509Data, "osi/amc-sign");
    let (r, _amc) = call_with(fault, 500, "required");
    assert_eq!((r.status, r.header("x-rocgw-error")), (500, None));
}

#[test]
fn unsigned_answers_follow_the_mode() {
    let plain = envelope12(ANSWER);
    // A declaration rocgw does not read (ISO-8859-2) on an answer that is UTF-8 anyway: read
    // as UTF-8, as an unsigned answer it must not be refused under `if-present`.
    let latin2 = plain.replace(r#"encoding="UTF-8""#, r#"encoding="ISO-8859-2""#);
    assert_ne!(latin2, plain);
    for answer in [&plain, &latin2] {
        for (mode, ok) in [("off", true), ("if-present", true), ("required", false)] {
            let (r, _amc) = call_with(answer.clone(), 200, mode);
            if ok {
                assert_eq!(r.status, 200, "{mode}: {}", r.body);
            } else {
                refused(&r, "not signed");
            }
        }
    }
    // Per AMC of [routes]: this one requires signatures while the others need none.
    let per_amc =
        "response_signature = \"off\"\n[amc.response_signatures]\n\"10000001\" = \"required\"\n";
    let (r, _amc) = call_with_amc(plain.clone(), 200, per_amc);
    refused(&r, "not signed");
    // A plain SOAP fault under `required`: refused too; an error page stays amc-unavailable.
    let (r, _amc) = call_with(envelope12("<f/>"), 500, "required");
    refused(&r, "not signed");
    let (r, _amc) = call_with("<html>oops</html>".into(), 503, "required");
    assert_eq!(r.header("x-rocgw-error"), Some("amc-unavailable"));
}

#[test]
fn bad_signatures_are_refused_even_when_only_present_ones_are_checked() {
    let good = signed(KeyForm::X509Data, "osi/amc-sign");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "tampered",
            good.replace("Droits ouverts", "Droits fermés"),
            "does not verify",
        ),
        (
            "foreign CA",
            signed(KeyForm::X509Data, "org/sign"),
            "signature-role",
        ),
        (
            "server-role signer",
            signed(KeyForm::X509Data, "osi/amc-a"),
            "server-role",
        ),
        (
            "revoked signer",
            signed(KeyForm::X509Data, "negative/amc-sign-revoked"),
            "revoked",
        ),
        (
            "duplicate ID",
            good.replace(
                "<wsse:Security>",
                &format!(
                    "<wsse:Security><x:y xmlns:x=\"urn:x\" xmlns:wsu=\"{WSU}\" wsu:Id=\"Body-1\"/>"
                ),
            ),
            "duplicate identifier",
        ),
        (
            "moved Body",
            moved_body(&good),
            "does not resolve to the Envelope",
        ),
    ];
    for (name, answer, why) in cases {
        let (r, amc) = call_with(answer, 200, "if-present");
        assert_eq!(
            amc.seen.requests.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{name}"
        );
        refused(&r, why);
    }
}

/// French AMC stacks often answer in ISO-8859-1: xmlsec1 signs such an answer in its own
/// encoding, rocgw verifies it (decoded, as canonical XML is UTF-8) and passes its bytes on.
#[test]
fn an_answer_in_iso_8859_1_is_verified_and_passed_on_as_sent() {
    let text = template(KeyForm::X509Data, "osi/amc-sign")
        .replace(r#"encoding="UTF-8""#, r#"encoding="ISO-8859-1""#)
        .replace("Droits ouverts", "Droits ouverts à l'hôpital");
    let latin1: Vec<u8> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let signed = crate::wssec::xmlsec_sign_bytes(&latin1, "osi/amc-sign", BODY_ID);
    let a_grave = signed
        .iter()
        .position(|&b| b == 0xE0)
        .expect("à as one byte");
    assert!(std::str::from_utf8(&signed).is_err(), "not UTF-8");

    let (r, _amc) = call_with_bytes(signed.clone(), "required");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        String::from_utf8_lossy(&signed),
        "passed on as sent"
    );
    // One byte of the signed Body changed (à → è): refused.
    let mut tampered = signed;
    tampered[a_grave] = 0xE8;
    let (r, _amc) = call_with_bytes(tampered, "required");
    refused(&r, "does not verify");
}

/// An SIH's HTTP stack decodes an answer by its `charset` (RFC 7303), the AMC's XML stack signed
/// it as its declaration says: when the two disagree, the `charset` is made to name the encoding
/// the signature was verified in, so the SIH reads the characters that were signed. Python's
/// `urllib` is the SIH; `off` shows what it reads otherwise.
#[test]
fn a_verified_answer_s_charset_names_the_encoding_it_was_verified_in() {
    let (text, utf8) = accented_answer();
    let latin1: Vec<u8> = text
        .replace(r#"encoding="UTF-8""#, r#"encoding="ISO-8859-1""#)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap())
        .collect();
    let latin1 = crate::wssec::xmlsec_sign_bytes(&latin1, "osi/amc-sign", BODY_ID);
    // Without its declaration (outside what is signed), only the HTTP charset says what it is.
    let undeclare = |doc: &[u8]| doc[doc.iter().position(|&b| b == b'\n').unwrap() + 1..].to_vec();
    let undeclared = undeclare(&latin1);
    let undeclared_utf8 = undeclare(&utf8);
    // `”` is E2 80 9D in UTF-8: 0x9D is undefined in windows-1252.
    let quoted = text.replace(ACCENTED, &format!("{ACCENTED} ”"));
    let quoted = undeclare(&crate::wssec::xmlsec_sign_bytes(
        quoted.as_bytes(),
        "osi/amc-sign",
        BODY_ID,
    ));
    let tmp = scratch();
    let cases = [
        // (answer, Content-Type sent, mode, Content-Type the SIH gets)
        (
            &utf8,
            "application/soap+xml; charset=ISO-8859-1",
            "required",
            "application/soap+xml; charset=UTF-8",
        ),
        (
            &latin1,
            "application/soap+xml;charset=utf-8;action=\"urn:idb\"",
            "if-present",
            "application/soap+xml; action=\"urn:idb\"; charset=ISO-8859-1",
        ),
        (
            &utf8,
            "application/soap+xml",
            "required",
            "application/soap+xml; charset=UTF-8",
        ),
        // Already saying it, by its name: as sent; by an alias that not every SIH reads, by name.
        (
            &latin1,
            "application/soap+xml; Charset=iso-8859-1",
            "required",
            "application/soap+xml; Charset=iso-8859-1",
        ),
        (
            &latin1,
            "application/soap+xml; charset=\"ISO-8859-1\"",
            "required",
            "application/soap+xml; charset=ISO-8859-1",
        ),
        (
            &latin1,
            "application/soap+xml; charset=latin1",
            "required",
            "application/soap+xml; charset=ISO-8859-1",
        ),
        // Undeclared: in the HTTP charset's encoding when the signature verifies in it, else in
        // UTF-8 (a wrong charset), and the SIH is told which.
        (
            &undeclared,
            "application/soap+xml; charset=ISO-8859-1",
            "required",
            "application/soap+xml; charset=ISO-8859-1",
        ),
        (
            &undeclared_utf8,
            "application/soap+xml; charset=ISO-8859-1",
            "required",
            "application/soap+xml; charset=UTF-8",
        ),
        (
            &quoted,
            "text/xml; charset=windows-1252",
            "if-present",
            "text/xml; charset=UTF-8",
        ),
        // No Content-Type: none added (the declaration says).
        (&utf8, "", "required", "None"),
        // Nothing verified: as sent.
        (
            &utf8,
            "application/soap+xml; charset=ISO-8859-1",
            "off",
            "application/soap+xml; charset=ISO-8859-1",
        ),
    ];
    for (answer, sent, mode, said) in cases {
        let amc = raw_amc(answer.clone(), sent);
        let gw = gateway_to(
            &amc,
            &format!("response_signature = \"{mode}\"\n"),
            tmp.path(),
        );
        let url = format!("http://{}/amc/10000001/idb", gw.gateway);
        let out = tool(
            "python3",
            &["-c", SIH_BY_CHARSET, &url, &envelope12("<q/>")],
            tmp.path(),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (content_type, read) = stdout.split_once('\n').unwrap();
        assert_eq!(content_type, said, "{mode}, {sent}");
        assert_eq!(
            read.contains(ACCENTED),
            mode != "off",
            "{mode}, {sent}: the SIH read {read}"
        );
    }
}

/// A declaration rocgw does not read (US-ASCII with 8-bit bytes; ISO-8859-2, even on ASCII
/// bytes): nothing says which characters the SIH reads, so a signature is refused; unsigned,
/// such an answer passes `if-present`.
#[test]
fn a_signed_answer_in_an_encoding_rocgw_does_not_read_is_refused() {
    let (_, utf8) = accented_answer();
    let ascii = relabelled(&utf8, "US-ASCII");
    let (r, _amc) = call_amc(
        raw_amc(ascii, "application/soap+xml"),
        "response_signature = \"if-present\"\n",
    );
    refused(&r, "above 0x7F");
    let plain = signed(KeyForm::X509Data, "osi/amc-sign");
    assert!(plain.is_ascii());
    let latin2 = relabelled(plain.as_bytes(), "ISO-8859-2");
    let (r, _amc) = call_amc(
        raw_amc(latin2, "application/soap+xml"),
        "response_signature = \"if-present\"\n",
    );
    refused(&r, "unsupported encoding &quot;iso-8859-2&quot;");
    let unsigned = relabelled(
        envelope12(&format!("<r>{ACCENTED}</r>")).as_bytes(),
        "US-ASCII",
    );
    let (r, _amc) = call_amc(
        raw_amc(unsigned, "application/soap+xml"),
        "response_signature = \"if-present\"\n",
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

const ACCENTED: &str = "Droits ouverts à l'hôpital";
const BODY_ID: (&str, &str) = ("Id", "http://www.w3.org/2003/05/soap-envelope:Body");

/// An answer template saying [`ACCENTED`], and the same signed by `xmlsec1` in UTF-8.
fn accented_answer() -> (String, Vec<u8>) {
    let text = template(KeyForm::X509Data, "osi/amc-sign").replace("Droits ouverts", ACCENTED);
    let utf8 = crate::wssec::xmlsec_sign_bytes(text.as_bytes(), "osi/amc-sign", BODY_ID);
    (text, utf8)
}

/// `doc` with its declaration's `UTF-8` label replaced by `label` (outside what is signed).
fn relabelled(doc: &[u8], label: &str) -> Vec<u8> {
    let text = std::str::from_utf8(doc).unwrap();
    let relabelled = text.replacen(r#"encoding="UTF-8""#, &format!("encoding=\"{label}\""), 1);
    assert_ne!(relabelled, text);
    relabelled.into_bytes()
}

/// An SIH that POSTs argv[2] to argv[1] and prints the answer's Content-Type, then its body as
/// decoded by that Content-Type's charset (UTF-8 without one).
const SIH_BY_CHARSET: &str = r#"
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),
                             headers={"Content-Type": "application/soap+xml; charset=utf-8"})
with urllib.request.urlopen(req) as r:
    print(r.headers["Content-Type"])
    print(r.read().decode(r.headers.get_content_charset() or "utf-8"))
"#;

/// The signed Body moved into the header, another Body in its place (signature wrapping).
fn moved_body(signed: &str) -> String {
    let start = signed.find("<env:Body").unwrap();
    let end = signed.find("</env:Body>").unwrap() + "</env:Body>".len();
    let body = &signed[start..end];
    let without = format!(
        "{}<env:Body><r:evil xmlns:r=\"urn:t\"/></env:Body>{}",
        &signed[..start],
        &signed[end..]
    );
    without.replace(
        "</wsse:Security>",
        &format!("<w:kept xmlns:w=\"urn:w\">{body}</w:kept></wsse:Security>"),
    )
}

/// `xmlsec1 --verify` of an AMC answer, trusting the IGC OSI root.
fn xmlsec_verify_answer(doc: &str) -> (bool, String) {
    let tmp = scratch();
    let f = tmp.path().join("answer.xml");
    std::fs::write(&f, doc).unwrap();
    let out = tool(
        "xmlsec1",
        &[
            "--verify",
            "--trusted-pem",
            pki_path("osi/root.pem").to_str().unwrap(),
            "--untrusted-pem",
            pki_path("osi/ac-services-applicatifs.pem")
                .to_str()
                .unwrap(),
            "--id-attr:Id",
            "http://www.w3.org/2003/05/soap-envelope:Body",
            f.to_str().unwrap(),
        ],
        std::path::Path::new("."),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_simulator_signs_its_answers_and_its_faults_break_them() {
    use rocgw::sim::{Faults, SignatureFault};
    let s = crate::sim::SimFixture::start(|_| {});
    let dir = scratch();
    let audit = audit_file(dir.path());
    let tail = format!("[audit]\nfile = \"{}\"\n", audit.display());
    let (gw, _t) = s.gateway("response_signature = \"required\"", "", &tail, 3_000);
    let call = || post(gw.gateway, "/amc/99999991/idb", CT12, &envelope12("<q/>"));
    let r = call();
    assert_eq!(r.status, 200, "{}", r.body);
    let (ok, out) = xmlsec_verify_answer(&r.body);
    assert!(
        ok,
        "xmlsec1 refused the simulator's answer: {out}\n{}",
        r.body
    );
    for (fault, why) in [
        (SignatureFault::None, "not signed"),
        (SignatureFault::Broken, "does not verify"),
        (SignatureFault::WrongCa, "signature-role"),
        (SignatureFault::Wrapped, "resolve to the Envelope"),
    ] {
        let f = Faults {
            signature: fault,
            ..Faults::default()
        };
        s.set_faults("99999991", &f);
        refused(&call(), why);
    }
    // The audit log says why each refused answer was refused.
    let records = audit_records(&audit, 5);
    assert_eq!(records[0]["outcome"], "ok");
    for r in &records[1..] {
        assert_eq!(r["outcome"], "amc-signature-invalid", "{r}");
        assert!(!r["detail"].as_str().unwrap_or("").is_empty(), "{r}");
    }
    assert!(records[2]["detail"]
        .as_str()
        .unwrap()
        .contains("does not verify"));
}

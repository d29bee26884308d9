//! Fuzzes the envelope stamper: any bytes a SIH may send. The planner must never panic; when it
//! accepts, the stamped envelope must hold the security header and stay well-formed (for UTF-8
//! input).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rocgw::config::Profile;
use rocgw::wssec;

const ASSERTION: &str = "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_f\" IssueInstant=\"2026-01-01T00:00:00Z\" Version=\"2.0\"><saml2:Issuer>CN=Hôpital</saml2:Issuer></saml2:Assertion>";

fuzz_target!(|data: &[u8]| {
    let profile = Profile::default();
    let Ok(plan) = wssec::plan(data, &profile) else {
        return;
    };
    let out = wssec::stamp(data, &plan, ASSERTION, data.len() % 2 == 0);
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("<wsse:Security") && text.contains("CN=H"),
        "the security header is missing"
    );
    if std::str::from_utf8(&out).is_ok() {
        let mut r = quick_xml::Reader::from_reader(&out[..]);
        r.config_mut().check_end_names = true;
        loop {
            match r.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("stamped output not well-formed: {e}"),
            }
        }
    }
});

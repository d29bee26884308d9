//! The simulated AMCs' answers: realistic SOAP bodies in the request's SOAP version, and the
//! SOAP faults of a refusal. The ROC WSDLs are not public, so the body elements live in a
//! placeholder namespace (`urn:rocgw:sim`); integrators test their flows, not a schema.

use crate::fault::escape;
use crate::soap::SoapVersion;

/// Namespace of the simulator's body elements.
pub const NS: &str = "urn:rocgw:sim";

fn envelope(version: SoapVersion, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><env:Envelope xmlns:env=\"{}\"><env:Body>{body}</env:Body></env:Envelope>",
        version.namespace()
    )
}

/// Amounts in cents derived from the request, so repeated requests get repeated answers.
fn amounts(seed: u64) -> (u64, u64, u64) {
    let total = 2_000 + seed % 48_000;
    let amo = total * 60 / 100;
    let amc = (total - amo) * 9 / 10;
    (total, amo, amc)
}

fn euros(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A stable 64-bit digest of the request body (FNV-1a), for deterministic answers.
pub fn seed(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The answer of service `service` of AMC `numero` to a valid request. `known` is false when
/// the beneficiary is unknown (IDB and the calculations then say so, as a business answer).
pub fn answer(
    version: SoapVersion,
    numero: &str,
    service: &str,
    known: bool,
    seed: u64,
    reference: &str,
) -> String {
    let numero = escape(numero);
    let reference = escape(reference);
    let body = match (service, known) {
        ("idb", true) => format!(
            "<r:idbResponse xmlns:r=\"{NS}\"><r:numeroAmc>{numero}</r:numeroAmc>\
             <r:resultat><r:code>00</r:code><r:libelle>Droits ouverts</r:libelle></r:resultat>\
             <r:droits><r:dateDebut>2026-01-01</r:dateDebut><r:dateFin>2026-12-31</r:dateFin>\
             <r:garantie>HOSPITALISATION</r:garantie><r:tauxRemboursement>100</r:tauxRemboursement></r:droits>\
             <r:referenceDossier>{reference}</r:referenceDossier></r:idbResponse>"
        ),
        (_, false) => format!(
            "<r:{service}Response xmlns:r=\"{NS}\"><r:numeroAmc>{numero}</r:numeroAmc>\
             <r:resultat><r:code>01</r:code><r:libelle>Bénéficiaire inconnu</r:libelle></r:resultat>\
             <r:referenceDossier>{reference}</r:referenceDossier></r:{service}Response>",
            service = escape(service)
        ),
        ("clc" | "simulation", true) => {
            let (total, amo, amc) = amounts(seed);
            format!(
                "<r:{service}Response xmlns:r=\"{NS}\"><r:numeroAmc>{numero}</r:numeroAmc>\
                 <r:resultat><r:code>00</r:code><r:libelle>Calcul effectué</r:libelle></r:resultat>\
                 <r:montants devise=\"EUR\"><r:montantTotal>{}</r:montantTotal>\
                 <r:partAmo>{}</r:partAmo><r:partAmc>{}</r:partAmc><r:resteACharge>{}</r:resteACharge></r:montants>\
                 <r:referenceDossier>{reference}</r:referenceDossier></r:{service}Response>",
                euros(total),
                euros(amo),
                euros(amc),
                euros(total - amo - amc),
            )
        }
        ("annulation", true) => format!(
            "<r:annulationResponse xmlns:r=\"{NS}\"><r:numeroAmc>{numero}</r:numeroAmc>\
             <r:acquittement><r:code>00</r:code><r:libelle>Annulation prise en compte</r:libelle></r:acquittement>\
             <r:referenceDossier>{reference}</r:referenceDossier></r:annulationResponse>"
        ),
        (other, true) => format!(
            "<r:response xmlns:r=\"{NS}\"><r:numeroAmc>{numero}</r:numeroAmc><r:service>{}</r:service>\
             <r:resultat><r:code>00</r:code><r:libelle>OK</r:libelle></r:resultat></r:response>",
            escape(other)
        ),
    };
    envelope(version, &body)
}

/// A SOAP fault from the AMC: `reason` is the stable code (also in `X-Rocsim-Reason`).
pub fn fault(version: SoapVersion, sender: bool, reason: &str, fr: &str, detail: &str) -> String {
    let text = escape(&format!("{fr} ({reason}): {detail}")).into_owned();
    let body = match version {
        SoapVersion::V11 => format!(
            "<env:Fault><faultcode>env:{}</faultcode><faultstring xml:lang=\"fr\">{text}</faultstring>\
             <detail><r:erreur xmlns:r=\"{NS}\"><r:code>{}</r:code></r:erreur></detail></env:Fault>",
            if sender { "Client" } else { "Server" },
            escape(reason)
        ),
        SoapVersion::V12 => format!(
            "<env:Fault><env:Code><env:Value>env:{}</env:Value><env:Subcode><env:Value xmlns:r=\"{NS}\">r:{}</env:Value></env:Subcode></env:Code>\
             <env:Reason><env:Text xml:lang=\"fr\">{text}</env:Text></env:Reason></env:Fault>",
            if sender { "Sender" } else { "Receiver" },
            escape(reason)
        ),
    };
    envelope(version, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_well_formed_soap_of_the_request_version() {
        for v in [SoapVersion::V11, SoapVersion::V12] {
            for (svc, known) in [
                ("idb", true),
                ("idb", false),
                ("clc", true),
                ("simulation", true),
                ("annulation", true),
                ("autre<&>", true),
            ] {
                let a = answer(v, "99999991", svc, known, 42, "ref-1");
                assert_eq!(crate::soap::sniff(a.as_bytes()).unwrap(), v, "{a}");
                let mut r = quick_xml::Reader::from_str(&a);
                r.config_mut().check_end_names = true;
                while !matches!(r.read_event().unwrap(), quick_xml::events::Event::Eof) {}
            }
            let f = fault(v, true, "wrong-audience", "Requête refusée", "a < b");
            assert_eq!(crate::soap::sniff(f.as_bytes()).unwrap(), v);
            assert!(
                f.contains("wrong-audience") && f.contains("a &lt; b"),
                "{f}"
            );
        }
        let (total, amo, amc) = amounts(seed(b"x"));
        assert!(amo + amc < total);
    }
}

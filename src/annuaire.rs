//! The Annuaire AMC's messages: the lookup request rocgw sends and the answer it reads, and the
//! same mapping from the other side for the simulator. This file is the one place to change when
//! the real ES/ROC annuaire contract is published (it is not public; `shared/ROC-NOTES.md`).
//!
//! The shape follows the public city-side material: a SOAP 1.1 `search` request carrying
//! `requete` (version, date, editeur, logiciel, version_logiciel) and `adressage` (numero_amc,
//! code_type_convention, code_csr, domaine_conventionnel, code_service, code_norme_service,
//! version_norme_service). The answer lists, for one AMC, the address of each service:
//!
//! ```xml
//! <ann:searchResponse xmlns:ann="urn:rocgw:annuaire-amc:1">
//!   <ann:resultat><ann:code>0</ann:code><ann:libelle>OK</ann:libelle></ann:resultat>
//!   <ann:amc>
//!     <ann:numero_amc>99999991</ann:numero_amc><ann:libelle>MUTUELLE TEST UN</ann:libelle>
//!     <ann:service><ann:code_service>idb</ann:code_service>
//!       <ann:adresse>https://amc.example/idb</ann:adresse></ann:service>
//!   </ann:amc>
//! </ann:searchResponse>
//! ```
//!
//! Result codes: `0` found, `1` unknown AMC. A found answer is used only when it holds exactly
//! one `amc` block and that block's `numero_amc` is the AMC asked; any other answer is an error
//! (the SIH gets `annuaire-unavailable`, nothing is cached). Elements are read by local name,
//! whatever their prefix or namespace, so a renamed namespace does not break the mapping.

use quick_xml::events::Event;
use quick_xml::Reader;

use crate::config::Requester;
use crate::fault::escape;

mod directory;
pub use directory::{Directory, Fetch};

/// Namespace of the lookup messages (rocgw's placeholder until the contract is public).
pub const NS: &str = "urn:rocgw:annuaire-amc:1";
/// Result code of a found AMC.
pub const FOUND: &str = "0";
/// Result code of an unknown AMC.
pub const UNKNOWN_AMC: &str = "1";

/// The routing keys of a lookup (`adressage`); empty keys are left out of the request. Also
/// the cache key: one cached answer per AMC, service and routing keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub numero_amc: String,
    pub code_service: String,
    pub code_type_convention: String,
    pub code_csr: String,
    pub domaine_conventionnel: String,
}

/// One AMC's entry in an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub numero_amc: String,
    pub libelle: String,
    /// (service code, https address).
    pub services: Vec<(String, String)>,
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Found(Entry),
    UnknownAmc,
}

/// The `SOAPAction` of the lookup (SOAP 1.1), quoted as the binding writes it.
pub const SEARCH_ACTION: &str = "\"search\"";

/// The SOAP 1.1 lookup request.
pub fn search_request(who: &Requester, lookup: &Lookup, now: i64) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"{}\" xmlns:ann=\"{NS}\"><soapenv:Body><ann:search>\
         <ann:requete>",
        crate::soap::SOAP11_NS
    );
    for (name, value) in [
        ("version", who.version.as_str()),
        ("date", &crate::clock::fmt_time(now)),
        ("editeur", &who.editeur),
        ("logiciel", &who.logiciel),
        ("version_logiciel", &who.version_logiciel),
    ] {
        element(&mut s, name, value);
    }
    s.push_str("</ann:requete><ann:adressage>");
    for (name, value) in [
        ("numero_amc", &lookup.numero_amc),
        ("code_type_convention", &lookup.code_type_convention),
        ("code_csr", &lookup.code_csr),
        ("domaine_conventionnel", &lookup.domaine_conventionnel),
        ("code_service", &lookup.code_service),
    ] {
        if !value.is_empty() {
            element(&mut s, name, value);
        }
    }
    s.push_str("</ann:adressage></ann:search></soapenv:Body></soapenv:Envelope>");
    s
}

/// The answer to a lookup (the simulator's side).
pub fn search_response(answer: &Answer) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soapenv:Envelope xmlns:soapenv=\"{}\"><soapenv:Body>\
         <ann:searchResponse xmlns:ann=\"{NS}\"><ann:resultat>",
        crate::soap::SOAP11_NS
    );
    match answer {
        Answer::UnknownAmc => {
            element(&mut s, "code", UNKNOWN_AMC);
            element(&mut s, "libelle", "AMC inconnue");
            s.push_str("</ann:resultat>");
        }
        Answer::Found(e) => {
            element(&mut s, "code", FOUND);
            element(&mut s, "libelle", "OK");
            s.push_str("</ann:resultat><ann:amc>");
            element(&mut s, "numero_amc", &e.numero_amc);
            element(&mut s, "libelle", &e.libelle);
            for (code, url) in &e.services {
                s.push_str("<ann:service>");
                element(&mut s, "code_service", code);
                element(&mut s, "adresse", url);
                s.push_str("</ann:service>");
            }
            s.push_str("</ann:amc>");
        }
    }
    s.push_str("</ann:searchResponse></soapenv:Body></soapenv:Envelope>");
    s
}

fn element(out: &mut String, name: &str, value: &str) {
    out.push_str("<ann:");
    out.push_str(name);
    out.push('>');
    out.push_str(&escape(value));
    out.push_str("</ann:");
    out.push_str(name);
    out.push('>');
}

/// Text of every element, by local name, in document order (`path` is the chain of local names
/// of the open elements). Refuses DTDs.
fn texts(body: &[u8]) -> Result<Vec<(Vec<String>, String)>, String> {
    crate::soap::sniff(body).map_err(|e| e.to_string())?;
    let mut r = Reader::from_reader(body);
    r.config_mut().check_end_names = true;
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let mut text = String::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text.clear();
            }
            Ok(Event::Empty(e)) => {
                let mut p = path.clone();
                p.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                out.push((p, String::new()));
            }
            Ok(Event::Text(t)) => {
                text.push_str(&t.decode().map_err(|_| "invalid text".to_string())?);
            }
            Ok(Event::GeneralRef(g)) => {
                let name = g.decode().map_err(|_| "invalid reference".to_string())?;
                let c = match (name.as_ref(), g.resolve_char_ref()) {
                    (_, Ok(Some(c))) => c,
                    ("amp", _) => '&',
                    ("lt", _) => '<',
                    ("gt", _) => '>',
                    ("quot", _) => '"',
                    ("apos", _) => '\'',
                    _ => return Err("reference to an undeclared entity".into()),
                };
                text.push(c);
            }
            Ok(Event::CData(c)) => text.push_str(&String::from_utf8_lossy(&c)),
            Ok(Event::End(_)) => {
                out.push((path.clone(), std::mem::take(&mut text).trim().to_string()));
                path.pop();
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("not well-formed XML: {e}")),
        }
    }
    Ok(out)
}

fn ends_with(path: &[String], tail: &[&str]) -> bool {
    path.len() >= tail.len()
        && path[path.len() - tail.len()..]
            .iter()
            .zip(tail)
            .all(|(a, b)| a == b)
}

/// Reads a lookup request (the simulator's side).
pub fn parse_search_request(body: &[u8]) -> Result<Lookup, String> {
    let mut l = Lookup::default();
    let mut searched = false;
    for (path, text) in texts(body)? {
        if ends_with(&path, &["Body", "search"]) {
            searched = true;
        }
        let Some(last) = path.last() else { continue };
        if path.len() >= 2 && path[path.len() - 2] == "adressage" {
            match last.as_str() {
                "numero_amc" => l.numero_amc = text,
                "code_service" => l.code_service = text,
                "code_type_convention" => l.code_type_convention = text,
                "code_csr" => l.code_csr = text,
                "domaine_conventionnel" => l.domaine_conventionnel = text,
                _ => {}
            }
        }
    }
    if !searched {
        return Err("not an annuaire search request".into());
    }
    if l.numero_amc.is_empty() {
        return Err("the request has no adressage/numero_amc".into());
    }
    Ok(l)
}

/// Reads the answer to `asked` (rocgw's side). A found answer must hold exactly one `amc` block,
/// with one `numero_amc`, the AMC asked: an answer about another AMC, or listing several (whose
/// services would otherwise be merged), is an error, so nothing of it is cached or used. Every
/// address is returned as written; the caller decides which ones it may use.
pub fn parse_search_response(body: &[u8], asked: &Lookup) -> Result<Answer, String> {
    let mut code = None;
    let mut entries = Vec::new();
    let mut entry = Entry::default();
    let mut numeros = 0usize;
    let mut service = (String::new(), String::new());
    let mut any = false;
    for (path, text) in texts(body)? {
        if ends_with(&path, &["searchResponse"]) {
            any = true;
        } else if ends_with(&path, &["resultat", "code"]) {
            code = Some(text);
        } else if ends_with(&path, &["amc", "numero_amc"]) {
            numeros += 1;
            entry.numero_amc = text;
        } else if ends_with(&path, &["amc", "libelle"]) {
            entry.libelle = text;
        } else if ends_with(&path, &["service", "code_service"]) {
            service.0 = text;
        } else if ends_with(&path, &["service", "adresse"]) {
            service.1 = text;
        } else if ends_with(&path, &["amc", "service"]) {
            let s = std::mem::take(&mut service);
            if s.0.is_empty() || s.1.is_empty() {
                return Err("a service without code_service or adresse".into());
            }
            entry.services.push((s.0.to_ascii_lowercase(), s.1));
        } else if ends_with(&path, &["amc"]) {
            if numeros > 1 {
                return Err(format!("an amc block with {numeros} numero_amc"));
            }
            numeros = 0;
            entries.push(std::mem::take(&mut entry));
        }
    }
    if !any {
        return Err("not an annuaire searchResponse".into());
    }
    match code.as_deref() {
        Some(FOUND) => the_one_asked(entries, &asked.numero_amc).map(Answer::Found),
        Some(UNKNOWN_AMC) => Ok(Answer::UnknownAmc),
        Some(other) => Err(format!("unexpected result code {other:?}")),
        None => Err("no resultat/code".into()),
    }
}

/// The single entry of a found answer, when it is about `asked`.
fn the_one_asked(mut entries: Vec<Entry>, asked: &str) -> Result<Entry, String> {
    let number = |e: &Entry| shown(&e.numero_amc);
    let e = match entries.len() {
        0 => return Err("found, but no amc block".into()),
        1 => entries.remove(0),
        n => {
            let numbers: Vec<String> = entries.iter().map(number).collect();
            return Err(format!(
                "{n} amc blocks ({}) where one, about AMC {asked}, was expected",
                numbers.join(", ")
            ));
        }
    };
    if e.numero_amc.is_empty() {
        return Err("found, but no amc/numero_amc".into());
    }
    if e.numero_amc != asked {
        return Err(format!(
            "the answer is about AMC {}, not the AMC asked ({asked})",
            number(&e)
        ));
    }
    Ok(e)
}

/// An AMC number from an answer, fit for a log line and a fault detail (what the annuaire
/// wrote is not trusted to be one).
fn shown(numero: &str) -> String {
    if crate::config::is_amc_number(numero) {
        numero.to_string()
    } else {
        "(not an AMC number)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answer_round_trip() {
        let lookup = Lookup {
            numero_amc: "99999991".into(),
            code_service: "idb".into(),
            code_csr: "A&B".into(),
            ..Lookup::default()
        };
        let req = search_request(&Requester::default(), &lookup, 1_700_000_000);
        assert!(req.contains("<ann:logiciel>rocgw</ann:logiciel>"), "{req}");
        assert!(!req.contains("code_type_convention"), "{req}");
        assert_eq!(parse_search_request(req.as_bytes()).unwrap(), lookup);

        let entry = Entry {
            numero_amc: "99999991".into(),
            libelle: "MUTUELLE TEST <UN>".into(),
            services: vec![
                ("idb".into(), "https://localhost:1/amc/99999991/idb".into()),
                ("clc".into(), "https://localhost:1/amc/99999991/clc".into()),
            ],
        };
        let found = Answer::Found(entry);
        assert_eq!(
            parse_search_response(search_response(&found).as_bytes(), &lookup).unwrap(),
            found
        );
        assert_eq!(
            parse_search_response(search_response(&Answer::UnknownAmc).as_bytes(), &lookup)
                .unwrap(),
            Answer::UnknownAmc
        );
    }

    fn asked(numero: &str) -> Lookup {
        Lookup {
            numero_amc: numero.into(),
            code_service: "idb".into(),
            ..Lookup::default()
        }
    }

    #[test]
    fn unexpected_answers_are_clear_errors() {
        let env = |inner: &str| {
            format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{inner}</s:Body></s:Envelope>")
        };
        for (body, needle) in [
            (env("<other/>"), "not an annuaire"),
            (env("<r:searchResponse xmlns:r=\"x\"><r:resultat><r:code>7</r:code></r:resultat></r:searchResponse>"), "unexpected result code"),
            (env("<searchResponse><resultat><code>0</code></resultat><amc><numero_amc>1</numero_amc><service><code_service>idb</code_service></service></amc></searchResponse>"), "without code_service or adresse"),
            ("<!DOCTYPE x><x/>".to_string(), "DOCTYPE"),
        ] {
            let e = parse_search_response(body.as_bytes(), &asked("1")).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn a_found_answer_is_about_the_one_amc_asked() {
        let amc = |n: &str, svc: &str| {
            format!("<amc><numero_amc>{n}</numero_amc><service><code_service>{svc}</code_service><adresse>https://x/{svc}</adresse></service></amc>")
        };
        let answer = |blocks: &str| {
            format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><searchResponse><resultat><code>0</code></resultat>{blocks}</searchResponse></s:Body></s:Envelope>")
        };
        let ok = parse_search_response(
            answer(&amc("30000002", "idb")).as_bytes(),
            &asked("30000002"),
        );
        assert!(matches!(ok, Ok(Answer::Found(e)) if e.numero_amc == "30000002"));
        for (blocks, needle) in [
            (
                amc("99999999", "idb"),
                "about AMC 99999999, not the AMC asked (30000002)",
            ),
            (amc("030000002", "idb"), "about AMC 030000002"),
            (amc("A\nB", "idb"), "about AMC (not an AMC number)"),
            (
                amc("30000002", "idb") + &amc("99999999", "clc"),
                "2 amc blocks (30000002, 99999999)",
            ),
            (
                amc("30000002", "idb") + &amc("30000002", "clc"),
                "2 amc blocks",
            ),
            (
                "<amc><numero_amc>30000002</numero_amc><numero_amc>9</numero_amc></amc>".into(),
                "2 numero_amc",
            ),
            (String::new(), "no amc block"),
        ] {
            let e =
                parse_search_response(answer(&blocks).as_bytes(), &asked("30000002")).unwrap_err();
            assert!(e.contains(needle), "{blocks}: {e}");
        }
    }
}

//! The request bodies `rocgw load` sends: built-in SOAP 1.2 templates per service, or the
//! integrator's own, with placeholders varied per request (NIR with a valid key, dates, ids).

/// The built-in body of a service: a SOAP 1.2 request with WS-Addressing and placeholders; for
/// the annuaire pass-through, the lookup message of the AMC (`annuaire` module).
pub fn builtin_template(service: &str) -> String {
    if service == super::ANNUAIRE {
        let lookup = crate::annuaire::Lookup {
            numero_amc: "{{amc}}".into(),
            code_service: "idb".into(),
            ..Default::default()
        };
        let who = crate::config::Requester::default();
        return crate::annuaire::search_request(&who, &lookup, crate::clock::now_unix());
    }
    let body = match service {
        "idb" => "<r:identificationDroits xmlns:r=\"urn:rocgw:load\"><r:numeroAmc>{{amc}}</r:numeroAmc><r:beneficiaire><r:nir>{{nir}}</r:nir><r:dateNaissance>{{birthdate}}</r:dateNaissance><r:rang>1</r:rang></r:beneficiaire><r:dateSoins>{{date}}</r:dateSoins></r:identificationDroits>",
        "clc" | "simulation" => "<r:calcul xmlns:r=\"urn:rocgw:load\"><r:numeroAmc>{{amc}}</r:numeroAmc><r:nir>{{nir}}</r:nir><r:dateSoins>{{date}}</r:dateSoins><r:acte code=\"GHS\" montant=\"{{amount}}\"/></r:calcul>",
        "annulation" => "<r:annulation xmlns:r=\"urn:rocgw:load\"><r:numeroAmc>{{amc}}</r:numeroAmc><r:referenceDossier>{{uuid}}</r:referenceDossier></r:annulation>",
        _ => "<r:requete xmlns:r=\"urn:rocgw:load\"><r:numeroAmc>{{amc}}</r:numeroAmc><r:nir>{{nir}}</r:nir></r:requete>",
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\"><soap:Header><wsa:Action>urn:rocgw:load:{{{{service}}}}</wsa:Action><wsa:MessageID>urn:uuid:{{{{uuid}}}}</wsa:MessageID></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// Fills a template's placeholders: `{{amc}}`, `{{service}}`, `{{seq}}`, `{{uuid}}`, `{{nir}}`
/// (a fictitious, well-formed NIR with its key), `{{birthdate}}`, `{{date}}` (today),
/// `{{amount}}` (euros).
pub fn render(
    template: &str,
    amc: &str,
    service: &str,
    seq: u64,
    rng: &mut fastrand::Rng,
) -> String {
    Template::parse(template).render(amc, service, seq, rng)
}

/// A template read once: its text and placeholders in order, so that each request only fills
/// them in (no search, one allocation).
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    text_len: usize,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Amc,
    Service,
    Seq,
    Uuid,
    Nir,
    Birthdate,
    Date,
    Amount,
}

impl Template {
    pub fn parse(template: &str) -> Template {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(i) = rest.find("{{") {
            text.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(j) = after.find("}}") else {
                text.push_str(&rest[i..]);
                rest = "";
                break;
            };
            let piece = match after[..j].trim() {
                "amc" => Piece::Amc,
                "service" => Piece::Service,
                "seq" => Piece::Seq,
                "uuid" => Piece::Uuid,
                "nir" => Piece::Nir,
                "birthdate" => Piece::Birthdate,
                "date" => Piece::Date,
                "amount" => Piece::Amount,
                other => {
                    text.push_str("{{");
                    text.push_str(other);
                    text.push_str("}}");
                    rest = &after[j + 2..];
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &after[j + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let text_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.len(),
                _ => 0,
            })
            .sum();
        Template { pieces, text_len }
    }

    /// The body of request `seq` to `amc`'s `service`.
    pub fn render(&self, amc: &str, service: &str, seq: u64, rng: &mut fastrand::Rng) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.text_len + 96);
        for p in &self.pieces {
            let _ = match p {
                Piece::Text(t) => {
                    out.push_str(t);
                    Ok(())
                }
                Piece::Amc => {
                    out.push_str(amc);
                    Ok(())
                }
                Piece::Service => {
                    out.push_str(service);
                    Ok(())
                }
                Piece::Seq => write!(out, "{seq}"),
                Piece::Uuid => {
                    out.push_str(&uuid(rng));
                    Ok(())
                }
                Piece::Nir => {
                    out.push_str(&nir(rng));
                    Ok(())
                }
                Piece::Birthdate => write!(
                    out,
                    "{}-{:02}-{:02}",
                    rng.u32(1940..2024),
                    rng.u32(1..13),
                    rng.u32(1..29)
                ),
                Piece::Date => {
                    out.push_str(&crate::clock::fmt_time(crate::clock::now_unix())[..10]);
                    Ok(())
                }
                Piece::Amount => write!(out, "{}.{:02}", rng.u32(20..2000), rng.u32(0..100)),
            };
        }
        out
    }
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let (a, b) = (rng.u64(..), rng.u64(..));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// A fictitious NIR: sex, year, month, département 99 (born abroad), and its key.
pub(super) fn nir(rng: &mut fastrand::Rng) -> String {
    let n = format!(
        "{}{:02}{:02}99{:03}{:03}",
        rng.u32(1..3),
        rng.u32(0..100),
        rng.u32(1..13),
        rng.u32(1..1000),
        rng.u32(1..1000)
    );
    let key = 97 - n.parse::<u64>().unwrap_or(0) % 97;
    format!("{n}{key:02}")
}

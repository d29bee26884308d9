//! Inputs of the differential stamping fuzzer (`fuzz_stamp.rs`): SOAP envelopes generated from
//! their structure (prolog, encodings, byte order mark, prefixes, default namespaces, scopes,
//! Header absent / empty / self-closing / with content and existing `wsse:Security` headers,
//! payload trees with attributes, references, CDATA, comments and processing instructions), then
//! byte mutations, some aimed at markup, with a dictionary of XML tokens; accepted inputs are
//! kept and mutated again.

use fastrand::Rng;

const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";

/// An encoding the generator writes an envelope in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cs {
    Utf8,
    Latin1,
    Latin9,
    Cp1252,
    Ascii,
}

impl Cs {
    fn labels(self) -> &'static [&'static str] {
        match self {
            Cs::Utf8 => &["UTF-8", "utf-8", "utf8"],
            Cs::Latin1 => &["ISO-8859-1", "iso-8859-1", "latin1", "Latin-1"],
            Cs::Latin9 => &["ISO-8859-15"],
            Cs::Cp1252 => &["windows-1252", "cp1252"],
            Cs::Ascii => &["US-ASCII", "ascii"],
        }
    }

    /// Non-ASCII characters this encoding can write, good in names and text.
    fn letters(self) -> &'static [char] {
        match self {
            Cs::Utf8 => &['é', 'ô', 'Œ', 'ç', 'Ж', '中', 'ÿ'],
            Cs::Latin1 => &['é', 'ô', 'ç', 'ÿ', 'À'],
            Cs::Latin9 => &['é', 'Œ', 'Š', 'ô'],
            Cs::Cp1252 => &['é', 'Œ', 'Š', 'ô'],
            Cs::Ascii => &[],
        }
    }

    /// Non-ASCII characters good in text only.
    fn symbols(self) -> &'static [char] {
        match self {
            Cs::Utf8 => &['€', '—', '×', '\u{A0}', '😀', '\u{85}', '\u{FFFD}', '·'],
            Cs::Latin1 => &['×', '\u{A0}', '·', '\u{85}', '¤'],
            Cs::Latin9 => &['€', '×', '\u{A0}'],
            Cs::Cp1252 => &['€', '—', '™', '×'],
            Cs::Ascii => &[],
        }
    }

    fn encode(self, s: &str) -> Vec<u8> {
        match self {
            Cs::Utf8 | Cs::Ascii => s.as_bytes().to_vec(),
            Cs::Latin1 => s
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Cs::Latin9 | Cs::Cp1252 => s
                .chars()
                .map(|c| {
                    (0x80..=0xFFu8)
                        .find(|&b| crate::decode_byte(self.label_cs(), b) == Some(c))
                        .unwrap_or(if c.is_ascii() { c as u8 } else { b'?' })
                })
                .collect(),
        }
    }

    fn label_cs(self) -> crate::Single {
        match self {
            Cs::Latin9 => crate::Single::Latin9,
            Cs::Cp1252 => crate::Single::Cp1252,
            _ => crate::Single::Latin1,
        }
    }
}

/// Pieces of XML the mutations splice in.
const TOKENS: &[&[u8]] = &[
    b"<", b">", b"/>", b"</", b"\"", b"'", b"=", b":", b"&", b";", b"]]>", b"]]", b"<![CDATA[",
    b"<!--", b"-->", b"--", b"-", b"<?xml version=\"1.0\"?>", b"<?XML?>", b"<?xml?>", b"<?pi x?>",
    b"<?p:i?>", b"<?xml-stylesheet href='a'?>", b" xmlns=\"\"", b" xmlns:p=\"urn:p\"",
    b" xmlns:p=\"\"", b" xmlns:q=\"urn:p\"", b" p:x=\"1\"", b" q:x=\"1\"", b" x=\"1\"",
    b" x=\"1\" x=\"2\"", b"&amp;", b"&#x0;", b"&#xD800;", b"&#x10FFFF;", b"&#xFFFE;", b"&nope;",
    b"&#65;", b"\r\n", b"\r", b"\t", b"\x00", b"\x01", b"\x0C", b"\x7F", b"\xC3\xA9", b"\xE9",
    b"\xEF\xBB\xBF", b"\xEF\xBF\xBE", b"\xEF\xBF\xBF", b"\xFF", b"\x80", b"\x81", b"\x9D",
    b"\xE2\x81\xB0", b"<!DOCTYPE a>", b"<!ELEMENT a ANY>", b" encoding=\"US-ASCII\"",
    b" encoding=\"ISO-8859-1\"", b" encoding=\"UTF-16\"", b" standalone=\"yes\"",
    b" version=\"1.1\"", b" xml:lang=\"fr\"",
    b" xmlns:xml=\"http://www.w3.org/XML/1998/namespace\"",
    b" xmlns:p=\"http://www.w3.org/2000/xmlns/\"", b" xmlns:xmlns=\"urn:x\"", b"xmlns:", b":a",
    b"a:", b"a:b:c", b"1a", b".a", b"-", b"\xC2\xB7", b"<s:Header/>", b"<s:Body/>",
    b"<wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"/>",
    b" ", b"  \n ", b"<a>", b"</a>", b"<a/>",
];

pub struct Gen {
    pub rng: Rng,
    pool: Vec<Vec<u8>>,
    next_slot: usize,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            rng: Rng::with_seed(seed),
            pool: Vec::new(),
            next_slot: 0,
        }
    }

    /// The next input: a generated envelope (mutated half of the time) or a kept one mutated.
    pub fn input(&mut self) -> Vec<u8> {
        if !self.pool.is_empty() && self.rng.u8(..) < 90 {
            let mut b = self.pool[self.rng.usize(..self.pool.len())].clone();
            let n = self.rng.usize(1..=3);
            self.mutate(&mut b, n);
            return b;
        }
        let mut b = self.envelope();
        if self.rng.bool() {
            let n = self.rng.usize(1..=4);
            self.mutate(&mut b, n);
        }
        b
    }

    /// Keeps an accepted input to mutate it again later.
    pub fn keep(&mut self, input: &[u8]) {
        if input.len() > 16_384 {
            return;
        }
        if self.pool.len() < 2_000 {
            self.pool.push(input.to_vec());
        } else {
            self.pool[self.next_slot] = input.to_vec();
            self.next_slot = (self.next_slot + 1) % self.pool.len();
        }
    }

    fn mutate(&mut self, b: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            if b.is_empty() {
                b.extend_from_slice(b"<a/>");
            }
            // Half of the mutations land next to markup, where parsers decide things.
            let at = if self.rng.bool() {
                let marks: Vec<usize> = (0..b.len())
                    .filter(|&i| {
                        matches!(b[i], b'<' | b'>' | b'"' | b'\'' | b'=' | b':' | b'&' | b' ')
                    })
                    .collect();
                if marks.is_empty() {
                    self.rng.usize(..=b.len())
                } else {
                    marks[self.rng.usize(..marks.len())] + self.rng.usize(0..=1)
                }
            } else {
                self.rng.usize(..=b.len())
            }
            .min(b.len());
            let len = self.rng.usize(1..=16).min(b.len() - at);
            let token = TOKENS[self.rng.usize(..TOKENS.len())];
            match self.rng.u8(..8) {
                0 if at < b.len() => b[at] = self.rng.u8(..),
                1 => drop(b.splice(at..at, token.iter().copied())),
                2 => drop(b.drain(at..at + len)),
                3 => {
                    let piece = b[at..at + len].to_vec();
                    let to = self.rng.usize(..=b.len());
                    b.splice(to..to, piece);
                }
                4 => drop(b.splice(at..at + len, token.iter().copied())),
                5 => b.insert(at, b"<>&\"'=:/?!-]; \n"[self.rng.usize(..15)]),
                6 if self.rng.u8(..4) == 0 => b.truncate(at),
                _ => {
                    let other = self.rng.usize(..=b.len());
                    let (x, y) = (at.min(other), at.max(other));
                    let l = len.min(y - x).min(b.len() - y);
                    for k in 0..l {
                        b.swap(x + k, y + k);
                    }
                }
            }
        }
    }

    /// A generated envelope, in one of the encodings.
    fn envelope(&mut self) -> Vec<u8> {
        let cs = match self.rng.u8(..20) {
            0..=12 => Cs::Utf8,
            13 | 14 => Cs::Latin1,
            15 => Cs::Latin9,
            16 => Cs::Cp1252,
            _ => Cs::Ascii,
        };
        let mut w = W {
            rng: &mut self.rng,
            out: String::with_capacity(2048),
            cs,
            scopes: Vec::new(),
            soap: SOAP11,
            prefix: String::new(),
        };
        let bom = cs == Cs::Utf8 && w.rng.u8(..10) == 0;
        w.prolog();
        w.envelope();
        w.misc(2);
        let mut bytes = cs.encode(&w.out);
        if bom {
            bytes.splice(0..0, [0xEF, 0xBB, 0xBF]);
        }
        bytes
    }
}

/// The envelope being written, with the prefixes declared in each open scope.
struct W<'a> {
    rng: &'a mut Rng,
    out: String,
    cs: Cs,
    scopes: Vec<Vec<String>>,
    soap: &'static str,
    prefix: String,
}

impl W<'_> {
    fn pick<'b, T>(&mut self, xs: &'b [T]) -> &'b T {
        &xs[self.rng.usize(..xs.len())]
    }

    fn chance(&mut self, percent: u8) -> bool {
        self.rng.u8(..100) < percent
    }

    fn prolog(&mut self) {
        let declared = self.cs != Cs::Utf8 || self.chance(60);
        if declared {
            let q = if self.chance(80) { '"' } else { '\'' };
            self.out.push_str(&format!("<?xml version={q}1.0{q}"));
            if self.cs != Cs::Utf8 || self.chance(70) {
                let label = *self.pick(self.cs.labels());
                self.out.push_str(&format!(" encoding={q}{label}{q}"));
            }
            if self.chance(20) {
                self.out.push_str(" standalone=\"yes\"");
            }
            let end = if self.chance(80) { "?>" } else { " ?>" };
            self.out.push_str(end);
        }
        self.misc(2);
    }

    /// Comments, processing instructions and white space (at most `n`).
    fn misc(&mut self, n: usize) {
        for _ in 0..self.rng.usize(..=n) {
            match self.rng.u8(..4) {
                0 => {
                    let t = self.text_piece(false);
                    self.out
                        .push_str(&format!("<!--{}-->", t.replace("--", "-")));
                }
                1 => {
                    let pi = *self.pick(&[
                        "<?sih trace?>",
                        "<?pi?>",
                        "<?xml-stylesheet type='text/xsl' href='a.xsl'?>",
                        "<?t a?b>c?>",
                    ]);
                    self.out.push_str(pi);
                }
                _ => {
                    let ws = *self.pick(&["\n", " ", "\r\n", "\t"]);
                    self.out.push_str(ws);
                }
            }
        }
    }

    fn envelope(&mut self) {
        self.soap = if self.rng.bool() { SOAP11 } else { SOAP12 };
        if self.chance(2) {
            self.soap = "urn:not-soap";
        }
        let letter = self.cs.letters().first().map(|c| c.to_string());
        let mut prefixes = vec!["soap", "S", "soapenv", "env", "", "s-1.x", "_"];
        if let Some(l) = &letter {
            prefixes.push(l.as_str());
        }
        self.prefix = self.pick(&prefixes).to_string();
        let p = self.qual("Envelope");
        self.out.push_str(&format!("<{p}"));
        let decl = if self.prefix.is_empty() {
            "xmlns".to_string()
        } else {
            format!("xmlns:{}", self.prefix)
        };
        self.out.push_str(&format!(" {decl}=\"{}\"", self.soap));
        let mut declared = vec![self.prefix.clone()];
        self.extra_declarations(&mut declared);
        self.out.push('>');
        self.scopes.push(declared);
        self.misc(1);
        if self.chance(75) {
            self.header();
            self.misc(1);
        }
        self.body();
        if self.chance(5) {
            self.element(2, 1);
        }
        self.misc(1);
        self.out.push_str(&format!("</{p}>"));
        self.scopes.pop();
    }

    fn qual(&self, local: &str) -> String {
        if self.prefix.is_empty() {
            local.to_string()
        } else {
            format!("{}:{local}", self.prefix)
        }
    }

    fn extra_declarations(&mut self, declared: &mut Vec<String>) {
        for _ in 0..self.rng.usize(..=2) {
            let (p, ns) = *self.pick(&[
                ("wsa", "http://www.w3.org/2005/08/addressing"),
                ("p", "urn:p"),
                ("q", "urn:q"),
                ("xs", "http://www.w3.org/2001/XMLSchema"),
                ("ds", "urn:not-dsig"),
                ("", "urn:default"),
            ]);
            if declared.iter().any(|d| d == p) {
                continue;
            }
            let key = if p.is_empty() {
                "xmlns".to_string()
            } else {
                format!("xmlns:{p}")
            };
            self.out.push_str(&format!(" {key}=\"{ns}\""));
            declared.push(p.to_string());
        }
    }

    fn header(&mut self) {
        // The Header under the envelope prefix, or its own prefix rebinding the envelope's.
        let own = self.chance(15);
        let (open, close) = if own {
            let evil = if self.prefix.is_empty() {
                "xmlns=\"urn:evil\"".to_string()
            } else {
                format!("xmlns:{}=\"urn:evil\"", self.prefix)
            };
            (
                format!("<h:Header xmlns:h=\"{}\" {evil}", self.soap),
                "</h:Header>".to_string(),
            )
        } else {
            (
                format!("<{}", self.qual("Header")),
                format!("</{}>", self.qual("Header")),
            )
        };
        self.out.push_str(&open);
        if self.chance(10) {
            self.out.push_str(" role=\"h1\"");
        }
        match self.rng.u8(..10) {
            0 | 1 => {
                self.out.push_str("/>");
                return;
            }
            2 => {
                self.out.push('>');
                self.out.push_str(&close);
                return;
            }
            _ => self.out.push('>'),
        }
        let mut declared = Vec::new();
        if own {
            declared.push("h".to_string());
        }
        self.scopes.push(declared);
        for _ in 0..self.rng.usize(..=3) {
            match self.rng.u8(..6) {
                0 | 1 => self.security(),
                2 => self.out.push_str("<wsa:Action xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">urn:idb</wsa:Action>"),
                3 => self.misc(1),
                _ => self.element(2, 2),
            }
        }
        self.scopes.pop();
        self.out.push_str(&close);
    }

    /// An existing `wsse:Security` header, in one of its spellings.
    fn security(&mut self) {
        let (open, close) = *self.pick(&[
            ("<wsse:Security xmlns:wsse=\"WSSE\">", "</wsse:Security>"),
            (
                "<o:Security xmlns:o=\"WSSE\" o:mustUnderstand=\"1\">",
                "</o:Security>",
            ),
            ("<Security xmlns=\"WSSE\">", "</Security>"),
            (
                "<wsse:Security xmlns:wsse=\"urn:not-wsse\">",
                "</wsse:Security>",
            ),
        ]);
        self.out.push_str(&open.replace("WSSE", WSSE));
        if self.chance(40) {
            self.out.push_str("<wsse:UsernameToken xmlns:wsse=\"WSSE\"><wsse:Username>sih</wsse:Username></wsse:UsernameToken>".replace("WSSE", WSSE).as_str());
        }
        self.out.push_str(close);
    }

    fn body(&mut self) {
        let b = self.qual("Body");
        self.out.push_str(&format!("<{b}"));
        if self.chance(10) {
            self.out.push_str(" wsu:Ref=\"b\" xmlns:wsu=\"urn:wsu\"");
        }
        if self.chance(5) {
            self.out.push_str("/>");
            return;
        }
        self.out.push('>');
        self.scopes.push(Vec::new());
        for _ in 0..self.rng.usize(1..=3) {
            self.content(2, 3);
        }
        self.scopes.pop();
        self.out.push_str(&format!("</{b}>"));
    }

    fn content(&mut self, depth: usize, room: usize) {
        match self.rng.u8(..10) {
            0..=4 => self.element(depth, room),
            5 | 6 => {
                let t = self.text_piece(true);
                self.out.push_str(&t);
            }
            7 => {
                let t = self.text_piece(false).replace("]]>", "]]");
                self.out.push_str(&format!("<![CDATA[{t}]]>"));
            }
            _ => self.misc(1),
        }
    }

    fn name(&mut self) -> String {
        let mut names = vec![
            "a", "b", "nir", "Body", "Header", "Security", "x1", "_n", "n.m", "n-m", "Envelope",
        ];
        let fancy = self.cs.letters().first().map(|c| format!("b{c}n{c}"));
        if let Some(f) = &fancy {
            names.push(f.as_str());
        }
        self.pick(&names).to_string()
    }

    /// A prefix to qualify a name with: mostly declared in scope, sometimes not.
    fn prefix_for(&mut self, local_decl: &[String]) -> Option<String> {
        let in_scope: Vec<String> = self
            .scopes
            .iter()
            .flatten()
            .chain(local_decl)
            .filter(|p| !p.is_empty())
            .cloned()
            .collect();
        if self.chance(3) {
            return Some((*self.pick(&["u", "xml", "zz"])).to_string());
        }
        if in_scope.is_empty() || self.chance(50) {
            return None;
        }
        Some(self.pick(&in_scope).clone())
    }

    fn element(&mut self, depth: usize, room: usize) {
        let mut decl = Vec::new();
        let mut attrs = String::new();
        for _ in 0..self.rng.usize(..=2) {
            let letter = self
                .cs
                .letters()
                .first()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "p".into());
            let p = self.pick(&["p", "q", "", "r", letter.as_str()]).to_string();
            let ns = self
                .pick(&[
                    "urn:p",
                    "urn:q",
                    "urn:p",
                    "",
                    "urn:a&amp;b",
                    "urn:&#x70;",
                    "urn:p\n",
                    SOAP11,
                    WSSE,
                ])
                .to_string();
            if decl.contains(&p) || (ns.is_empty() && !p.is_empty() && !self.chance(5)) {
                continue;
            }
            let key = if p.is_empty() {
                "xmlns".to_string()
            } else {
                format!("xmlns:{p}")
            };
            attrs.push_str(&format!(" {key}=\"{ns}\""));
            decl.push(p);
        }
        let mut names: Vec<String> = Vec::new();
        for _ in 0..self.rng.usize(..=3) {
            let local = *self.pick(&["x", "ref", "rang", "lang", "y"]);
            let key = match self.prefix_for(&decl) {
                Some(p) => format!("{p}:{local}"),
                None => local.to_string(),
            };
            if names.contains(&key) && !self.chance(5) {
                continue;
            }
            let v = self.attr_value();
            let q = if self.chance(80) { '"' } else { '\'' };
            let v = v.replace(q, if q == '"' { "&quot;" } else { "&apos;" });
            attrs.push_str(&format!(" {key}={q}{v}{q}"));
            names.push(key);
        }
        let local = self.name();
        let name = match self.prefix_for(&decl) {
            Some(p) => format!("{p}:{local}"),
            None => local,
        };
        let sep = *self.pick(&["", "", " ", "\n\t"]);
        if room == 0 || self.chance(25) {
            self.out.push_str(&format!("<{name}{attrs}{sep}/>"));
            return;
        }
        self.out.push_str(&format!("<{name}{attrs}{sep}>"));
        self.scopes.push(decl);
        for _ in 0..self.rng.usize(..=3) {
            self.content(depth + 1, room - 1);
        }
        self.scopes.pop();
        self.out.push_str(&format!("</{name}{sep}>"));
    }

    fn attr_value(&mut self) -> String {
        let mut v = String::new();
        for _ in 0..self.rng.usize(..=4) {
            let piece = self
                .pick(&[
                    "1", "fr", "a b", "&amp;", "&lt;", "&#233;", "&#x9;", ">", "\t", "\n", "]]>",
                    "x'y", "q\"r",
                ])
                .to_string();
            v.push_str(&piece);
            if self.chance(20) {
                if let Some(c) = self.pick_char() {
                    v.push(c);
                }
            }
        }
        v
    }

    fn pick_char(&mut self) -> Option<char> {
        let all: Vec<char> = self
            .cs
            .letters()
            .iter()
            .chain(self.cs.symbols())
            .copied()
            .collect();
        (!all.is_empty()).then(|| *self.pick(&all))
    }

    /// Character data: words, references, `>`, non-ASCII; `]]>` rarely (then not well-formed
    /// in text, fine in a comment).
    fn text_piece(&mut self, markup_free: bool) -> String {
        let mut t = String::new();
        for _ in 0..self.rng.usize(..=5) {
            let piece = *self.pick(&[
                "2990199999999",
                " ",
                "PATIENT",
                "\n  ",
                "&amp;",
                "&#xE9;",
                "&#233;",
                "&gt;",
                ">",
                "&quot;",
                "'",
                "\"",
                "]",
                "]]",
                "a-b",
                "\r\n",
            ]);
            t.push_str(piece);
            if self.chance(25) {
                if let Some(c) = self.pick_char() {
                    t.push(c);
                }
            }
        }
        if markup_free && self.chance(2) {
            t.push_str("]]>");
        }
        if !markup_free {
            t = t.replace('&', "and");
        }
        t
    }
}

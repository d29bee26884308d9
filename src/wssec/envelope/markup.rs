//! XML 1.0 and Namespaces in XML 1.0 for both walks over the envelope (quick-xml's over the outer
//! levels and the Header, [`super::skim`]'s over the Body's payload): start and end tags, names,
//! attributes (syntax, references, duplicates), namespace scopes and their constraints, comments,
//! CDATA, processing instructions, `]]>` in text (the XML declaration: [`super::decl`]). One
//! implementation, so both walks accept the same XML: well-formed and namespace-well-formed, or
//! refused.

use std::ops::Range;

use super::chars::{self, Charset};
use crate::fault::FaultCode;

/// Why the envelope is refused: the fault code and its detail.
pub type Refused = (FaultCode, String);

pub fn bad(what: &str) -> Refused {
    (FaultCode::NotSoap, format!("not well-formed XML: {what}"))
}

pub fn truncated() -> Refused {
    bad("truncated element")
}

pub fn undeclared_entity() -> Refused {
    (
        FaultCode::NotSoap,
        "reference to an undeclared entity".to_string(),
    )
}

const XML_NS: &[u8] = b"http://www.w3.org/XML/1998/namespace";
const XMLNS_NS: &[u8] = b"http://www.w3.org/2000/xmlns/";

/// A start tag: its name (`colon`: offset of the prefix separator), where it ends, `/>` or not.
pub struct Tag {
    pub name: Range<usize>,
    pub colon: Option<usize>,
    pub end: usize,
    pub empty: bool,
}

struct Attr {
    key: Range<usize>,
    colon: Option<usize>,
    value: Range<usize>,
}

/// A namespace binding: prefix and namespace name are ranges of [`Namespaces::buf`].
struct Binding {
    depth: usize,
    prefix: Range<usize>,
    ns: Range<usize>,
}

/// The namespace bindings in scope, innermost last; names kept in one buffer (no allocation per
/// declaration once it has grown).
#[derive(Default)]
pub struct Namespaces {
    bindings: Vec<Binding>,
    buf: Vec<u8>,
    /// The binding the last lookup found, plus one (0: none): most names of a body share
    /// their prefix. Reset whenever the bindings change.
    hit: std::cell::Cell<usize>,
}

impl Namespaces {
    /// Ends the scope of the element at `depth`.
    pub fn leave(&mut self, depth: usize) {
        while let Some(b) = self.bindings.last() {
            if b.depth < depth {
                break;
            }
            self.buf.truncate(b.prefix.start);
            self.bindings.pop();
            self.hit.set(0);
        }
    }

    /// The namespace of `prefix` (empty: the default namespace, `b""` when there is none);
    /// `None` when the prefix is not declared.
    #[inline]
    pub fn resolve(&self, prefix: &[u8]) -> Option<&[u8]> {
        let hit = self
            .hit
            .get()
            .checked_sub(1)
            .and_then(|k| self.bindings.get(k));
        if let Some(b) = hit {
            if same(&self.buf[b.prefix.clone()], prefix) {
                return Some(&self.buf[b.ns.clone()]);
            }
        }
        self.lookup(prefix)
    }

    /// `resolve` through the bindings in scope, innermost first.
    fn lookup(&self, prefix: &[u8]) -> Option<&[u8]> {
        if same(prefix, b"xml") {
            return Some(XML_NS);
        }
        match self
            .bindings
            .iter()
            .rposition(|b| same(&self.buf[b.prefix.clone()], prefix))
        {
            Some(k) => {
                self.hit.set(k + 1);
                Some(&self.buf[self.bindings[k].ns.clone()])
            }
            None if prefix.is_empty() => Some(b""),
            None => None,
        }
    }
}

/// Name-byte classes, as bits (0: the byte ends a name): a name character that cannot start a
/// name, a name start, `:`, a byte ≥ 0x80 (decoded and checked against the tables).
const NAME: u8 = 1;
const START: u8 = 2;
const COLON: u8 = 4;
const HIGH: u8 = 8;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => START,
            b'0'..=b'9' | b'-' | b'.' => NAME,
            b':' => COLON,
            0x80..=0xFF => HIGH,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// Byte-slice equality for the short names of markup, without a call to `memcmp`.
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut k = 0;
    while k < a.len() {
        if a[k] != b[k] {
            return false;
        }
        k += 1;
    }
    true
}

pub fn whitespace_len(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len())
}

/// The document's markup, read with its encoding and namespace scopes.
pub struct Markup<'a> {
    s: &'a [u8],
    charset: Charset,
    pub ns: Namespaces,
    /// Offsets of every `]]>` in the document, and the first one not yet passed.
    brackets: Vec<usize>,
    next_bracket: usize,
    attrs: Vec<Attr>,
    max_attributes: usize,
}

impl<'a> Markup<'a> {
    pub fn new(s: &'a [u8], charset: Charset, max_attributes: usize) -> Self {
        Markup {
            s,
            charset,
            ns: Namespaces::default(),
            brackets: Vec::new(),
            next_bracket: 0,
            // An envelope's elements seldom carry more.
            attrs: Vec::with_capacity(8),
            max_attributes,
        }
    }

    pub fn body(&self) -> &'a [u8] {
        self.s
    }

    /// Checks every character of the document (see [`chars::scan`]), once.
    pub fn scan(&mut self) -> Result<(), Refused> {
        self.brackets = chars::scan(self.s, self.charset).map_err(|what| {
            let detail = if what == "invalid UTF-8" {
                what.to_string()
            } else {
                format!("not well-formed XML: {what}")
            };
            (FaultCode::NotSoap, detail)
        })?;
        Ok(())
    }

    /// Character data in `from..to` (walked forward): no `]]>`.
    #[inline]
    pub fn text(&mut self, from: usize, to: usize) -> Result<(), Refused> {
        if self.brackets.len() == self.next_bracket {
            return Ok(());
        }
        while self
            .brackets
            .get(self.next_bracket)
            .is_some_and(|&p| p < from)
        {
            self.next_bracket += 1;
        }
        match self.brackets.get(self.next_bracket) {
            Some(&p) if p < to => Err(bad("']]>' in character data")),
            _ => Ok(()),
        }
    }

    /// A name at `i` (QName rules: at most one `:`, neither part empty, each an NCName).
    /// Returns where it ends and the offset of its `:`.
    #[inline(always)]
    fn qname(&self, i: usize) -> Result<(usize, Option<usize>), Refused> {
        let name = self.s.get(i..).unwrap_or_default();
        let mut seen = 0u8;
        let n = name
            .iter()
            .position(|&b| {
                let class = CLASS[usize::from(b)];
                seen |= class;
                class == 0
            })
            .unwrap_or(name.len());
        let first = name.first().map_or(0, |&b| CLASS[usize::from(b)]);
        if seen & (COLON | HIGH) == 0 && first == START {
            return Ok((i + n, None));
        }
        if seen & HIGH == 0 && first == START {
            // `prefix:local`, both parts ASCII: the local part starts with a name start and has
            // no other `:`.
            let c = name[..n].iter().position(|&b| b == b':').unwrap_or(0);
            let local = &name[c + 1..n];
            if local
                .first()
                .is_some_and(|&b| CLASS[usize::from(b)] == START)
                && local.iter().all(|&b| b != b':')
            {
                return Ok((i + n, Some(i + c)));
            }
        }
        self.qname_parts(&name[..n], seen)
            .map(|colon| (i + n, colon.map(|c| i + c)))
    }

    /// `qname` for a name with a `:`, a byte ≥ 0x80 or a bad start (or none at all): returns
    /// the offset of the `:` in the name.
    #[cold]
    #[inline(never)]
    fn qname_parts(&self, name: &[u8], seen: u8) -> Result<Option<usize>, Refused> {
        let colon = name.iter().position(|&b| b == b':');
        let parts = match colon {
            Some(c) if name[c + 1..].contains(&b':') => {
                return Err(bad("more than one ':' in a name"));
            }
            Some(c) => [&name[..c], &name[c + 1..]],
            None => [name, &[][..]],
        };
        for (k, part) in parts.into_iter().enumerate() {
            let Some(&first) = part.first() else {
                if k == 1 && colon.is_none() {
                    continue;
                }
                return Err(bad("a name or prefix is empty"));
            };
            if CLASS[usize::from(first)] & (START | HIGH) == 0 {
                return Err(bad("a name starts with a character it cannot start with"));
            }
            if seen & HIGH != 0 && !self.ncname_chars(part) {
                return Err(bad("a character not allowed in a name"));
            }
        }
        Ok(colon)
    }

    /// A name with bytes ≥ 0x80, decoded in the document's encoding: a start character, then
    /// name characters.
    fn ncname_chars(&self, name: &[u8]) -> bool {
        let ok = |k: usize, c: char| {
            if k == 0 {
                chars::is_name_start(c)
            } else {
                chars::is_name_char(c)
            }
        };
        match self.charset {
            Charset::Utf8 => std::str::from_utf8(name)
                .is_ok_and(|n| n.chars().enumerate().all(|(k, c)| ok(k, c))),
            cs => name.iter().enumerate().all(|(k, &b)| {
                let c = if b < 0x80 {
                    Some(char::from(b))
                } else {
                    cs.single_byte(b)
                };
                c.is_some_and(|c| ok(k, c))
            }),
        }
    }

    /// The start tag whose `<` is at `i`, of an element at `depth`: its name, attributes (syntax,
    /// references, count, duplicates), namespace declarations (entering their scope) and the
    /// prefixes it uses (declared).
    #[inline]
    pub fn start_tag(&mut self, i: usize, depth: usize) -> Result<Tag, Refused> {
        let (name_end, colon) = self.qname(i + 1)?;
        // Most tags of a body have no attribute: `<name>`.
        if self.s.get(name_end) == Some(&b'>') {
            if let Some(c) = colon {
                self.element_prefix(&self.s[i + 1..c])?;
            }
            return Ok(Tag {
                name: i + 1..name_end,
                colon,
                end: name_end + 1,
                empty: false,
            });
        }
        self.attributed_tag(i, depth, name_end, colon)
    }

    /// `start_tag` beyond `<name>`.
    fn attributed_tag(
        &mut self,
        i: usize,
        depth: usize,
        name_end: usize,
        colon: Option<usize>,
    ) -> Result<Tag, Refused> {
        let s = self.s;
        let mut j = name_end;
        self.attrs.clear();
        let (end, empty) = loop {
            let ws = whitespace_len(&s[j..]);
            j += ws;
            match s.get(j) {
                None => return Err(truncated()),
                Some(b'>') => break (j + 1, false),
                Some(b'/') if s.get(j + 1) == Some(&b'>') => break (j + 2, true),
                Some(_) if ws == 0 => return Err(bad("bad attribute")),
                Some(_) => {}
            }
            let attr = self.attribute(j)?;
            j = attr.value.end + 1;
            self.attrs.push(attr);
            if self.attrs.len() > self.max_attributes {
                return Err((
                    FaultCode::XmlLimit,
                    format!("more than {} attributes on an element", self.max_attributes),
                ));
            }
        };
        if !self.attrs.is_empty() {
            self.unique_names()?;
            self.declare(depth)?;
        }
        let tag = Tag {
            name: i + 1..name_end,
            colon,
            end,
            empty,
        };
        self.check_prefixes(&tag)?;
        Ok(tag)
    }

    /// One `name = "value"` at `j`.
    fn attribute(&self, j: usize) -> Result<Attr, Refused> {
        let s = self.s;
        let (key_end, colon) = self.qname(j)?;
        let mut k = key_end + whitespace_len(&s[key_end..]);
        if s.get(k) != Some(&b'=') {
            return Err(bad("bad attribute"));
        }
        k += 1;
        k += whitespace_len(&s[k..]);
        let quote = match s.get(k) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(bad("bad attribute")),
        };
        let from = k + 1;
        let to = memchr::memchr(quote, &s[from..]).ok_or_else(truncated)? + from;
        let value = &s[from..to];
        if memchr::memchr(b'<', value).is_some() {
            return Err(bad("'<' in an attribute value"));
        }
        if !references_ok(value) {
            return Err(undeclared_entity());
        }
        Ok(Attr {
            key: j..key_end,
            colon,
            value: from..to,
        })
    }

    /// No two attributes of the tag have the same name.
    fn unique_names(&self) -> Result<(), Refused> {
        let key = |a: &Attr| &self.s[a.key.clone()];
        let n = self.attrs.len();
        let dup = if n <= 8 {
            (1..n).any(|k| {
                let a = key(&self.attrs[k]);
                self.attrs[..k].iter().any(|b| same(key(b), a))
            })
        } else {
            has_duplicates(self.attrs.iter().map(key).collect())
        };
        if dup {
            return Err(bad("duplicate attribute"));
        }
        Ok(())
    }

    /// The tag's namespace declarations, checked (Namespaces in XML 1.0, section 3) and put in
    /// scope at `depth`.
    fn declare(&mut self, depth: usize) -> Result<(), Refused> {
        let s = self.s;
        for k in 0..self.attrs.len() {
            let a = &self.attrs[k];
            let key = &s[a.key.clone()];
            let prefix = match key {
                [b'x', b'm', b'l', b'n', b's'] => &b""[..],
                [b'x', b'm', b'l', b'n', b's', b':', p @ ..] => p,
                _ => continue,
            };
            if prefix == b"xmlns" {
                return Err(bad("the prefix xmlns is declared"));
            }
            let value = a.value.clone();
            let start = self.ns.buf.len();
            self.ns.buf.extend_from_slice(prefix);
            let mid = self.ns.buf.len();
            normalize_value(&s[value], self.charset, &mut self.ns.buf);
            let ns = &self.ns.buf[mid..];
            let reserved = ns == XML_NS || ns == XMLNS_NS;
            let allowed = match prefix {
                b"xml" => ns == XML_NS,
                b"" => !reserved,
                _ => !reserved && !ns.is_empty(),
            };
            if !allowed {
                self.ns.buf.truncate(start);
                return Err(bad(
                    "a reserved or empty namespace name is bound to a prefix",
                ));
            }
            let end = self.ns.buf.len();
            self.ns.hit.set(0);
            self.ns.bindings.push(Binding {
                depth,
                prefix: start..mid,
                ns: mid..end,
            });
        }
        Ok(())
    }

    /// The element's and its attributes' prefixes are declared; no two attributes have the same
    /// namespace and local name.
    fn check_prefixes(&self, tag: &Tag) -> Result<(), Refused> {
        let s = self.s;
        if let Some(c) = tag.colon {
            self.element_prefix(&s[tag.name.start..c])?;
        }
        let mut qualified = 0;
        for a in &self.attrs {
            let Some(c) = a.colon else { continue };
            let prefix = &s[a.key.start..c];
            if !same(prefix, b"xmlns") {
                self.ns.resolve(prefix).ok_or_else(undeclared_prefix)?;
                qualified += 1;
            }
        }
        if qualified > 1 {
            let names: Vec<(&[u8], &[u8])> = self
                .attrs
                .iter()
                .filter_map(|a| {
                    let c = a.colon?;
                    let prefix = &s[a.key.start..c];
                    let ns = (prefix != b"xmlns").then(|| self.ns.resolve(prefix))??;
                    Some((&s[c + 1..a.key.end], ns))
                })
                .collect();
            if has_duplicates(names) {
                return Err(bad("duplicate attribute (same namespace and local name)"));
            }
        }
        Ok(())
    }

    /// An element's prefix is declared (and is not `xmlns`).
    #[inline]
    fn element_prefix(&self, prefix: &[u8]) -> Result<(), Refused> {
        if same(prefix, b"xmlns") || self.ns.resolve(prefix).is_none() {
            return Err(undeclared_prefix());
        }
        Ok(())
    }

    /// The end tag whose `<` is at `i` (its name matched by the caller): returns where it ends.
    pub fn end_tag(&self, i: usize) -> Result<usize, Refused> {
        let s = self.s;
        let name_end = i
            + 2
            + s[i + 2..]
                .iter()
                .take_while(|&&b| CLASS[usize::from(b)] != 0)
                .count();
        let close = name_end + whitespace_len(&s[name_end..]);
        if s.get(close) != Some(&b'>') {
            return Err(bad("bad end tag"));
        }
        Ok(close + 1)
    }

    /// `<!…` at `i`: a comment or a CDATA section (skipped whole); a DOCTYPE or anything else is
    /// refused. Returns the offset after it.
    pub fn declaration(&self, i: usize) -> Result<usize, Refused> {
        let s = self.s;
        let rest = &s[i + 2..];
        if rest.starts_with(b"--") {
            let from = i + 4;
            let dashes = memchr::memmem::find(&s[from..], b"--").ok_or_else(truncated)? + from;
            if s.get(dashes + 2) != Some(&b'>') {
                return Err(bad("'--' inside a comment"));
            }
            Ok(dashes + 3)
        } else if rest.starts_with(b"[CDATA[") {
            let from = i + 9;
            Ok(memchr::memmem::find(&s[from..], b"]]>").ok_or_else(truncated)? + from + 3)
        } else if rest.starts_with(b"DOCTYPE") {
            Err((
                FaultCode::DtdForbidden,
                "the request contains a DOCTYPE".to_string(),
            ))
        } else {
            Err(bad("unknown markup declaration"))
        }
    }

    /// `<?…?>` at `i`: a processing instruction, never an XML declaration (which only the very
    /// start of the document may hold). Returns the offset after it.
    pub fn pi(&self, i: usize) -> Result<usize, Refused> {
        let s = self.s;
        let from = i + 2;
        let misplaced = || bad("misplaced XML declaration or bad processing instruction");
        let (end, colon) = self.qname(from).map_err(|_| misplaced())?;
        if colon.is_some() || s[from..end].eq_ignore_ascii_case(b"xml") {
            return Err(misplaced());
        }
        if !s[end..].starts_with(b"?>") && whitespace_len(&s[end..]) == 0 {
            return Err(misplaced());
        }
        Ok(memchr::memmem::find(&s[end..], b"?>").ok_or_else(truncated)? + end + 2)
    }
}

fn undeclared_prefix() -> Refused {
    (
        FaultCode::NotSoap,
        "not well-formed XML: undeclared namespace prefix".to_string(),
    )
}

/// Whether two items are equal (pairs for a few, sorted beyond: attribute counts go up to the
/// configured limit, 1,024 at most).
fn has_duplicates<T: Ord>(mut items: Vec<T>) -> bool {
    if items.len() <= 8 {
        return items
            .iter()
            .enumerate()
            .any(|(k, a)| items[..k].contains(a));
    }
    items.sort_unstable();
    items.windows(2).any(|w| w[0] == w[1])
}

/// An attribute value as the namespace name it declares: references replaced, line ends and
/// white space normalised (XML 1.0 section 3.3.3), in UTF-8, appended to `out`.
fn normalize_value(raw: &[u8], charset: Charset, out: &mut Vec<u8>) {
    out.reserve(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        i += 1;
        match b {
            b'&' => {
                let semi = memchr::memchr(b';', &raw[i..]).map_or(raw.len(), |k| i + k);
                let c = reference_char(&raw[i..semi]).unwrap_or('\u{FFFD}');
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                i = semi + 1;
            }
            b'\r' if raw.get(i) == Some(&b'\n') => {}
            b'\t' | b'\n' | b'\r' => out.push(b' '),
            0x80.. if charset != Charset::Utf8 => {
                let c = charset.single_byte(b).unwrap_or('\u{FFFD}');
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            _ => out.push(b),
        }
    }
}

/// The character a reference stands for (the name between `&` and `;`): a predefined entity or
/// a character reference to an XML character. Any other entity would need a DTD, which requests
/// may not have.
fn reference_char(name: &[u8]) -> Option<char> {
    let code = match name {
        b"amp" => Some(u32::from(b'&')),
        b"lt" => Some(u32::from(b'<')),
        b"gt" => Some(u32::from(b'>')),
        b"quot" => Some(u32::from(b'"')),
        b"apos" => Some(u32::from(b'\'')),
        [b'#', b'x', hex @ ..] if !hex.is_empty() && hex.iter().all(u8::is_ascii_hexdigit) => {
            std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
        }
        [b'#', dec @ ..] if !dec.is_empty() && dec.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(dec)
                .ok()
                .and_then(|d| d.parse::<u32>().ok())
        }
        _ => None,
    }?;
    matches!(code, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        .then(|| char::from_u32(code))
        .flatten()
}

/// A predefined entity or a character reference to an XML character.
pub fn reference_ok(name: &[u8]) -> bool {
    reference_char(name).is_some()
}

/// Where the reference starting at `s[at] == b'&'` ends (after its `;`), if it is allowed.
pub fn reference_end(s: &[u8], at: usize) -> Option<usize> {
    // The longest allowed reference is `&#x10FFFF;` give or take leading zeros.
    let window = &s[at + 1..s.len().min(at + 1 + 32)];
    let semi = memchr::memchr(b';', window)?;
    reference_ok(&window[..semi]).then_some(at + 1 + semi + 1)
}

/// Every `&` in an attribute value starts an allowed reference.
pub fn references_ok(value: &[u8]) -> bool {
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'&', &value[i..]) {
        match reference_end(value, i + k) {
            Some(end) => i = end,
            None => return false,
        }
    }
    true
}

//! The fast walk over the SOAP Body's payload: most of the bytes and none of the decisions.
//! Checks well-formedness and the limits with a byte walk that jumps between markup with
//! `memchr`, and hands back where the Body's end tag starts.

use crate::config::Profile;
use crate::fault::FaultCode;

/// Why the payload is refused: the fault code and its detail.
pub type Refused = (FaultCode, String);

fn bad(what: &str) -> Refused {
    (FaultCode::NotSoap, format!("not well-formed XML: {what}"))
}

fn truncated() -> Refused {
    bad("truncated element")
}

fn undeclared_entity() -> Refused {
    (
        FaultCode::NotSoap,
        "reference to an undeclared entity".to_string(),
    )
}

/// Walks the content of an element at `depth` (the SOAP Body) up to its end tag and returns the
/// offset of that end tag's `<`. Checks what the quick-xml walk checks below the outer levels:
/// matching tags, attribute syntax and count, nesting depth, comments, CDATA, processing
/// instructions, references (predefined entities and character references only) and no
/// DOCTYPE. Text is skipped with `memchr`. The input has already been checked as UTF-8 (or a
/// Latin-1 family encoding): every delimiter is ASCII, so a byte walk is exact.
pub fn skim(s: &[u8], depth: usize, profile: &Profile) -> Result<usize, Refused> {
    let mut open: Vec<&[u8]> = Vec::with_capacity(16);
    let mut i = 0;
    loop {
        // Text between tags is mostly short (a NIR, a date, a code): a plain look at the next
        // bytes beats a SIMD search's set-up; long text goes to memchr.
        let near = s.len().min(i + 24);
        match s[i..near].iter().position(|&b| b == b'<' || b == b'&') {
            Some(k) => i += k,
            None => i = near + memchr::memchr2(b'<', b'&', &s[near..]).ok_or_else(truncated)?,
        }
        if s[i] == b'&' {
            i = reference_end(s, i).ok_or_else(undeclared_entity)?;
            continue;
        }
        match s.get(i + 1) {
            None => return Err(truncated()),
            Some(b'/') => {
                let start = i + 2;
                let end = start + name_len(&s[start..]);
                let name = &s[start..end];
                let close = end + whitespace_len(&s[end..]);
                if s.get(close) != Some(&b'>') {
                    return Err(bad("bad end tag"));
                }
                match open.pop() {
                    Some(o) if o == name => i = close + 1,
                    Some(_) => return Err(bad("mismatched end tag")),
                    // The enclosing element's end tag: its name is checked by the caller.
                    None => return Ok(i),
                }
            }
            Some(b'!') => i = declaration(s, i)?,
            Some(b'?') => i = instruction(s, i)?,
            Some(_) => {
                let (name, end, empty) = start_tag(s, i, profile)?;
                if depth + open.len() + 1 > profile.max_depth {
                    return Err((
                        FaultCode::XmlLimit,
                        format!("nesting deeper than {} elements", profile.max_depth),
                    ));
                }
                if !empty {
                    open.push(name);
                }
                i = end;
            }
        }
    }
}

/// `<!…` at `i`: a comment or a CDATA section (skipped whole); a DOCTYPE or anything else is
/// refused. Returns the offset after it.
fn declaration(s: &[u8], i: usize) -> Result<usize, Refused> {
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

/// `<?…?>` at `i`: a processing instruction (never an XML declaration here). Returns the
/// offset after it.
fn instruction(s: &[u8], i: usize) -> Result<usize, Refused> {
    let from = i + 2;
    let target = &s[from..from + name_len(&s[from..])];
    if target.is_empty() || target.eq_ignore_ascii_case(b"xml") {
        return Err(bad("misplaced XML declaration or processing instruction"));
    }
    Ok(memchr::memmem::find(&s[from..], b"?>").ok_or_else(truncated)? + from + 2)
}

/// The start tag at `i`: its name, the offset after it, and whether it is empty (`/>`).
/// Attribute syntax, references in values and the attribute count are checked.
fn start_tag<'a>(
    s: &'a [u8],
    i: usize,
    profile: &Profile,
) -> Result<(&'a [u8], usize, bool), Refused> {
    let start = i + 1;
    let mut j = start + name_len(&s[start..]);
    if j == start {
        return Err(bad("element without a name"));
    }
    let name = &s[start..j];
    let mut attributes = 0;
    loop {
        let ws = whitespace_len(&s[j..]);
        j += ws;
        match s.get(j) {
            None => return Err(truncated()),
            Some(b'>') => return Ok((name, j + 1, false)),
            Some(b'/') if s.get(j + 1) == Some(&b'>') => return Ok((name, j + 2, true)),
            Some(_) if ws == 0 => return Err(bad("bad attribute")),
            Some(_) => {}
        }
        let key = name_len(&s[j..]);
        j += key;
        j += whitespace_len(&s[j..]);
        if key == 0 || s.get(j) != Some(&b'=') {
            return Err(bad("bad attribute"));
        }
        j += 1;
        j += whitespace_len(&s[j..]);
        let quote = match s.get(j) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(bad("bad attribute")),
        };
        let from = j + 1;
        let to = memchr::memchr(quote, &s[from..]).ok_or_else(truncated)? + from;
        let value = &s[from..to];
        if memchr::memchr(b'<', value).is_some() {
            return Err(bad("'<' in an attribute value"));
        }
        if !references_ok(value) {
            return Err(undeclared_entity());
        }
        attributes += 1;
        if attributes > profile.max_attributes {
            return Err((
                FaultCode::XmlLimit,
                format!(
                    "more than {} attributes on an element",
                    profile.max_attributes
                ),
            ));
        }
        j = to + 1;
    }
}

/// Bytes that end an XML name in markup.
static NAME_END: [bool; 256] = {
    let mut t = [false; 256];
    let stops = b" \t\r\n/>=<&\"'";
    let mut k = 0;
    while k < stops.len() {
        t[stops[k] as usize] = true;
        k += 1;
    }
    t
};

fn name_len(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| NAME_END[b as usize])
        .unwrap_or(s.len())
}

fn whitespace_len(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(s.len())
}

/// A predefined entity or a character reference to an XML character (the name between `&`
/// and `;`). Any other entity would need a DTD, which requests may not have.
pub fn reference_ok(name: &[u8]) -> bool {
    if matches!(name, b"amp" | b"lt" | b"gt" | b"quot" | b"apos") {
        return true;
    }
    let code = match name {
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
    };
    code.is_some_and(
        |c| matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF),
    )
}

/// Where the reference starting at `s[at] == b'&'` ends (after its `;`), if it is allowed.
fn reference_end(s: &[u8], at: usize) -> Option<usize> {
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

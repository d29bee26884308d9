//! The XML declaration, read before anything else: it says how every other byte is read.

use std::ops::Range;

use super::chars::Charset;
use super::markup::{bad, whitespace_len, Refused};
use crate::fault::FaultCode;

/// A declared encoding and where its label is.
pub type Declared = Option<(Charset, Range<usize>)>;

/// The XML declaration at `i` (`<?xml`): version 1.0, then optionally an encoding rocgw reads
/// and `standalone`, in that order. Returns where it ends, and the declared encoding with where
/// its label is.
pub fn xml_decl(s: &[u8], i: usize) -> Result<(usize, Declared), Refused> {
    let malformed = || bad("malformed XML declaration");
    let mut c = Cursor { s, j: i + 5 };
    if c.ws() == 0 || !c.eat(b"version") {
        return Err(malformed());
    }
    if &s[c.eq_quoted().ok_or_else(malformed)?] != b"1.0" {
        return Err(bad("XML version other than 1.0"));
    }
    let mut charset = None;
    let mut ws = c.ws();
    if ws > 0 && c.eat(b"encoding") {
        let at = c.eq_quoted().ok_or_else(malformed)?;
        let label = &s[at.clone()];
        let enc_name = label.first().is_some_and(u8::is_ascii_alphabetic)
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !enc_name {
            return Err(malformed());
        }
        let declared = Charset::from_label(label).ok_or_else(|| {
            let shown = String::from_utf8_lossy(&label[..label.len().min(40)]).to_lowercase();
            (
                FaultCode::NotSoap,
                format!("unsupported encoding {shown:?} (rocgw reads UTF-8, ISO-8859-1, ISO-8859-15, windows-1252 and US-ASCII)"),
            )
        })?;
        charset = Some((declared, at));
        ws = c.ws();
    }
    if ws > 0 && c.eat(b"standalone") {
        let value = &s[c.eq_quoted().ok_or_else(malformed)?];
        if value != b"yes" && value != b"no" {
            return Err(malformed());
        }
        c.ws();
    }
    if !c.eat(b"?>") {
        return Err(malformed());
    }
    Ok((c.j, charset))
}

struct Cursor<'a> {
    s: &'a [u8],
    j: usize,
}

impl Cursor<'_> {
    fn ws(&mut self) -> usize {
        let n = whitespace_len(&self.s[self.j..]);
        self.j += n;
        n
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        let ok = self.s[self.j..].starts_with(lit);
        if ok {
            self.j += lit.len();
        }
        ok
    }

    /// `S? = S? "value"` (or single quotes): the value's range.
    fn eq_quoted(&mut self) -> Option<Range<usize>> {
        self.ws();
        if !self.eat(b"=") {
            return None;
        }
        self.ws();
        let q = *self.s.get(self.j)?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let from = self.j + 1;
        let to = from + memchr::memchr(q, &self.s[from..])?;
        self.j = to + 1;
        Some(from..to)
    }
}

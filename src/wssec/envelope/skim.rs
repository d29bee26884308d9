//! The fast walk over the SOAP Body's payload: most of the bytes and none of the decisions.
//! Checks well-formedness, namespaces and the limits with a byte walk that jumps between markup
//! with `memchr`, and hands back where the Body's end tag starts.

use super::markup::{
    bad, reference_end, truncated, undeclared_entity, whitespace_len, Markup, Refused,
};
use crate::config::Profile;
use crate::fault::FaultCode;

/// Walks the content of an element at `depth` (the SOAP Body) from `start` up to its end tag
/// and returns the offset of that end tag's `<`. Checks what the quick-xml walk checks above:
/// tags, names, attributes and namespaces ([`Markup`]), matching end tags, nesting depth,
/// comments, CDATA, processing instructions, references (predefined entities and character
/// references only), no `]]>` in text and no DOCTYPE. Text is skipped with `memchr`. The
/// document's characters were checked by [`Markup::scan`]: every delimiter is ASCII, so a byte
/// walk is exact.
pub fn skim(
    mk: &mut Markup<'_>,
    start: usize,
    depth: usize,
    profile: &Profile,
) -> Result<usize, Refused> {
    let s = mk.body();
    let mut open: Vec<std::ops::Range<usize>> = Vec::with_capacity(16);
    let mut i = start;
    loop {
        // Text between tags is mostly short (a NIR, a date, a code): a plain look at the next
        // bytes beats a SIMD search's set-up; long text goes to memchr.
        let near = s.len().min(i + 24);
        let k = match s[i..near].iter().position(|&b| b == b'<' || b == b'&') {
            Some(k) => i + k,
            None => near + memchr::memchr2(b'<', b'&', &s[near..]).ok_or_else(truncated)?,
        };
        mk.text(i, k)?;
        i = k;
        if s[i] == b'&' {
            i = reference_end(s, i).ok_or_else(undeclared_entity)?;
            continue;
        }
        match s.get(i + 1) {
            None => return Err(truncated()),
            Some(b'/') => {
                let Some(name) = open.pop() else {
                    // The enclosing element's end tag: its name is checked by the caller.
                    return Ok(i);
                };
                let from = i + 2;
                let end = from + name.len();
                if s.get(from..end) != Some(&s[name]) {
                    return Err(bad("mismatched end tag"));
                }
                let close = end + whitespace_len(&s[end..]);
                if s.get(close) != Some(&b'>') {
                    return Err(bad("mismatched or bad end tag"));
                }
                mk.ns.leave(depth + open.len() + 1);
                i = close + 1;
            }
            Some(b'!') => i = mk.declaration(i)?,
            Some(b'?') => i = mk.pi(i)?,
            Some(_) => {
                let at = depth + open.len() + 1;
                let tag = mk.start_tag(i, at)?;
                if at > profile.max_depth {
                    return Err((
                        FaultCode::XmlLimit,
                        format!("nesting deeper than {} elements", profile.max_depth),
                    ));
                }
                if tag.empty {
                    mk.ns.leave(at);
                } else {
                    open.push(tag.name);
                }
                i = tag.end;
            }
        }
    }
}

//! The media type of a SOAP message (`Content-Type`), as far as encodings go: the `charset` it
//! names, and making it name the encoding an answer was verified in.
//!
//! Syntax (RFC 9110 §8.3.1, §5.6): `type "/" subtype *( OWS ";" OWS [ parameter ] )`, a
//! parameter being `token "=" ( token / quoted-string )`, with no white space around `=`.

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

use super::Charset;

/// The encoding named by the `charset` of `headers`' (first) `Content-Type`, when rocgw reads it.
pub fn charset_in(headers: &HeaderMap) -> Option<Charset> {
    charset_of(headers.get(CONTENT_TYPE)?.to_str().ok()?)
}

/// The encoding `content_type`'s first `charset` parameter names, when rocgw reads it (its
/// aliases too: `latin1`, `utf8`…).
pub fn charset_of(content_type: &str) -> Option<Charset> {
    let (_, params) = split(content_type);
    params
        .map_while(|p| p)
        .find(|p| p.is_charset())
        .and_then(|p| Charset::from_label(p.value.as_bytes()))
}

/// Makes `headers` carry one `Content-Type` whose `charset` is `charset`'s own name (an SIH
/// decodes an answer by its HTTP charset first, RFC 7303 §3: once the signature was checked on
/// the document read in `charset`, the two must agree, or the SIH reads other characters than
/// those signed). Left as sent when its one field already says so; otherwise its other
/// parameters are kept when all are well-formed, and `essence` (the SOAP version's media type)
/// stands in for a type that is not one. No `Content-Type` at all stays so: the document's
/// own declaration then rules. Whether it changed the header.
pub fn say_charset(headers: &mut HeaderMap, charset: Charset, essence: &str) -> bool {
    let mut sent = headers.get_all(CONTENT_TYPE).iter();
    let (Some(first), second) = (sent.next(), sent.next()) else {
        return false;
    };
    let first = first.to_str().ok();
    if second.is_none() && first.is_some_and(|ct| says(ct, charset)) {
        return false;
    }
    let said = with_charset(first.unwrap_or(""), charset, essence);
    let value = HeaderValue::try_from(said)
        .unwrap_or_else(|_| HeaderValue::from_static("application/soap+xml"));
    headers.insert(CONTENT_TYPE, value);
    true
}

/// `content_type` says `charset` by its own name, once, and is well-formed.
fn says(content_type: &str, charset: Charset) -> bool {
    let (essence, params) = split(content_type);
    let mut named = 0;
    for p in params {
        match p {
            None => return false,
            Some(p) if p.is_charset() => {
                named += 1;
                if p.escaped || !p.value.eq_ignore_ascii_case(charset.name()) {
                    return false;
                }
            }
            Some(_) => {}
        }
    }
    named == 1 && is_media_type(essence)
}

/// `content_type` naming `charset`: its essence (or `essence` for one that is no media type),
/// its other parameters when all are well-formed, and `charset=` its name.
fn with_charset(content_type: &str, charset: Charset, essence: &str) -> String {
    let (sent, params) = split(content_type);
    let mut out = String::with_capacity(content_type.len().max(essence.len()) + 24);
    out.push_str(if is_media_type(sent) { sent } else { essence });
    let params: Option<Vec<Param<'_>>> = params.collect();
    for p in params.unwrap_or_default() {
        if !p.is_charset() {
            out.push_str("; ");
            out.push_str(p.text);
        }
    }
    out.push_str("; charset=");
    out.push_str(charset.name());
    out
}

/// One parameter: its name, its value (unquoted; `escaped` when it held a quoted-pair), and
/// its text as written.
struct Param<'a> {
    name: &'a str,
    value: &'a str,
    escaped: bool,
    text: &'a str,
}

impl Param<'_> {
    fn is_charset(&self) -> bool {
        self.name.eq_ignore_ascii_case("charset")
    }
}

/// A media type's essence (trimmed), then its parameters in order: `None` for one that is
/// malformed, after which there are no more (an unclosed quote swallows the rest).
fn split(value: &str) -> (&str, impl Iterator<Item = Option<Param<'_>>>) {
    let b = value.as_bytes();
    let end = b.iter().position(|&c| c == b';').unwrap_or(b.len());
    let mut at = end;
    let mut broken = false;
    let params = std::iter::from_fn(move || {
        if broken {
            return None;
        }
        // OWS and empty parameters (`;;`, a trailing `;`).
        while at < b.len() && matches!(b[at], b' ' | b'\t' | b';') {
            at += 1;
        }
        if at == b.len() {
            return None;
        }
        let p = param(value, at);
        match &p {
            Some((_, next)) => at = *next,
            None => broken = true,
        }
        Some(p.map(|(p, _)| p))
    });
    (value[..end].trim(), params)
}

/// The parameter at `start` of `s`, and where the next one may begin (at its `;` or the end).
fn param(s: &str, start: usize) -> Option<(Param<'_>, usize)> {
    let b = s.as_bytes();
    let name_end = start + token_len(&b[start..]);
    if name_end == start || b.get(name_end) != Some(&b'=') {
        return None;
    }
    let v = name_end + 1;
    let (value, escaped, end) = if b.get(v) == Some(&b'"') {
        let mut i = v + 1;
        let mut escaped = false;
        loop {
            match b.get(i)? {
                b'\\' => {
                    b.get(i + 1)?;
                    escaped = true;
                    i += 2;
                }
                b'"' => break,
                _ => i += 1,
            }
        }
        (&s[v + 1..i], escaped, i + 1)
    } else {
        let e = v + token_len(&b[v..]);
        (e > v).then_some(())?;
        (&s[v..e], false, e)
    };
    let mut next = end;
    while next < b.len() && matches!(b[next], b' ' | b'\t') {
        next += 1;
    }
    if next < b.len() && b[next] != b';' {
        return None;
    }
    let p = Param {
        name: &s[start..name_end],
        value,
        escaped,
        text: &s[start..end],
    };
    Some((p, next))
}

/// The length of the token `b` starts with (RFC 9110 §5.6.2 `tchar`s).
fn token_len(b: &[u8]) -> usize {
    b.iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
        .count()
}

/// `type "/" subtype`, both tokens.
fn is_media_type(essence: &str) -> bool {
    essence.split_once('/').is_some_and(|(t, s)| {
        !t.is_empty()
            && !s.is_empty()
            && token_len(t.as_bytes()) == t.len()
            && token_len(s.as_bytes()) == s.len()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOAP12: &str = "application/soap+xml";

    /// The `Content-Type` fields `say_charset` leaves for `sent` (one field each).
    fn said(sent: &[&[u8]], charset: Charset) -> Vec<String> {
        let mut h = HeaderMap::new();
        for v in sent {
            h.append(CONTENT_TYPE, HeaderValue::from_bytes(v).unwrap());
        }
        let changed = say_charset(&mut h, charset, SOAP12);
        let out: Vec<String> = h
            .get_all(CONTENT_TYPE)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let same = out.len() == sent.len() && out.iter().zip(sent).all(|(o, s)| o.as_bytes() == *s);
        assert_eq!(changed, !same, "{sent:?}");
        out
    }

    #[test]
    fn the_content_type_names_the_encoding_the_answer_was_verified_in() {
        let utf8 = |ct: &str| said(&[ct.as_bytes()], Charset::Utf8).join(" | ");
        // Already saying it by its name, once: unchanged.
        for same in [
            "application/soap+xml; charset=utf-8",
            "text/xml;charset=\"UTF-8\"",
            "application/soap+xml ; CharSet=UTF-8 ; action=\"urn:a;b\"",
        ] {
            assert_eq!(utf8(same), same);
        }
        // Another encoding, an alias, none, two: its name, the other parameters kept.
        for (sent, expected) in [
            (
                "application/soap+xml; charset=ISO-8859-1",
                "application/soap+xml; charset=UTF-8",
            ),
            ("text/xml; charset=utf8", "text/xml; charset=UTF-8"),
            ("text/xml", "text/xml; charset=UTF-8"),
            (
                "text/xml; charset=utf-8; charset=utf-8",
                "text/xml; charset=UTF-8",
            ),
            ("text/xml; charset=\"utf\\-8\"", "text/xml; charset=UTF-8"),
            // Malformed (spaces around `=`, an unclosed quote, no value): only the type kept.
            ("text/xml; charset = utf-8", "text/xml; charset=UTF-8"),
            (
                "application/soap+xml; a=\"",
                "application/soap+xml; charset=UTF-8",
            ),
            (
                "text/xml; a=\"\\\"; charset=utf-8",
                "text/xml; charset=UTF-8",
            ),
            ("text/xml; a=; b=c", "text/xml; charset=UTF-8"),
            // No media type: the SOAP version's.
            ("", "application/soap+xml; charset=UTF-8"),
            ("; charset=utf-8", "application/soap+xml; charset=UTF-8"),
            ("xml", "application/soap+xml; charset=UTF-8"),
        ] {
            assert_eq!(utf8(sent), expected, "{sent}");
        }
        assert_eq!(
            said(
                &[b"application/soap+xml;charset=utf-8;action=\"urn:x;charset=utf-8\""],
                Charset::Latin1
            ),
            ["application/soap+xml; action=\"urn:x;charset=utf-8\"; charset=ISO-8859-1"]
        );
        // Two fields (the SIH may read either), or bytes that are not visible ASCII: one field.
        assert_eq!(
            said(
                &[b"text/xml; charset=ISO-8859-1", b"text/xml; charset=utf-8"],
                Charset::Latin1
            ),
            ["text/xml; charset=ISO-8859-1"]
        );
        assert_eq!(
            said(&[b"text/xml; charset=utf-8; x=\xE9"], Charset::Latin1),
            ["application/soap+xml; charset=ISO-8859-1"]
        );
        // No Content-Type: none added.
        assert!(said(&[], Charset::Latin1).is_empty());
    }

    #[test]
    fn the_charset_is_read_off_the_parameters() {
        assert_eq!(
            charset_of("text/xml; charset=ISO-8859-1"),
            Some(Charset::Latin1)
        );
        assert_eq!(charset_of("text/xml"), None);
        assert_eq!(charset_of("text/xml; charset=koi8-r"), None);
        assert_eq!(
            charset_of("text/xml;action=\"a;charset=utf-8\" ;CHARSET=\"Windows-1252\""),
            Some(Charset::Windows1252)
        );
        assert_eq!(
            charset_of("text/xml; charset=latin1; charset=utf-8"),
            Some(Charset::Latin1)
        );
        assert_eq!(
            charset_of("charset=latin1"),
            None,
            "the essence is no parameter"
        );
        assert_eq!(
            charset_of("text/xml; a=\"; charset=latin1"),
            None,
            "inside a quote"
        );
        let mut h = HeaderMap::new();
        h.append(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=latin1"),
        );
        h.append(
            CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        assert_eq!(charset_in(&h), Some(Charset::Latin1), "the first field");
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_bytes(b"text/xml; charset=latin1; \xE9").unwrap(),
        );
        assert_eq!(charset_in(&h), None, "not visible ASCII");
    }
}

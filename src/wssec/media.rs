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

/// The encoding `content_type`'s first `charset` parameter names, when rocgw reads it. Read
/// leniently, as what is read decides nothing about what the SIH is told: aliases (`latin1`,
/// `utf8`…), white space around `=`, a parameter after a malformed one.
pub fn charset_of(content_type: &str) -> Option<Charset> {
    let (_, mut params) = split(content_type);
    params
        .find(Param::is_charset)
        .and_then(|p| Charset::from_label(p.value.as_bytes()))
}

/// Makes `headers` carry one `Content-Type` whose `charset` is `charset`'s own name (an SIH
/// decodes an answer by its HTTP charset first, RFC 7303 §3: once the signature was checked on
/// the document read in `charset`, the two must agree, or the SIH reads other characters than
/// those signed). Left as sent when its one field already says so, well-formed; otherwise the
/// first field's type (`essence()`, the SOAP version's media type, for one that is not a type
/// or not visible ASCII), its other parameters when all are well-formed, and the charset. No
/// `Content-Type` at all stays so: the document's own declaration then rules. Whether it
/// changed the header.
pub fn say_charset(
    headers: &mut HeaderMap,
    charset: Charset,
    essence: impl FnOnce() -> &'static str,
) -> bool {
    let mut sent = headers.get_all(CONTENT_TYPE).iter();
    let (Some(first), second) = (sent.next(), sent.next()) else {
        return false;
    };
    let first = first.to_str().ok();
    if second.is_none() && first.is_some_and(|ct| says(ct, charset)) {
        return false;
    }
    let essence = essence();
    let said = with_charset(first.unwrap_or(""), charset, essence);
    let value = HeaderValue::try_from(said)
        .or_else(|_| HeaderValue::try_from(format!("{essence}; charset={}", charset.name())))
        .unwrap_or_else(|_| HeaderValue::from_static(essence));
    headers.insert(CONTENT_TYPE, value);
    true
}

/// `content_type` is well-formed and says `charset` by its own name, once, as a token.
fn says(content_type: &str, charset: Charset) -> bool {
    let (essence, params) = split(content_type);
    let mut named = 0;
    for p in params {
        if !p.strict {
            return false;
        }
        if p.is_charset() {
            named += 1;
            if !p.token || !p.value.eq_ignore_ascii_case(charset.name()) {
                return false;
            }
        }
    }
    named == 1 && is_media_type(essence)
}

/// `content_type` naming `charset`: its type (or `essence` for one that is not a type), its
/// other parameters when all are well-formed, and `charset=` its name.
fn with_charset(content_type: &str, charset: Charset, essence: &str) -> String {
    let (sent, params) = split(content_type);
    let mut out = String::with_capacity(content_type.len().max(essence.len()) + 24);
    out.push_str(if is_media_type(sent) { sent } else { essence });
    let params: Vec<Param<'_>> = params.collect();
    if params.iter().all(|p| p.strict) {
        for p in params.iter().filter(|p| !p.is_charset()) {
            out.push_str("; ");
            out.push_str(p.text);
        }
    }
    out.push_str("; charset=");
    out.push_str(charset.name());
    out
}

/// One parameter: as written, and as read.
struct Param<'a> {
    /// Between its `;`s, trimmed.
    text: &'a str,
    /// Its name and value read leniently: white space around `=` dropped, quotes stripped.
    name: &'a str,
    value: &'a str,
    /// `token "=" ( token / quoted-string )` and nothing else (RFC 9110 §5.6.6).
    strict: bool,
    /// The value is a token, not a quoted string.
    token: bool,
}

impl<'a> Param<'a> {
    fn read(text: &'a str) -> Param<'a> {
        let (name, value) = text
            .split_once('=')
            .map_or((text, ""), |(n, v)| (n.trim_end(), v.trim_start()));
        let quoted = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        let token = is_token(value);
        let tight = name.len() + 1 + value.len() == text.len();
        Param {
            text,
            name,
            value: quoted.unwrap_or(value),
            strict: tight && is_token(name) && (token || quoted.is_some_and(is_quoted_text)),
            token,
        }
    }

    fn is_charset(&self) -> bool {
        self.name.eq_ignore_ascii_case("charset")
    }
}

/// A media type's essence (trimmed), then its non-empty parameters: each runs to the next `;`
/// outside a quoted string (an unclosed quote runs to the end).
fn split(value: &str) -> (&str, impl Iterator<Item = Param<'_>>) {
    let end = value.find(';').unwrap_or(value.len());
    let mut rest = value.get(end + 1..);
    let params = std::iter::from_fn(move || loop {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        let cut = s.char_indices().find_map(|(i, c)| {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => return Some(i),
                _ => {}
            }
            None
        });
        rest = cut.map(|i| &s[i + 1..]);
        let text = s[..cut.unwrap_or(s.len())].trim();
        if !text.is_empty() {
            return Some(Param::read(text));
        }
    });
    (value[..end].trim(), params)
}

/// The inside of a quoted string: `qdtext` and quoted pairs (RFC 9110 §5.6.4).
fn is_quoted_text(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return false,
            '\\' if chars.next().is_none() => return false,
            _ => {}
        }
    }
    true
}

/// `s` is one token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && token_len(s.as_bytes()) == s.len()
}

/// The length of the token `b` starts with (RFC 9110 §5.6.2 `tchar`s).
fn token_len(b: &[u8]) -> usize {
    b.iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
        .count()
}

/// `type "/" subtype`, both tokens.
fn is_media_type(essence: &str) -> bool {
    essence
        .split_once('/')
        .is_some_and(|(t, s)| is_token(t) && is_token(s))
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
        let changed = say_charset(&mut h, charset, || SOAP12);
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
        // Already saying it by its name, once, as a token: unchanged.
        for same in [
            "application/soap+xml; charset=utf-8",
            "text/xml;charset=UTF-8",
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
            ("text/xml; charset=\"UTF-8\"", "text/xml; charset=UTF-8"),
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
            said(
                &[b"text/xml; action=\"a\"; charset=utf-8", b"text/plain"],
                Charset::Latin1
            ),
            ["text/xml; action=\"a\"; charset=ISO-8859-1"]
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
        // Read leniently: white space around `=`, after a malformed parameter.
        assert_eq!(
            charset_of("text/xml; charset = ISO-8859-1"),
            Some(Charset::Latin1)
        );
        assert_eq!(
            charset_of("text/xml; action=urn:a:b; junk; charset=\"latin1\""),
            Some(Charset::Latin1)
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

//! The media type of a SOAP message (`Content-Type`), as far as encodings go: the `charset` it
//! names, and the same type naming another.

use super::Charset;

/// The encoding `content_type`'s `charset` parameter names, when rocgw reads it (the first
/// `charset`, if sent twice).
pub fn charset_of(content_type: &str) -> Option<Charset> {
    params(content_type)
        .skip(1)
        .find_map(|p| charset_label(p).map(|label| Charset::from_label(label.as_bytes())))
        .flatten()
}

/// The value of `param` when it is a `charset` parameter, unquoted.
fn charset_label(param: &str) -> Option<&str> {
    let (name, value) = param.split_once('=')?;
    if !name.trim_end().eq_ignore_ascii_case("charset") {
        return None;
    }
    let value = value.trim_start();
    Some(
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value),
    )
}

/// `content_type` (an answer's `Content-Type`) with a `charset` parameter naming `charset`, or
/// `None` when its only `charset` already names that encoding. An SIH decodes an answer by its
/// HTTP charset first (RFC 7303 §3); once the signature was checked on the document read in
/// `charset`, the two must agree, or the SIH reads other characters than those signed. The
/// other parameters are kept as written.
pub fn with_charset(content_type: &str, charset: Charset) -> Option<String> {
    let mut parts = params(content_type);
    let essence = parts.next().unwrap_or("");
    let mut out = String::with_capacity(content_type.len() + 20);
    out.push_str(essence);
    let (mut named, mut same) = (0, true);
    for param in parts {
        match charset_label(param) {
            Some(label) => {
                named += 1;
                same &= Charset::from_label(label.as_bytes()) == Some(charset);
            }
            None => {
                out.push_str("; ");
                out.push_str(param);
            }
        }
    }
    if named == 1 && same {
        return None;
    }
    out.push_str("; charset=");
    out.push_str(charset.name());
    Some(out)
}

/// A media type's essence, then its non-empty parameters, each trimmed; a `;` inside a quoted
/// string does not split (RFC 9110 §5.6.4, §8.3.1).
fn params(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(value);
    let pieces = std::iter::from_fn(move || {
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
        Some(s[..cut.unwrap_or(s.len())].trim())
    });
    pieces
        .enumerate()
        .filter(|(i, p)| *i == 0 || !p.is_empty())
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_type_names_the_encoding_the_answer_was_verified_in() {
        let utf8 = |ct| with_charset(ct, Charset::Utf8);
        // Already saying it, however written: unchanged.
        for same in [
            "application/soap+xml; charset=utf-8",
            "text/xml;charset=\"UTF-8\"",
            "application/soap+xml ; CharSet = utf8 ; action=\"urn:a;b\"",
        ] {
            assert_eq!(utf8(same), None, "{same}");
        }
        // Another encoding, none, or two: the charset says what was verified, the rest is kept.
        assert_eq!(
            utf8("application/soap+xml; charset=ISO-8859-1").as_deref(),
            Some("application/soap+xml; charset=UTF-8")
        );
        assert_eq!(utf8("text/xml").as_deref(), Some("text/xml; charset=UTF-8"));
        assert_eq!(
            with_charset(
                "application/soap+xml;charset=utf-8;action=\"urn:x;charset=utf-8\"",
                Charset::Latin1
            )
            .as_deref(),
            Some("application/soap+xml; action=\"urn:x;charset=utf-8\"; charset=ISO-8859-1")
        );
        assert_eq!(
            utf8("text/xml; charset=utf-8; charset=utf-8").as_deref(),
            Some("text/xml; charset=UTF-8")
        );
        assert_eq!(
            with_charset("text/xml; charset=latin-2", Charset::Windows1252).as_deref(),
            Some("text/xml; charset=windows-1252")
        );
        assert_eq!(
            with_charset("text/xml; charset=\"a\\\";b\"", Charset::Ascii).as_deref(),
            Some("text/xml; charset=US-ASCII")
        );
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
    }
}

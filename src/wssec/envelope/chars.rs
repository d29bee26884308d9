//! The envelope's characters: the encodings rocgw reads, the one pass that checks that every
//! byte of the body stands for a character XML allows in its declared encoding, and the classes
//! of name characters (XML 1.0, fifth edition).

/// An encoding the envelope may declare (none declared, or a UTF-8 byte order mark: UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Latin1,
    Latin9,
    Windows1252,
    Ascii,
}

impl Charset {
    /// The encoding of an XML declaration's `encoding` label (case-insensitive).
    pub fn from_label(label: &[u8]) -> Option<Charset> {
        let l = label.to_ascii_lowercase();
        Some(match l.as_slice() {
            b"utf-8" | b"utf8" => Charset::Utf8,
            b"iso-8859-1" | b"latin1" | b"latin-1" => Charset::Latin1,
            b"iso-8859-15" => Charset::Latin9,
            b"windows-1252" | b"cp1252" => Charset::Windows1252,
            b"us-ascii" | b"ascii" => Charset::Ascii,
            _ => return None,
        })
    }

    /// The encoding's name as HTTP's `charset` and XML declarations write it (its IANA
    /// preferred MIME name).
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "ISO-8859-1",
            Charset::Latin9 => "ISO-8859-15",
            Charset::Windows1252 => "windows-1252",
            Charset::Ascii => "US-ASCII",
        }
    }

    /// The character a byte ≥ 0x80 stands for in a single-byte encoding (`None`: undefined, or
    /// not a single-byte encoding).
    pub fn single_byte(self, b: u8) -> Option<char> {
        const LATIN9: [(u8, char); 8] = [
            (0xA4, '€'),
            (0xA6, 'Š'),
            (0xA8, 'š'),
            (0xB4, 'Ž'),
            (0xB8, 'ž'),
            (0xBC, 'Œ'),
            (0xBD, 'œ'),
            (0xBE, 'Ÿ'),
        ];
        const CP1252: &str = "€\0‚ƒ„…†‡ˆ‰Š‹Œ\0Ž\0\0‘’“”•–—˜™š›œ\0žŸ";
        match self {
            Charset::Latin1 => Some(char::from(b)),
            Charset::Latin9 => Some(
                LATIN9
                    .iter()
                    .find(|(k, _)| *k == b)
                    .map_or(char::from(b), |(_, c)| *c),
            ),
            Charset::Windows1252 if (0x80..0xA0).contains(&b) => CP1252
                .chars()
                .nth(usize::from(b - 0x80))
                .filter(|&c| c != '\0'),
            Charset::Windows1252 => Some(char::from(b)),
            Charset::Utf8 | Charset::Ascii => None,
        }
    }
}

/// Checks that every byte of `body` is (part of) a character XML allows, in `charset`: no C0
/// control but TAB, LF and CR; valid UTF-8 without U+FFFE/U+FFFF; no byte ≥ 0x80 in US-ASCII;
/// no byte windows-1252 leaves undefined. Returns the offsets of every `]]>` (never allowed in
/// character data: the walks check where each one falls). One pass over the body, vectorised;
/// UTF-8 is validated only when there is a byte ≥ 0x80.
pub fn scan(body: &[u8], charset: Charset) -> Result<Vec<usize>, &'static str> {
    let (mut control, mut high, mut bracket) = (false, false, false);
    for chunk in body.chunks(4096) {
        let (mut c, mut h, mut k) = (false, false, false);
        for &b in chunk {
            c |= (b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r');
            h |= b >= 0x80;
            k |= b == b']';
        }
        if c {
            control = true;
            break;
        }
        high |= h;
        bracket |= k;
    }
    if control {
        return Err("a control character");
    }
    if high {
        match charset {
            Charset::Ascii => return Err("a byte above 0x7F in a US-ASCII document"),
            Charset::Utf8 => {
                if std::str::from_utf8(body).is_err() {
                    return Err("invalid UTF-8");
                }
                // U+FFFE and U+FFFF (EF BF BE, EF BF BF) are not XML characters.
                if memchr::memmem::find_iter(body, b"\xEF\xBF")
                    .any(|i| matches!(body.get(i + 2), Some(0xBE | 0xBF)))
                {
                    return Err("a non-character (U+FFFE or U+FFFF)");
                }
            }
            Charset::Windows1252 => {
                if body
                    .iter()
                    .any(|&b| matches!(b, 0x81 | 0x8D | 0x8F | 0x90 | 0x9D))
                {
                    return Err("a byte windows-1252 does not define");
                }
            }
            Charset::Latin1 | Charset::Latin9 => {}
        }
    }
    Ok(if bracket {
        memchr::memmem::find_iter(body, b"]]>").collect()
    } else {
        Vec::new()
    })
}

/// `NameStartChar` of XML 1.0 (fifth edition), without `:` (namespaces give it its own role).
pub fn is_name_start(c: char) -> bool {
    matches!(c as u32,
        0x41..=0x5A | 0x5F | 0x61..=0x7A | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x2FF
        | 0x370..=0x37D | 0x37F..=0x1FFF | 0x200C..=0x200D | 0x2070..=0x218F
        | 0x2C00..=0x2FEF | 0x3001..=0xD7FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFFD
        | 0x10000..=0xEFFFF)
}

/// `NameChar` of XML 1.0 (fifth edition), without `:`.
pub fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c as u32,
            0x2D | 0x2E | 0x30..=0x39 | 0xB7 | 0x300..=0x36F | 0x203F..=0x2040)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_encodings_decode_as_their_tables_say() {
        assert_eq!(Charset::Latin1.single_byte(0xF4), Some('ô'));
        assert_eq!(Charset::Latin1.single_byte(0x80), Some('\u{80}'));
        assert_eq!(Charset::Latin9.single_byte(0xA4), Some('€'));
        assert_eq!(Charset::Latin9.single_byte(0xE9), Some('é'));
        assert_eq!(Charset::Windows1252.single_byte(0x80), Some('€'));
        assert_eq!(Charset::Windows1252.single_byte(0x9F), Some('Ÿ'));
        assert_eq!(Charset::Windows1252.single_byte(0x81), None);
        assert_eq!(Charset::Windows1252.single_byte(0xE9), Some('é'));
    }

    #[test]
    fn the_scan_finds_what_no_encoding_allows() {
        assert_eq!(scan(b"<a>]]></a>]]>", Charset::Utf8), Ok(vec![3, 10]));
        assert!(scan(b"<a>\x01</a>", Charset::Utf8).is_err());
        assert!(scan(b"<a>\t\r\n</a>", Charset::Ascii).is_ok());
        assert!(scan(b"<a>\xE9</a>", Charset::Ascii).is_err());
        assert!(scan(b"<a>\xE9</a>", Charset::Utf8).is_err());
        assert!(scan(b"<a>\xE9</a>", Charset::Latin1).is_ok());
        assert!(scan("<a>\u{FFFE}</a>".as_bytes(), Charset::Utf8).is_err());
        assert!(scan("<a>\u{FFFD}é</a>".as_bytes(), Charset::Utf8).is_ok());
        assert!(scan(b"<a>\x9D</a>", Charset::Windows1252).is_err());
    }
}

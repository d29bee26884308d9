//! The oracle of the differential stamping fuzzer (`fuzz_stamp.rs`): documents decoded as an
//! XML parser would, read by uppsala (namespace-aware), the edit the stamper must have made
//! computed from that reading, the inserted header's shape, the signature (bergshamra), and
//! Python's expat in a child process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use rocgw::wssec::{self, AssertionVerifier, SignedAssertion};
use uppsala::{PullEvent, PullParser};

const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const WSSE: &str = wssec::WSSE_NS;
const SAML2: &str = wssec::SAML2_NS;

/// Single-byte encodings, decoded by this harness's own tables (not rocgw's).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Single {
    Latin1,
    Latin9,
    Cp1252,
    Ascii,
}

/// The character of a byte in a single-byte encoding (`None`: not defined).
pub fn decode_byte(cs: Single, b: u8) -> Option<char> {
    const CP1252: [u16; 32] = [
        0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
        0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
        0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
    ];
    let code = match (cs, b) {
        (_, 0..=0x7F) => u32::from(b),
        (Single::Ascii, _) => return None,
        (Single::Cp1252, 0x80..=0x9F) => u32::from(CP1252[usize::from(b - 0x80)]),
        (Single::Latin9, 0xA4) => 0x20AC,
        (Single::Latin9, 0xA6) => 0x160,
        (Single::Latin9, 0xA8) => 0x161,
        (Single::Latin9, 0xB4) => 0x17D,
        (Single::Latin9, 0xB8) => 0x17E,
        (Single::Latin9, 0xBC) => 0x152,
        (Single::Latin9, 0xBD) => 0x153,
        (Single::Latin9, 0xBE) => 0x178,
        _ => u32::from(b),
    };
    (code != 0).then(|| char::from_u32(code)).flatten()
}

/// A document decoded as an XML parser would: its text, and for each byte of the text the
/// offset of the byte it came from (plus the end).
pub struct Decoded {
    pub text: String,
    origin: Vec<usize>,
}

/// The encoding a document declares: byte order mark, then `encoding` of the XML declaration.
fn declared(bytes: &[u8]) -> Result<Option<Single>, String> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Ok(None);
    }
    let Some(decl) = bytes
        .strip_prefix(b"<?xml")
        .filter(|r| r.first().is_some_and(|b| b" \t\r\n".contains(b)))
        .and_then(|r| r.split(|&b| b == b'>').next())
    else {
        return Ok(None);
    };
    let decl = String::from_utf8_lossy(decl);
    let Some(at) = decl.find("encoding") else {
        return Ok(None);
    };
    let rest = decl[at + 8..]
        .trim_start()
        .trim_start_matches('=')
        .trim_start();
    let label: String = rest
        .chars()
        .skip(1)
        .take_while(|&c| c != '"' && c != '\'')
        .collect();
    match label.to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Ok(None),
        "iso-8859-1" | "latin1" | "latin-1" => Ok(Some(Single::Latin1)),
        "iso-8859-15" => Ok(Some(Single::Latin9)),
        "windows-1252" | "cp1252" => Ok(Some(Single::Cp1252)),
        "us-ascii" | "ascii" => Ok(Some(Single::Ascii)),
        other => Err(format!("unknown encoding {other:?}")),
    }
}

pub fn decode(bytes: &[u8]) -> Result<Decoded, String> {
    match declared(bytes)? {
        None => {
            let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
            Ok(Decoded {
                text: text.to_string(),
                origin: (0..=bytes.len()).collect(),
            })
        }
        Some(cs) => {
            let mut text = String::with_capacity(bytes.len() + 64);
            let mut origin = Vec::with_capacity(bytes.len() + 64);
            for (i, &b) in bytes.iter().enumerate() {
                let c = decode_byte(cs, b).ok_or_else(|| format!("byte {b:#x} undefined"))?;
                for _ in 0..c.len_utf8() {
                    origin.push(i);
                }
                text.push(c);
            }
            origin.push(bytes.len());
            Ok(Decoded { text, origin })
        }
    }
}

/// An element as uppsala read it: expanded name, attributes, and source range.
pub struct El {
    ns: Option<String>,
    local: String,
    attrs: Vec<(Option<String>, String, String)>,
    start: usize,
    start_end: usize,
    end_start: usize,
    end: usize,
    depth: u32,
    parent: Option<usize>,
    children: usize,
    text_children: usize,
}

/// The elements of a document in document order, or uppsala's refusal.
pub fn elements(text: &str) -> Result<Vec<El>, String> {
    let mut p = PullParser::new(text).with_max_depth(1_000);
    let mut els: Vec<El> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    while let Some(ev) = p.next_event().map_err(|e| e.to_string())? {
        match ev {
            PullEvent::StartElement {
                name,
                attributes,
                byte_start,
                byte_end,
                depth,
                ..
            } => {
                if let Some(&parent) = open.last() {
                    els[parent].children += 1;
                }
                els.push(El {
                    ns: name.namespace_uri.map(|n| n.to_string()),
                    local: name.local_name.to_string(),
                    attrs: attributes
                        .iter()
                        .map(|a| {
                            let ns = a.name.namespace_uri.as_deref().map(str::to_string);
                            (ns, a.name.local_name.to_string(), a.value.to_string())
                        })
                        .collect(),
                    start: byte_start,
                    start_end: byte_end,
                    end_start: 0,
                    end: 0,
                    depth,
                    parent: open.last().copied(),
                    children: 0,
                    text_children: 0,
                });
                open.push(els.len() - 1);
            }
            PullEvent::EndElement {
                byte_start,
                byte_end,
                ..
            } => {
                let k = open.pop().ok_or("unbalanced")?;
                els[k].end_start = byte_start;
                els[k].end = byte_end;
            }
            PullEvent::Text { .. } | PullEvent::CData { .. } => {
                if let Some(&k) = open.last() {
                    els[k].text_children += 1;
                }
            }
            _ => {}
        }
    }
    Ok(els)
}

/// A failed check: its category and what was seen.
pub type Failure = (&'static str, String);

/// What the stamper must have done to an input (offsets in the input's bytes).
pub struct Edit {
    /// Where the header goes.
    at: usize,
    /// Ranges dropped (an existing `wsse:Security`, an empty `<Header/>`).
    removed: Vec<(usize, usize)>,
    /// Whether a Header is created around the `wsse:Security`.
    wrap: bool,
    /// The envelope's namespace.
    soap: &'static str,
}

/// What the stamper must have done to `input`, from uppsala's reading of it.
pub fn expected_edit(els: &[El], d: &Decoded) -> Result<Edit, Failure> {
    let root = els
        .first()
        .ok_or(("accepted-non-soap", "no element".into()))?;
    let soap = match root.ns.as_deref() {
        Some(SOAP11) if root.local == "Envelope" => SOAP11,
        Some(SOAP12) if root.local == "Envelope" => SOAP12,
        _ => {
            return Err((
                "accepted-non-soap",
                format!("root {:?} {}", root.ns, root.local),
            ))
        }
    };
    let child = |local: &str| {
        els.iter()
            .position(|e| e.depth == 1 && e.ns.as_deref() == Some(soap) && e.local == local)
    };
    let o = |k: usize| d.origin[k];
    let (header, body) = (child("Header"), child("Body"));
    let body = body.ok_or(("accepted-non-soap", "no Body".to_string()))?;
    let (at, removed, wrap) = match header {
        Some(h) if els[h].end_start == els[h].start => (
            o(els[h].start),
            vec![(o(els[h].start), o(els[h].end))],
            true,
        ),
        Some(h) => {
            let removed = els
                .iter()
                .filter(|e| {
                    e.parent == Some(h) && e.ns.as_deref() == Some(WSSE) && e.local == "Security"
                })
                .map(|e| (o(e.start), o(e.end)))
                .collect();
            (o(els[h].start_end), removed, false)
        }
        None => (o(els[body].start), Vec::new(), true),
    };
    Ok(Edit {
        at,
        removed,
        wrap,
        soap,
    })
}

/// The checks of one accepted input against its stamped output.
pub struct Check<'a> {
    pub input: &'a [u8],
    pub output: &'a [u8],
    pub assertion: &'a SignedAssertion,
    pub must_understand: bool,
}

impl Check<'_> {
    /// Runs every check; returns what the accepted input exercised (for the run's figures).
    pub fn run(&self, verifier: &AssertionVerifier) -> Result<Vec<&'static str>, Failure> {
        let din = decode(self.input).map_err(|e| ("accepted-undecodable-input", e))?;
        let ein = elements(&din.text).map_err(|e| ("oracle-refuses-input", e))?;
        let dout = decode(self.output).map_err(|e| ("undecodable-output", e))?;
        let eout = elements(&dout.text).map_err(|e| ("oracle-refuses-output", e))?;
        let edit = expected_edit(&ein, &din)?;
        let inserted = self.bytes_kept(edit.at, &edit.removed)?;
        self.inserted(&eout, &dout, &edit, inserted)?;
        let v = verifier
            .verify(&dout.text)
            .map_err(|e| ("signature", e.to_string()))?;
        if v.id != self.assertion.id {
            return Err(("signature", format!("verified {} not ours", v.id)));
        }
        let mut seen = vec![match declared(self.input) {
            _ if self.input.starts_with(&[0xEF, 0xBB, 0xBF]) => "encoding: UTF-8 with BOM",
            Ok(None) => "encoding: UTF-8",
            Ok(Some(Single::Latin1)) => "encoding: ISO-8859-1",
            Ok(Some(Single::Latin9)) => "encoding: ISO-8859-15",
            Ok(Some(Single::Cp1252)) => "encoding: windows-1252",
            Ok(Some(Single::Ascii)) => "encoding: US-ASCII",
            Err(_) => "encoding: ?",
        }];
        seen.push(match (edit.wrap, edit.removed.is_empty()) {
            (true, true) => "Header created",
            (true, false) => "empty <Header/> replaced",
            (false, true) => "into an existing Header",
            (false, false) => "into an existing Header, wsse:Security replaced",
        });
        seen.push(if edit.soap == SOAP11 {
            "SOAP 1.1"
        } else {
            "SOAP 1.2"
        });
        if self.must_understand {
            seen.push("mustUnderstand");
        }
        if !self.input.is_ascii() {
            seen.push("non-ASCII input");
        }
        Ok(seen)
    }

    /// The output is the input with bytes inserted at `at` and the `removed` ranges dropped:
    /// returns the inserted length.
    fn bytes_kept(&self, at: usize, removed: &[(usize, usize)]) -> Result<usize, Failure> {
        let (inp, out) = (self.input, self.output);
        let mut rest = Vec::with_capacity(inp.len());
        let mut pos = at;
        for &(a, b) in removed {
            rest.extend_from_slice(&inp[pos.max(at)..a.max(pos)]);
            pos = b;
        }
        rest.extend_from_slice(&inp[pos.max(at)..]);
        let changed = |what: &str| ("bytes-changed", format!("{what} (insertion at {at})"));
        if out.len() < at + rest.len() || out[..at] != inp[..at] {
            return Err(changed("before the insertion"));
        }
        if out[out.len() - rest.len()..] != rest[..] {
            return Err(changed("after the insertion"));
        }
        Ok(out.len() - rest.len() - at)
    }

    /// The element at `at` in the output is the header: `wsse:Security` (in a SOAP Header of the
    /// envelope's namespace when one is created), ASCII, with our assertion and `mustUnderstand`
    /// as configured.
    fn inserted(
        &self,
        eout: &[El],
        dout: &Decoded,
        edit: &Edit,
        len: usize,
    ) -> Result<(), Failure> {
        let (at, wrap, soap) = (edit.at, edit.wrap, edit.soap);
        let o = |k: usize| dout.origin[k];
        let bad = |what: String| Err(("bad-header", what));
        let Some(k) = eout.iter().position(|e| o(e.start) == at) else {
            return bad("no element at the insertion point".into());
        };
        if o(eout[k].end) != at + len {
            return bad(format!("element at {at} does not end at {}", at + len));
        }
        let sec = if wrap {
            let h = &eout[k];
            if h.ns.as_deref() != Some(soap) || h.local != "Header" || !h.attrs.is_empty() {
                return bad(format!("created Header is {:?} {}", h.ns, h.local));
            }
            if h.children != 1 || h.text_children != 0 {
                return bad("created Header holds more than the Security".into());
            }
            k + 1
        } else {
            k
        };
        let s = &eout[sec];
        if s.ns.as_deref() != Some(WSSE) || s.local != "Security" {
            return bad(format!("inserted {:?} {}", s.ns, s.local));
        }
        let value = if soap == SOAP11 { "1" } else { "true" };
        let mu: Vec<_> = s.attrs.iter().collect();
        let ok = if self.must_understand {
            mu.len() == 1
                && mu[0].0.as_deref() == Some(soap)
                && mu[0].1 == "mustUnderstand"
                && mu[0].2 == value
        } else {
            mu.is_empty()
        };
        if !ok {
            return bad(format!("Security attributes {:?}", s.attrs));
        }
        let a = eout.get(sec + 1).filter(|a| a.parent == Some(sec));
        let ours = a.is_some_and(|a| {
            a.ns.as_deref() == Some(SAML2)
                && a.local == "Assertion"
                && a.attrs
                    .iter()
                    .any(|(_, n, v)| n == "ID" && *v == self.assertion.id)
        });
        if !ours || s.children != 1 {
            return bad("the Security does not hold our assertion alone".into());
        }
        if !self.output[o(s.start)..o(s.end)].is_ascii() {
            return Err((
                "non-ascii-insert",
                "the Security element has non-ASCII bytes".into(),
            ));
        }
        Ok(())
    }
}

/// Python's expat in a child process: length-prefixed documents in, one verdict line out.
pub struct Expat {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

const EXPAT: &str = r#"
import sys, struct, xml.parsers.expat as E
i, o = sys.stdin.buffer, sys.stdout
while True:
    h = i.read(4)
    if len(h) < 4:
        break
    d = i.read(struct.unpack('>I', h)[0])
    p = E.ParserCreate(namespace_separator='\x01')
    try:
        p.Parse(d, True)
        o.write('ok\n')
    except Exception as e:
        o.write('refused %s\n' % e)
    o.flush()
"#;

impl Expat {
    pub fn start() -> Option<Expat> {
        let mut child = Command::new("python3")
            .args(["-c", EXPAT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let stdin = child.stdin.take()?;
        let stdout = BufReader::new(child.stdout.take()?);
        Some(Expat {
            child,
            stdin,
            stdout,
        })
    }

    /// expat reads a declared `utf8` (no hyphen) as an unknown single-byte encoding: it gets
    /// `UTF-8`, the encoding rocgw reads that label as.
    pub fn parse(&mut self, doc: &[u8]) -> Result<(), String> {
        let head = &doc[..doc.len().min(100)];
        let doc = match memchr::memmem::find(head, b"utf8")
            .or_else(|| memchr::memmem::find(head, b"UTF8"))
        {
            Some(k) if doc.starts_with(b"<?xml") || doc.starts_with(b"\xEF\xBB\xBF<?xml") => {
                [&doc[..k], b"UTF-8", &doc[k + 4..]].concat()
            }
            _ => doc.to_vec(),
        };
        let doc = &doc[..];
        self.stdin
            .write_all(&(doc.len() as u32).to_be_bytes())
            .unwrap();
        self.stdin.write_all(doc).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        match line.trim_end() {
            "ok" => Ok(()),
            other => Err(other.to_string()),
        }
    }
}

impl Drop for Expat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a name of the document (element, attribute, prefix, processing instruction target)
/// has a character outside those every edition of XML 1.0 allows in names (ASCII name
/// characters, Latin-1 and Latin Extended-A letters, Cyrillic, CJK unified ideographs).
pub fn fifth_edition_names(text: &str) -> bool {
    let old = |c: char| {
        c.is_ascii()
            || matches!(c as u32, 0xB7 | 0xC0..=0xD6 | 0xD8..=0xF6 | 0xF8..=0x131 | 0x134..=0x13E
                | 0x141..=0x148 | 0x14A..=0x17E | 0x410..=0x44F | 0x4E00..=0x9FA5)
    };
    let exotic = |name: &str| !name.chars().all(old);
    let mut p = PullParser::new(text).with_max_depth(1_000);
    while let Ok(Some(ev)) = p.next_event() {
        let odd = match ev {
            PullEvent::StartElement {
                name,
                attributes,
                namespace_declarations,
                ..
            } => {
                exotic(&name.prefixed_name())
                    || attributes.iter().any(|a| exotic(&a.name.prefixed_name()))
                    || namespace_declarations.iter().any(|(p, _)| exotic(p))
            }
            PullEvent::ProcessingInstruction { pi, .. } => exotic(&pi.target),
            _ => false,
        };
        if odd {
            return true;
        }
    }
    false
}

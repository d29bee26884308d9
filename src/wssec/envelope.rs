//! The SIH's SOAP envelope: one streaming read that says where the security header goes (or
//! why the request is refused), and the insertion that keeps every other byte as sent.
//!
//! The outer levels (Envelope, Header and its content, Body) are read with quick-xml; the Body's
//! payload, which is most of the bytes and none of the decisions, is walked by [`skim`], which
//! jumps between markup with `memchr` (about 3x faster than quick-xml's event loop on a 50 KB
//! body; `bench/README.md`). Both walks check tags, names, attributes and namespaces with the
//! same code ([`markup`]), and every byte's character once ([`chars`]): what is accepted is
//! well-formed, namespace-well-formed XML in its declared encoding.

mod chars;
mod decl;
mod markup;
mod skim;
#[cfg(test)]
mod tests;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::WSSE_NS;
use crate::config::{ExistingSecurity, Profile};
use crate::fault::{Fault, FaultCode, VersionedFault};
use crate::soap::SoapVersion;
pub use chars::Charset;
use markup::{reference_ok, whitespace_len, Markup, Refused};
use skim::skim;

/// Where, in the SIH's envelope, the security header goes.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub version: SoapVersion,
    /// The SOAP envelope prefix as the SIH wrote it (`soap`, `S`, or empty for a default
    /// namespace), in the document's encoding.
    prefix: Vec<u8>,
    /// Insertion point and what to write around the header.
    insert_at: usize,
    /// Bytes of the SIH's envelope to drop (existing `wsse:Security`, an empty `<Header/>`).
    remove: Vec<std::ops::Range<usize>>,
    wrap_header: bool,
}

/// A refusal before the envelope's version is known: written in SOAP 1.2.
fn refuse(code: FaultCode, detail: impl Into<String>) -> VersionedFault {
    Fault::with_detail(code, detail).in_version(crate::soap::DEFAULT_FAULT_VERSION)
}

/// An envelope's encoding, the length of its byte order mark, and where its declaration's
/// encoding label is, if it has one.
type Encoding = (Charset, usize, Option<std::ops::Range<usize>>);

/// The encoding of the envelope: a byte order mark, the XML declaration's label (checked here,
/// at the very start only), the HTTP `charset` (`http`) when it names a Latin-1 family encoding,
/// or UTF-8. The declaration wins over the HTTP charset, the other way round from RFC 7303, so
/// that legacy SIHs sending `charset=utf-8` on an ISO-8859-1 declaration keep working; a
/// `charset=ISO-8859-1` on a document that declares nothing is how XML's external encoding
/// information reads it (XML 1.0 §4.3.3, appendix F.2). A UTF-8 or US-ASCII charset reads as the
/// default, UTF-8, which US-ASCII is a part of.
fn encoding(body: &[u8], http: Option<Charset>) -> Result<Encoding, VersionedFault> {
    if crate::soap::is_utf16_or_32(body) {
        return Err(refuse(FaultCode::NotSoap, crate::soap::UTF16_REFUSED));
    }
    // quick-xml consumes a UTF-8 byte order mark without counting it in its positions: read
    // after it and shift every offset back onto `body`.
    const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];
    let skip = if body.starts_with(BOM) { BOM.len() } else { 0 };
    if body[skip..].starts_with(BOM) {
        return Err(refuse(FaultCode::NotSoap, "repeated byte order mark"));
    }
    let rest = &body[skip..];
    let declared = rest.starts_with(b"<?xml")
        && rest
            .get(5)
            .is_some_and(|&b| b == b'?' || whitespace_len(&[b]) == 1);
    let external = match http {
        Some(c @ (Charset::Latin1 | Charset::Latin9 | Charset::Windows1252)) if skip == 0 => c,
        _ => Charset::Utf8,
    };
    let (charset, label) = if declared {
        let (_, charset) =
            decl::xml_decl(body, skip).map_err(|(code, detail)| refuse(code, detail))?;
        charset.map_or((external, None), |(c, at)| (c, Some(at)))
    } else {
        (external, None)
    };
    if skip > 0 && charset != Charset::Utf8 {
        return Err(refuse(
            FaultCode::NotSoap,
            "a UTF-8 byte order mark before another declared encoding",
        ));
    }
    Ok((charset, skip, label))
}

/// `body` as UTF-8 text, decoded from the encoding it declares (those [`plan`] reads), for a
/// parser that takes text: an AMC's answer in ISO-8859-1 is as verifiable as one in UTF-8.
/// A decoded document's XML declaration then names UTF-8 (US-ASCII, a subset, is borrowed as it
/// is); canonical XML is UTF-8 without a declaration, so a signature over the document verifies
/// on this text as on the bytes. With the text, the encoding it was decoded from. `http`: the
/// HTTP `charset`, read as [`plan_in`] reads it (UTF-8 when the document is not in the encoding
/// it names). `Err`: why not.
pub fn utf8_text(
    body: &[u8],
    http: Option<Charset>,
) -> Result<(std::borrow::Cow<'_, str>, Charset), String> {
    decode(body, http).or_else(|why| match http_decides(body, http) {
        true => decode(body, None).map_err(|_| why),
        false => Err(why),
    })
}

/// The document's UTF-8 reading, when its reading in `read_in` (from [`utf8_text`]) came from
/// the HTTP charset `http` alone: for a reader to try once the text it read is refused, as
/// [`plan_in`] does (an SIH's or AMC's wrong charset on an undeclared UTF-8 document).
pub fn utf8_retry(body: &[u8], http: Option<Charset>, read_in: Charset) -> Option<&str> {
    let decided = read_in != Charset::Utf8 && http_decides(body, http);
    decided.then(|| std::str::from_utf8(body).ok()).flatten()
}

/// Whether `body`'s encoding comes from the HTTP charset `http` (a Latin-1 family encoding for
/// a document that declares none and is not ASCII, which reads alike in all): then a reading in
/// it that fails is tried again in UTF-8, the default, so a wrong HTTP charset never refuses
/// what the document alone makes readable.
fn http_decides(body: &[u8], http: Option<Charset>) -> bool {
    // No byte order mark and no label: the encoding, if not UTF-8, is the HTTP charset's.
    http.is_some()
        && !body.is_ascii()
        && matches!(encoding(body, http), Ok((c, 0, None)) if c != Charset::Utf8)
}

/// [`utf8_text`] in the encoding [`encoding`] picks.
fn decode(
    body: &[u8],
    http: Option<Charset>,
) -> Result<(std::borrow::Cow<'_, str>, Charset), String> {
    use std::borrow::Cow;
    let (charset, _, label) =
        encoding(body, http).map_err(|f| f.fault.detail.unwrap_or_default())?;
    let text = match charset {
        Charset::Utf8 => Cow::Borrowed(std::str::from_utf8(body).map_err(|_| "not UTF-8")?),
        Charset::Ascii if !body.is_ascii() => return Err("a byte above 0x7F in US-ASCII".into()),
        Charset::Ascii => Cow::Borrowed(std::str::from_utf8(body).expect("ASCII")),
        _ => Cow::Owned(decode_8bit(body, charset, label)?),
    };
    Ok((text, charset))
}

/// `body` in the single-byte `charset`, as UTF-8 text whose declaration (`label`) says so.
fn decode_8bit(
    body: &[u8],
    charset: Charset,
    label: Option<std::ops::Range<usize>>,
) -> Result<String, String> {
    let mut text = String::with_capacity(body.len() + body.len() / 8);
    for &b in body {
        text.push(match b {
            0..0x80 => char::from(b),
            _ => charset
                .single_byte(b)
                .ok_or_else(|| format!("byte 0x{b:02X} undefined in {}", charset.name()))?,
        });
    }
    // Only an 8-bit encoding gets here: a label declaring it is at the start, in ASCII, so at
    // the same place in the text as in the bytes.
    if let Some(label) = label {
        text.replace_range(label, "UTF-8");
    }
    Ok(text)
}

/// Reads the envelope once and says where the header goes, or why the request is refused.
/// Checks: well-formed, namespace-well-formed XML (one XML declaration at the start at most, no
/// DOCTYPE), a SOAP 1.1/1.2 `Envelope` root, one `Body`, a `Header` (if any) before it, nesting
/// and attribute limits, UTF-8 or a Latin-1 family encoding (or US-ASCII), and the policy for an
/// existing `wsse:Security`. The encoding is the one the envelope declares, else UTF-8: with
/// the request's HTTP `charset`, [`plan_in`].
pub fn plan(body: &[u8], profile: &Profile) -> Result<Plan, VersionedFault> {
    plan_in(body, profile, None)
}

/// [`plan`] of a request whose HTTP `charset` says `http` (see [`encoding`]). A document that
/// the HTTP charset alone puts in a Latin-1 family encoding, and that is refused in it, is read
/// again in UTF-8 (an SIH's wrong charset on an undeclared UTF-8 document: accepted as before
/// HTTP charsets were read); the first refusal stands when that fails too.
pub fn plan_in(
    body: &[u8],
    profile: &Profile,
    http: Option<Charset>,
) -> Result<Plan, VersionedFault> {
    plan_read(body, profile, http).or_else(|mut refused| {
        if refused.fault.code != FaultCode::NotSoap || !http_decides(body, http) {
            return Err(refused);
        }
        plan_read(body, profile, None).map_err(|_| {
            let detail = refused.fault.detail.get_or_insert_default();
            let name = http.map_or("", Charset::name);
            detail.push_str(&format!(
                " (read in {name}, the HTTP charset, as the document declares no encoding)"
            ));
            refused
        })
    })
}

/// [`plan_in`] in the encoding [`encoding`] picks.
fn plan_read(
    body: &[u8],
    profile: &Profile,
    http: Option<Charset>,
) -> Result<Plan, VersionedFault> {
    let (charset, skip, _) = encoding(body, http)?;
    let mut reader = Reader::from_reader(&body[skip..]);
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.check_comments = true;
    let mut p = Planner {
        mk: Markup::new(body, charset, profile.max_attributes),
        profile,
        skip,
        skimmed: 0,
        version: None,
        prefix: Vec::new(),
        depth: 0,
        scanned: false,
        header: None,
        body_start: None,
        bodies: 0,
        security: Vec::new(),
        sec_start: 0,
        in_header: false,
        root_done: false,
    };
    loop {
        let before = reader.buffer_position() as usize + p.skip + p.skimmed;
        let ev = match reader.read_event() {
            Ok(e) => e,
            Err(e) => {
                let what = match e {
                    quick_xml::Error::IllFormed(_) => "ill-formed markup",
                    quick_xml::Error::Syntax(_) => "syntax error",
                    quick_xml::Error::Encoding(_) => "invalid text encoding",
                    _ => "parse error",
                };
                return Err(p.fail(FaultCode::NotSoap, format!("not well-formed XML: {what}")));
            }
        };
        let after = reader.buffer_position() as usize + p.skip + p.skimmed;
        if let Some(end) = p.event(&ev, before..after)? {
            // The payload was checked by the fast walk: quick-xml resumes at the Body's end tag
            // (still on its name stack).
            let rest = reader.get_mut();
            *rest = &rest[end..];
            p.skimmed += end;
        }
        if matches!(ev, Event::Eof) {
            break;
        }
    }
    p.finish()
}

/// What the read of the outer levels has found so far.
struct Planner<'a> {
    mk: Markup<'a>,
    profile: &'a Profile,
    /// A UTF-8 byte order mark's length, not counted by quick-xml.
    skip: usize,
    /// Bytes of the Body's payload walked by `skim` rather than by the reader.
    skimmed: usize,
    version: Option<SoapVersion>,
    prefix: Vec<u8>,
    depth: usize,
    /// Whether the document's characters were checked (at the root element's start tag).
    scanned: bool,
    /// (start, end of start tag, empty)
    header: Option<(usize, usize, bool)>,
    body_start: Option<usize>,
    bodies: usize,
    security: Vec<std::ops::Range<usize>>,
    sec_start: usize,
    in_header: bool,
    root_done: bool,
}

impl Planner<'_> {
    /// A refusal in the envelope's version once it is known.
    fn fail(&self, code: FaultCode, detail: impl Into<String>) -> VersionedFault {
        Fault::with_detail(code, detail).in_version(self.fault_version())
    }

    fn refused(&self, (code, detail): Refused) -> VersionedFault {
        self.fail(code, detail)
    }

    fn fault_version(&self) -> SoapVersion {
        self.version.unwrap_or(crate::soap::DEFAULT_FAULT_VERSION)
    }

    /// One event of the outer levels, at `at` in the body. Returns, for a Body with content,
    /// where the payload walk stopped (relative to the end of the Body's start tag).
    fn event(
        &mut self,
        ev: &Event<'_>,
        at: std::ops::Range<usize>,
    ) -> Result<Option<usize>, VersionedFault> {
        let outside = self.depth == 0;
        let well_formed = match ev {
            Event::Decl(_) => {
                at.start == self.skip
                    && decl::xml_decl(self.mk.body(), at.start).is_ok_and(|(end, _)| end == at.end)
            }
            Event::DocType(_) => {
                // The root element's SOAP version is read from the same bytes by `soap::sniff`.
                let version = crate::soap::sniff(self.mk.body())
                    .err()
                    .map(|e| e.version());
                return Err(Fault::with_detail(
                    FaultCode::DtdForbidden,
                    "the request contains a DOCTYPE",
                )
                .in_version(version.unwrap_or(crate::soap::DEFAULT_FAULT_VERSION)));
            }
            Event::Start(_) => return self.start(false, at),
            Event::Empty(_) => return self.start(true, at).map(|_| None),
            Event::End(_) => {
                self.checked_end(&at)?;
                self.end(at.end);
                true
            }
            Event::Text(t) if outside => {
                if whitespace_len(t) != t.len() {
                    return Err(self.fail(FaultCode::NotSoap, "text outside the envelope"));
                }
                true
            }
            Event::GeneralRef(_) | Event::CData(_) if outside => {
                return Err(self.fail(FaultCode::NotSoap, "text outside the envelope"));
            }
            Event::Text(_) => {
                self.mk
                    .text(at.start, at.end)
                    .map_err(|r| self.refused(r))?;
                true
            }
            Event::GeneralRef(r) => {
                if !reference_ok(r) {
                    return Err(self.fail(FaultCode::NotSoap, "reference to an undeclared entity"));
                }
                true
            }
            Event::Comment(_) | Event::CData(_) => self.mk.declaration(at.start) == Ok(at.end),
            Event::PI(_) => self.mk.pi(at.start) == Ok(at.end),
            Event::Eof => true,
        };
        if !well_formed {
            let detail = match ev {
                Event::Decl(_) => "misplaced or malformed XML declaration",
                _ => "bad comment, CDATA section or processing instruction",
            };
            return Err(self.fail(FaultCode::NotSoap, format!("not well-formed XML: {detail}")));
        }
        Ok(None)
    }

    /// An end tag at `at`, as quick-xml found it (its name matched), checked by [`markup`].
    fn checked_end(&self, at: &std::ops::Range<usize>) -> Result<(), VersionedFault> {
        match self.mk.end_tag(at.start) {
            Ok(end) if end == at.end => Ok(()),
            Ok(_) => Err(self.fail(FaultCode::NotSoap, "not well-formed XML: bad end tag")),
            Err(r) => Err(self.refused(r)),
        }
    }

    /// A start (or empty) tag at `at`: characters (once), limits, the tag by [`markup`], and the
    /// outer levels' names. Returns, for a Body with content, where the payload walk stopped.
    fn start(
        &mut self,
        empty: bool,
        at: std::ops::Range<usize>,
    ) -> Result<Option<usize>, VersionedFault> {
        if self.root_done {
            return Err(self.fail(FaultCode::NotSoap, "content after the envelope"));
        }
        if !self.scanned {
            self.mk
                .scan()
                .map_err(|(code, detail)| refuse(code, detail))?;
            self.scanned = true;
        }
        self.depth += 1;
        let tag = self
            .mk
            .start_tag(at.start, self.depth)
            .map_err(|r| self.refused(r))?;
        if tag.end != at.end || tag.empty != empty {
            return Err(self.fail(FaultCode::NotSoap, "not well-formed XML: bad start tag"));
        }
        if self.depth > self.profile.max_depth {
            let detail = format!("nesting deeper than {} elements", self.profile.max_depth);
            return Err(self.fail(FaultCode::XmlLimit, detail));
        }
        let skimmed = if self.depth <= 3 {
            self.outer(&tag, at)?
        } else {
            None
        };
        if empty {
            self.leave();
        }
        Ok(skimmed)
    }

    /// Envelope, Header, Body and Security, by namespace and local name.
    fn outer(
        &mut self,
        tag: &markup::Tag,
        at: std::ops::Range<usize>,
    ) -> Result<Option<usize>, VersionedFault> {
        let body = self.mk.body();
        let (prefix, local) = match tag.colon {
            Some(c) => (&body[tag.name.start..c], &body[c + 1..tag.name.end]),
            None => (&b""[..], &body[tag.name.clone()]),
        };
        // Declared: `start_tag` checked it.
        let ns = self.mk.ns.resolve(prefix).unwrap_or_default();
        match self.depth {
            1 => {
                self.version = if local == b"Envelope" {
                    SoapVersion::from_namespace(ns)
                } else {
                    None
                };
                if self.version.is_none() {
                    return Err(refuse(
                        FaultCode::NotSoap,
                        "the root element is not a SOAP Envelope",
                    ));
                }
                self.prefix = prefix.to_vec();
            }
            2 => {
                let soap_ns = self.version.map(|v| v.namespace().as_bytes()) == Some(ns);
                if soap_ns && local == b"Header" {
                    if self.header.is_some() || self.body_start.is_some() {
                        return Err(self.fail(FaultCode::NotSoap, "misplaced or repeated Header"));
                    }
                    self.header = Some((at.start, at.end, tag.empty));
                    self.in_header = !tag.empty;
                } else if soap_ns && local == b"Body" {
                    self.bodies += 1;
                    if self.bodies > 1 {
                        return Err(self.fail(FaultCode::NotSoap, "two Body elements"));
                    }
                    self.body_start = Some(at.start);
                    if !tag.empty {
                        let end = skim(&mut self.mk, at.end, self.depth, self.profile)
                            .map_err(|r| self.refused(r))?;
                        return Ok(Some(end - at.end));
                    }
                }
            }
            3 if self.in_header && ns == WSSE_NS.as_bytes() && local == b"Security" => {
                if self.profile.existing_security == ExistingSecurity::Reject {
                    return Err(Fault::new(FaultCode::SecurityHeaderPresent)
                        .in_version(self.fault_version()));
                }
                if tag.empty {
                    self.security.push(at);
                } else {
                    self.sec_start = at.start;
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// An end tag ending at `after`: closes an existing `wsse:Security` (the element opened at
    /// depth 3, end names being matched) or the Header.
    fn end(&mut self, after: usize) {
        if self.depth == 3 && self.in_header && self.sec_start > 0 {
            self.security.push(self.sec_start..after);
            self.sec_start = 0;
        }
        if self.depth == 2 && self.in_header {
            self.in_header = false;
        }
        self.leave();
    }

    fn leave(&mut self) {
        self.mk.ns.leave(self.depth);
        self.depth -= 1;
        if self.depth == 0 {
            self.root_done = true;
        }
    }

    /// The plan, once the whole envelope was read.
    fn finish(mut self) -> Result<Plan, VersionedFault> {
        let version = self
            .version
            .ok_or_else(|| refuse(FaultCode::NotSoap, "empty or truncated document"))?;
        if !self.root_done {
            return Err(self.fail(FaultCode::NotSoap, "truncated envelope"));
        }
        let Some(body_at) = self.body_start else {
            return Err(self.fail(FaultCode::NotSoap, "no Body element"));
        };
        let (insert_at, wrap_header, mut remove) = match self.header {
            Some((start, end, true)) => (start, true, std::iter::once(start..end).collect()),
            Some((_, end, false)) => (end, false, Vec::new()),
            None => (body_at, true, Vec::new()),
        };
        remove.append(&mut self.security);
        remove.sort_by_key(|r| r.start);
        Ok(Plan {
            version,
            prefix: self.prefix,
            insert_at,
            remove,
            wrap_header,
        })
    }
}

/// The prefix rocgw declares on its `wsse:Security` for `mustUnderstand`: declared on the element
/// itself, it means the envelope's namespace whatever the SIH bound around it.
const MU_PREFIX: &str = "soapenv";

/// The header rocgw inserts: `wsse:Security` with the assertion, in a `Header` when the envelope
/// has none (or an empty `<Header/>`). ASCII except the envelope prefix, copied as the SIH wrote
/// it (in the document's encoding).
fn header(plan: &Plan, assertion: &str, must_understand: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(assertion.len() + 400);
    let tag = |h: &mut Vec<u8>, open: &str| {
        h.extend_from_slice(open.as_bytes());
        if !plan.prefix.is_empty() {
            h.extend_from_slice(&plan.prefix);
            h.push(b':');
        }
        h.extend_from_slice(b"Header>");
    };
    if plan.wrap_header {
        tag(&mut h, "<");
    }
    h.extend_from_slice(b"<wsse:Security xmlns:wsse=\"");
    h.extend_from_slice(WSSE_NS.as_bytes());
    h.push(b'"');
    if must_understand {
        let value = match plan.version {
            SoapVersion::V11 => "1",
            SoapVersion::V12 => "true",
        };
        let ns = plan.version.namespace();
        let attrs = format!(" xmlns:{MU_PREFIX}=\"{ns}\" {MU_PREFIX}:mustUnderstand=\"{value}\"");
        h.extend_from_slice(attrs.as_bytes());
    }
    h.push(b'>');
    // `build_assertion` writes ASCII; anything else gets its non-ASCII characters as references
    // (text and attribute values are where an assertion has them).
    h.extend_from_slice(super::ascii_refs(assertion).as_bytes());
    h.extend_from_slice(b"</wsse:Security>");
    if plan.wrap_header {
        tag(&mut h, "</");
    }
    h
}

/// The envelope with rocgw's security header: every other byte as the SIH sent it.
pub fn stamp(body: &[u8], plan: &Plan, assertion: &str, must_understand: bool) -> Vec<u8> {
    let header = header(plan, assertion, must_understand);
    let mut out = Vec::with_capacity(body.len() + header.len());
    let mut pos = 0;
    let mut inserted = false;
    for r in &plan.remove {
        if !inserted && plan.insert_at <= r.start {
            out.extend_from_slice(&body[pos..plan.insert_at]);
            out.extend_from_slice(&header);
            inserted = true;
            pos = plan.insert_at;
        }
        out.extend_from_slice(&body[pos..r.start]);
        pos = r.end;
    }
    if !inserted {
        out.extend_from_slice(&body[pos..plan.insert_at.max(pos)]);
        out.extend_from_slice(&header);
        pos = plan.insert_at.max(pos);
    }
    out.extend_from_slice(&body[pos..]);
    out
}

//! Unit tests of the envelope planner and the insertion.

use super::*;

fn stamped(input: &[u8]) -> String {
    let p = plan(input, &Profile::default()).unwrap_or_else(|e| panic!("{:?}", e.fault));
    String::from_utf8(stamp(input, &p, "<A/>", false)).unwrap()
}

#[test]
fn a_byte_order_mark_does_not_shift_the_insertion() {
    let body = "<e:Envelope xmlns:e=\"http://www.w3.org/2003/05/soap-envelope\"><e:Header><h/></e:Header><e:Body>x</e:Body></e:Envelope>";
    let with_bom = format!("\u{feff}<?xml version=\"1.0\"?>{body}");
    let out = stamped(with_bom.as_bytes());
    assert!(out.contains("<e:Header><wsse:Security"), "{out}");
    assert!(
        out.starts_with("\u{feff}<?xml version=\"1.0\"?><e:Envelope"),
        "{out}"
    );
    let twice = format!("\u{feff}\u{feff}{body}");
    assert_eq!(
        plan(twice.as_bytes(), &Profile::default())
            .unwrap_err()
            .fault
            .code,
        FaultCode::NotSoap
    );
}

fn in_body(payload: &str) -> Result<String, FaultCode> {
    let env = format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{payload}</s:Body><!-- end --></s:Envelope>");
    let p = plan(env.as_bytes(), &Profile::default()).map_err(|e| e.fault.code)?;
    Ok(String::from_utf8(stamp(env.as_bytes(), &p, "<A/>", false)).unwrap())
}

#[test]
fn the_payload_walk_accepts_well_formed_xml_and_keeps_every_byte() {
    for payload in [
        "",
        "text only &amp; &lt;&gt; &quot;&apos; &#233; &#xE9; > ]",
        "<a/>",
        "<a  />",
        "<a x='1' y = \"2\"\n\tz=\"&amp;&#x9;'\"></a >",
        "<a><a><a/></a></a>",
        "<p:a xmlns:p=\"urn:x\"><p:b>1</p:b><!-- a - comment --><![CDATA[<not/> & markup]]><?pi data?></p:a>",
        "<a><!----></a>",
        "<é attr=\"Cécile\">Hôpital</é>",
        "<a xml:lang=\"fr\" lang=\"fr\"/><xml:a/>",
        "<a xmlns:p=\"urn:p\" xmlns:q=\"urn:q\" p:x=\"1\" q:x=\"2\" x=\"3\"/>",
        "<p:a xmlns:p=\"urn:1\"><p:b xmlns:p=\"urn:2\" p:c=\"\"/></p:a>",
        "<a xmlns=\"urn:a\"><b xmlns=\"\"/></a>",
        "<a xmlns:xml=\"http://www.w3.org/XML/1998/namespace\" xmlns:xmlfoo=\"urn:x\"/>",
        "<a>]] ]> ]]&gt; <![CDATA[]]]]><![CDATA[>]]></a>",
        "<a x=\"]]>\"><!-- ]]> --><?pi ]]>?></a>",
        "<a·b x.y-z=\"1\" _=\"\"/>",
        "<a><!-->x--><!--->x--></a>",
        "<?xml-stylesheet href='a'?><?pi?>",
    ] {
        let out = in_body(payload).unwrap_or_else(|c| panic!("{payload:?}: {c:?}"));
        assert!(out.contains("<s:Header><wsse:Security"), "{payload:?}: {out}");
        assert!(out.ends_with(&format!("<s:Body>{payload}</s:Body><!-- end --></s:Envelope>")), "{out}");
    }
}

#[test]
fn the_payload_walk_refuses_what_is_not_well_formed() {
    let not_soap = FaultCode::NotSoap;
    for (payload, code) in [
        ("<a>", not_soap),
        ("<a></b>", not_soap),
        ("</a>", not_soap),
        ("<a></a></a>", not_soap),
        ("< a/>", not_soap),
        ("<a x=1/>", not_soap),
        ("<a x/>", not_soap),
        ("<a x=\"1\"y=\"2\"/>", not_soap),
        ("<a x=\"<\"/>", not_soap),
        ("<a x=\"&foo;\"/>", not_soap),
        ("<a x=\"1/>", not_soap),
        ("&foo;", not_soap),
        ("& bare", not_soap),
        ("&#0;", not_soap),
        ("&#xD800;", not_soap),
        ("&#x110000;", not_soap),
        ("&#;", not_soap),
        ("<!-- a -- b -->", not_soap),
        ("<!-- open", not_soap),
        ("<![CDATA[ open", not_soap),
        ("<!ELEMENT a ANY>", not_soap),
        ("<?xml version=\"1.0\"?>", not_soap),
        ("<?XmL x?>", not_soap),
        ("<?p:i x?>", not_soap),
        ("<?pi-no-space?x?>", not_soap),
        ("<a x=\"1\" x=\"2\"/>", not_soap),
        (
            "<a xmlns:p=\"urn:u\" xmlns:q=\"urn:u\" p:x=\"1\" q:x=\"2\"/>",
            not_soap,
        ),
        ("<a xmlns=\"urn:1\" xmlns=\"urn:2\"/>", not_soap),
        ("<p:a/>", not_soap),
        ("<a p:x=\"1\"/>", not_soap),
        ("<a xmlns:p=\"urn:p\"/><p:b/>", not_soap),
        ("<a xmlns:p=\"\"/>", not_soap),
        ("<xmlns:a/>", not_soap),
        ("<a xmlns:xmlns=\"urn:x\"/>", not_soap),
        ("<a xmlns:xml=\"urn:x\"/>", not_soap),
        (
            "<a xmlns:x=\"http://www.w3.org/XML/1998/namespace\"/>",
            not_soap,
        ),
        ("<a xmlns=\"http://www.w3.org/2000/xmlns/\"/>", not_soap),
        ("<a:b:c xmlns:a=\"urn:a\"/>", not_soap),
        ("<:a/>", not_soap),
        ("<a:/>", not_soap),
        ("<1a/>", not_soap),
        ("<p:1a xmlns:p=\"urn:p\"/>", not_soap),
        ("<a×/>", not_soap),
        ("<a>]]></a>", not_soap),
        ("x ]]> y", not_soap),
        ("<a>\u{1}</a>", not_soap),
        ("<a x=\"\u{C}\"/>", not_soap),
        ("\u{FFFF}", not_soap),
        ("<? x?>", not_soap),
        ("<!DOCTYPE a>", FaultCode::DtdForbidden),
        ("<a/", not_soap),
        ("<", not_soap),
    ] {
        assert_eq!(in_body(payload).err(), Some(code), "{payload:?}");
    }
}

#[test]
fn the_payload_walk_enforces_the_limits() {
    let limits = Profile::default();
    let deep = limits.max_depth - 2; // Envelope and Body come first
    let nested = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
    assert!(in_body(&nested(deep)).is_ok());
    assert_eq!(in_body(&nested(deep + 1)).err(), Some(FaultCode::XmlLimit));
    assert_eq!(
        in_body(&format!(
            "{}<b/>{}",
            "<a>".repeat(deep),
            "</a>".repeat(deep)
        ))
        .err(),
        Some(FaultCode::XmlLimit)
    );
    let attrs = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("a{i}=\"\"")).collect();
        format!("<a {}/>", list.join(" "))
    };
    assert!(in_body(&attrs(limits.max_attributes)).is_ok());
    assert_eq!(
        in_body(&attrs(limits.max_attributes + 1)).err(),
        Some(FaultCode::XmlLimit)
    );
}

#[test]
fn the_prolog_and_the_header_are_held_to_the_same_rules() {
    let env = |prolog: &str, header: &str| {
        format!("{prolog}<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Header>{header}</s:Header><s:Body/></s:Envelope>")
    };
    let code = |doc: &[u8]| plan(doc, &Profile::default()).err().map(|e| e.fault.code);
    for (prolog, header) in [
        (
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n<!-- c -->",
            "<h xmlns=\"urn:h\"/>",
        ),
        (
            "<?xml version='1.0' encoding='ISO-8859-1'?>",
            "<?sih trace?><!--->x-->",
        ),
        (
            "<?xml version=\"1.0\" ?>",
            "<wsa:To xmlns:wsa=\"urn:wsa\">x]]&gt;</wsa:To>",
        ),
    ] {
        assert_eq!(
            code(env(prolog, header).as_bytes()),
            None,
            "{prolog} {header}"
        );
    }
    for (prolog, header) in [
        ("", "<?xml version=\"1.0\"?>"),
        ("", "<?XML version=\"1.0\"?>"),
        (" <?xml version=\"1.0\"?>", ""),
        ("<!-- c --><?xml version=\"1.0\"?>", ""),
        ("<?xml version=\"1.1\"?>", ""),
        ("<?xml encoding=\"UTF-8\" version=\"1.0\"?>", ""),
        ("<?xml version=\"1.0\" standalone=\"maybe\"?>", ""),
        ("<?xml version=\"1.0\"encoding=\"UTF-8\"?>", ""),
        ("<?xml?>", ""),
        ("", "<h xmlns=\"urn:h\"><i y='1' y='1'/></h>"),
        ("", "<h xmlns=\"urn:h\"><q:i/></h>"),
        ("", "<h xmlns=\"urn:h\">a]]>b</h>"),
        ("", "<h xmlns=\"urn:h\"><!-- a --->"),
        ("<![CDATA[x]]>", ""),
    ] {
        assert_eq!(
            code(env(prolog, header).as_bytes()),
            Some(FaultCode::NotSoap),
            "{prolog} {header}"
        );
    }
    // 8-bit bytes: refused in US-ASCII, read in Latin-1; a UTF-8 byte order mark may not
    // precede another declared encoding.
    let ascii = [
        &b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?>"[..],
        env("", "").as_bytes(),
    ]
    .concat();
    assert_eq!(code(&ascii), None);
    let eight_bit = |decl: &str| {
        [
            decl.as_bytes(),
            env("", "<h xmlns=\"urn:h\">Hôpital</h>").as_bytes(),
        ]
        .concat()
    };
    let eight_bit = |decl: &str| {
        let mut d = eight_bit(decl);
        let at = d.windows(2).position(|w| w == "ô".as_bytes()).unwrap();
        d.splice(at..at + 2, [0xF4]);
        d
    };
    assert_eq!(
        code(&eight_bit("<?xml version=\"1.0\" encoding=\"US-ASCII\"?>")),
        Some(FaultCode::NotSoap)
    );
    assert_eq!(
        code(&eight_bit(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
        )),
        None
    );
    assert_eq!(code(&eight_bit("")), Some(FaultCode::NotSoap));
    let bom = [
        &b"\xEF\xBB\xBF"[..],
        &eight_bit("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"),
    ]
    .concat();
    assert_eq!(code(&bom), Some(FaultCode::NotSoap));
}

#[test]
fn the_header_is_ascii_and_must_understand_carries_its_own_namespace_declaration() {
    let latin1_prefix: &[u8] = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><\xE9:Envelope xmlns:\xE9=\"http://www.w3.org/2003/05/soap-envelope\"><\xE9:Body/></\xE9:Envelope>";
    let p = plan(latin1_prefix, &Profile::default()).unwrap();
    let out = stamp(latin1_prefix, &p, "<A>Rh\u{F4}ne</A>", true);
    let expected: &[u8] = b"<\xE9:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\" xmlns:soapenv=\"http://www.w3.org/2003/05/soap-envelope\" soapenv:mustUnderstand=\"true\"><A>Rh&#xF4;ne</A></wsse:Security></\xE9:Header><\xE9:Body/>";
    assert!(
        out.windows(expected.len()).any(|w| w == expected),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn documents_become_utf8_text_with_their_declaration_saying_so() {
    let utf8 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><e>é</e>";
    assert!(matches!(
        utf8_text(utf8.as_bytes(), None),
        Ok((std::borrow::Cow::Borrowed(t), Charset::Utf8)) if t == utf8
    ));
    let mut latin1 = b"<?xml version='1.0' encoding='iso-8859-15'?><e>".to_vec();
    latin1.extend([0xE9, 0xA4]);
    latin1.extend(b"</e>");
    assert_eq!(
        utf8_text(&latin1, None).unwrap(),
        (
            "<?xml version='1.0' encoding='UTF-8'?><e>é€</e>".into(),
            Charset::Latin9
        )
    );
    let euro = b"<?xml version=\"1.0\" encoding = \"Windows-1252\" standalone=\"yes\"?><e>\x80</e>";
    assert_eq!(
        utf8_text(euro, None).unwrap(),
        (
            "<?xml version=\"1.0\" encoding = \"UTF-8\" standalone=\"yes\"?><e>€</e>".into(),
            Charset::Windows1252
        )
    );
    let cp1252 = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><e>\x81</e>";
    assert_eq!(
        utf8_text(cp1252, None).unwrap_err(),
        "byte 0x81 undefined in windows-1252"
    );
    let ascii = b"<?xml version=\"1.0\" encoding=\"US-ASCII\"?><e>\xE9</e>";
    assert!(utf8_text(ascii, None).is_err());
    assert!(
        utf8_text(b"<e>\xE9</e>", None).is_err(),
        "undeclared: UTF-8"
    );
}

/// A document that declares no encoding is read in the HTTP charset's Latin-1 family encoding
/// (XML's external encoding information); a declaration, or a byte order mark, wins over it, and
/// a UTF-8 or US-ASCII charset leaves the default, UTF-8.
#[test]
fn the_http_charset_reads_a_document_that_declares_no_encoding() {
    let env = |decl: &str, payload: &[u8]| {
        [
            decl.as_bytes(),
            b"<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><n>",
            payload,
            b"</n></s:Body></s:Envelope>",
        ]
        .concat()
    };
    let profile = Profile::default();
    let plans = |doc: &[u8], http| plan_in(doc, &profile, http).is_ok();
    let latin1 = env("", b"h\xF4pital");
    let no_label = env("<?xml version=\"1.0\"?>", b"h\xF4pital");
    for doc in [&latin1, &no_label] {
        assert!(!plans(doc, None), "UTF-8 by default");
        assert!(!plans(doc, Some(Charset::Utf8)));
        assert!(!plans(doc, Some(Charset::Ascii)));
        for http in [Charset::Latin1, Charset::Latin9, Charset::Windows1252] {
            assert!(plans(doc, Some(http)), "{http:?}");
        }
        let (text, read_in) = utf8_text(doc, Some(Charset::Latin1)).unwrap();
        assert!(text.contains("<n>hôpital</n>"), "{text}");
        assert_eq!(read_in, Charset::Latin1);
    }
    // Declared: the declaration says, whatever the HTTP charset.
    let utf8 = env(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        "hôpital".as_bytes(),
    );
    let (text, read_in) = utf8_text(&utf8, Some(Charset::Latin1)).unwrap();
    assert!(text.contains("hôpital") && read_in == Charset::Utf8);
    let undefined = env("<?xml version='1.0' encoding='windows-1252'?>", b"\x81");
    assert!(!plans(&undefined, Some(Charset::Latin1)));
    // An undeclared UTF-8 document under a wrong charset: read in UTF-8 when the charset's
    // encoding refuses it (`”` has a byte windows-1252 leaves undefined; `é` in a name is `Ã©`
    // in Latin-1, and `©` is no name character).
    let quote = env("", "« hôpital »”".as_bytes());
    assert!(plans(&quote, Some(Charset::Windows1252)));
    assert_eq!(
        utf8_text(&quote, Some(Charset::Windows1252)).unwrap().1,
        Charset::Utf8
    );
    let name = env("", "<é/>".as_bytes());
    assert!(plans(&name, Some(Charset::Latin1)));
    // Refused in both: the HTTP charset's refusal, saying where its encoding came from.
    let neither = env("", b"\x81");
    let refused = plan_in(&neither, &profile, Some(Charset::Windows1252)).unwrap_err();
    let detail = refused.fault.detail.unwrap();
    assert!(
        detail.contains("windows-1252, the HTTP charset"),
        "{detail}"
    );
    assert!(utf8_text(&neither, Some(Charset::Windows1252))
        .unwrap_err()
        .contains("windows-1252"));
    // A UTF-8 byte order mark: UTF-8.
    let bom = [&b"\xEF\xBB\xBF"[..], &env("", "hôpital".as_bytes())].concat();
    assert!(plans(&bom, Some(Charset::Latin1)));
    assert_eq!(
        utf8_text(&bom, Some(Charset::Latin1)).unwrap().1,
        Charset::Utf8
    );
    assert!(!plans(
        &[&b"\xEF\xBB\xBF"[..], &latin1].concat(),
        Some(Charset::Latin1)
    ));
}

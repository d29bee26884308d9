//! Java on both sides of the gateway, as many SIHs and AMCs are built:
//! - the SIH is `java.net.http.HttpClient`, the JDK's HTTP client;
//! - the AMC's check is the JDK's own XML-DSig API (`javax.xml.crypto.dsig`, Apache Santuario's
//!   code in the JDK, a fourth implementation beside bergshamra, xmlsec1 and OpenSAML's C++)
//!   under its secure validation mode, on the whole envelope as the AMC received it, with the
//!   signer's path built by the JDK's PKIX builder up to the IGC-Santé ACR.

use std::fs;

use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};
use crate::wssec::BODY;

/// `java Peer.java sih URL FILE`: POSTs FILE as SOAP 1.2 with `HttpClient` and prints the status,
/// then the body. `java Peer.java verify ANCHOR INTERMEDIATE FILE...`: one line per FILE,
/// `valid <signer>` or `invalid <why>`.
const PEER_JAVA: &str = r##"
import java.io.*;
import java.net.URI;
import java.net.http.*;
import java.nio.file.*;
import java.security.cert.*;
import java.util.*;
import javax.xml.crypto.*;
import javax.xml.crypto.dsig.*;
import javax.xml.crypto.dsig.dom.DOMValidateContext;
import javax.xml.crypto.dsig.keyinfo.*;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.*;

public class Peer {
    static final String SAML = "urn:oasis:names:tc:SAML:2.0:assertion";

    public static void main(String[] args) throws Exception {
        if (args[0].equals("sih")) {
            HttpRequest req = HttpRequest.newBuilder(URI.create(args[1]))
                .header("Content-Type", "application/soap+xml; charset=utf-8")
                .POST(HttpRequest.BodyPublishers.ofFile(Path.of(args[2])))
                .build();
            HttpResponse<String> r = HttpClient.newHttpClient()
                .send(req, HttpResponse.BodyHandlers.ofString());
            System.out.println(r.statusCode() + " " + r.version());
            System.out.println(r.body());
            return;
        }
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        X509Certificate anchor = (X509Certificate) cf.generateCertificate(new FileInputStream(args[1]));
        X509Certificate aci = (X509Certificate) cf.generateCertificate(new FileInputStream(args[2]));
        for (int i = 3; i < args.length; i++) {
            try {
                System.out.println("valid " + verify(args[i], anchor, aci));
            } catch (Exception e) {
                System.out.println("invalid " + e);
            }
        }
    }

    static String verify(String file, X509Certificate anchor, X509Certificate aci) throws Exception {
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
        Document doc = f.newDocumentBuilder().parse(new File(file));
        NodeList as = doc.getElementsByTagNameNS(SAML, "Assertion");
        if (as.getLength() != 1) throw new Exception(as.getLength() + " assertions");
        Element a = (Element) as.item(0);
        a.setIdAttributeNS(null, "ID", true);
        Element sig = null;
        for (Node n = a.getFirstChild(); n != null; n = n.getNextSibling())
            if (n instanceof Element e && XMLSignature.XMLNS.equals(e.getNamespaceURI())
                    && "Signature".equals(e.getLocalName()))
                sig = e;
        if (sig == null) throw new Exception("no ds:Signature in the assertion");
        X509Certificate[] signer = new X509Certificate[1];
        KeySelector keys = new KeySelector() {
            public KeySelectorResult select(KeyInfo ki, Purpose p, AlgorithmMethod m, XMLCryptoContext c)
                    throws KeySelectorException {
                for (Object o : ki.getContent())
                    if (o instanceof X509Data xd)
                        for (Object x : xd.getContent())
                            if (x instanceof X509Certificate cert) {
                                signer[0] = cert;
                                return () -> cert.getPublicKey();
                            }
                throw new KeySelectorException("no X509Certificate in KeyInfo");
            }
        };
        DOMValidateContext ctx = new DOMValidateContext(keys, sig);
        ctx.setProperty("org.jcp.xml.dsig.secureValidation", Boolean.TRUE);
        XMLSignature s = XMLSignatureFactory.getInstance("DOM").unmarshalXMLSignature(ctx);
        List<Reference> refs = s.getSignedInfo().getReferences();
        if (refs.size() != 1 || !("#" + a.getAttribute("ID")).equals(refs.get(0).getURI()))
            throw new Exception("the reference is not the assertion");
        if (!s.validate(ctx))
            throw new Exception("signature value " + s.getSignatureValue().validate(ctx)
                + ", digest " + refs.get(0).validate(ctx));
        X509CertSelector leaf = new X509CertSelector();
        leaf.setCertificate(signer[0]);
        PKIXBuilderParameters params =
            new PKIXBuilderParameters(Set.of(new TrustAnchor(anchor, null)), leaf);
        params.addCertStore(CertStore.getInstance("Collection",
            new CollectionCertStoreParameters(List.of(aci))));
        params.setRevocationEnabled(false);
        CertPathBuilder.getInstance("PKIX").build(params);
        return signer[0].getSubjectX500Principal().getName();
    }
}
"##;

#[test]
fn a_java_sih_is_answered_and_the_jdk_xml_dsig_verifies_what_the_amc_received() {
    let amc = TlsServer::fixture("osi/amc-a", None, Behavior::Echo);
    let route = format!("[routes.\"10000001\"]\nidb = \"{}\"\n", amc.url("/ws/idb"));
    let dir = scratch();
    let cfg = write_config(dir.path(), &config_text("", &route));
    let p = Proc::with_config(&cfg);
    let java = |args: &[&str]| {
        let out = tool("java", &[&["Peer.java"], args].concat(), dir.path());
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    fs::write(dir.path().join("Peer.java"), PEER_JAVA).unwrap();
    fs::write(dir.path().join("request.xml"), envelope12(BODY)).unwrap();

    // The SIH (the client's default is HTTP/2, which it may offer as an upgrade): answered in
    // HTTP/1.1 with the AMC's answer.
    let url = format!("http://{}/amc/10000001/idb", p.gateway);
    let answer = java(&["sih", &url, "request.xml"]);
    assert!(answer.starts_with("200 HTTP_1_1\n"), "{answer}");
    assert!(answer.contains("<ok client-serial="), "{answer}");

    // The AMC: the envelope it received, verified; then changed, and under another anchor.
    let received = amc.seen.bodies.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let changed = received[0].replacen("DIRECTE", "INDIRECTE", 1);
    assert_ne!(changed, received[0]);
    fs::write(dir.path().join("received.xml"), &received[0]).unwrap();
    fs::write(dir.path().join("changed.xml"), changed).unwrap();
    let p = |rel: &str| pki_path(rel).display().to_string();
    let files = ["received.xml", "changed.xml"];
    let (acr, aci) = (p("igc-sante/acr.pem"), p("igc-sante/aci-el-org.pem"));
    let verdicts = java(&[&["verify", acr.as_str(), aci.as_str()], &files[..]].concat());
    let lines: Vec<&str> = verdicts.lines().collect();
    assert_eq!(lines.len(), 2, "{verdicts}");
    assert!(
        lines[0].starts_with("valid CN=Client_ROC_WebServices_AMC,OU=1990000012"),
        "{verdicts}\n{}",
        received[0]
    );
    assert!(lines[1].ends_with("digest false"), "{verdicts}");
    let osi = p("osi/root.pem");
    let other = java(&["verify", osi.as_str(), aci.as_str(), "received.xml"]);
    assert!(
        other.contains("certification path"),
        "another anchor: {other}"
    );
}

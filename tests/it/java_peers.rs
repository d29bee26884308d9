//! Java on both sides of the gateway, as many SIHs and AMCs are built:
//! - the SIH is `java.net.http.HttpClient`, the JDK's HTTP client;
//! - the AMC's check is the JDK's own XML-DSig API (`javax.xml.crypto.dsig`, Apache Santuario's
//!   code in the JDK, a fourth implementation beside bergshamra, xmlsec1 and OpenSAML's C++)
//!   under its secure validation mode, on the whole envelope as the AMC received it, with the
//!   signer's path built by the JDK's PKIX builder up to the IGC-Santé ACR.

use std::fs;

use crate::openssl_peers::{gateway, Peer};
use crate::support::*;
use crate::tls_server::{Behavior, TlsServer};
use crate::wssec::BODY;

/// `java Peer.java sih URL FILE`: POSTs FILE as SOAP 1.2 with `HttpClient` and prints the status,
/// then the body. `java Peer.java verify ANCHOR INTERMEDIATE FILE...`: one line per FILE,
/// `valid <signer>` or `invalid <why>`. `java Peer.java serve CHAIN KEY CA`: two HTTPS servers on
/// JSSE (the JDK's own TLS) with CHAIN and KEY, printed as `ports MTLS TLS12`: the first asks
/// for a client certificate it verifies against CA, the second speaks TLS 1.2 only; each
/// answers a SOAP 1.1 envelope naming the client certificate's CN, the TLS version and suite.
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
import com.sun.net.httpserver.*;
import java.net.InetSocketAddress;
import java.security.*;
import java.security.spec.PKCS8EncodedKeySpec;
import javax.net.ssl.*;

public class Peer {
    static final String SAML = "urn:oasis:names:tc:SAML:2.0:assertion";

    public static void main(String[] args) throws Exception {
        if (args[0].equals("serve")) {
            serve(args[1], args[2], args[3]);
            return;
        }
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

    static void serve(String chainPem, String keyPem, String caPem) throws Exception {
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        java.security.cert.Certificate[] chain = cf.generateCertificates(new FileInputStream(chainPem))
            .toArray(new java.security.cert.Certificate[0]);
        String pem = Files.readString(Path.of(keyPem)).replaceAll("-----[A-Z ]+-----", "");
        PrivateKey key = KeyFactory.getInstance("RSA")
            .generatePrivate(new PKCS8EncodedKeySpec(Base64.getMimeDecoder().decode(pem)));
        char[] pw = "changeit".toCharArray();
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        ks.setKeyEntry("server", key, pw, chain);
        KeyStore ts = KeyStore.getInstance("PKCS12");
        ts.load(null, null);
        ts.setCertificateEntry("ca", cf.generateCertificate(new FileInputStream(caPem)));
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("PKIX");
        kmf.init(ks, pw);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(ts);
        SSLContext ssl = SSLContext.getInstance("TLS");
        ssl.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        int mtls = https(ssl, true, new String[] {"TLSv1.3", "TLSv1.2"});
        int tls12 = https(ssl, false, new String[] {"TLSv1.2"});
        System.out.println("ports " + mtls + " " + tls12);
    }

    static int https(SSLContext ssl, boolean clientAuth, String[] versions) throws Exception {
        HttpsServer s = HttpsServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        s.setHttpsConfigurator(new HttpsConfigurator(ssl) {
            public void configure(HttpsParameters p) {
                SSLParameters sp = ssl.getDefaultSSLParameters();
                sp.setProtocols(versions);
                sp.setNeedClientAuth(clientAuth);
                p.setSSLParameters(sp);
            }
        });
        s.createContext("/", ex -> {
            ex.getRequestBody().readAllBytes();
            SSLSession session = ((HttpsExchange) ex).getSSLSession();
            String cn = "-";
            try {
                X509Certificate peer = (X509Certificate) session.getPeerCertificates()[0];
                cn = peer.getSubjectX500Principal().getName().replaceAll("^CN=([^,]*).*$", "$1");
            } catch (SSLPeerUnverifiedException e) {
            }
            byte[] body = ("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>"
                + "<peer cn=\"" + cn + "\" version=\"" + session.getProtocol() + "\" cipher=\""
                + session.getCipherSuite() + "\"/></s:Body></s:Envelope>").getBytes("UTF-8");
            ex.getResponseHeaders().set("Content-Type", "text/xml; charset=utf-8");
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        });
        s.start();
        return s.getAddress().getPort();
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

/// rocgw's TLS client against JSSE, the JDK's own TLS (AMC and annuaire servers on Tomcat or
/// WildFly use it): TLS 1.3 with a client certificate JSSE verifies up to the ACR (JSSE names
/// its acceptable authorities, which rocgw's one certificate does not depend on), and TLS 1.2
/// only, each connection reused; rocgw verifies JSSE's chain up to AC-SERVEUR.
#[test]
fn jsse_servers_take_the_auth_cli_chain_over_tls13_and_tls12() {
    let dir = scratch();
    fs::write(dir.path().join("Peer.java"), PEER_JAVA).unwrap();
    let p = |rel: &str| pki_path(rel).display().to_string();
    let mut cmd = std::process::Command::new("java");
    cmd.current_dir(dir.path())
        .args(["Peer.java", "serve"])
        .args([
            p("osi/annuaire.chain.pem"),
            p("osi/annuaire.key"),
            p("igc-sante/acr.pem"),
        ]);
    let jsse = Peer::start(&mut cmd, |l| {
        l.strip_prefix("ports ")?.split(' ').next()?.parse().ok()
    });
    let tls12 = jsse.line.rsplit(' ').next().unwrap();
    let gw = gateway(
        dir.path(),
        &jsse.url("/annuaire"),
        &[("10000001", format!("https://localhost:{tls12}/idb"))],
    );
    for _ in 0..2 {
        let r = post(gw.gateway, "/annuaire", CT11, &envelope11("<search/>"));
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body
                .contains(r#"cn="Client_ROC_Annuaire_AMC" version="TLSv1.3""#),
            "{}",
            r.body
        );
        let r = crate::upstream::amc(gw.gateway, "10000001");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.body.contains(r#"version="TLSv1.2" cipher="TLS_ECDHE_"#),
            "{}",
            r.body
        );
    }
    let opened = metric(
        &scrape(gw.admin),
        "rocgw_upstream_connections_opened_total",
        &[],
    );
    assert_eq!(opened, 2.0, "one connection to each server, reused");
}

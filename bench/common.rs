//! Shared by the benchmarks: a small IGC-OSI-like PKI made in memory with rcgen, a CRL of any
//! size, and a TLS server on 127.0.0.1.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
    SanType, SerialNumber, PKCS_RSA_SHA256,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::net::TcpListener;

pub struct MiniPki {
    pub dir: tempfile::TempDir,
    pub anchors: PathBuf,
    pub crl_empty: PathBuf,
    /// The root's (empty) CRL: under `hard`, the AC-SERVEUR certificate needs one too.
    pub crl_root: PathBuf,
    pub crl_big: PathBuf,
    pub crl_big_der: Vec<u8>,
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: Vec<u8>,
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CountryName, "FR");
    d.push(DnType::OrganizationName, "GIE SESAM-VITALE");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.key_identifier_method = KeyIdMethod::Sha256;
    p
}

fn rsa() -> KeyPair {
    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
}

/// Root → AC-SERVEUR → server `localhost`; an empty CRL and one of `revoked` entries for
/// AC-SERVEUR, as PEM files in a temporary folder.
pub fn mini_pki(revoked: usize) -> MiniPki {
    let now = time::OffsetDateTime::now_utc();
    let root = CertifiedIssuer::self_signed(ca_params("BENCH AC RACINE OSI"), rsa()).unwrap();
    let mut inter_p = ca_params("BENCH AC-SERVEUR");
    inter_p.use_authority_key_identifier_extension = true;
    let inter = CertifiedIssuer::signed_by(inter_p, rsa(), &root).unwrap();
    let mut leaf_p = CertificateParams::default();
    leaf_p.distinguished_name = dn("localhost");
    leaf_p.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
    leaf_p.serial_number = Some(SerialNumber::from(vec![0x42, 0x42]));
    leaf_p.use_authority_key_identifier_extension = true;
    let leaf_key = rsa();
    let leaf = leaf_p.signed_by(&leaf_key, &inter).unwrap();

    let crl_params = |n: usize| {
        let mut serials = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let mut s = vec![0x10];
            s.extend_from_slice(&(i + 1).to_be_bytes());
            serials.push(RevokedCertParams {
                serial_number: SerialNumber::from(s),
                revocation_time: now - time::Duration::hours(1),
                reason_code: None,
                invalidity_date: None,
            });
        }
        CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(vec![1]),
            issuing_distribution_point: None,
            revoked_certs: serials,
            key_identifier_method: KeyIdMethod::Sha256,
        }
    };
    let crl = |n: usize| crl_params(n).signed_by(&inter).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, data: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let anchors = write("anchors.pem", &format!("{}{}", root.pem(), inter.pem()));
    let crl_empty = write("empty.crl.pem", &crl(0).pem().unwrap());
    let crl_root = write(
        "root.crl.pem",
        &crl_params(0).signed_by(&root).unwrap().pem().unwrap(),
    );
    let big = crl(revoked);
    let crl_big = write("big.crl.pem", &big.pem().unwrap());
    MiniPki {
        anchors,
        crl_empty,
        crl_root,
        crl_big,
        crl_big_der: big.der().to_vec(),
        server_chain: vec![leaf.der().clone(), inter.der().clone()],
        server_key: leaf_key.serialize_der(),
        dir,
    }
}

/// A TLS server answering every request with a small SOAP body, on a runtime of its own.
pub fn tls_server(pki: &MiniPki, threads: usize) -> (SocketAddr, tokio::runtime::Runtime) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            pki.server_chain.clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone())),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><ok/></s:Body></s:Envelope>"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, rt)
}

/// The ORG SIGN signer of a freshly generated test PKI (kept alive by the returned folder).
pub fn sign_signer() -> (rocgw::wssec::Signer, tempfile::TempDir) {
    let ([first, _], dir) = sign_signers();
    (first, dir)
}

/// The ORG SIGN signers of the test PKI's two structures (`org`, `org2`).
pub fn sign_signers() -> ([rocgw::wssec::Signer; 2], tempfile::TempDir) {
    use rocgw::clock::now_unix;
    use rocgw::config::IdentitySource;
    use rocgw::identity::{Identity, Role};
    let dir = tempfile::tempdir().unwrap();
    let m = rocgw::pki::init(dir.path(), true).unwrap();
    let pw = std::fs::read_to_string(dir.path().join(&m.password_file)).unwrap();
    let signer = |structure: &str| {
        let src = IdentitySource::P12 {
            field: "identity.sign".into(),
            path: dir.path().join(structure).join("sign.p12"),
            password: zeroize::Zeroizing::new(pw.trim().to_string()),
            password_file: None,
        };
        let id = Identity::load(&src, Role::Sign, now_unix()).unwrap();
        rocgw::wssec::Signer::new(&id).unwrap()
    };
    let signers = [signer("org"), signer("org2")];
    (signers, dir)
}

//! A receiver on loopback that speaks HTTPS and requires a client certificate (mutual TLS),
//! with a CA and certificates made at test time: it records every POST that passed the
//! handshake and answers 200, and counts the handshakes it refused.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls_pki_types::pem::PemObject;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio_rustls::rustls;

/// A certificate authority made now.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, in PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for 127.0.0.1.
    pub fn server(&self) -> Issued {
        self.issue(ExtendedKeyUsagePurpose::ServerAuth, "receiver")
    }

    /// A client certificate.
    pub fn client(&self) -> Issued {
        self.issue(ExtendedKeyUsagePurpose::ClientAuth, "powhost")
    }

    fn issue(&self, usage: ExtendedKeyUsagePurpose, name: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The three PEM files, and the directory that holds them: removed when this is dropped, so
/// it must live as long as the files are read.
pub struct PemFiles {
    pub files: crate::delivery::MtlsFiles,
    pub dir: tempfile::TempDir,
}

/// Three PEM files in a fresh directory, as an operator would hand them over.
pub fn write_files(client: &Issued, server_ca: &TestCa) -> PemFiles {
    let dir = super::tempdir();
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let files = crate::delivery::MtlsFiles {
        client_cert: write("client.crt", &client.cert_pem),
        client_key: write("client.key", &client.key_pem),
        server_ca: write("ca.crt", &server_ca.pem()),
    };
    PemFiles { files, dir }
}

/// One POST that passed the handshake.
#[derive(Clone, Debug)]
pub struct TlsReceived {
    pub path: String,
    pub body: String,
}

pub struct TlsReceiver {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    received: Arc<Mutex<Vec<TlsReceived>>>,
    refused: Arc<AtomicUsize>,
}

impl TlsReceiver {
    /// Serve with `server` as its certificate, accepting client certificates that chain to
    /// `clients_ca` only.
    pub async fn start(server: &Issued, clients_ca: &TestCa) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(clients_ca.cert.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .unwrap();
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (r, n) = (received.clone(), refused.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, received, refused) = (acceptor.clone(), r.clone(), n.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        record(request, received.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            url,
            received,
            refused,
        }
    }

    pub fn received(&self) -> Vec<TlsReceived> {
        self.received.lock().unwrap().clone()
    }

    /// Handshakes refused (no client certificate, or one not chaining to the clients' CA;
    /// or the client refusing the server's certificate).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn record(
    request: hyper::Request<Incoming>,
    received: Arc<Mutex<Vec<TlsReceived>>>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().to_string();
    let body = request.into_body().collect().await?.to_bytes();
    received.lock().unwrap().push(TlsReceived {
        path,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    Ok(hyper::Response::new(Full::new(Bytes::new())))
}

/// A file that is not PEM, for the start-up errors.
pub fn write_garbage(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n").unwrap();
    path
}

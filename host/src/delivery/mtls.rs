//! Mutual TLS for every POST of the outbox, configured as the network's ML node configures it
//! (a client certificate and key, and the CA the receiver's certificate must chain to; all
//! three or none), so that an operator's setup carries over.
//!
//! Trust follows the reference too: there the CA file is handed to the HTTP client as its
//! `verify` bundle, which replaces the system roots. So with mTLS configured, every https
//! receiver (callbacks, webhooks, the worker's platform) must chain to a certificate in the
//! CA file; a bundle may hold several, and an operator who also posts to public https
//! receivers appends the system's roots to it. Plain http:// receivers are unaffected. The
//! worker's own requests to its platform (job-take, heartbeat) are no results: they keep the
//! system roots and present no certificate.

use rustls_pki_types::pem::SectionKind;
use std::path::{Path, PathBuf};

/// Where the three PEM files are.
#[derive(Clone, Debug)]
pub struct MtlsFiles {
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub server_ca: PathBuf,
}

/// The loaded and checked PEM files.
#[derive(Clone)]
pub struct Mtls {
    /// The client certificate chain, then its key: what reqwest takes as an identity.
    identity: Vec<u8>,
    server_ca: Vec<u8>,
    files: MtlsFiles,
}

impl std::fmt::Debug for Mtls {
    // The key stays out of every debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mtls").field("files", &self.files).finish()
    }
}

/// The PEM sections of `path`, or why it cannot be read as PEM.
fn sections(path: &Path, what: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the {what} {shown}: {e}"))?;
    let mut reader = std::io::Cursor::new(bytes);
    let mut found = Vec::new();
    loop {
        match rustls_pki_types::pem::from_buf(&mut reader) {
            Ok(Some(section)) => found.push(section),
            Ok(None) => return Ok(found),
            Err(e) => return Err(format!("the {what} {shown} is not valid PEM: {e:?}")),
        }
    }
}

fn is_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

impl Mtls {
    /// Read and check the three files: each must be PEM holding what its name says, and
    /// the key must be one the TLS library can sign with for that certificate.
    pub fn load(files: MtlsFiles) -> Result<Self, String> {
        let only = |path: &Path, what: &str, want: &str, ok: &dyn Fn(SectionKind) -> bool| {
            let found = sections(path, what)?;
            if found.is_empty() || !found.iter().all(|(k, _)| ok(*k)) {
                return Err(format!(
                    "the {what} {} must hold {want} in PEM, and nothing else",
                    path.display()
                ));
            }
            Ok(found.len())
        };
        let certificate = |k| k == SectionKind::Certificate;
        only(
            &files.client_cert,
            "client certificate",
            "certificates (CERTIFICATE)",
            &certificate,
        )?;
        let keys = only(
            &files.client_key,
            "client key",
            "one private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            &is_key,
        )?;
        if keys != 1 {
            return Err(format!(
                "the client key {} holds {keys} private keys; it must hold one",
                files.client_key.display()
            ));
        }
        only(
            &files.server_ca,
            "server CA",
            "certificates (CERTIFICATE)",
            &certificate,
        )?;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let mut identity = read(&files.client_cert)?;
        identity.push(b'\n');
        identity.extend(read(&files.client_key)?);
        let mtls = Self {
            identity,
            server_ca: read(&files.server_ca)?,
            files,
        };
        // A client built once now: a key the TLS library cannot use, or a CA certificate it
        // cannot parse, is refused at start-up rather than at the first POST.
        mtls.apply(reqwest::Client::builder())
            .and_then(|b| b.build().map_err(anyhow::Error::from))
            .map_err(|e| {
                format!(
                    "the client certificate {} with the key {} and the CA {} are not usable: {}",
                    mtls.files.client_cert.display(),
                    mtls.files.client_key.display(),
                    mtls.files.server_ca.display(),
                    super::with_causes(e.as_ref())
                )
            })?;
        Ok(mtls)
    }

    /// The client presents the certificate and trusts only the CA file (see above).
    pub(super) fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = builder
            .identity(reqwest::Identity::from_pem(&self.identity)?)
            .tls_built_in_root_certs(false);
        for ca in reqwest::Certificate::from_pem_bundle(&self.server_ca)? {
            builder = builder.add_root_certificate(ca);
        }
        Ok(builder)
    }
}

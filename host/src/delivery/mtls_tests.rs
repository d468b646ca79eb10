//! Mutual TLS against a real TLS server on loopback that requires client certificates: the
//! right certificate delivers; a refused handshake (a client certificate from another CA) or
//! a server whose certificate does not chain to the configured CA leaves the result pending,
//! retried, and kept at the end; bad files are refused at start-up, naming the file.

use super::*;
use crate::test_support::tls_receiver::{TestCa, TlsReceiver, write_files, write_garbage};

fn config(mtls: Mtls) -> DeliveryConfig {
    DeliveryConfig {
        mtls: Some(mtls),
        ..crate::test_support::delivery()
    }
}

async fn post_and_flush(outbox: &Arc<Outbox>, url: &str, within: Duration) -> usize {
    outbox.add(
        format!("{url}/v1/poc-batches/generated"),
        r#"{"n":1}"#.into(),
        "a ProofBatch".into(),
    );
    outbox.flush(within, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_client_certificate_delivers() {
    let ca = TestCa::new("network CA");
    let receiver = TlsReceiver::start(&ca.server(), &ca).await;
    let pem = write_files(&ca.client(), &ca);
    let mtls = Mtls::load(pem.files.clone()).unwrap();
    let outbox = Arc::new(Outbox::new(config(mtls)).unwrap());
    let left = post_and_flush(&outbox, &receiver.url, Duration::from_secs(10)).await;
    assert_eq!(left, 0);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/poc-batches/generated");
    assert_eq!(got[0].body, r#"{"n":1}"#);
    assert_eq!(outbox.stats().delivered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_certificate_leaves_the_result_pending_and_retried() {
    let ca = TestCa::new("network CA");
    let stranger = TestCa::new("another CA");
    let receiver = TlsReceiver::start(&ca.server(), &ca).await;
    // The server is trusted, but our certificate is not the network's.
    let pem = write_files(&stranger.client(), &ca);
    let mtls = Mtls::load(pem.files.clone()).unwrap();
    let outbox = Arc::new(Outbox::new(config(mtls)).unwrap());
    let left = post_and_flush(&outbox, &receiver.url, Duration::from_millis(1500)).await;
    assert_eq!(left, 1, "kept, not dropped");
    assert!(receiver.received().is_empty());
    assert!(
        receiver.refused() >= 2,
        "retried: {} handshakes",
        receiver.refused()
    );
    assert!(outbox.stats().failed_attempts >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_not_chaining_to_the_ca_is_not_posted_to() {
    let ca = TestCa::new("network CA");
    let impostor = TestCa::new("impostor CA");
    // The server accepts our certificate, but its own is not from the network's CA.
    let receiver = TlsReceiver::start(&impostor.server(), &ca).await;
    let pem = write_files(&ca.client(), &ca);
    let mtls = Mtls::load(pem.files.clone()).unwrap();
    let outbox = Arc::new(Outbox::new(config(mtls)).unwrap());
    let post = Post::new(format!("{}/x", receiver.url), "{}".into(), "r".into());
    let why = outbox.post("id", &post).await.unwrap_err();
    assert!(why.to_lowercase().contains("certificate"), "{why}");
    let left = post_and_flush(&outbox, &receiver.url, Duration::from_millis(800)).await;
    assert_eq!(left, 1);
    assert!(receiver.received().is_empty());
}

#[test]
fn bad_files_are_refused_naming_the_file_and_the_fault() {
    let ca = TestCa::new("network CA");
    let pem = write_files(&ca.client(), &ca);
    let (files, dir) = (pem.files.clone(), pem.dir.path());
    let err = |files: MtlsFiles| Mtls::load(files).unwrap_err();

    let missing = dir.join("missing.crt");
    let e = err(MtlsFiles {
        client_cert: missing.clone(),
        ..files.clone()
    });
    assert!(
        e.contains("cannot read the client certificate") && e.contains("missing.crt"),
        "{e}"
    );

    let garbage = write_garbage(dir, "garbage.pem");
    let e = err(MtlsFiles {
        server_ca: garbage.clone(),
        ..files.clone()
    });
    assert!(
        e.contains("server CA") && e.contains("garbage.pem") && e.contains("PEM"),
        "{e}"
    );

    // A certificate where the key should be, and the key where a certificate should be.
    let e = err(MtlsFiles {
        client_key: files.client_cert.clone(),
        ..files.clone()
    });
    assert!(e.contains("client key") && e.contains("private key"), "{e}");
    let e = err(MtlsFiles {
        client_cert: files.client_key.clone(),
        ..files.clone()
    });
    assert!(
        e.contains("client certificate") && e.contains("CERTIFICATE"),
        "{e}"
    );

    // A key that is no key of any kind the TLS library takes.
    let bogus = dir.join("bogus.key");
    std::fs::write(
        &bogus,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = err(MtlsFiles {
        client_key: bogus,
        ..files.clone()
    });
    assert!(e.contains("not usable") && e.contains("bogus.key"), "{e}");

    assert!(Mtls::load(files).is_ok());
}

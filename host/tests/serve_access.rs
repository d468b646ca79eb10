//! `powhost serve`'s access control as a process: a signer key or API key that cannot be used
//! stops it at start (exit code 2, saying what is wrong); listening beyond loopback without
//! them is warned about; over a real connection, an unsigned control request is refused and
//! a signed one (made by the reference's library: tests/golden/signatures.json) passes.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

mod common;
use common::{golden, powhost};

fn vector(what: &str, encoding: &str) -> Value {
    golden("signatures.json")["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["what"] == json!(what) && c["key_encoding"] == json!(encoding))
        .unwrap()
        .clone()
}

#[test]
fn keys_that_cannot_be_used_stop_serve_at_start_saying_why() {
    let cases = [
        ("SIGNER_PUBKEY", "not base64 at all!", "not base64"),
        ("SIGNER_PUBKEY", "AAAA", "it is 3 bytes"),
        (
            "SIGNER_PUBKEY",
            "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "not a point on the secp256k1 curve",
        ),
        ("POWHOST_API_KEY", "   ", "only blanks"),
    ];
    for (variable, value, why) in cases {
        let out = powhost()
            .args(["serve", "--backend", "cpu", "--listen", "127.0.0.1:0"])
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{variable}={value}: {stderr}");
        assert!(
            stderr.contains(variable) && stderr.contains(why),
            "{variable}={value}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing was served");
    }
    // The flag says the same.
    let out = powhost()
        .args(["serve", "--backend", "cpu", "--signer-pubkey", "AAAA"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--signer-pubkey"));
}

/// `powhost serve` on `listen` with these variables, and its stderr up to the line saying it
/// serves, with the address it printed.
fn start(listen: &str, env: &[(&str, &str)]) -> (Child, String, String) {
    let mut command = powhost();
    command
        .args(["serve", "--backend", "cpu", "--listen", listen])
        .env_remove("SIGNER_PUBKEY")
        .env_remove("POWHOST_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr =
        serde_json::from_str::<Value>(&line).unwrap_or_else(|_| panic!("{line:?}"))["listening"]
            .as_str()
            .unwrap()
            .to_string();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    while !log.contains("serving on") {
        assert!(stderr.read_line(&mut log).unwrap() > 0, "{log}");
    }
    (child, addr, log)
}

#[test]
fn listening_beyond_loopback_without_keys_is_warned_about() {
    let (mut open, _, log) = start("0.0.0.0:0", &[]);
    open.kill().unwrap();
    assert!(
        log.contains("without a signer key") && log.contains("SIGNER_PUBKEY"),
        "{log}"
    );
    assert!(
        log.contains("without an API key") && log.contains("POWHOST_API_KEY"),
        "{log}"
    );

    let key = vector("a good signature", "compressed")["signer_pubkey"].clone();
    let env = [
        ("SIGNER_PUBKEY", key.as_str().unwrap()),
        ("POWHOST_API_KEY", "k"),
    ];
    let (mut guarded, _, log) = start("0.0.0.0:0", &env);
    guarded.kill().unwrap();
    assert!(!log.contains("without a"), "{log}");
    let (mut local, _, log) = start("127.0.0.1:0", &[]);
    local.kill().unwrap();
    assert!(!log.contains("without a"), "{log}");
}

#[test]
fn over_a_connection_only_the_signers_requests_pass() {
    let signed = vector("a GET's empty body, signed", "raw");
    let env = [("SIGNER_PUBKEY", signed["signer_pubkey"].as_str().unwrap())];
    let (mut server, addr, _) = start("127.0.0.1:0", &env);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let status_url = format!("http://{addr}/api/v1/pow/status");
    let get = |signature: Option<&str>| {
        let mut request = client.get(&status_url);
        if let Some(signature) = signature {
            request = request.header("X-Signature", signature);
        }
        runtime.block_on(async {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                serde_json::from_str::<Value>(&response.text().await.unwrap()).unwrap(),
            )
        })
    };
    assert_eq!(get(None), (403, json!({"detail": "Missing signature"})));
    let other = vector("a good signature", "raw")["signature"].clone();
    assert_eq!(
        get(other.as_str()),
        (403, json!({"detail": "Invalid signature"}))
    );
    assert_eq!(
        get(signed["signature"].as_str()),
        (200, json!({"status": "NOT_LOADED"}))
    );
    server.kill().unwrap();
}

//! The mutual-TLS files, from flags or the network's `MLNODE_MTLS_*` variables: a partial set
//! or a file that cannot be used stops `serve` and `worker` at start-up with exit 2, naming
//! what is missing or which file is wrong and why.

use std::process::{Command, Output};

fn start(command: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_powhost"));
    cmd.arg(command)
        .args(
            ["--listen", "127.0.0.1:0", "--backend", "cpu"]
                .iter()
                .filter(|_| command == "serve"),
        )
        .args(args);
    for name in [
        "MLNODE_MTLS_CLIENT_CERT",
        "MLNODE_MTLS_CLIENT_KEY",
        "MLNODE_MTLS_SERVER_CA",
    ] {
        cmd.env_remove(name);
    }
    if command == "worker" {
        // The platform's environment, so that the worker gets as far as its flags.
        cmd.envs([
            ("RUNPOD_WEBHOOK_GET_JOB", "http://127.0.0.1:9/take/$ID"),
            ("RUNPOD_WEBHOOK_POST_OUTPUT", "http://127.0.0.1:9/done/$ID"),
            ("RUNPOD_AI_API_KEY", "k"),
            ("RUNPOD_POD_ID", "pod"),
        ]);
    }
    cmd.envs(env.iter().copied()).output().expect("run powhost")
}

#[test]
fn a_partial_set_is_refused_naming_what_is_missing() {
    for command in ["serve", "worker"] {
        let out = start(
            command,
            &["--mtls-client-cert", "/nonexistent/client.crt"],
            &[("MLNODE_MTLS_SERVER_CA", "/nonexistent/ca.crt")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(
            stderr.contains("--mtls-client-key (MLNODE_MTLS_CLIENT_KEY)"),
            "{stderr}"
        );
        assert!(!stderr.contains("--mtls-server-ca ("), "{stderr}");
    }
}

#[test]
fn an_unusable_file_is_refused_naming_it() {
    let dir = crate::tempdir();
    let not_pem = dir.path().join("client.crt");
    std::fs::write(&not_pem, "hello").unwrap();
    let out = start(
        "serve",
        &[],
        &[
            ("MLNODE_MTLS_CLIENT_CERT", not_pem.to_str().unwrap()),
            ("MLNODE_MTLS_CLIENT_KEY", "/nonexistent/client.key"),
            ("MLNODE_MTLS_SERVER_CA", "/nonexistent/ca.crt"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("client certificate") && stderr.contains("client.crt"),
        "{stderr}"
    );
}

/// `serve` started with `env`: whether it got as far as listening (then it is killed).
fn serves_with(env: &[(&str, &str)]) -> bool {
    use std::io::BufRead;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_powhost"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--backend", "cpu"]);
    for name in [
        "MLNODE_MTLS_CLIENT_CERT",
        "MLNODE_MTLS_CLIENT_KEY",
        "MLNODE_MTLS_SERVER_CA",
    ] {
        cmd.env_remove(name);
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line.contains("listening")
}

#[test]
fn good_files_from_the_variables_are_taken_and_an_empty_variable_is_unset() {
    let dir = crate::tempdir();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (cert, key, ca) = (
        write("client.crt", client.pem()),
        write("client.key", key.serialize_pem()),
        write("ca.crt", ca.pem()),
    );
    assert!(serves_with(&[
        ("MLNODE_MTLS_CLIENT_CERT", &cert),
        ("MLNODE_MTLS_CLIENT_KEY", &key),
        ("MLNODE_MTLS_SERVER_CA", &ca),
    ]));
    // As in the reference, an empty variable is no setting (and no partial set).
    assert!(serves_with(&[("MLNODE_MTLS_CLIENT_CERT", "")]));
}

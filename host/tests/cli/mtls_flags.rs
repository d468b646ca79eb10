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
    let dir = std::env::temp_dir().join(format!("powhost-mtls-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("client.crt");
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
    let _ = std::fs::remove_dir_all(&dir);
}

//! The CPU backend's GEMM path from the command line (`--cpu-gemm`) and the environment
//! (`POWHOST_CPU_GEMM`): `bench` reports the path that ran, a bad value is an error that lists
//! the choices, and `amx` runs the golden comparison where the processor has the tiles and is
//! an error saying why where it does not.

use serde_json::Value;
use std::process::{Command, Output};

fn powhost(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_powhost"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .env_remove("POWHOST_CPU_GEMM")
        .envs(env.iter().copied())
        .output()
        .expect("run powhost")
}

fn golden_tiny() -> String {
    format!(
        "{}/../tests/golden/forward_tiny.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// What Linux says of the processor: whether it lists the AMX tiles with bf16.
fn has_amx() -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.contains(" amx_tile") && info.contains(" amx_bf16")
}

#[test]
fn bench_reports_the_gemm_path_that_ran() {
    let out = powhost(
        &[
            "bench",
            "--backend",
            "cpu",
            "--cpu-gemm",
            "f32",
            "--preset",
            "tiny",
            "--nonces",
            "16",
            "--json",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["gemm_path"], "f32", "{report}");
    assert!(
        report["gemm_peak_gflop_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["device"].as_str().unwrap().contains("GEMM f32"),
        "{report}"
    );
}

#[test]
fn an_unknown_path_in_the_environment_is_an_error_listing_the_choices() {
    let out = powhost(
        &["compare", "--backends", "cpu", "--golden", &golden_tiny()],
        &[("POWHOST_CPU_GEMM", "bogus")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "POWHOST_CPU_GEMM=bogus: unknown CPU GEMM path `bogus`; choose one of: f32, amx, auto"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unknown_path_on_the_command_line_is_a_usage_error() {
    let out = powhost(&["bench", "--cpu-gemm", "f16"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[possible values: f32, amx, auto]"),
        "{stderr}"
    );
}

/// With the tiles: `compare --cpu-gemm amx` against the golden passes the budget. Without:
/// the option and the variable are errors that say why.
#[test]
fn amx_compares_where_the_tiles_are_and_is_refused_where_not() {
    for (args, env) in [
        (vec!["--cpu-gemm", "amx"], vec![]),
        (vec![], vec![("POWHOST_CPU_GEMM", "amx")]),
    ] {
        let golden = golden_tiny();
        let mut all = vec!["compare", "--backends", "cpu", "--golden", &golden];
        all.extend(args.iter().copied());
        let out = powhost(&all, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if has_amx() {
            assert!(out.status.success(), "{stderr}");
            continue;
        }
        let origin = if args.is_empty() {
            "POWHOST_CPU_GEMM=amx"
        } else {
            "--cpu-gemm amx"
        };
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{origin} asks for the AMX GEMM path, but this machine cannot run it: AMX unavailable: "
            )),
            "{stderr}"
        );
    }
}

//! The conformance goldens on the CPU backend's AMX GEMM path: on the tiles where the
//! processor has them (else `SKIPPED: <why>`, or a failure where `POWHOST_REQUIRE_BACKENDS`
//! names `amx`), and on the tiles' portable emulation everywhere (the whole path but the
//! assembly: splitting, packing, blocking, dispatch, rounding).

use powhost_core::conformance::{check_forward_golden, golden, skip_or_fail};
use powhost_cpu::{CpuBackend, GemmPath};

fn run(backend: &CpuBackend, preset: &str, batch: usize) {
    let report = check_forward_golden(backend, &golden(&format!("forward_{preset}.json")), batch)
        .unwrap_or_else(|e| panic!("{preset} on {:?}: {e:#}", backend.gemm()));
    println!("{preset} on {:?}: {report:?}", backend.gemm());
}

fn tiles() -> Option<CpuBackend> {
    match GemmPath::from_choice("amx", "the AMX conformance test") {
        Ok(path) => Some(CpuBackend::with_gemm(path)),
        Err(e) => {
            skip_or_fail("amx", format!("{e:#}"));
            None
        }
    }
}

#[test]
fn tiny_agrees_with_reference_on_the_tiles() {
    if let Some(b) = tiles() {
        run(&b, "tiny", 16);
    }
}

#[test]
fn small_agrees_with_reference_on_the_tiles() {
    if let Some(b) = tiles() {
        run(&b, "small", 16);
    }
}

#[test]
fn devtest_agrees_with_reference_on_the_tiles() {
    if let Some(b) = tiles() {
        run(&b, "devtest", 64);
    }
}

#[test]
fn tiny_agrees_with_reference_on_the_emulated_tiles() {
    run(&CpuBackend::with_gemm(GemmPath::emulated_amx()), "tiny", 16);
}

#[test]
fn small_agrees_with_reference_on_the_emulated_tiles() {
    run(
        &CpuBackend::with_gemm(GemmPath::emulated_amx()),
        "small",
        16,
    );
}

#[test]
fn devtest_agrees_with_reference_on_the_emulated_tiles() {
    run(
        &CpuBackend::with_gemm(GemmPath::emulated_amx()),
        "devtest",
        64,
    );
}

//! Whether a backend test that cannot run skips or fails. A test whose device does not open
//! (no Vulkan driver, no CUDA device, no libnvrtc) skips with a message, so that the workspace's
//! tests pass on any machine; but then a CI whose driver install broke would pass with those
//! tests unrun. `POWHOST_REQUIRE_BACKENDS` (e.g. `wgpu,nvrtc`) names the backends that must
//! run where it is set: for them, not opening is a failure that says why.

use std::fmt::Display;

/// The environment variable listing the backends whose tests must run (comma-separated).
pub const REQUIRE_BACKENDS: &str = "POWHOST_REQUIRE_BACKENDS";

/// The names the variable may hold: the backends, `nvrtc` for the CUDA kernels' compile
/// test (it needs libnvrtc, not a device, so CI can require it without a GPU), and `amx` for
/// the CPU backend's AMX GEMM path (it needs a processor with AMX tiles).
pub const BACKEND_NAMES: &[&str] = &["cpu", "wgpu", "cuda", "nvrtc", "amx"];

/// The backends a value of [`REQUIRE_BACKENDS`] names: comma-separated, blanks around a name
/// and empty entries ignored, case-insensitive. A name that is no backend is an error rather
/// than ignored: a misspelt `wgpu` would otherwise let its tests skip unnoticed.
pub fn parse_required(value: &str) -> Result<Vec<&'static str>, String> {
    let mut names = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let name = BACKEND_NAMES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(entry))
            .ok_or_else(|| {
                format!(
                    "{REQUIRE_BACKENDS} names `{entry}`, which is not a backend; the names are: {}",
                    BACKEND_NAMES.join(", ")
                )
            })?;
        if !names.contains(name) {
            names.push(*name);
        }
    }
    Ok(names)
}

/// What a test whose `backend` did not open (`reason`) does, given the variable's value
/// (`None` where it is unset): `Ok` with the line to print when it skips, `Err` with the
/// failure when the backend was required (or the value cannot be read).
pub fn verdict(required: Option<&str>, backend: &str, reason: &str) -> Result<String, String> {
    let Some(value) = required else {
        return Ok(format!("SKIPPED: {reason}"));
    };
    if parse_required(value)?.contains(&backend) {
        Err(format!(
            "{backend} is required ({REQUIRE_BACKENDS}={value}) but did not open: {reason}"
        ))
    } else {
        Ok(format!("SKIPPED: {reason}"))
    }
}

/// Called by a test that cannot run because `backend` did not open: prints `SKIPPED: <reason>`
/// and returns (the test passes), or panics where [`REQUIRE_BACKENDS`] names `backend`.
#[track_caller]
pub fn skip_or_fail(backend: &str, reason: impl Display) {
    let required = std::env::var(REQUIRE_BACKENDS).ok();
    match verdict(required.as_deref(), backend, &format!("{reason:#}")) {
        Ok(skipped) => eprintln!("{skipped}"),
        Err(failure) => panic!("{failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_backends_are_parsed_from_a_comma_separated_list() {
        assert_eq!(parse_required("cpu,wgpu"), Ok(vec!["cpu", "wgpu"]));
        assert_eq!(parse_required(" wgpu , NVRTC ,"), Ok(vec!["wgpu", "nvrtc"]));
        assert_eq!(parse_required("cuda,cuda"), Ok(vec!["cuda"]));
        assert_eq!(parse_required(""), Ok(vec![]));
        assert_eq!(parse_required(" , "), Ok(vec![]));
    }

    #[test]
    fn a_name_that_is_no_backend_is_refused() {
        let e = parse_required("wgpu,wpgu").unwrap_err();
        assert!(
            e.contains("`wpgu`") && e.contains("cpu, wgpu, cuda, nvrtc"),
            "{e}"
        );
        // Whole names only: `gpu` is not `wgpu`.
        assert!(parse_required("gpu").is_err());
    }

    #[test]
    fn a_backend_that_did_not_open_skips_unless_required() {
        let reason = "no wgpu adapter: none found";
        assert_eq!(
            verdict(None, "wgpu", reason),
            Ok("SKIPPED: no wgpu adapter: none found".into())
        );
        assert_eq!(
            verdict(Some("cuda,nvrtc"), "wgpu", reason),
            Ok("SKIPPED: no wgpu adapter: none found".into())
        );
        assert_eq!(
            verdict(Some(""), "wgpu", reason),
            Ok(format!("SKIPPED: {reason}"))
        );
        let e = verdict(Some("cpu,wgpu"), "wgpu", reason).unwrap_err();
        assert_eq!(
            e,
            "wgpu is required (POWHOST_REQUIRE_BACKENDS=cpu,wgpu) but did not open: no wgpu adapter: none found"
        );
        // A misspelt list fails the test that would have skipped, rather than skip it.
        assert!(verdict(Some("wgpu,nvrct"), "nvrtc", "libnvrtc not found").is_err());
    }
}

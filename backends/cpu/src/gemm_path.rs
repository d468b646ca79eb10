//! Which GEMM the CPU backend's forward pass runs on, chosen when the backend is made:
//! `f32` (faer, every processor), `amx` (float16 as bf16 pairs on the AMX tiles), or `auto`
//! (AMX where detected). `POWHOST_CPU_GEMM` chooses where the caller does not.

use crate::amx::{Amx, AmxWeights, EmulatedKernel, MicroKernel, TileKernel};
use crate::weights::WeightStore;
use anyhow::{Result, bail};
use powhost_core::ModelWeights;
use std::sync::Arc;

/// The environment variable choosing the CPU GEMM path.
pub const CPU_GEMM_ENV: &str = "POWHOST_CPU_GEMM";
/// Its values.
pub const CPU_GEMM_CHOICES: &str = "f32, amx, auto";

#[derive(Clone, Default)]
pub enum GemmPath {
    /// f32 GEMMs (faer) on exactly widened operands.
    #[default]
    F32,
    /// The split float16 GEMM around this micro-kernel (the tiles, or their emulation).
    Amx(Arc<dyn MicroKernel>),
}

impl std::fmt::Debug for GemmPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl GemmPath {
    /// The path `value` (`f32`, `amx`, `auto`) names; `origin` says where the value came from
    /// (e.g. `POWHOST_CPU_GEMM=amx`), for the errors.
    pub fn from_choice(value: &str, origin: &str) -> Result<Self> {
        let tiles = Amx::detect().map(|amx| Arc::new(TileKernel::new(amx)) as Arc<dyn MicroKernel>);
        resolve(value, origin, tiles)
    }

    /// The path `POWHOST_CPU_GEMM` names, `auto` where it is unset or empty.
    pub fn from_env() -> Result<Self> {
        match std::env::var(CPU_GEMM_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::from_choice(&v, &format!("{CPU_GEMM_ENV}={v}")),
            Ok(_) | Err(std::env::VarError::NotPresent) => Self::from_choice("auto", "auto"),
            Err(e) => bail!("{CPU_GEMM_ENV} cannot be read: {e}"),
        }
    }

    /// The AMX path on the tiles' portable emulation: the whole path runs on any processor,
    /// slowly (tests).
    pub fn emulated_amx() -> Self {
        Self::Amx(Arc::new(EmulatedKernel))
    }

    /// The short name (`f32`, `amx`), as `bench` reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Amx(_) => "amx",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            Self::F32 => "f32 (faer)",
            Self::Amx(kernel) => kernel.name(),
        }
    }

    /// The weights as this path multiplies by them.
    pub fn weight_store(&self, weights: &ModelWeights, widen_limit_bytes: u64) -> WeightStore {
        match self {
            Self::F32 => WeightStore::new(weights, widen_limit_bytes),
            Self::Amx(kernel) => {
                WeightStore::Amx(AmxWeights::new(weights, kernel.clone(), widen_limit_bytes))
            }
        }
    }
}

/// [`GemmPath::from_choice`] with the detection's answer given: the tile kernel, or why there
/// is none (testable on any processor, with any kernel).
fn resolve(
    value: &str,
    origin: &str,
    amx: Result<Arc<dyn MicroKernel>, String>,
) -> Result<GemmPath> {
    // Tiles that do not compute what their emulation does are as good as absent.
    let tiles = || -> Result<GemmPath, String> {
        use crate::amx::self_check::{CHILD_LIMIT, check, survives_in_child};
        let kernel = amx.clone()?;
        survives_in_child(&*kernel, CHILD_LIMIT)
            .and_then(|()| check(&*kernel))
            .map_err(|why| format!("the AMX tiles failed their self-check ({why})"))?;
        Ok(GemmPath::Amx(kernel))
    };
    match value.trim().to_ascii_lowercase().as_str() {
        "f32" => Ok(GemmPath::F32),
        "amx" => tiles().or_else(|why| {
            bail!(
                "{origin} asks for the AMX GEMM path, but this machine cannot run it: {why}; use f32 or auto"
            )
        }),
        "auto" => Ok(tiles().unwrap_or_else(|why| {
            if amx.is_ok() {
                log::warn!("CPU GEMM auto: f32 ({why})");
            } else {
                log::info!("CPU GEMM auto: f32 ({why})");
            }
            GemmPath::F32
        })),
        _ => bail!("{origin}: unknown CPU GEMM path `{value}`; choose one of: {CPU_GEMM_CHOICES}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_amx() -> Result<Arc<dyn MicroKernel>, String> {
        Err("AMX unavailable: the processor has no AMX-TILE (CPUID leaf 7: AMX-TILE no, AMX-BF16 no)".into())
    }

    #[test]
    fn an_unknown_path_is_refused_listing_the_choices() {
        let e = resolve("bogus", "POWHOST_CPU_GEMM=bogus", no_amx())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "POWHOST_CPU_GEMM=bogus: unknown CPU GEMM path `bogus`; choose one of: f32, amx, auto"
        );
        assert!(resolve("", "x", no_amx()).is_err());
    }

    #[test]
    fn amx_without_the_tiles_is_an_error_saying_why() {
        let e = resolve("amx", "POWHOST_CPU_GEMM=amx", no_amx())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("POWHOST_CPU_GEMM=amx asks for the AMX GEMM path"),
            "{e}"
        );
        assert!(
            e.contains("AMX unavailable: the processor has no AMX-TILE"),
            "{e}"
        );
    }

    #[test]
    fn auto_and_f32_fall_back_or_stay_on_f32_without_the_tiles() {
        assert_eq!(resolve("auto", "auto", no_amx()).unwrap().name(), "f32");
        assert_eq!(resolve(" F32 ", "f32", no_amx()).unwrap().name(), "f32");
    }

    /// A kernel that computes nothing, standing for tiles that compute wrongly.
    struct Wrong;

    impl MicroKernel for Wrong {
        fn run(&self, _: crate::amx::kernel::TileBlock<'_>) {}

        fn name(&self) -> &'static str {
            "wrong tiles"
        }

        fn peak_gflops(&self) -> Option<f64> {
            None
        }
    }

    /// Tiles that fail the self-check are never used: `auto` stays on f32, `amx` is refused
    /// saying why; tiles that pass it are chosen.
    #[test]
    fn tiles_failing_their_self_check_are_refused_or_left_for_f32() {
        let wrong = || Ok(Arc::new(Wrong) as Arc<dyn MicroKernel>);
        assert_eq!(resolve("auto", "auto", wrong()).unwrap().name(), "f32");
        let e = resolve("amx", "POWHOST_CPU_GEMM=amx", wrong())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("POWHOST_CPU_GEMM=amx asks for the AMX GEMM path, but this machine cannot run it: the AMX tiles failed their self-check (wrong tiles: element (0, 0)"),
            "{e}"
        );
        let good = || Ok(Arc::new(EmulatedKernel) as Arc<dyn MicroKernel>);
        assert_eq!(resolve("auto", "auto", good()).unwrap().name(), "amx");
        assert_eq!(resolve("amx", "amx", good()).unwrap().name(), "amx");
    }

    /// Tiles that fault in the self-check end its child process, not this one: `auto` stays
    /// on f32, `amx` is refused naming the signal.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn tiles_that_fault_in_their_self_check_leave_the_process_running() {
        use crate::amx::self_check::tests::Illegal;
        let illegal = || Ok(Arc::new(Illegal) as Arc<dyn MicroKernel>);
        assert_eq!(resolve("auto", "auto", illegal()).unwrap().name(), "f32");
        let e = resolve("amx", "POWHOST_CPU_GEMM=amx", illegal())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "POWHOST_CPU_GEMM=amx asks for the AMX GEMM path, but this machine cannot run it: the AMX tiles failed their self-check (illegal: the check killed its test process with SIGILL (an illegal instruction)); use f32 or auto"
        );
    }

    /// On this machine: `amx` works exactly where detection does, with detection's reason.
    #[test]
    fn amx_is_chosen_exactly_where_detected() {
        match (Amx::detect(), GemmPath::from_choice("amx", "test")) {
            (Ok(_), Ok(path)) => assert_eq!(path.name(), "amx"),
            (Err(why), Err(e)) => assert!(e.to_string().contains(&why), "{e:#}"),
            (d, p) => panic!("detection {d:?} but the choice gave {p:?}"),
        }
        let auto = GemmPath::from_choice("auto", "auto").unwrap();
        assert_eq!(
            auto.name(),
            if Amx::detect().is_ok() { "amx" } else { "f32" }
        );
    }
}

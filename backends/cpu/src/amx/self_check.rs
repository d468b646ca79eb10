//! A check of the tile kernel against its emulation, run once before the AMX path is chosen:
//! a processor or operating system whose tiles do not compute what the emulation does (or a
//! fault in the kernel's assumptions about them) then leaves the f32 path in use instead of
//! giving wrong distances.
//!
//! The kernel's product runs first in a child process ([`survives_in_child`]), so that tiles
//! which fault (an illegal instruction, a configuration the processor rejects) or never finish
//! end that child instead of this process; then the check runs here and compares the numbers.

use super::gemm::{PackedB, SplitA, Weights, gemm};
use super::{EmulatedKernel, MicroKernel};
use half::f16;
use std::time::Duration;

/// How long the child process may take: the check is a 37×200×40 GEMM (microseconds on the
/// tiles, milliseconds emulated); this only bounds a kernel that never returns.
pub const CHILD_LIMIT: Duration = Duration::from_secs(10);

/// Ragged in every dimension, several k-slices and row blocks, f16 values of every scale.
const SHAPE: (usize, usize, usize) = (37, 200, 40);

/// The check's operands, f16-exact f32: `x` (`m × k`) and `W` (`n × k`), split and packed.
struct Case {
    x: Vec<f32>,
    w: Vec<f32>,
    a: SplitA,
    b: PackedB,
}

impl Case {
    fn new() -> Self {
        let (m, k, n) = SHAPE;
        let value = |i: usize, salt: usize| {
            let h = (i.wrapping_mul(2_654_435_761) ^ salt).wrapping_mul(40_503) % 65_521;
            f16::from_f32((h as f32 / 65_521.0 - 0.5) * [0.02, 1.0, 37.0][i % 3]).to_f32()
        };
        let x: Vec<f32> = (0..m * k).map(|i| value(i, 11)).collect();
        let w: Vec<f32> = (0..n * k).map(|i| value(i, 97)).collect();
        let (a, b) = (SplitA::new(&x, m, k), PackedB::new(&w, n, k));
        Self { x, w, a, b }
    }

    /// `x · Wᵀ` on `kernel`.
    fn product(&self, kernel: &dyn MicroKernel) -> Vec<f32> {
        let (m, _, n) = SHAPE;
        let mut out = vec![0f32; m * n];
        gemm(kernel, &self.a, Weights::Packed(&self.b), &mut out);
        out
    }
}

/// `Ok` when `kernel` computes a small GEMM as the emulation does, to within the f32
/// summation bound (the hardware may order the f32 additions inside a `tdpbf16ps` otherwise:
/// see [`super::emulated`]).
pub fn check(kernel: &dyn MicroKernel) -> Result<(), String> {
    let (m, k, n) = SHAPE;
    let case = Case::new();
    let (x, w) = (&case.x, &case.w);
    let (real, emulated) = (case.product(kernel), case.product(&EmulatedKernel));
    for i in 0..m {
        for j in 0..n {
            let magnitude: f64 = (0..k)
                .map(|p| (x[i * k + p] as f64 * w[j * k + p] as f64).abs())
                .sum();
            let bound = k as f64 * f32::EPSILON as f64 * magnitude;
            let (got, want) = (real[i * n + j], emulated[i * n + j]);
            if !got.is_finite() || (got as f64 - want as f64).abs() > bound {
                return Err(format!(
                    "{}: element ({i}, {j}) of a {m}×{k}×{n} GEMM is {got:e}, the emulation gives {want:e}",
                    kernel.name()
                ));
            }
        }
    }
    Ok(())
}

/// `Err` when the check's product on `kernel`, run in a forked child process, dies of a
/// signal, panics or takes longer than `limit`; `Ok` when the child finishes, whatever the
/// numbers (those are [`check`]'s to judge, in this process). Where no child can be started
/// or watched, it says so in the log and returns `Ok`: the check then runs in this process
/// only, as without it.
#[cfg(target_os = "linux")]
pub fn survives_in_child(kernel: &dyn MicroKernel, limit: Duration) -> Result<(), String> {
    // SAFETY: the child only runs Rust code that allocates (glibc's malloc is re-initialised
    // for a forked child), starts one thread and ends with `_exit`, never returning into the
    // parent's state; the parent only waits for it.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        in_child(kernel);
    }
    if pid < 0 {
        log::warn!(
            "the AMX self-check runs in this process only: fork failed ({})",
            std::io::Error::last_os_error()
        );
        return Ok(());
    }
    let start = std::time::Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child, writing its status into `status`.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            log::warn!(
                "the AMX self-check's child process cannot be watched ({}); trusting the check in this process",
                std::io::Error::last_os_error()
            );
            return Ok(());
        }
        if start.elapsed() > limit {
            // SAFETY: ends and reaps our own child, which has not been reaped (rc was 0).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!(
                "{}: the check did not finish within {} s",
                kernel.name(),
                limit.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if libc::WIFSIGNALED(status) {
        return Err(format!(
            "{}: the check killed its test process with {}",
            kernel.name(),
            signal_name(libc::WTERMSIG(status))
        ));
    }
    match libc::WEXITSTATUS(status) {
        CHILD_FINISHED => Ok(()),
        _ => Err(format!("{}: the check panicked", kernel.name())),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn survives_in_child(_: &dyn MicroKernel, _: Duration) -> Result<(), String> {
    Ok(())
}

/// The child's exit status when the product returned.
const CHILD_FINISHED: i32 = 0;

/// The forked child: the check's product on `kernel` (only that: comparing is the parent's),
/// on a fresh one-thread pool (the parent's rayon workers do not exist here), no core file if
/// it faults, then `_exit`.
#[cfg(target_os = "linux")]
fn in_child(kernel: &dyn MicroKernel) -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: sets this process's core-file limit from a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
        pool.map(|pool| pool.install(|| drop(Case::new().product(kernel))))
    }));
    let code = match finished {
        Ok(Some(())) => CHILD_FINISHED,
        _ => 1,
    };
    // SAFETY: ends the child without running the parent's exit handlers or destructors.
    unsafe { libc::_exit(code) }
}

#[cfg(target_os = "linux")]
fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGILL => "SIGILL (an illegal instruction)".into(),
        libc::SIGSEGV => "SIGSEGV (an invalid memory access)".into(),
        libc::SIGBUS => "SIGBUS (a bus error)".into(),
        libc::SIGFPE => "SIGFPE (an arithmetic exception)".into(),
        libc::SIGKILL => "SIGKILL".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::amx::kernel::TileBlock;

    #[test]
    fn the_emulation_passes_its_own_check() {
        check(&EmulatedKernel).unwrap();
    }

    /// A kernel that computes nothing.
    struct Off;

    impl MicroKernel for Off {
        fn name(&self) -> &'static str {
            "off"
        }

        fn run(&self, _: TileBlock<'_>) {}

        fn peak_gflops(&self) -> Option<f64> {
            None
        }
    }

    #[test]
    fn a_kernel_that_computes_otherwise_fails_the_check() {
        let why = check(&Off).unwrap_err();
        assert!(why.contains("off: element"), "{why}");
    }

    #[test]
    fn the_emulation_survives_its_check_in_a_child() {
        survives_in_child(&EmulatedKernel, CHILD_LIMIT).unwrap();
    }

    /// Stands for tiles whose instructions the processor rejects.
    #[cfg(target_arch = "x86_64")]
    pub(crate) struct Illegal;

    #[cfg(target_arch = "x86_64")]
    impl MicroKernel for Illegal {
        fn name(&self) -> &'static str {
            "illegal"
        }

        fn run(&self, _: TileBlock<'_>) {
            // SAFETY: `ud2` raises SIGILL and touches nothing; it only runs in the forked child
            // of the check (the test process would otherwise die, failing the test run).
            unsafe { std::arch::asm!("ud2", options(noreturn, nomem, nostack)) }
        }

        fn peak_gflops(&self) -> Option<f64> {
            None
        }
    }

    /// A kernel that faults ends the child, not this process, and the reason names the signal.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn a_kernel_that_faults_kills_only_the_child() {
        let why = survives_in_child(&Illegal, CHILD_LIMIT).unwrap_err();
        assert_eq!(
            why,
            "illegal: the check killed its test process with SIGILL (an illegal instruction)"
        );
    }

    /// Never returns.
    struct Stuck;

    impl MicroKernel for Stuck {
        fn name(&self) -> &'static str {
            "stuck"
        }

        fn run(&self, _: TileBlock<'_>) {
            loop {
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        fn peak_gflops(&self) -> Option<f64> {
            None
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_kernel_that_never_returns_is_stopped_at_the_limit() {
        let start = std::time::Instant::now();
        let why = survives_in_child(&Stuck, Duration::from_millis(300)).unwrap_err();
        assert_eq!(why, "stuck: the check did not finish within 0.3 s");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    /// Panics.
    struct Panicking;

    impl MicroKernel for Panicking {
        fn name(&self) -> &'static str {
            "panicking"
        }

        fn run(&self, _: TileBlock<'_>) {
            panic!("a kernel that panics");
        }

        fn peak_gflops(&self) -> Option<f64> {
            None
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_kernel_that_panics_is_reported() {
        let why = survives_in_child(&Panicking, CHILD_LIMIT).unwrap_err();
        assert_eq!(why, "panicking: the check panicked");
    }

    /// A kernel that finishes with wrong numbers survives the child: judging the numbers is
    /// `check`'s job, in this process.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_wrong_kernel_survives_the_child_and_fails_the_check() {
        survives_in_child(&Off, CHILD_LIMIT).unwrap();
        assert!(check(&Off).is_err());
    }
}

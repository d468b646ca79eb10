//! The micro-kernel: one 32×16 block of C accumulated over k-slices of 32 on the AMX tiles,
//! behind [`MicroKernel`] so that the same driver runs it or its emulation
//! ([`super::emulated::EmulatedKernel`]).
//!
//! The main product `hi·hi` and the three corrections `hi·lo, lo·hi, lo·lo` (each about 2⁻⁸
//! of it) are accumulated apart and added once at the end: a correction's rounding errors
//! are then relative to the small correction sum, and the main sum takes one addition per
//! pair of k instead of four. That makes the split GEMM about three times as accurate as one
//! accumulator for all four (error / Σ|x·w| about 0.5–1e-7 against 2.5e-7 on the forward
//! pass's shapes, f32 GEMMs giving 0.3–2.4e-7), and halves the goldens' median |Δd| on
//! devtest (1.8e-7 against 3.9e-7, measured through the emulation).
//!
//! Register use (8 tiles, all 16 rows × 64 bytes): `tmm0–1` the main sums of C's rows 0–15
//! and 16–31 (16×16 f32 each), `tmm2–3` their corrections, `tmm4–5` two A tiles (16 rows ×
//! 32 bf16: rows 0–15 and 16–31, hi then lo), `tmm6–7` the B tile's hi and lo halves (VNNI,
//! 32 k × 16 columns). Per 32-deep slice: 6 tile loads for 8 `tdpbf16ps`, in the order
//! main += A_hi·B_hi; corr += A_hi·B_lo; (A_lo loaded) corr += A_lo·B_hi; corr += A_lo·B_lo.

use super::detect::Amx;
use half::bf16;

/// One call of the micro-kernel, over `slices` k-slices of 32:
/// `main += Σ_s A_hi,s · B_hi,s` and `corr += Σ_s (A_hi,s · B_lo,s + A_lo,s · B_hi,s +
/// A_lo,s · B_lo,s)` for a 32-row, 16-column block of C (which is `main + corr`).
///
/// - `a_hi`, `a_lo`: the split activations, row `i` of the block at `i·lda`, slice `s` at
///   column `32·s` (bf16 elements); at least `31·lda + 32·slices` elements.
/// - `b`: the packed weights of the block's 16 columns ([`super::gemm::PackedB`]): per
///   slice 1,024 bf16, the hi tile (16 VNNI rows of 32) then the lo tile.
/// - `main`, `corr`: 32 rows of 16 f32 each, row-major, contiguous.
pub struct TileBlock<'a> {
    pub a_hi: &'a [bf16],
    pub a_lo: &'a [bf16],
    pub lda: usize,
    pub b: &'a [bf16],
    pub slices: usize,
    pub main: &'a mut [f32],
    pub corr: &'a mut [f32],
}

/// bf16 elements per slice of one 16-column panel: the hi tile and the lo tile.
pub const PANEL_SLICE: usize = 2 * 16 * 32;
/// f32 elements of one C block (of its main sums, or of its corrections).
pub const C_BLOCK: usize = 32 * 16;

impl TileBlock<'_> {
    /// The bounds every read and write of the block stays within (what makes the tile
    /// kernel's raw addressing safe).
    pub fn check(&self) {
        let a_len = 31 * self.lda + 32 * self.slices;
        assert!(
            self.lda >= 32 * self.slices,
            "lda {} < the block's k",
            self.lda
        );
        assert!(
            self.a_hi.len() >= a_len && self.a_lo.len() >= a_len,
            "A too short"
        );
        assert!(self.b.len() >= self.slices * PANEL_SLICE, "B too short");
        assert!(
            self.main.len() >= C_BLOCK && self.corr.len() >= C_BLOCK,
            "C too short"
        );
    }
}

pub trait MicroKernel: Send + Sync {
    /// `C += A·B` for one block, as [`TileBlock`] describes.
    fn run(&self, block: TileBlock<'_>);
    /// What runs, in words (for the device description).
    fn name(&self) -> &'static str;
    /// The tiles' bf16 peak measured now on every thread of the current pool (GFLOP/s), or
    /// `None` where there are no tiles.
    fn peak_gflops(&self) -> Option<f64>;
}

/// The AMX micro-kernel. Made only from an [`Amx`] token, so its tile instructions run only
/// where detection succeeded.
#[derive(Clone, Copy, Debug)]
pub struct TileKernel {
    _amx: Amx,
}

impl TileKernel {
    pub fn new(amx: Amx) -> Self {
        Self { _amx: amx }
    }
}

impl MicroKernel for TileKernel {
    fn run(&self, mut block: TileBlock<'_>) {
        block.check();
        if block.slices == 0 {
            return;
        }
        tile_thread::ready();
        // SAFETY: `check` bounds every tile row read or written below (A: 32 rows at stride
        // lda·2 bytes, 64 bytes each, for `slices` slices; B: `slices` × 2 KiB; main and
        // corr: 32 rows of 64 bytes each); `ready` requested the tile permission for this
        // thread and loaded the configuration (8 tiles of 16 × 64 bytes) the code assumes;
        // the token proves the processor has the instructions.
        unsafe { asm_kernel::run(&mut block) }
    }

    fn name(&self) -> &'static str {
        "amx (float16 as bfloat16 pairs on the AMX tiles)"
    }

    fn peak_gflops(&self) -> Option<f64> {
        Some(asm_kernel::peak_gflops())
    }
}

#[cfg(test)]
pub(crate) use tile_thread::palette_1_bytes;

/// Per-thread tile state, once per thread: the permission request (Linux grants it to the
/// whole process, so this only confirms it, cheaply) and `ldtilecfg` (the configuration is
/// per thread; Linux keeps it across context switches and restores it after a signal
/// handler, and nothing else here loads another or releases the tiles).
mod tile_thread {
    use std::cell::Cell;

    thread_local! {
        static READY: Cell<bool> = const { Cell::new(false) };
    }

    /// 64 bytes, 64-aligned: palette 1, every tile 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    pub fn ready() {
        if READY.get() {
            return;
        }
        if let Err(e) = super::super::detect::request_tile_permission() {
            // Detection succeeded for this process, so this thread's request cannot
            // reasonably fail; executing tiles without it would fault.
            panic!("the AMX tile permission was refused on a worker thread: {e}");
        }
        let cfg = palette_1();
        // SAFETY: a valid configuration; `ready` is reached only through a `TileKernel` (made
        // from a detection token), and this thread's permission request just succeeded.
        unsafe { super::asm_kernel::load_config(&cfg as *const TileConfig as *const u8) };
        READY.set(true);
    }

    /// The kernel's configuration: tiles 0–7 of 16 rows × 64 bytes (the shapes every
    /// `tdpbf16ps` of the kernel needs: C 16 × 16 f32, A 16 × 16 pairs, B 16 pair-rows × 16
    /// columns); tiles 8–15 and the reserved bytes zero, as palette 1 requires.
    fn palette_1() -> TileConfig {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            cfg.colsb[t] = 64;
            cfg.rows[t] = 16;
        }
        cfg
    }

    /// The 64 bytes `ldtilecfg` reads.
    #[cfg(test)]
    pub fn palette_1_bytes() -> [u8; 64] {
        assert_eq!(std::mem::size_of::<TileConfig>(), 64);
        let cfg = palette_1();
        // SAFETY: `TileConfig` is `repr(C)`, 64 bytes without padding (1 + 1 + 14 + 32 + 16).
        unsafe { std::mem::transmute::<TileConfig, [u8; 64]>(cfg) }
    }
}

#[cfg(target_arch = "x86_64")]
mod asm_kernel {
    use super::TileBlock;
    use std::arch::asm;

    /// Loads a 64-byte tile configuration.
    ///
    /// # Safety
    /// `cfg` points to a valid 64-byte configuration; the processor has AMX and this thread
    /// may use the tile state (the permission was granted).
    pub unsafe fn load_config(cfg: *const u8) {
        // SAFETY: the function's contract.
        unsafe { asm!("ldtilecfg [{}]", in(reg) cfg, options(nostack, readonly)) }
    }

    /// # Safety
    /// The caller has checked `block` (bounds) and loaded this module's tile configuration on
    /// this thread, on a processor with AMX-TILE and AMX-BF16; `block.slices ≥ 1`.
    pub unsafe fn run(block: &mut TileBlock<'_>) {
        let a_hi = block.a_hi.as_ptr();
        let a_lo = block.a_lo.as_ptr();
        // SAFETY: see the function's contract; every address is inside the checked slices.
        unsafe {
            asm!(
                // main and corr: rows 0–15 and 16–31 (row stride 64 bytes).
                "tileloadd tmm0, [{main} + {s64}*1]",
                "tileloadd tmm1, [{main} + {s64}*1 + 1024]",
                "tileloadd tmm2, [{corr} + {s64}*1]",
                "tileloadd tmm3, [{corr} + {s64}*1 + 1024]",
                "2:",
                "tileloadd tmm4, [{a0h} + {lda}*1]",
                "tileloadd tmm5, [{a1h} + {lda}*1]",
                "tileloadd tmm6, [{b} + {s64}*1]",
                "tileloadd tmm7, [{b} + {s64}*1 + 1024]",
                // main += hi·hi
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm5, tmm6",
                // corr += hi·lo
                "tdpbf16ps tmm2, tmm4, tmm7",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tileloadd tmm4, [{a0l} + {lda}*1]",
                "tileloadd tmm5, [{a1l} + {lda}*1]",
                // corr += lo·hi, then lo·lo
                "tdpbf16ps tmm2, tmm4, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm6",
                "tdpbf16ps tmm2, tmm4, tmm7",
                "tdpbf16ps tmm3, tmm5, tmm7",
                // Next slice: 32 bf16 along A's rows, 2 KiB along the B panel.
                "add {a0h}, 64",
                "add {a1h}, 64",
                "add {a0l}, 64",
                "add {a1l}, 64",
                "add {b}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{main} + {s64}*1], tmm0",
                "tilestored [{main} + {s64}*1 + 1024], tmm1",
                "tilestored [{corr} + {s64}*1], tmm2",
                "tilestored [{corr} + {s64}*1 + 1024], tmm3",
                main = in(reg) block.main.as_mut_ptr(),
                corr = in(reg) block.corr.as_mut_ptr(),
                a0h = inout(reg) a_hi => _,
                a1h = inout(reg) a_hi.add(16 * block.lda) => _,
                a0l = inout(reg) a_lo => _,
                a1l = inout(reg) a_lo.add(16 * block.lda) => _,
                lda = in(reg) block.lda * 2,
                b = inout(reg) block.b.as_ptr() => _,
                s64 = in(reg) 64usize,
                n = inout(reg) block.slices => _,
                options(nostack),
            );
        }
    }

    /// The tiles' bf16 peak: four independent `tdpbf16ps` a loop turn on registers only (no
    /// loads), on every thread of the current rayon pool at once; best of three, GFLOP/s.
    pub fn peak_gflops() -> f64 {
        const TURNS: usize = 200_000;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = std::time::Instant::now();
            rayon::broadcast(|_| {
                super::tile_thread::ready();
                // SAFETY: the tile configuration is loaded on this thread (`ready`, which
                // only a `TileKernel` — made from a detection token — reaches); only tile
                // registers and the counter are touched.
                unsafe {
                    asm!(
                        "tilezero tmm4",
                        "tilezero tmm5",
                        "tilezero tmm6",
                        "tilezero tmm7",
                        "2:",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        "dec {n}",
                        "jnz 2b",
                        n = inout(reg) TURNS => _,
                        options(nostack, nomem),
                    );
                }
            });
            best = best.min(start.elapsed().as_secs_f64());
        }
        let flops = (TURNS * 4 * 16 * 16 * 32 * 2 * rayon::current_num_threads()) as f64;
        flops / best / 1e9
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod asm_kernel {
    // No x86-64, no token: `Amx::detect` fails, so nothing here is reached.
    pub unsafe fn load_config(_: *const u8) {
        unreachable!("AMX detection succeeded on a build that is not x86-64")
    }
    pub unsafe fn run(_: &mut super::TileBlock<'_>) {
        unreachable!("AMX detection succeeded on a build that is not x86-64")
    }
    pub fn peak_gflops() -> f64 {
        unreachable!("AMX detection succeeded on a build that is not x86-64")
    }
}

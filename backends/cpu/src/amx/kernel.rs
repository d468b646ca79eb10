//! The micro-kernel: one 32×32 block of C accumulated over k-slices of 32 on the AMX tiles,
//! behind [`MicroKernel`] so that the same driver runs it or its emulation
//! ([`super::emulated::EmulatedKernel`]).
//!
//! Register use (8 tiles, all 16 rows × 64 bytes): `tmm0–3` hold the 2×2 blocks of C (16×16
//! f32 each), `tmm4–5` two A tiles (16 rows × 32 bf16: rows 0–15 and 16–31), `tmm6–7` two B
//! tiles (VNNI, 32 k × 16 columns: columns 0–15 and 16–31). Each loaded tile is used by two
//! products. Per 32-deep slice the four split products go in the order
//! `hi·hi, hi·lo, lo·lo, lo·hi`, which needs 8 tile loads for 16 `tdpbf16ps`:
//! A_hi, B_hi → hi·hi; B_lo → hi·lo; A_lo → lo·lo; B_hi → lo·hi.

use super::detect::Amx;
use half::bf16;

/// One call of the micro-kernel: `C[32×32] += Σ_s A_s · B_s` over `slices` k-slices of 32.
///
/// - `a_hi`, `a_lo`: the split activations, row `i` of the block at `i·lda`, slice `s` at
///   column `32·s` (bf16 elements); at least `31·lda + 32·slices` elements.
/// - `b0`, `b1`: the packed weights of columns 0–15 and 16–31 ([`super::gemm::PackedB`]):
///   per slice 1,024 bf16, the hi tile (16 VNNI rows of 32) then the lo tile.
/// - `c`: 32 rows of 32 f32, row-major, contiguous.
pub struct TileBlock<'a> {
    pub a_hi: &'a [bf16],
    pub a_lo: &'a [bf16],
    pub lda: usize,
    pub b0: &'a [bf16],
    pub b1: &'a [bf16],
    pub slices: usize,
    pub c: &'a mut [f32],
}

/// bf16 elements per slice of one 16-column panel: the hi tile and the lo tile.
pub const PANEL_SLICE: usize = 2 * 16 * 32;
/// f32 elements of one C block.
pub const C_BLOCK: usize = 32 * 32;

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
        let b_len = self.slices * PANEL_SLICE;
        assert!(
            self.b0.len() >= b_len && self.b1.len() >= b_len,
            "B too short"
        );
        assert!(self.c.len() >= C_BLOCK, "C too short");
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
        // lda·2 bytes, 64 bytes each, for `slices` slices; B: `slices` × 2 KiB from b0 and
        // b1; C: 32 rows of 128 bytes); `ready` requested the tile permission for this
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

/// Per-thread tile state: the permission request (harmless to repeat; a thread created
/// before the process asked may need its own) and `ldtilecfg` (per-thread state), once.
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
        // SAFETY: a valid configuration; `ready` is reached only through a `TileKernel` (made
        // from a detection token), and this thread's permission request just succeeded.
        unsafe { super::asm_kernel::load_config(&cfg as *const TileConfig as *const u8) };
        READY.set(true);
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
        let lda = block.lda * 2; // bytes
        let a_hi = block.a_hi.as_ptr();
        let a_lo = block.a_lo.as_ptr();
        let c = block.c.as_mut_ptr();
        // SAFETY: see the function's contract; every address is inside the checked slices.
        unsafe {
            asm!(
                // C: rows 0–15 and 16–31, columns 0–15 and 16–31 (row stride 128 bytes).
                "tileloadd tmm0, [{c} + {ldc}*1]",
                "tileloadd tmm1, [{c} + {ldc}*1 + 64]",
                "tileloadd tmm2, [{c} + {ldc}*1 + 2048]",
                "tileloadd tmm3, [{c} + {ldc}*1 + 2112]",
                "2:",
                // hi·hi
                "tileloadd tmm4, [{a0h} + {lda}*1]",
                "tileloadd tmm5, [{a1h} + {lda}*1]",
                "tileloadd tmm6, [{b0} + {s64}*1]",
                "tileloadd tmm7, [{b1} + {s64}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                // hi·lo
                "tileloadd tmm6, [{b0} + {s64}*1 + 1024]",
                "tileloadd tmm7, [{b1} + {s64}*1 + 1024]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                // lo·lo
                "tileloadd tmm4, [{a0l} + {lda}*1]",
                "tileloadd tmm5, [{a1l} + {lda}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                // lo·hi
                "tileloadd tmm6, [{b0} + {s64}*1]",
                "tileloadd tmm7, [{b1} + {s64}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                // Next slice: 32 bf16 along A's rows, 2 KiB along each B panel.
                "add {a0h}, 64",
                "add {a1h}, 64",
                "add {a0l}, 64",
                "add {a1l}, 64",
                "add {b0}, 2048",
                "add {b1}, 2048",
                "dec {n}",
                "jnz 2b",
                "tilestored [{c} + {ldc}*1], tmm0",
                "tilestored [{c} + {ldc}*1 + 64], tmm1",
                "tilestored [{c} + {ldc}*1 + 2048], tmm2",
                "tilestored [{c} + {ldc}*1 + 2112], tmm3",
                c = in(reg) c,
                ldc = in(reg) 128usize,
                a0h = inout(reg) a_hi => _,
                a1h = inout(reg) a_hi.add(16 * block.lda) => _,
                a0l = inout(reg) a_lo => _,
                a1l = inout(reg) a_lo.add(16 * block.lda) => _,
                lda = in(reg) lda,
                b0 = inout(reg) block.b0.as_ptr() => _,
                b1 = inout(reg) block.b1.as_ptr() => _,
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

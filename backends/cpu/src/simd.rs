//! Element-wise kernels compiled for the widest vector instructions the CPU has.
//!
//! The crate is built for baseline x86-64 (SSE2), so the rounding points, RMSNorm, RoPE,
//! attention and the SwiGLU gate would run four lanes at a time on a CPU with sixteen.
//! [`wide`] runs a kernel inside a function compiled with AVX-512 (or AVX2) enabled, chosen
//! once at run time: the kernel's loops vectorise for that width. Only the instructions
//! change, not the arithmetic: the kernels keep their operation order, and Rust never
//! contracts a multiply and an add into an FMA (docs/spec/COMPUTATION.md §5.6), so the results
//! are the same bits on every path (tested).

/// Run `kernel` compiled for this CPU's widest vectors. `kernel` must be an
/// `#[inline(always)]` closure calling `#[inline(always)]` functions, so that all of it is
/// inlined into the wide body: a plain closure is called from three bodies here, and LLVM
/// then leaves a loop-sized one out of line, compiled for baseline SSE2.
#[inline]
pub fn wide<R>(kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            // SAFETY: the CPU has every feature `avx512` is compiled with (checked above).
            return unsafe { x86::avx512(kernel) };
        }
        if x86::has_avx2() {
            // SAFETY: as above, for `avx2`.
            return unsafe { x86::avx2(kernel) };
        }
    }
    kernel()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    pub fn has_avx512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && has_avx2()
    }

    pub fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
    pub unsafe fn avx512<R>(kernel: impl FnOnce() -> R) -> R {
        kernel()
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn avx2<R>(kernel: impl FnOnce() -> R) -> R {
        kernel()
    }
}

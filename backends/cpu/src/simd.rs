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

/// Whether this CPU has the AVX-512 subsets [`wide`] compiles for (F, BW, VL, DQ).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    return x86::has_avx512();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `dst = src` widened to f32 (exact for every f16), 16 values per instruction with AVX-512;
/// elsewhere `half`'s slice conversion, which calls an out-of-line 8-value function per step.
pub fn widen_f16(src: &[half::f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "widen_f16: lengths differ");
    #[cfg(target_arch = "x86_64")]
    {
        if x86::has_avx512() {
            // SAFETY: the CPU has AVX-512 F and F16C (checked above).
            return unsafe { x86::widen_avx512(src, dst) };
        }
    }
    half::slice::HalfFloatSliceExt::convert_to_f32_slice(src, dst)
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

    #[target_feature(enable = "avx512f,avx2,f16c")]
    pub unsafe fn widen_avx512(src: &[half::f16], dst: &mut [f32]) {
        use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm512_cvtph_ps, _mm512_storeu_ps};
        let whole = src.len() / 16 * 16;
        for i in (0..whole).step_by(16) {
            // SAFETY: i + 16 <= len for both slices (equal lengths, asserted by the caller).
            unsafe {
                let h = _mm256_loadu_si256(src.as_ptr().add(i).cast::<__m256i>());
                _mm512_storeu_ps(dst.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            }
        }
        for (d, s) in dst[whole..].iter_mut().zip(&src[whole..]) {
            *d = s.to_f32();
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn avx2<R>(kernel: impl FnOnce() -> R) -> R {
        kernel()
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    #[test]
    fn widening_is_exact_for_every_f16_and_every_tail_length() {
        let all: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
        for len in [all.len(), 0, 1, 15, 16, 17, 31, 33] {
            let src = &all[all.len() - len..];
            let mut got = vec![0f32; len];
            super::widen_f16(src, &mut got);
            for (g, s) in got.iter().zip(src) {
                let want = s.to_f32();
                assert!(
                    g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                    "{:#06x}: {g:e}, want {want:e}",
                    s.to_bits()
                );
            }
        }
    }
}

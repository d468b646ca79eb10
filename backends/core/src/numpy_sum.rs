//! numpy's `np.sum` of a contiguous float array, reproduced bit for bit: the reduction walks
//! the array in buffers of 8192 elements, and sums each buffer with numpy's pairwise
//! summation (8 accumulators below 128 elements, halving above).

use std::ops::Add;

const BUFFER: usize = 8192;
const BLOCK: usize = 128;

fn pairwise<T: Copy + Add<Output = T> + Default>(a: &[T]) -> T {
    let n = a.len();
    if n < 8 {
        a.iter().fold(T::default(), |s, &x| s + x)
    } else if n <= BLOCK {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for j in 0..8 {
                r[j] = r[j] + chunk[j];
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            res = res + x;
        }
        res
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise(&a[..half]) + pairwise(&a[half..])
    }
}

/// `np.sum(a)` for a contiguous 1-D array of f32 or f64.
pub fn numpy_sum<T: Copy + Add<Output = T> + Default>(a: &[T]) -> T {
    a.chunks(BUFFER)
        .fold(T::default(), |s, chunk| s + pairwise(chunk))
}

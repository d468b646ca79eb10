use super::NumpyRng;

/// numpy's bounded integer in `[0, max]` by masked rejection (not Lemire's method): 32-bit
/// draws (through the buffer) when `max` fits in 32 bits, 64-bit draws otherwise.
fn interval(rng: &mut NumpyRng, max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut mask = max;
    for shift in [1, 2, 4, 8, 16, 32] {
        mask |= mask >> shift;
    }
    if max <= 0xFFFF_FFFF {
        loop {
            let v = (rng.next_u32() as u64) & mask;
            if v <= max {
                return v;
            }
        }
    } else {
        loop {
            let v = rng.next_u64() & mask;
            if v <= max {
                return v;
            }
        }
    }
}

pub(super) fn permutation(rng: &mut NumpyRng, n: usize) -> Vec<u32> {
    let mut a: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = interval(rng, i as u64) as usize;
        a.swap(i, j);
    }
    a
}

use powhost_core::rng::{NumpyRng, standard_normal_counted};
use std::time::Instant;
fn main() {
    let n = 100_000_000u64;
    let mut r = NumpyRng::from_seed_str("abc", 4);
    let t = Instant::now();
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(r.next_u64());
    }
    println!(
        "next_u64: {:.2} ns ({acc})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let mut pcg = r.pcg().clone();
    let t = Instant::now();
    let mut s = 0f64;
    for _ in 0..n {
        s += standard_normal_counted(&mut pcg).value;
    }
    println!(
        "normal: {:.2} ns ({s})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let t = Instant::now();
    let mut v = vec![0f32; 4096];
    let mut tot = 0f32;
    for _ in 0..(n / 4096) {
        for x in v.iter_mut() {
            *x = (0.0 + 0.02 * standard_normal_counted(&mut pcg).value) as f32;
        }
        tot += v[7];
    }
    println!(
        "normal->f32 buffer: {:.2} ns ({tot})",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}

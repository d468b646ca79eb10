//! The weight pool's decoders side by side: `cargo bench -p powhost-core --bench weight_pool`
//! (`-- DRAWS THREADS` to change the pool size, 2^27 normals, and the thread count, all cores).
//! Prints one JSON line per decoder: seconds (best of 3) and nanoseconds per normal per thread.

use powhost_core::weight_pool::{Decoder, WeightPool};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let count = |i: usize, name: &str, default: usize| match args.get(i) {
        None => default,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a whole number, not `{a}` (usage: -- [DRAWS [THREADS]])");
            std::process::exit(2)
        }),
    };
    let size = count(0, "DRAWS", 1 << 27);
    let threads = count(1, "THREADS", rayon::current_num_threads()).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let mut reference: Option<Vec<u16>> = None;
    for decoder in Decoder::available() {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let drawn = pool.install(|| WeightPool::draw_with(decoder, "bench", size, &|_, _| {}));
            best = best.min(start.elapsed().as_secs_f64());
            let bits: Vec<u16> = drawn.values().iter().map(|v| v.to_bits()).collect();
            match &reference {
                None => reference = Some(bits),
                Some(r) => assert!(*r == bits, "{}: a different pool", decoder.name()),
            }
        }
        println!(
            "{{\"decoder\": \"{}\", \"normals\": {size}, \"threads\": {threads}, \"seconds\": {best:.4}, \"ns_per_normal_per_thread\": {:.3}}}",
            decoder.name(),
            best * 1e9 * threads as f64 / size as f64
        );
    }
}

//! The weight pool (docs/spec/COMPUTATION.md §3): the first `pool_size` draws of
//! `normal(0, 0.02)` from the block hash's stream, each rounded f64 → f32 → f16.
//!
//! Drawing is parallel yet bit-exact. The stream is cut into chunks of 64-bit draws; each
//! worker jumps its own PCG64 to its chunk's first draw and decodes normals from there, not
//! knowing whether that draw starts a sample (about 1 % of normals take more than one draw).
//! A decoding that starts mid-sample re-aligns with the true sample boundaries within a few
//! draws: two decodings that start a sample at the same draw agree from there on. So,
//! chunk by chunk, the true boundary where the previous chunk's last sample ends is looked up
//! among the sample starts this chunk's worker recorded; what it decoded before that point
//! is dropped. Chunks are placed in stream order as they finish (see `draw_chunked`).

mod decode;
#[cfg(target_arch = "x86_64")]
mod vector;

use crate::parameter_table::Parameter;
use crate::rng::NumpyRng;
pub use decode::{Decoder, Simd};
use decode::{LOC, SCALE, decode_chunk, weight_f32};
use half::f16;
use half::slice::HalfFloatSliceExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// The pool, in f16, exactly as the reference holds it.
pub struct WeightPool {
    values: Vec<f16>,
}

/// Draws per parallel chunk: large enough that re-alignment and the jump cost nothing, small
/// enough that a worker's scratch buffer (2 MiB of f16) is still in cache when it is placed.
const CHUNK_DRAWS: usize = 1 << 20;

/// The pool as placed so far, chunk by chunk in stream order.
struct Placed {
    pool: Vec<f16>,
    /// Chunks placed (every chunk before this one).
    chunks: usize,
    /// The true stream position of the next sample start.
    boundary: u64,
}

impl WeightPool {
    /// Draw the pool for `block_hash` with the fastest decoder this CPU runs.
    /// `progress(done, total)` is called (from any thread) as chunks finish.
    pub fn draw(
        block_hash: &str,
        pool_size: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Self {
        let decoder = Decoder::best();
        log::debug!("weight pool: {} decoder", decoder.name());
        Self::draw_with(decoder, block_hash, pool_size, progress)
    }

    /// [`Self::draw`] with a chosen decoder (to compare them).
    pub fn draw_with(
        decoder: Decoder,
        block_hash: &str,
        pool_size: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Self {
        // Normals take ~1.02 draws each; 4 % slack keeps the tail sequential top-up tiny.
        let chunks = (pool_size + pool_size / 25 + 1024)
            .div_ceil(CHUNK_DRAWS)
            .max(1);
        Self::draw_chunked(
            decoder,
            block_hash,
            pool_size,
            CHUNK_DRAWS,
            chunks,
            progress,
        )
    }

    /// The parallel draw over at most `chunks` chunks of `chunk_draws` draws, then a
    /// sequential top-up if they held fewer than `pool_size` normals.
    ///
    /// Workers claim chunks in stream order and decode each into their own scratch buffer;
    /// a decoded chunk is placed (re-aligned and copied to the pool's end) as soon as every
    /// earlier chunk is. Placing one chunk overlaps with decoding the next elsewhere, the
    /// copy reads a scratch buffer still in cache, and the pool is written once, by the
    /// placing worker, with no buffer to zero first or compact afterwards.
    fn draw_chunked(
        decoder: Decoder,
        block_hash: &str,
        pool_size: usize,
        chunk_draws: usize,
        chunks: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Self {
        let seed = NumpyRng::from_seed_str(block_hash, 4).pcg().clone();
        let placed = Mutex::new(Placed {
            pool: crate::memory::large_vec(pool_size),
            chunks: 0,
            boundary: 0,
        });
        let warmer = crate::memory::PageWarmer::new(&placed.lock().unwrap().pool);
        let chunk_placed = Condvar::new();
        let next_chunk = AtomicUsize::new(0);
        let workers = rayon::current_num_threads().clamp(1, chunks.max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    let mut scratch = vec![f16::ZERO; chunk_draws];
                    loop {
                        let j = next_chunk.fetch_add(1, Ordering::Relaxed);
                        if j >= chunks {
                            return;
                        }
                        let start = (j * chunk_draws) as u64;
                        let end = start + chunk_draws as u64;
                        // The chunk lands no later than its draw offset (never more normals
                        // than draws) and about 2 % of that offset earlier (normals take
                        // ~1.02 draws each): fault those pages in now, off the placing path.
                        warmer.warm(j * chunk_draws * 19 / 20, (j + 1) * chunk_draws);
                        let mut decode = decode_chunk(decoder, &seed, start, end, &mut scratch);
                        let mut p = placed.lock().unwrap();
                        while p.chunks < j {
                            p = chunk_placed.wait(p).unwrap();
                        }
                        if p.pool.len() < pool_size {
                            let aligned = decode
                                .starts
                                .iter()
                                .find(|(q, _)| *q == p.boundary)
                                .copied();
                            let skip = match aligned {
                                Some((_, skip)) => skip,
                                None => {
                                    // Not re-aligned within the recorded starts (or the
                                    // boundary lies past this chunk): decode it again from
                                    // the true boundary.
                                    let from = p.boundary.max(start);
                                    decode = decode_chunk(
                                        decoder,
                                        &seed,
                                        from,
                                        end.max(from),
                                        &mut scratch,
                                    );
                                    0
                                }
                            };
                            let take = (decode.written - skip).min(pool_size - p.pool.len());
                            p.pool.extend_from_slice(&scratch[skip..skip + take]);
                            p.boundary = decode.end;
                        }
                        p.chunks = j + 1;
                        let stop = p.pool.len() >= pool_size;
                        drop(p);
                        chunk_placed.notify_all();
                        progress(if stop { chunks } else { j + 1 }, chunks);
                        if stop {
                            // Later chunks are not needed; let other workers stop claiming.
                            next_chunk.store(chunks, Ordering::Relaxed);
                            return;
                        }
                    }
                });
            }
        });
        let Placed {
            pool: mut buf,
            boundary,
            ..
        } = placed.into_inner().unwrap();
        // Top up sequentially if the chunks were not enough (for the pool's own chunk count
        // they practically always are).
        if buf.len() < pool_size {
            let mut bits = seed.clone();
            bits.advance(boundary as u128);
            let mut rng = NumpyRng::from_pcg(bits);
            let missing = pool_size - buf.len();
            buf.extend((0..missing).map(|_| f16::from_f32(weight_f32(rng.standard_normal()))));
        }
        Self { values: buf }
    }

    /// The straightforward sequential draw (the definition; used to test the parallel one).
    pub fn draw_sequential(block_hash: &str, pool_size: usize) -> Self {
        let mut rng = NumpyRng::from_seed_str(block_hash, 4);
        let values = (0..pool_size)
            .map(|_| f16::from_f32(rng.normal(LOC, SCALE) as f32))
            .collect();
        Self { values }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn values(&self) -> &[f16] {
        &self.values
    }

    /// Element `i` of a parameter, whichever branch it takes.
    #[inline]
    pub fn element(&self, p: &Parameter, i: usize) -> f16 {
        self.values[p.pool_index(i, self.values.len())]
    }

    /// Elements `first .. first + len` of a parameter as the contiguous pool slices they are,
    /// in order: one for the slice branch; for the tile branch a new one wherever its index
    /// `((i + shift) mod numel) mod pool_size` wraps, so that a copy needs no division per
    /// element.
    pub fn runs<'a>(
        &'a self,
        p: &'a Parameter,
        first: usize,
        len: usize,
    ) -> impl Iterator<Item = &'a [f16]> + 'a {
        assert!(
            first + len <= p.numel,
            "elements {first}..{} of {} ({} elements)",
            first + len,
            p.name,
            p.numel
        );
        let pool_size = self.values.len();
        let (mut i, end) = (first, first + len);
        std::iter::from_fn(move || {
            (i < end).then(|| {
                let run = match p.placement {
                    crate::parameter_table::Placement::Slice { .. } => end - i,
                    crate::parameter_table::Placement::Tile { shift } => {
                        let j = (i + shift) % p.numel;
                        (end - i).min(p.numel - j).min(pool_size - j % pool_size)
                    }
                };
                let start = p.pool_index(i, pool_size);
                i += run;
                &self.values[start..start + run]
            })
        })
    }

    /// A parameter's elements widened to f32 (exact), written into `out`.
    pub fn widen_into(&self, p: &Parameter, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            p.numel,
            "widen_into: wrong output length for {}",
            p.name
        );
        let mut out = out;
        for run in self.runs(p, 0, p.numel) {
            let (head, rest) = out.split_at_mut(run.len());
            run.convert_to_f32_slice(head);
            out = rest;
        }
    }

    /// SHA-256 of a parameter's f16 little-endian bytes (what the goldens and validators
    /// compare), streamed so no copy of the parameter is made.
    pub fn sha256_f16le(&self, p: &Parameter) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut bytes = Vec::with_capacity(1 << 17);
        for run in self.runs(p, 0, p.numel) {
            for chunk in run.chunks(1 << 16) {
                bytes.clear();
                bytes.extend(chunk.iter().flat_map(|v| v.to_le_bytes()));
                h.update(&bytes);
            }
        }
        hex(&h.finalize())
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_the_elements_in_order_for_both_branches() {
        use crate::parameter_table::Placement;
        let pool = WeightPool::draw("runs", 1000, &|_, _| {});
        let param = |numel, placement| Parameter {
            name: "w".into(),
            shape: vec![numel],
            numel,
            name_hash: 0,
            placement,
        };
        // A slice; tiles shorter and longer than the pool, shifted so that both wraps (of
        // the parameter and of the pool) fall inside.
        let params = [
            param(300, Placement::Slice { start: 650 }),
            param(1700, Placement::Tile { shift: 1234 }),
            param(2500, Placement::Tile { shift: 999 }),
            param(1001, Placement::Tile { shift: 0 }),
        ];
        for p in &params {
            for (first, len) in [(0, p.numel), (1, p.numel - 1), (17, 0), (250, 40), (0, 1)] {
                let got: Vec<f16> = pool.runs(p, first, len).flatten().copied().collect();
                let want: Vec<f16> = (first..first + len).map(|i| pool.element(p, i)).collect();
                assert_eq!(got, want, "{:?} {first}+{len}", p.placement);
                assert!(pool.runs(p, first, len).all(|r| !r.is_empty()));
            }
            let mut wide = vec![0f32; p.numel];
            pool.widen_into(p, &mut wide);
            assert!((0..p.numel).all(|i| wide[i] == pool.element(p, i).to_f32()));
        }
    }

    #[test]
    fn parallel_draw_equals_sequential_draw() {
        // Several chunks, so re-alignment at chunk borders is exercised.
        for (hash, n) in [("abc", 3 * CHUNK_DRAWS + 12345), ("x", 50_000)] {
            let par = WeightPool::draw(hash, n, &|_, _| {});
            let seq = WeightPool::draw_sequential(hash, n);
            assert_eq!(par.len(), n);
            let first_diff = par
                .values()
                .iter()
                .zip(seq.values())
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(
                first_diff, None,
                "{hash}: parallel pool differs from sequential"
            );
        }
    }

    #[test]
    fn tiny_chunks_realign_and_short_draws_top_up() {
        // Chunks of a few draws put multi-draw samples across chunk borders and past whole
        // chunks (the re-decode path); too few chunks leave the rest to the sequential top-up.
        let n = 20_000;
        let seq = WeightPool::draw_sequential("edge", n);
        for (chunk_draws, chunks) in [
            (1, 21_000),
            (2, 11_000),
            (3, 7_000),
            (64, 400),
            (1000, 10),
            (97, 1),
        ] {
            for decoder in [Decoder::Scalar, Decoder::best()] {
                let par =
                    WeightPool::draw_chunked(decoder, "edge", n, chunk_draws, chunks, &|_, _| {});
                assert_eq!(par.len(), n);
                let same = par
                    .values()
                    .iter()
                    .zip(seq.values())
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{decoder:?}, chunks of {chunk_draws} × {chunks}: differs from the sequential draw"
                );
            }
        }
    }
}

//! numpy's `SeedSequence` with no spawn key and a pool of 4 words.

const INIT_A: u32 = 0x43B0_D7E5;
const MULT_A: u32 = 0x931E_8875;
const INIT_B: u32 = 0x8B51_F9DD;
const MULT_B: u32 = 0x58F3_8DED;
const MIX_L: u32 = 0xCA01_F9DD;
const MIX_R: u32 = 0x4973_F715;
const POOL_SIZE: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

/// The running multiplier shared by every `hashmix` call while the pool is mixed.
struct HashMix {
    h: u32,
}

impl HashMix {
    fn mix(&mut self, mut v: u32) -> u32 {
        v ^= self.h;
        // numpy multiplies the running constant before using it.
        self.h = self.h.wrapping_mul(MULT_A);
        v = v.wrapping_mul(self.h);
        v ^ (v >> 16)
    }
}

fn mix(x: u32, y: u32) -> u32 {
    let t = MIX_L.wrapping_mul(x).wrapping_sub(MIX_R.wrapping_mul(y));
    t ^ (t >> 16)
}

impl SeedSequence {
    pub fn new(entropy: &[u32]) -> Self {
        let mut hm = HashMix { h: INIT_A };
        let mut pool = [0u32; POOL_SIZE];
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hm.mix(entropy.get(i).copied().unwrap_or(0));
        }
        for src in 0..POOL_SIZE {
            for dst in 0..POOL_SIZE {
                if dst != src {
                    let h = hm.mix(pool[src]);
                    pool[dst] = mix(pool[dst], h);
                }
            }
        }
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hm.mix(word);
                *slot = mix(*slot, h);
            }
        }
        Self { pool }
    }

    pub fn pool(&self) -> [u32; POOL_SIZE] {
        self.pool
    }

    pub fn generate_state(&self, n_words: usize) -> Vec<u32> {
        let mut h = INIT_B;
        (0..n_words)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ h;
                h = h.wrapping_mul(MULT_B);
                v = v.wrapping_mul(h);
                v ^ (v >> 16)
            })
            .collect()
    }
}

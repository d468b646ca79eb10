use sha2::{Digest, Sha256};

/// `entropy(seed, k)`: for `i in 0..k`, SHA-256 of `"{seed}_{i}"` read as 8 little-endian
/// `u32` words, concatenated (docs/spec/COMPUTATION.md §1.1).
pub fn entropy(seed: &str, num_hashes: usize) -> Vec<u32> {
    let mut words = Vec::with_capacity(8 * num_hashes);
    for i in 0..num_hashes {
        let digest = Sha256::digest(format!("{seed}_{i}").as_bytes());
        words.extend(
            digest
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
    }
    words
}

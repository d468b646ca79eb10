//! numpy-compatible streams against `tests/golden/rng.json` (made with numpy 2.2.6): bit-exact.

use powhost_core::rng::{NumpyRng, Pcg64, SeedSequence, entropy};
use powhost_core::streams;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn golden(name: &str) -> Value {
    let path = format!("{}/../../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hex_u64(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap(), 16).unwrap()
}

#[test]
fn seeding_and_raw_draws_match_numpy() {
    let g = golden("rng.json");
    for case in g["rng"].as_array().unwrap() {
        let seed = case["seed"].as_str().unwrap();
        let k = case["num_hashes"].as_u64().unwrap() as usize;
        let words = entropy(seed, k);
        let want: Vec<u32> = case["entropy_u32"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(words, want, "{seed}/{k}: entropy");
        let pcg = Pcg64::from_seed_sequence(&SeedSequence::new(&words));
        assert_eq!(
            pcg.state().to_string(),
            case["pcg64_state"].as_str().unwrap(),
            "{seed}/{k}: state"
        );
        assert_eq!(
            pcg.inc().to_string(),
            case["pcg64_inc"].as_str().unwrap(),
            "{seed}/{k}: inc"
        );
        let mut rng = NumpyRng::from_seed_str(seed, k);
        for (i, v) in case["random_raw_u64"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want = v
                .as_u64()
                .unwrap_or_else(|| v.as_str().unwrap().parse().unwrap());
            assert_eq!(rng.next_u64(), want, "{seed}/{k}: raw u64 #{i}");
        }
    }
}

#[test]
fn standard_normal_and_normal_match_numpy_bit_for_bit() {
    let g = golden("rng.json");
    for case in g["rng"].as_array().unwrap() {
        let seed = case["seed"].as_str().unwrap();
        let k = case["num_hashes"].as_u64().unwrap() as usize;
        let mut rng = NumpyRng::from_seed_str(seed, k);
        for (i, v) in case["standard_normal_f64_bits"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_eq!(
                rng.standard_normal().to_bits(),
                hex_u64(v),
                "{seed}/{k}: standard_normal #{i}"
            );
        }
        let mut rng = NumpyRng::from_seed_str(seed, k);
        let f32s = case["normal_0_002_f32_bits"].as_array().unwrap();
        let f16s = case["normal_0_002_f16_bits"].as_array().unwrap();
        for (i, (w32, w16)) in f32s.iter().zip(f16s).enumerate() {
            let v = rng.normal(0.0, 0.02) as f32;
            assert_eq!(
                v.to_bits() as u64,
                hex_u64(w32),
                "{seed}/{k}: normal f32 #{i}"
            );
            assert_eq!(
                half::f16::from_f32(v).to_bits() as u64,
                hex_u64(w16),
                "{seed}/{k}: normal f16 #{i}"
            );
        }
    }
}

#[test]
fn permutations_match_numpy() {
    let g = golden("rng.json");
    for case in g["permutations"].as_array().unwrap() {
        let seed = case["seed"].as_str().unwrap();
        let k = case["num_hashes"].as_u64().unwrap() as usize;
        let n = case["n"].as_u64().unwrap() as usize;
        let want: Vec<u32> = case["permutation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            NumpyRng::from_seed_str(seed, k).permutation(n),
            want,
            "{seed}: permutation({n})"
        );
    }
}

#[test]
fn u32_buffer_hands_out_low_half_first_and_outlives_u64_draws() {
    // The check values for ("abc", 1 hash) of docs/spec/NUMPY_RANDOM.md §7.
    let mut rng = NumpyRng::from_seed_str("abc", 1);
    assert_eq!(rng.next_u32(), 0xb854e835);
    assert_eq!(rng.next_u32(), 0x305fd0b6);
    assert_eq!(rng.next_u32(), 0xbd86b569);
    let mut rng = NumpyRng::from_seed_str("abc", 1);
    assert_eq!(rng.next_u32(), 0xb854e835);
    assert_eq!(
        rng.next_u64(),
        0xd0611579bd86b569,
        "a u64 draw skips the buffer"
    );
    assert_eq!(
        rng.next_u32(),
        0x305fd0b6,
        "the buffered high half is still there"
    );
}

#[test]
fn targets_match_numpy() {
    let g = golden("rng.json");
    for case in g["targets"].as_array().unwrap() {
        let hash = case["block_hash"].as_str().unwrap();
        let vocab = case["vocab_size"].as_u64().unwrap() as usize;
        let t = streams::target(vocab, hash);
        for (i, v) in case["first16_f64_bits"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            assert_eq!(t[i].to_bits(), hex_u64(v), "{hash}/{vocab}: target[{i}]");
        }
        let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            sha,
            case["sha256_f64le"].as_str().unwrap(),
            "{hash}/{vocab}: target sha256"
        );
    }
}

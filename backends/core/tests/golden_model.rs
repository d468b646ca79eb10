//! Parameter table, weight pool, RoPE table and nonce inputs against the reference's goldens
//! (`tests/golden/model_*.json`, `forward_*.json`, `mainnet.json`): all bit-exact.

use half::f16;
use powhost_core::parameter_table::{ParameterTable, pool_size_of};
use powhost_core::rope::RopeTable;
use powhost_core::weight_pool::WeightPool;
use powhost_core::{ModelParams, streams};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn golden(name: &str) -> Value {
    let path = format!("{}/../../tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn params_of(g: &Value) -> ModelParams {
    ModelParams::from_json(&g["params"].to_string()).unwrap()
}

fn f16_bits(v: &Value) -> u16 {
    u16::from_str_radix(v.as_str().unwrap(), 16).unwrap()
}

fn sha_f16(values: &[f16]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_model(preset: &str) {
    let g = golden(&format!("model_{preset}.json"));
    let params = params_of(&g);
    assert_eq!(
        params,
        ModelParams::preset(preset).unwrap(),
        "{preset}: golden params = preset"
    );
    let hash = g["block_hash"].as_str().unwrap();
    let table = ParameterTable::new(&params, hash);
    assert_eq!(
        table.total_params,
        g["total_params"].as_u64().unwrap(),
        "{preset}: total_params"
    );
    assert_eq!(
        table.pool_size as u64,
        g["pool_size"].as_u64().unwrap(),
        "{preset}: pool_size"
    );
    let pool = WeightPool::draw(hash, table.pool_size, &|_, _| {});
    let want = g["parameters"].as_array().unwrap();
    assert_eq!(table.parameters.len(), want.len());
    for (p, w) in table.parameters.iter().zip(want) {
        assert_eq!(p.name, w["name"].as_str().unwrap());
        let shape: Vec<usize> = w["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(p.shape, shape, "{}: shape", p.name);
        assert_eq!(
            p.numel as u64,
            w["numel"].as_u64().unwrap(),
            "{}: numel",
            p.name
        );
        assert_eq!(
            p.name_hash as u64,
            w["name_hash"].as_u64().unwrap(),
            "{}: name hash",
            p.name
        );
        assert_eq!(
            p.branch(),
            w["branch"].as_str().unwrap(),
            "{}: branch",
            p.name
        );
        for (i, b) in w["first8_f16_bits"].as_array().unwrap().iter().enumerate() {
            assert_eq!(
                pool.element(p, i).to_bits(),
                f16_bits(b),
                "{}: element {i}",
                p.name
            );
        }
        assert_eq!(
            pool.sha256_f16le(p),
            w["sha256_f16le"].as_str().unwrap(),
            "{}: sha256",
            p.name
        );
    }
    let rope = RopeTable::new(&params);
    for (i, b) in g["rope_fp16_bits_first_positions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(
            rope.values[i].to_bits(),
            f16_bits(b),
            "{preset}: rope value {i}"
        );
    }
}

#[test]
fn tiny_model_is_bit_exact() {
    check_model("tiny");
}

#[test]
fn small_model_is_bit_exact_including_tile_branch() {
    check_model("small");
}

#[test]
fn devtest_model_is_bit_exact() {
    check_model("devtest");
}

#[test]
fn nonce_inputs_are_bit_exact() {
    for preset in ["tiny", "small", "devtest"] {
        let g = golden(&format!("forward_{preset}.json"));
        let params = params_of(&g);
        let (hash, key) = (
            g["block_hash"].as_str().unwrap(),
            g["public_key"].as_str().unwrap(),
        );
        for case in g["inputs"].as_array().unwrap() {
            let nonce = case["nonce"].as_i64().unwrap();
            let x = streams::nonce_input(&params, hash, key, nonce);
            for (i, b) in case["first8_f16_bits"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                assert_eq!(
                    x[i].to_bits(),
                    f16_bits(b),
                    "{preset} nonce {nonce}: input {i}"
                );
            }
            assert_eq!(
                sha_f16(&x),
                case["sha256_f16le"].as_str().unwrap(),
                "{preset} nonce {nonce}: input sha256"
            );
        }
    }
}

#[test]
fn mainnet_sizes_are_exact() {
    let g = golden("mainnet.json");
    let params = params_of(&g);
    assert_eq!(params, ModelParams::preset("mainnet").unwrap());
    let (total, pool) = pool_size_of(&params);
    assert_eq!(total, g["total_params"].as_u64().unwrap());
    assert_eq!(pool as u64, g["pool_size"].as_u64().unwrap());
    let table = ParameterTable::new(&params, g["block_hash"].as_str().unwrap());
    assert_eq!(table.total_params, total);
    assert!(
        table.parameters.iter().all(|p| p.branch() == "slice"),
        "every mainnet parameter is a pool slice"
    );
}

/// The full mainnet pool: 888 M draws, 1.8 GB, about 9 s in the test profile on 2 cores.
#[test]
fn mainnet_parameter_hashes_are_exact() {
    let g = golden("mainnet.json");
    let params = params_of(&g);
    let hash = g["block_hash"].as_str().unwrap();
    let table = ParameterTable::new(&params, hash);
    let pool = WeightPool::draw(hash, table.pool_size, &|_, _| {});
    for w in g["parameter_hashes"].as_array().unwrap() {
        let p = table.get(w["name"].as_str().unwrap()).unwrap();
        assert_eq!(
            pool.sha256_f16le(p),
            w["sha256_f16le"].as_str().unwrap(),
            "{}",
            p.name
        );
    }
}

#[test]
fn rope_scaling_matches_the_reference_f32_arithmetic() {
    let g = golden("rope_scaling_torch.json");
    let mut compared = 0;
    for case in g["cases"].as_array().unwrap() {
        let hd = case["head_dim"].as_u64().unwrap();
        let bits = |key: &str| -> Vec<f32> {
            case[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| f32::from_bits(u32::from_str_radix(v.as_str().unwrap(), 16).unwrap()))
                .collect()
        };
        for (f, want) in bits("freqs_f32_bits")
            .into_iter()
            .zip(bits("scaled_f32_bits"))
        {
            let got = powhost_core::rope::scale_freq(f);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "hd {hd}: scale_freq({f:e}) = {got:e}, reference {want:e}"
            );
            compared += 1;
        }
    }
    assert!(compared > 300);
}

#[test]
fn rope_base_frequencies_match_the_reference_for_every_preset() {
    let g = golden("rope_scaling_torch.json");
    for (name, _, p) in powhost_core::params::PRESETS {
        let case = g["cases"].as_array().unwrap().iter().find(|c| {
            c["head_dim"].as_u64().unwrap() as usize == p.head_dim()
                && c["rope_theta"].as_f64().unwrap() == p.rope_theta
        });
        let Some(case) = case else {
            panic!(
                "{name}: no reference frequencies for hd {} theta {}",
                p.head_dim(),
                p.rope_theta
            )
        };
        for (j, v) in case["freqs_f32_bits"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let want = u32::from_str_radix(v.as_str().unwrap(), 16).unwrap();
            let got = powhost_core::rope::base_freq(j, p.head_dim(), p.rope_theta);
            assert_eq!(got.to_bits(), want, "{name}: frequency {j}");
        }
    }
}
